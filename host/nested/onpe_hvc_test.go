package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestHVCAtVEL2: the guest hypervisor's HVC #imm at vEL2 reaches L0 (the
// PE is at EL1, HVC goes to EL2) and must be what it is on hardware at
// EL2 (AArch64.CallHypervisor, AArch64.TakeException): ESR_EL2 EC 0x16,
// IL 1, ISS the immediate; ELR_EL2 past the HVC; SPSR_EL2.M EL2h or EL2t;
// PC at VBAR_EL2 + 0x200 (SP_EL2) or + 0x000 (SP_EL0). With its
// HCR_EL2.HCD=1 (no EL3) the HVC is UNDEFINED: EC 0x00, ELR_EL2 the HVC.
func TestHVCAtVEL2(t *testing.T) {
	const vbar, pc = 0x4000_8000, 0x4000_0100
	for _, tc := range []struct {
		name     string
		mode     nested.Mode
		spELx    bool
		hcd      bool
		esr      uint64
		elr      uint64
		m, vecOf uint64
	}{
		{"NV SP_EL2", nested.ModeNV, true, false, 0x16<<26 | 1<<25 | 0xbeef, pc + 4, 0b1001, 0x200},
		{"NV SP_EL0", nested.ModeNV, false, false, 0x16<<26 | 1<<25 | 0x1, pc + 4, 0b1000, 0x000},
		{"NV2 SP_EL2", nested.ModeNV2, true, false, 0x16<<26 | 1<<25 | 0xbeef, pc + 4, 0b1001, 0x200},
		{"NV2 SP_EL0", nested.ModeNV2, false, false, 0x16<<26 | 1<<25 | 0x1, pc + 4, 0b1000, 0x000},
		{"NV HCD", nested.ModeNV, true, true, 1 << 25, pc, 0b1001, 0x200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOnPERig(t, tc.mode)
			pe, sysr := r.pe, r.el2Reg
			if tc.mode == nested.ModeNV {
				sysr(12, 0, 0, false, vbar) // MSR VBAR_EL2
				if tc.hcd {
					sysr(1, 1, 0, false, 1<<31|1<<29) // MSR HCR_EL2: RW, HCD
				}
			} else {
				pe.VBAR[1] = vbar // NV2: VBAR_EL2 is the PE's VBAR_EL1
			}
			pe.PC, pe.SP, pe.NZCV = pc, tc.spELx, 0b0010
			imm := tc.esr & 0xffff
			if tc.hcd {
				imm = 7
			}
			pe.PC += 4 // the interpreter's HVC: past the instruction
			e := cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: sysreg.ESR(0x16<<26 | 1<<25 | imm)}
			pe.TakeException(&e)
			if exit := r.exit(); exit.Reason != nested.ExitVEL2 {
				t.Fatalf("PEExit(HVC) = %v; want ExitVEL2", exit.Reason)
			}
			if pe.EL != 1 || !pe.SP || pe.PC != mem.VA(vbar+tc.vecOf) {
				t.Errorf("PE at EL%d SP_ELx %v PC %#x, want vEL2 SP_EL2 PC %#x", pe.EL, pe.SP, uint64(pe.PC), vbar+tc.vecOf)
			}
			spsr := pe.SPSR[1]
			if tc.mode == nested.ModeNV {
				spsr = sysr(4, 0, 0, true, 0) // MRS SPSR_EL2
				pe.PC = mem.VA(vbar + tc.vecOf)
			}
			// Trapped MRS of ESR_EL2 and ELR_EL2 under NV; the PE's EL1 registers under NV2.
			esr, elr := uint64(pe.ESR[1]), uint64(pe.ELR[1])
			if tc.mode == nested.ModeNV {
				esr, elr = sysr(5, 2, 0, true, 0), sysr(4, 0, 1, true, 0)
			}
			if esr != tc.esr || elr != tc.elr {
				t.Errorf("ESR_EL2 %#x ELR_EL2 %#x, want %#x %#x", esr, elr, tc.esr, tc.elr)
			}
			if want := uint64(0b0010)<<28 | 0xf<<6 | tc.m; spsr != want {
				t.Errorf("SPSR_EL2 = %#x, want %#x", spsr, want)
			}
		})
	}
}

// TestHVCFromL2: L2's HVC at EL1 is the guest hypervisor's, taken to vEL2
// (AArch64.CallHypervisor: EC 0x16, ELR_EL2 past the HVC, vector + 0x400
// from a lower EL), unless the guest hypervisor's HCR_EL2.HCD=1 disables
// HVC: then it is UNDEFINED at L2's EL1 (EC 0x00, ELR_EL1 the HVC, L2's
// VBAR_EL1 + 0x200) and the guest hypervisor never sees it.
func TestHVCFromL2(t *testing.T) {
	const vbar2, vbar1, l2pc = 0x4000_8000, 0x4000_6000, 0x4000_2000
	for _, hcd := range []bool{false, true} {
		r := newOnPERig(t, nested.ModeNV)
		v, pe, exit, msr := r.v, r.pe, r.exit, func(crn, crm, op2 uint8, x uint64) { r.el2Reg(crn, crm, op2, false, x) }
		hcr := uint64(1 << 31) // RW
		if hcd {
			hcr |= 1 << 29
		}
		msr(12, 0, 0, vbar2) // VBAR_EL2
		msr(1, 1, 0, hcr)    // HCR_EL2
		msr(4, 0, 0, 0x3c5)  // SPSR_EL2: EL1h
		msr(4, 0, 1, l2pc)   // ELR_EL2
		e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
		pe.TakeException(&e)
		exit()
		if !v.InL2() {
			t.Fatal("ERET did not enter L2")
		}
		pe.VBAR[1] = vbar1 // L2's own VBAR_EL1
		pe.PC += 4         // the interpreter's HVC: past the instruction
		e = cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: 0x16<<26 | 1<<25 | 9}
		pe.TakeException(&e)
		x := exit()
		if hcd {
			if !v.InL2() || pe.EL != 1 || pe.PC != vbar1+0x200 || pe.ESR[1] != 1<<25 || pe.ELR[1] != l2pc {
				t.Errorf("HCD: in L2 %v, EL%d PC %#x ESR %#x ELR %#x; want L2's EL1 at %#x, ESR 0x2000000, ELR %#x",
					v.InL2(), pe.EL, uint64(pe.PC), uint64(pe.ESR[1]), uint64(pe.ELR[1]), vbar1+0x200, l2pc)
			}
			continue
		}
		if x.Reason != nested.ExitVEL2 || v.InL2() || pe.PC != vbar2+0x400 || pe.ESR[1] != 0x16<<26|1<<25|9 || pe.ELR[1] != l2pc+4 {
			t.Errorf("no HCD: exit %v, in L2 %v, PC %#x ESR %#x ELR %#x; want vEL2 at %#x, EC 0x16 #9, ELR %#x",
				x.Reason, v.InL2(), uint64(pe.PC), uint64(pe.ESR[1]), uint64(pe.ELR[1]), vbar2+0x400, l2pc+4)
		}
	}
}
