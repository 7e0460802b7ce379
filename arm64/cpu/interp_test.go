package cpu_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// The additions an instruction interpreter uses: exclusive alignment,
// unprivileged accesses, the physical address of an access, translation
// without access, and the reproducible QEMU deviations.

// TestExclusiveAlignment: AArch64.UnalignedAccessFaults for an exclusive
// or atomic access: with FEAT_LSE2 (QEMU's -cpu max) only an access that
// leaves its aligned 16-byte quantity faults; without it every unaligned
// one; an ordinary unaligned load to Normal memory does not.
func TestExclusiveAlignment(t *testing.T) {
	cases := []struct {
		name  string
		lse2  bool
		off   mem.VA
		size  int
		excl  bool
		fault bool
	}{
		{"LSE2, within 16 bytes", true, 4, 8, true, false},
		{"LSE2, across 16 bytes", true, 12, 8, true, true},
		{"no LSE2, unaligned", false, 4, 8, true, true},
		{"no LSE2, aligned", false, 8, 8, true, false},
		{"ordinary load, unaligned", false, 12, 8, false, false},
	}
	for _, tc := range cases {
		m := newMachine(t, false)
		pe := m.pe
		if !tc.lse2 {
			pe.Regs.MMFR2 &^= 0xf << 32
		}
		pe.RegsChanged()
		_, e := pe.Read(vaData+tc.off, tc.size, cpu.Insn{Exclusive: tc.excl})
		if e.Taken() != tc.fault {
			t.Errorf("%s: exception %v, want fault %v", tc.name, e, tc.fault)
			continue
		}
		if tc.fault && (e.ESR&0x3f != 0b100001 || e.FAR != vaData+tc.off) {
			t.Errorf("%s: ESR %#x FAR %#x, want an Alignment fault at the VA", tc.name, uint64(e.ESR), e.FAR)
		}
	}
}

// TestUnprivileged: LDTR at EL1 uses EL0 permissions and ignores PAN.
func TestUnprivileged(t *testing.T) {
	m := newRig(t, false)
	pe := m.pe
	setEL(pe, 1, true)
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); !e.Taken() {
		t.Error("EL1 load of an EL0 page with PAN=1 did not fault")
	}
	setEL(pe, 1, true)
	if _, e := pe.Read(vaData, 8, cpu.Insn{Unprivileged: true}); e.Taken() {
		t.Errorf("unprivileged load of an EL0 page with PAN=1: %v", e)
	}
	if _, e := pe.Read(vaX1, 8, cpu.Insn{Unprivileged: true}); !e.Taken() || e.ESR&0x3f != 0b001111 {
		t.Errorf("unprivileged load of an EL1-only page: %v, want a level-3 Permission fault", e)
	}
}

// TestPhysicalAddresses: FetchPA, LastPA and TranslateData report the PA
// the access translated to; TranslateData does not touch memory.
func TestPhysicalAddresses(t *testing.T) {
	m := newRig(t, true)
	pe := m.pe
	m.ram.Write(x1PA+8, 4, 0xd503201f)
	w, pa, e := pe.FetchPA(vaX1 + 8)
	if e.Taken() || w != 0xd503201f || pa != x1PA+8 || pe.LastPA != x1PA+8 {
		t.Errorf("FetchPA: %#x %#x %v (LastPA %#x)", w, pa, e, pe.LastPA)
	}
	if _, e := pe.Read(vaData+0x18, 8, cpu.Insn{}); e.Taken() || pe.LastPA != dataIPA+0x18 {
		t.Errorf("Read: LastPA %#x, want %#x (%v)", pe.LastPA, dataIPA+0x18, e)
	}
	m.ram.Write64(dataIPA+0x20, 7)
	pa, e = pe.TranslateData(vaData+0x20, 8, true, cpu.Insn{})
	if v, _ := m.ram.Read64(dataIPA + 0x20); e.Taken() || pa != dataIPA+0x20 || v != 7 {
		t.Errorf("TranslateData: %#x %v, memory %#x (want untouched 7)", pa, e, v)
	}
	if _, e := pe.TranslateData(vaRO, 8, true, cpu.Insn{}); !e.Taken() || e.Kind != cpu.DataAbort {
		t.Errorf("TranslateData write to a read-only page: %v, want a Data Abort", e)
	}
	if e := pe.AlignmentFault(vaData+3, false); e.ESR&0x3f != 0b100001 || e.FAR != vaData+3 {
		t.Errorf("AlignmentFault: %v", e)
	}
}

// TestDeviations: each QEMU behaviour the PE reproduces on request, and
// the architecture without it.
func TestDeviations(t *testing.T) {
	// Unaligned access to Device memory: an Alignment fault, or (QEMU) not.
	for _, dev := range []bool{false, true} {
		m := newRig(t, false)
		if dev {
			m.pe.Deviations = cpu.DeviationDeviceUnaligned
		}
		_, e := m.pe.Read(vaDev+4, 8, cpu.Insn{})
		if e.Taken() == dev {
			t.Errorf("Device unaligned, deviation %v: %v", dev, e)
		}
	}
	// AT S1E1W on a writable-clean page with HD: dirty state set only by
	// the deviation (AArch64.S1Translate excludes AT from updates).
	for _, dev := range []bool{false, true} {
		m := newMachine(t, false)
		if err := m.s1.MapS1(vaData, 3, desc.S1Leaf{OA: dataIPA, AP: 0b10, SH: 3, AF: true, DBM: true}); err != nil {
			t.Fatal(err)
		}
		pe := m.fresh()
		pe.Regs.TCR_EL1 |= 1<<39 | 1<<40 // HA, HD
		if dev {
			pe.Deviations = cpu.DeviationATSetsDirty
		}
		pe.RegsChanged()
		if e := pe.AT(at.S1E1W, 0, vaData); e.Taken() || pe.PAR.F() {
			t.Fatalf("AT: %v PAR %#x", e, uint64(pe.PAR))
		}
		d, _ := m.ram.Read64(m.leafAddr(t, vaData))
		if dirty := d>>7&1 == 0; dirty != dev {
			t.Errorf("AT S1E1W, deviation %v: descriptor %#x", dev, d)
		}
	}
	_ = sysreg.ESR(0)
}

// leafAddr finds the PA of the level-3 descriptor of va in the stage-1 tables.
func (m *machine) leafAddr(t *testing.T, va uint64) mem.PA {
	t.Helper()
	a := mem.PA(uint64(m.base.TTBR0_EL1) & 0xfffffffff000)
	for l := 0; l < 3; l++ {
		d, _ := m.ram.Read64(a + mem.PA(va>>(39-9*l)&511*8))
		a = mem.PA(d & 0xfffffffff000)
	}
	return a + mem.PA(va>>12&511*8)
}
