package nested_test

import (
	"errors"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/nested"
)

// TestKeptEL2TrapFromL2: L2 is itself a guest hypervisor (L1's virtual
// HCR_EL2.NV=1, the recursion of testdata/a64/recurse.c). Its MSR/MRS of an
// EL2 register the PE keeps outside its register model (SP_EL1, TPIDR_EL2:
// an interpreter's) traps at EL1 with NV (EC 0x18) and is L1's trap: L0
// forwards it to vEL2 with that syndrome, ELR_EL2 the instruction, vector
// VBAR_EL2 + 0x400. Without L1's NV such an access is UNDEFINED at EL1
// and never reaches L0 as a trap; one that does is an error.
func TestKeptEL2TrapFromL2(t *testing.T) {
	const vbar, l2pc = 0x4000_8000, 0x4000_2000
	for _, tc := range []struct {
		name                   string
		nv                     bool
		op1, crn, crm, op2, rt uint8
		read                   bool
	}{
		{"MSR SP_EL1", true, 4, 4, 1, 0, 2, false},
		{"MRS TPIDR_EL2", true, 4, 13, 0, 2, 5, true},
		{"MSR SP_EL1 without NV", false, 4, 4, 1, 0, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOnPERig(t, nested.ModeNV)
			v, pe := r.v, r.pe
			hcr := uint64(1 << 31) // RW
			if tc.nv {
				hcr |= 1 << 42 // NV
			}
			r.el2Reg(12, 0, 0, false, vbar) // VBAR_EL2
			r.el2Reg(1, 1, 0, false, hcr)   // HCR_EL2
			r.el2Reg(4, 0, 0, false, 0x3c5) // SPSR_EL2: EL1h
			r.el2Reg(4, 0, 1, false, l2pc)  // ELR_EL2
			e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
			pe.TakeException(&e)
			r.exit()
			if !v.InL2() {
				t.Fatal("ERET did not enter L2")
			}
			if got := pe.Regs.HCR_EL2.NV(); got != tc.nv {
				t.Fatalf("the PE's HCR_EL2.NV in L2 = %v, want L1's %v", got, tc.nv)
			}
			trap := pe.SysTrap(2, 3, tc.op1, tc.crn, tc.crm, tc.op2, tc.rt, tc.read)
			x, err := v.PEExit(&trap, &r.regs, &r.sp)
			if !tc.nv {
				if !errors.Is(err, nested.ErrUnhandled) {
					t.Fatalf("PEExit = %v, %v; want ErrUnhandled", x.Reason, err)
				}
				return
			}
			if err != nil || x.Reason != nested.ExitVEL2 || v.InL2() || pe.PC != vbar+0x400 {
				t.Fatalf("PEExit = %v, %v; in L2 %v, PC %#x; want ExitVEL2 at %#x", x.Reason, err, v.InL2(), uint64(pe.PC), vbar+0x400)
			}
			pe.PC = vbar + 0x400
			esr, elr := r.el2Reg(5, 2, 0, true, 0), r.el2Reg(4, 0, 1, true, 0) // MRS ESR_EL2, ELR_EL2
			if esr != uint64(trap.ESR) || elr != l2pc {
				t.Errorf("ESR_EL2 %#x ELR_EL2 %#x, want %#x %#x", esr, elr, uint64(trap.ESR), uint64(l2pc))
			}
		})
	}
}
