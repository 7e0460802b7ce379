package cpu_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// TestHPFARWrittenOnlyWhereValid: on an exception taken to EL2 the PE
// writes HPFAR_EL2[43:4] (AArch64.ReportException) with the faulting IPA
// only where the pseudocode's IPAValid holds: a stage-2 Translation,
// Access flag or Address size fault, and a stage-2 Permission fault on a
// stage-1 table walk (S1PTW). Every other exception to EL2 leaves it
// UNKNOWN, which the model writes as the PE's UnknownHPFAR: a stage-2
// Permission fault of the access itself, a stage-2 Alignment fault, a
// synchronous External abort (on the access or on the stage-2 walk), a
// trapped system register access. Bits outside [43:4] are kept. Returning
// to EL1 makes HPFAR_EL2 UNKNOWN again ("execution at EL1 or EL0").
func TestHPFARWrittenOnlyWhereValid(t *testing.T) {
	const unknown = 1
	s2map := func(l desc.S2Leaf) func(m *machine) {
		return func(m *machine) {
			if err := m.s2.MapS2(holeIPA, 2, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	// s1TableAt makes vaHole's level-3 table the page at holeIPA, so that
	// the stage-1 walk of vaHole reads it through stage 2.
	s1TableAt := func(m *machine) {
		_, addr, ok := m.s1.Get(vaHole, 2)
		if !ok {
			t.Fatal("no level-2 entry for vaHole")
		}
		if err := m.ram.Write64(mem.PA(addr), holeIPA|3); err != nil {
			t.Fatal(err)
		}
	}
	normal := desc.S2Leaf{OA: ramBase, MemAttr: 0xf, SH: 3, AF: true}
	with := func(l desc.S2Leaf, f func(*desc.S2Leaf)) desc.S2Leaf { f(&l); return l }
	for _, c := range []struct {
		name  string
		setup func(m *machine)
		va    uint64
		size  int
		write bool
		fsc   uint8 // expected ESR_EL2.ISS.FSC
		s1ptw bool
		hpfar uint64 // expected IPA, or unknown
		msr   bool   // a trapped MSR instead of an access
	}{
		{name: "stage-2 translation fault", va: vaS2Hole, size: 8, fsc: 0b000110, hpfar: holeIPA},
		{name: "stage-2 access flag fault", setup: s2map(with(normal, func(l *desc.S2Leaf) { l.S2AP, l.AF = 3, false })),
			va: vaS2Hole, size: 8, fsc: 0b001010, hpfar: holeIPA},
		{name: "stage-2 address size fault (OA beyond VTCR_EL2.PS)", setup: s2map(with(normal, func(l *desc.S2Leaf) { l.S2AP, l.OA = 3, 1<<41 })),
			va: vaS2Hole, size: 8, fsc: 0b000010, hpfar: holeIPA},
		{name: "stage-2 translation fault on the stage-1 walk", setup: s1TableAt,
			va: vaHole, size: 8, fsc: 0b000110, s1ptw: true, hpfar: holeIPA},
		{name: "stage-2 permission fault on the stage-1 walk", setup: func(m *machine) {
			s2map(with(normal, func(l *desc.S2Leaf) { l.S2AP = 0 }))(m)
			s1TableAt(m)
		}, va: vaHole, size: 8, fsc: 0b001110, s1ptw: true, hpfar: holeIPA},
		{name: "stage-2 permission fault of the access", setup: s2map(with(normal, func(l *desc.S2Leaf) { l.S2AP = 1 })),
			va: vaS2Hole, size: 8, write: true, fsc: 0b001110, hpfar: unknown},
		{name: "stage-2 alignment fault", va: vaS2Dev + 1, size: 4, fsc: 0b100001, hpfar: unknown},
		{name: "synchronous External abort on the stage-2 walk", setup: func(m *machine) {
			_, addr, ok := m.s2.Get(holeIPA, 2)
			if !ok {
				t.Fatal("no stage-2 level-2 entry for holeIPA")
			}
			_ = m.ram.Write64(mem.PA(addr), extOA|3) // a table outside RAM
		}, va: vaS2Hole, size: 8, fsc: 0b010111, hpfar: unknown}, // reading the level-3 descriptor
		{name: "synchronous External abort on the access (TEA)", setup: func(m *machine) {
			m.pe.Regs.HCR_EL2 |= 1 << 37
			m.pe.RegsChanged()
		}, va: vaS2Ext, size: 8, fsc: 0b010000, hpfar: unknown},
		{name: "trapped MSR (TVM)", setup: func(m *machine) {
			m.pe.Regs.HCR_EL2 |= sysreg.HCR_TVM
			m.pe.RegsChanged()
		}, msr: true, hpfar: unknown},
	} {
		for _, stand := range []sysreg.HPFAR{cpu.DefaultUnknownHPFAR, 0x123_4560} {
			m := newRig(t, true)
			pe := m.pe
			if c.setup != nil {
				c.setup(m)
			}
			pe.UnknownHPFAR = stand
			const outside = sysreg.HPFAR(1<<63 | 0xf)
			pe.HPFAR = outside | 0x777_7770
			var e cpu.Exception
			switch {
			case c.msr:
				e = pe.MSR(cpu.SCTLR_EL1, 1, 0)
			case c.write:
				e = pe.Write(mem.VA(c.va), c.size, 0, cpu.Insn{})
			default:
				_, e = pe.Read(mem.VA(c.va), c.size, cpu.Insn{})
			}
			if !e.Taken() || e.TargetEL != 2 {
				t.Errorf("%s: %s, want an exception to EL2", c.name, e)
				continue
			}
			if !c.msr && (e.ESR.FSC() != c.fsc || e.ESR.S1PTW() != c.s1ptw) {
				t.Errorf("%s: ESR %#x (FSC %#x, S1PTW %v), want FSC %#x S1PTW %v", c.name, uint64(e.ESR), e.ESR.FSC(), e.ESR.S1PTW(), c.fsc, c.s1ptw)
			}
			want := sysreg.HPFARFor(c.hpfar)
			if c.hpfar == unknown {
				want = stand & (1<<44 - 1<<4)
			}
			want |= outside
			if pe.HPFAR != want || e.HPFAR != want {
				t.Errorf("%s (stand-in %#x): HPFAR_EL2 %#x, exception reports %#x; want %#x", c.name, uint64(stand), uint64(pe.HPFAR), uint64(e.HPFAR), uint64(want))
			}
			if err := pe.ERET(); err.Taken() {
				t.Fatal(err)
			}
			if wantEL1 := stand&(1<<44-1<<4) | outside; pe.HPFAR != wantEL1 {
				t.Errorf("%s: back at EL1, HPFAR_EL2 %#x, want UNKNOWN (%#x)", c.name, uint64(pe.HPFAR), uint64(wantEL1))
			}
		}
	}
}
