package vmsa_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// VACheck must predict exactly the level-0 faults that Translate reports
// before reading a table, for random registers and VAs: it is what lets a
// TLB be consulted without a walk.
func TestVACheckAgreesWithTranslate(t *testing.T) {
	ram, err := mem.NewSparse([]mem.Range{{Base: 0x4000_0000, Size: 0x1000_0000}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := &vmsa.Walker{Mem: ram}
	for i := 0; i < 20000; i++ {
		r := vmsa.DefaultRegs()
		r.SCTLR_EL1 = sysreg.SCTLR(rng.Uint64() & (1 | 1<<2))
		r.SCTLR_EL2 = sysreg.SCTLR(rng.Uint64() & 1)
		tcr := rng.Uint64()
		// Pick TxSZ near the interesting limits most of the time.
		if rng.IntN(2) == 0 {
			tcr = tcr&^(0x3f|0x3f<<16) | uint64(10+rng.IntN(42)) | uint64(10+rng.IntN(42))<<16
		}
		r.TCR_EL1 = sysreg.TCR(tcr)
		r.TCR_EL2 = rng.Uint64()
		r.HCR_EL2 = sysreg.HCR(rng.Uint64() & uint64(sysreg.HCR_E2H|sysreg.HCR_TGE|sysreg.HCR_DC|sysreg.HCR_RW))
		r.TTBR0_EL1 = 0x4000_0000 // an empty table: walks fault at their start level
		r.TTBR1_EL1 = 0x4000_0000
		r.TTBR0_EL2 = 0x4000_0000
		r.TTBR1_EL2 = 0x4000_0000
		regime := vmsa.Regime(rng.IntN(3))
		c := vmsa.NewVACheck(&r, regime)
		for j := 0; j < 8; j++ {
			va := rng.Uint64()
			switch rng.IntN(3) {
			case 0:
				va &= 0x0000_ffff_ffff_ffff
			case 1:
				va |= 0xffff_0000_0000_0000
			}
			acc := vmsa.Access{Kind: vmsa.AccessKind(rng.IntN(3)), EL: uint8(rng.IntN(3))}
			want := w.Translate(&r, regime, mem.VA(va), acc, vmsa.TranslateOptions{Stage1Only: true}).Fault
			got := c.Check(mem.VA(va), acc)
			if acc.Kind != vmsa.Fetch { // DataPass's masks say the same
				two, mask, pass := c.DataPass(acc.EL == 0)
				h := 0
				if two {
					h = int(va >> 55 & 1)
				}
				if ok := va&mask[h] == pass[h]; ok == got.IsFault() {
					t.Fatalf("regime %s va %#x acc %+v: DataPass passes %v, Check %v", regime, va, acc, ok, got)
				}
			}
			pre := want.Level == 0 && (want.Kind == vmsa.FaultTranslation || want.Kind == vmsa.FaultAddressSize) && w.Stats.DescReads == 0
			w.Stats.DescReads = 0
			if got.IsFault() != pre || (pre && got.Kind != want.Kind) {
				t.Fatalf("regime %s va %#x acc %+v TCR_EL1 %#x TCR_EL2 %#x HCR %#x: VACheck %v, Translate %v",
					regime, va, acc, uint64(r.TCR_EL1), r.TCR_EL2, uint64(r.HCR_EL2), got, want)
			}
		}
	}
}
