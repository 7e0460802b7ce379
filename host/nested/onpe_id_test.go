package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/nested"
)

// TestIDRegsAtVEL2: L0 sets HCR_EL2.TID3, so the guest hypervisor's MRS
// of an ID group 3 register (op0 3, op1 0, CRn 0, CRm 1-7) at vEL2 traps
// to L0, which must answer it: ID_AA64MMFR0_EL1 with the sanitized
// IDRegs, ID_AA64PFR0_EL1 with the PE's value (the ID source), and an MSR
// to one is UNDEFINED at vEL2 (EC 0x00, ELR the MSR): the encoding is
// read-only.
func TestIDRegsAtVEL2(t *testing.T) {
	const pfr0 = 0x1301001120110222
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		v := newOnPE(t, mode)
		v.SetIDSource(func(op0, op1, crn, crm, op2 uint8) (uint64, bool) {
			if op0 == 3 && op1 == 0 && crn == 0 && crm == 4 && op2 == 0 {
				return pfr0, true
			}
			return 0, false
		})
		if v.VirtualRegs().MMFR0 == 0 {
			t.Fatal("the sanitized ID_AA64MMFR0_EL1 is 0")
		}
		pe := v.PE()
		pe.VBAR[1], pe.SP = 0x4000_8000, true
		var regs [31]uint64
		var sp uint64
		access := func(crm, op2 uint8, read bool) error {
			t.Helper()
			pe.PC = 0x4000_0100
			pe.SysTrap(2, 3, 0, 0, crm, op2, 5, read)
			e := pe.Last
			_, err := v.PEExit(&e, &regs, &sp)
			return err
		}
		if err := access(7, 0, true); err != nil || regs[5] != uint64(v.VirtualRegs().MMFR0) {
			t.Errorf("%v: MRS ID_AA64MMFR0_EL1 = %#x, %v; want the sanitized %#x", mode, regs[5], err, uint64(v.VirtualRegs().MMFR0))
		}
		if pe.EL != 1 || pe.PC != 0x4000_0104 {
			t.Errorf("%v: after the MRS the PE is at EL%d PC %#x, want vEL2 past it", mode, pe.EL, uint64(pe.PC))
		}
		if err := access(4, 0, true); err != nil || regs[5] != pfr0 {
			t.Errorf("%v: MRS ID_AA64PFR0_EL1 = %#x, %v; want %#x", mode, regs[5], err, uint64(pfr0))
		}
		if err := access(4, 0, false); err != nil {
			t.Fatalf("%v: MSR ID_AA64PFR0_EL1: %v", mode, err)
		}
		if pe.EL != 1 || pe.PC != 0x4000_8200 || pe.ESR[1] != sysreg.ESR(1<<25) || pe.ELR[1] != 0x4000_0100 {
			t.Errorf("%v: MSR to an ID register: EL%d PC %#x ESR %#x ELR %#x; want UNDEFINED at vEL2 (0x4000_8200, 0x2000000, 0x40000100)",
				mode, pe.EL, uint64(pe.PC), uint64(pe.ESR[1]), uint64(pe.ELR[1]))
		}
	}
}

// TestIDRegsFromL2: with L0's HCR_EL2.TID3 and not the guest
// hypervisor's, L2's MRS of an ID group 3 register traps to L0, which
// answers it itself (HCR_EL2.TID3: only the guest hypervisor's own TID3
// would route it to vEL2) and returns to L2 past the MRS.
func TestIDRegsFromL2(t *testing.T) {
	const pfr0 = 0x1301001120110222
	r := newOnPERig(t, nested.ModeNV2)
	v, pe := r.v, r.pe
	v.SetIDSource(func(op0, op1, crn, crm, op2 uint8) (uint64, bool) {
		return pfr0, op0 == 3 && op1 == 0 && crn == 0 && crm == 4 && op2 == 0
	})
	pe.SPSR[1], pe.ELR[1] = 0x3c5, 0x4000_2000 // ERET to L2's EL1h
	e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
	pe.TakeException(&e)
	if r.exit(); !v.InL2() {
		t.Fatal("ERET did not enter L2")
	}
	pe.SysTrap(2, 3, 0, 0, 4, 0, 7, true) // MRS X7, ID_AA64PFR0_EL1
	if r.exit(); r.regs[7] != pfr0 {
		t.Fatalf("L2's MRS ID_AA64PFR0_EL1 = %#x; want %#x", r.regs[7], uint64(pfr0))
	}
	if !v.InL2() || pe.EL != 1 || pe.PC != 0x4000_2004 {
		t.Errorf("after L2's MRS: in L2 %v, EL%d PC %#x; want L2 at 0x40002004", v.InL2(), pe.EL, uint64(pe.PC))
	}
}

// TestIDRegsFromL2ForwardedWithTID3: with the guest hypervisor's own
// HCR_EL2.TID3, L2's MRS of an ID group 3 register outside L0's PE model
// is the guest hypervisor's trap: taken to vEL2 with EC 0x18 and ELR_EL2
// at the MRS (HCR_EL2.TID3; AArch64.TakeException to EL2 from a lower EL,
// vector + 0x400).
func TestIDRegsFromL2ForwardedWithTID3(t *testing.T) {
	r := newOnPERig(t, nested.ModeNV)
	v, pe, exit := r.v, r.pe, func() { r.exit() }
	v.SetIDSource(func(op0, op1, crn, crm, op2 uint8) (uint64, bool) { return 1, true })
	msr := func(crn, crm, op2 uint8, x uint64) { r.el2Reg(crn, crm, op2, false, x) }
	msr(12, 0, 0, 0x4000_8000) // VBAR_EL2
	msr(1, 1, 0, 1<<31|1<<18)  // HCR_EL2: RW, TID3
	msr(4, 0, 0, 0x3c5)        // SPSR_EL2: EL1h
	msr(4, 0, 1, 0x4000_2000)  // ELR_EL2
	e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
	pe.TakeException(&e)
	exit()
	if !v.InL2() {
		t.Fatal("ERET did not enter L2")
	}
	pe.SysTrap(2, 3, 0, 0, 4, 0, 7, true) // MRS X7, ID_AA64PFR0_EL1
	exit()
	if v.InL2() || pe.EL != 1 || pe.PC != 0x4000_8400 || pe.ESR[1].EC() != 0x18 || pe.ELR[1] != 0x4000_2000 {
		t.Errorf("L2's MRS with L1's TID3: in L2 %v, EL%d PC %#x ESR %#x ELR %#x; want vEL2 at 0x40008400, EC 0x18, ELR 0x40002000",
			v.InL2(), pe.EL, uint64(pe.PC), uint64(pe.ESR[1]), uint64(pe.ELR[1]))
	}
}
