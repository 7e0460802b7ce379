package vmsa_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// rig is a machine for the hand-written tests of this package: 256 MiB
// of RAM at 0x4000_0000 and registers with QEMU -cpu max ID registers.
// Descriptors are written word by word so that every expectation can be
// read off the table and the rules.
type rig struct {
	t testing.TB
	m *mem.Sparse
	r vmsa.Regs
	w vmsa.Walker
}

const (
	rigRAM  = 0x4000_0000
	rigSize = 0x1000_0000

	// Standard stage-1 tables (4K, 48-bit VA, start level 0).
	rL0 = 0x4400_0000
	rL1 = 0x4400_1000
	rL2 = 0x4400_2000
	rL3 = 0x4400_3000

	// Standard stage-2 tables (4K, 32-bit IPA, start level 1).
	rS2L1 = 0x4f00_0000
	rS2L2 = 0x4f00_1000
	rS2L3 = 0x4f00_2000

	xTable = 3
	xBlock = 1
	xAF    = 1 << 10
	xIS    = 3 << 8
	xDBM   = 1 << 51
	xCont  = 1 << 52
)

func newRig(t testing.TB) *rig {
	t.Helper()
	m, err := mem.NewSparse([]mem.Range{{Base: rigRAM, Size: rigSize}})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, m: m, r: vmsa.DefaultRegs()}
	g.r.HCR_EL2 = sysreg.HCR_RW
	g.w.Mem = m
	return g
}

func (g *rig) put(pa, v uint64) {
	g.t.Helper()
	if err := g.m.Write64(mem.PA(pa), v); err != nil {
		g.t.Fatal(err)
	}
}

func (g *rig) get(pa uint64) uint64 {
	g.t.Helper()
	v, ok := g.m.Read64(mem.PA(pa))
	if !ok {
		g.t.Fatalf("read %#x outside RAM", pa)
	}
	return v
}

// std4k: EL1&0 stage 1, 4K, T0SZ=16, IPS=48, MMU and caches on, MAIR
// Attr0=0xff, chain L0[0] -> L1[0] -> L2[0] -> L3 with L3[1] mapping VA
// 0x1000 to PA 0x4000_1000 (AF, IS, AP=00).
func (g *rig) std4k() {
	g.r.SCTLR_EL1 = 1 | 1<<2 | 1<<12
	g.r.TCR_EL1 = sysreg.TCR(16 | 5<<32)
	g.r.TTBR0_EL1 = rL0
	g.r.MAIR_EL1 = 0xff
	g.put(rL0, rL1|xTable)
	g.put(rL1, rL2|xTable)
	g.put(rL2, rL3|xTable)
	g.put(rL3+8, 0x4000_1000|xTable|xAF|xIS)
}

// std2: stage 2 on, 4K, T0SZ=32, SL0=1 (start level 1), PS=48, IPA
// [0x4000_0000, 0x5000_0000) identity-mapped by 2MB blocks (Normal WB,
// S2AP=11, IS, AF).
func (g *rig) std2() {
	g.r.HCR_EL2 |= sysreg.HCR_VM
	g.r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 5<<16)
	g.r.VTTBR_EL2 = rS2L1
	g.put(rS2L1+8, rS2L2|xTable)
	for ipa := uint64(rigRAM); ipa < rigRAM+rigSize; ipa += 1 << 21 {
		g.put(rS2L2+(ipa>>21&511)*8, ipa|xBlock|0xf<<2|3<<6|xIS|xAF)
	}
}

// s2page splits the 2MB block around ipa into pages (same mapping) and
// sets ipa's page descriptor to d. It returns the descriptor's address.
func (g *rig) s2page(ipa, d uint64) uint64 {
	blk := ipa &^ (1<<21 - 1)
	for i := uint64(0); i < 512; i++ {
		g.put(rS2L3+i*8, (blk+i<<12)|xTable|0xf<<2|3<<6|xIS|xAF)
	}
	g.put(rS2L2+(ipa>>21&511)*8, rS2L3|xTable)
	a := rS2L3 + (ipa>>12&511)*8
	g.put(a, d)
	return a
}

func (g *rig) tr(va uint64, acc vmsa.Access) vmsa.Translation {
	return g.w.Translate(&g.r, vmsa.RegimeEL10, mem.VA(va), acc, vmsa.TranslateOptions{})
}

var (
	rd1 = vmsa.Access{Kind: vmsa.Read, EL: 1}
	wr1 = vmsa.Access{Kind: vmsa.Write, EL: 1}
	wr0 = vmsa.Access{Kind: vmsa.Write, EL: 0}
)

func wantFault(t *testing.T, got vmsa.Fault, kind vmsa.FaultKind, level int8, stage2 bool) {
	t.Helper()
	if got.Kind != kind || got.Level != level || got.Stage2 != stage2 {
		t.Errorf("fault = %v (kind %v, level %d, stage2 %v); want kind %v, level %d, stage2 %v",
			got, got.Kind, got.Level, got.Stage2, kind, level, stage2)
	}
}
