package vmsa_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	benchRAM    = 0x4000_0000
	benchVA     = 0x0000_1234_5678_9000
	benchIPA    = 0x4020_0000 // stage-1 output when stage 2 is on
	benchS1Tabs = 0x4010_0000
	benchS2Tabs = 0x4400_0000
)

var f4k = desc.Format{Granule: sysreg.Granule4K}

// benchMachine builds a 4-level 4K stage 1 (48-bit VA) and, when twoStage,
// a 4-level 4K stage 2 (48-bit IPA) that identity-maps the first 64 MiB of
// RAM with 4K pages, so that a translation walks 4 + 4*5 descriptors.
func benchMachine(tb testing.TB, twoStage bool) (*mem.Flat, vmsa.Regs) {
	tb.Helper()
	ram, err := mem.NewFlat(benchRAM, 128<<20)
	if err != nil {
		tb.Fatal(err)
	}
	s1, err := ttbuild.New(ram, &ttbuild.Alloc{Next: benchS1Tabs, End: benchS1Tabs + 1<<20}, f4k, false, 48, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s1.MapS1(benchVA, 3, desc.S1Leaf{OA: benchIPA, AP: 0b01, SH: 3, AF: true}); err != nil {
		tb.Fatal(err)
	}
	r := vmsa.DefaultRegs()
	r.HCR_EL2 = sysreg.HCR_RW
	r.SCTLR_EL1 = 0x30d00805
	r.TCR_EL1 = sysreg.TCR(16 | 3<<12 | 5<<32 | 1<<23)
	r.TTBR0_EL1 = sysreg.TTBR(s1.Root)
	r.MAIR_EL1 = 0xff
	if twoStage {
		s2, err := ttbuild.New(ram, &ttbuild.Alloc{Next: benchS2Tabs, End: benchS2Tabs + 4<<20}, f4k, true, 48, 0)
		if err != nil {
			tb.Fatal(err)
		}
		for off := uint64(0); off < 64<<20; off += 4096 {
			if err := s2.MapS2(benchRAM+off, 3, desc.S2Leaf{OA: benchRAM + off, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}); err != nil {
				tb.Fatal(err)
			}
		}
		r.HCR_EL2 |= sysreg.HCR_VM
		r.VTCR_EL2 = sysreg.VTCR(16 | 2<<6 | 3<<12 | 5<<16)
		r.VTTBR_EL2 = sysreg.VTTBR(s2.Root)
	}
	return ram, r
}

func TestTranslateAllocatesNothing(t *testing.T) {
	for _, two := range []bool{false, true} {
		ram, r := benchMachine(t, two)
		w := &vmsa.Walker{Mem: ram}
		acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
		var bad bool
		n := testing.AllocsPerRun(100, func() {
			tr := w.Translate(&r, vmsa.RegimeEL10, benchVA, acc, vmsa.TranslateOptions{})
			bad = bad || tr.Fault.IsFault()
		})
		if bad {
			t.Fatalf("two-stage=%v: benchmark translation faulted", two)
		}
		if n != 0 {
			t.Errorf("two-stage=%v: Translate allocates %.1f times per call, want 0", two, n)
		}
	}
}

func TestWalkReferenceCounts(t *testing.T) {
	// (n+1)(m+1)-1 references for n levels over m levels; n for one stage.
	for _, c := range []struct {
		two  bool
		want uint64
	}{{false, 4}, {true, 24}} {
		ram, r := benchMachine(t, c.two)
		w := &vmsa.Walker{Mem: ram}
		tr := w.Translate(&r, vmsa.RegimeEL10, benchVA, vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
		if tr.Fault.IsFault() {
			t.Fatalf("two-stage=%v: %s", c.two, tr.Fault)
		}
		if w.Stats.DescReads != c.want {
			t.Errorf("two-stage=%v: %d descriptor reads, want %d", c.two, w.Stats.DescReads, c.want)
		}
		if tr.OA != benchIPA {
			t.Errorf("two-stage=%v: OA %#x, want %#x", c.two, tr.OA, uint64(benchIPA))
		}
	}
}

// BenchmarkS1Walk4K4Level: a full 4-level 4K stage-1 walk.
func BenchmarkS1Walk4K4Level(b *testing.B) {
	ram, r := benchMachine(b, false)
	w := &vmsa.Walker{Mem: ram}
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	b.ReportAllocs()
	for b.Loop() {
		w.Translate(&r, vmsa.RegimeEL10, benchVA, acc, vmsa.TranslateOptions{})
	}
}

// BenchmarkTwoStage4Over4: a 4-level stage 1 over a 4-level stage 2 (24 reads).
func BenchmarkTwoStage4Over4(b *testing.B) {
	ram, r := benchMachine(b, true)
	w := &vmsa.Walker{Mem: ram}
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	b.ReportAllocs()
	for b.Loop() {
		w.Translate(&r, vmsa.RegimeEL10, benchVA, acc, vmsa.TranslateOptions{})
	}
}

// BenchmarkATS12E1R: AT S12E1R end to end, PAR_EL1 composed.
func BenchmarkATS12E1R(b *testing.B) {
	ram, r := benchMachine(b, true)
	w := &vmsa.Walker{Mem: ram}
	b.ReportAllocs()
	var par sysreg.PAR
	for b.Loop() {
		res := at.Execute(w, &r, at.PSTATE{EL: 2}, at.S12E1R, benchVA, par)
		par = res.PAR
	}
	if par.F() {
		b.Fatalf("AT faulted: PAR %#x", uint64(par))
	}
}
