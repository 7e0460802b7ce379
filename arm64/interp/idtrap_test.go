package interp_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// TestIDRegisterTraps: which ID-space reads at EL1 the HCR_EL2.TID bits
// trap to EL2 (EC 0x18). TID3 traps ID group 3 only, the registers at
// op0=3, op1=0, CRn=0, CRm=1..7 (HCR_EL2.TID3); MIDR_EL1 and MPIDR_EL1
// (CRm=0) are never trapped, an EL1 read returning VPIDR_EL2/VMPIDR_EL2
// (their accessibility pseudocode); REVIDR_EL1 and AIDR_EL1 are TID1's.
func TestIDRegisterTraps(t *testing.T) {
	const tid1, tid3 = sysreg.HCR(1) << 16, sysreg.HCR(1) << 18
	mrs := func(op1, crm, op2 uint32) uint32 { return 0xd5380001 | op1<<16 | crm<<8 | op2<<5 } // MRS X1, S3_<op1>_C0_C<crm>_<op2>
	for _, c := range []struct {
		name string
		word uint32
		hcr  sysreg.HCR
		trap bool
	}{
		{"MIDR_EL1, TID3", mrs(0, 0, 0), tid3, false},
		{"MPIDR_EL1, TID3", mrs(0, 0, 5), tid3, false},
		{"REVIDR_EL1, TID3", mrs(0, 0, 6), tid3, false},
		{"REVIDR_EL1, TID1", mrs(0, 0, 6), tid1, true},
		{"AIDR_EL1, TID1", mrs(1, 0, 7), tid1, true},
		{"ID_AA64PFR0_EL1, TID3", mrs(0, 4, 0), tid3, true},
		{"ID_AA64MMFR0_EL1, TID3", mrs(0, 7, 0), tid3, true},
		{"ID_AA64MMFR0_EL1, TID1", mrs(0, 7, 0), tid1, false},
		{"ID_AA64MMFR0_EL1, no trap bit", mrs(0, 7, 0), 0, false},
	} {
		r := newRig(t, 1)
		r.pe.Regs.HCR_EL2 |= c.hcr
		r.pe.RegsChanged()
		r.code(c.word)
		r.run(1)
		if !c.trap {
			if r.pe.EL != 1 || r.pe.PC != codeBase+4 {
				t.Errorf("%s: EL%d PC %#x (ESR_EL2 %#x), want the read to complete at EL1", c.name, r.pe.EL, r.pe.PC, uint64(r.pe.ESR[2]))
			}
			continue
		}
		if esr := r.pe.ESR[2]; r.pe.EL != 2 || esr.EC() != 0x18 || uint64(esr)&1 != 1 {
			t.Errorf("%s: EL%d ESR_EL2 %#x, want a trapped MRS (EC 0x18, direction read) at EL2", c.name, r.pe.EL, uint64(esr))
		}
	}
}

// TestSetByEncoding: a hypervisor's write of VPIDR_EL2 through
// SetByEncoding is what an EL1 read of MIDR_EL1 returns (EL2 enabled:
// MIDR_EL1 reads VPIDR_EL2), GetByEncoding reads it back, and an encoding
// the PE's register model holds (SCTLR_EL1) is refused.
func TestSetByEncoding(t *testing.T) {
	r := newRig(t, 1)
	if !r.c.SetByEncoding(3, 4, 0, 0, 0, 0x41aa0010) {
		t.Fatal("SetByEncoding(VPIDR_EL2) refused")
	}
	if x, ok := r.c.GetByEncoding(3, 4, 0, 0, 0); !ok || x != 0x41aa0010 {
		t.Errorf("GetByEncoding(VPIDR_EL2) = %#x, %v", x, ok)
	}
	r.code(0xd5380001) // MRS X1, MIDR_EL1
	r.run(1)
	if r.pe.EL != 1 || r.c.X[1] != 0x41aa0010 {
		t.Errorf("MIDR_EL1 at EL1 = %#x (EL%d), want VPIDR_EL2 %#x", r.c.X[1], r.pe.EL, 0x41aa0010)
	}
	if r.c.SetByEncoding(3, 0, 1, 0, 0, 1) {
		t.Error("SetByEncoding(SCTLR_EL1) accepted a register of the PE's model")
	}
}
