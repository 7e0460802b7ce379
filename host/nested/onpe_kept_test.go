package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/nested"
)

// TestVPIDRAppliedToL2: the guest hypervisor's VPIDR_EL2 and VMPIDR_EL2
// are what L2's EL1 reads as MIDR_EL1 and MPIDR_EL1, so the PE holds them
// while L2 runs and L0's own at vEL2 (what the guest hypervisor reads as
// MIDR/MPIDR). Before the guest hypervisor writes them they read L0's
// values, as QEMU resets VPIDR_EL2 to MIDR_EL1 and VMPIDR_EL2 to
// MPIDR_EL1.
func TestVPIDRAppliedToL2(t *testing.T) {
	const l0MIDR, l0MPIDR, l1VPIDR, l1VMPIDR = 0x410fd4f0, 0x80000000, 0x41aa_0010, 0x8000_0102
	type enc struct{ crn, crm, op2 uint8 }
	vpidr, vmpidr := enc{0, 0, 0}, enc{0, 0, 5}
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		held := map[enc]uint64{vpidr: l0MIDR, vmpidr: l0MPIDR} // the PE's kept EL2 registers
		r := newOnPERig(t, mode)
		v, pe, exit, sys := r.v, r.pe, r.exit, r.el2Reg
		v.SetIDSource(func(op0, op1, crn, crm, op2 uint8) (uint64, bool) {
			x, ok := held[enc{crn, crm, op2}]
			return x, ok && op0 == 3 && op1 == 4
		})
		v.SetKeptWriter(func(op0, op1, crn, crm, op2 uint8, x uint64) bool {
			held[enc{crn, crm, op2}] = x
			return true
		})
		if got := sys(0, 0, 0, true, 0); got != l0MIDR {
			t.Errorf("%v: VPIDR_EL2 before any write = %#x, want L0's %#x", mode, got, uint64(l0MIDR))
		}
		sys(0, 0, 0, false, l1VPIDR)
		sys(0, 0, 5, false, l1VMPIDR)
		if held[vpidr] != l0MIDR || held[vmpidr] != l0MPIDR {
			t.Errorf("%v: at vEL2 the PE holds %#x %#x, want L0's", mode, held[vpidr], held[vmpidr])
		}
		if mode == nested.ModeNV {
			sys(12, 0, 0, false, 0x4000_8000) // VBAR_EL2
			sys(1, 1, 0, false, 1<<31)        // HCR_EL2: RW
			sys(4, 0, 0, false, 0x3c5)        // SPSR_EL2: EL1h
			sys(4, 0, 1, false, 0x4000_2000)  // ELR_EL2
		} else {
			pe.VBAR[1] = 0x4000_8000
			pe.SPSR[1], pe.ELR[1] = 0x3c5, 0x4000_2000
		}
		e := cpu.Exception{Kind: cpu.ERETTrap, TargetEL: 2, ESR: 0x1a<<26 | 1<<25}
		pe.TakeException(&e)
		exit()
		if !v.InL2() {
			t.Fatalf("%v: ERET did not enter L2", mode)
		}
		if held[vpidr] != l1VPIDR || held[vmpidr] != l1VMPIDR {
			t.Errorf("%v: in L2 the PE holds %#x %#x, want the guest hypervisor's %#x %#x",
				mode, held[vpidr], held[vmpidr], uint64(l1VPIDR), uint64(l1VMPIDR))
		}
		pe.PC += 4 // L2's HVC, forwarded to vEL2
		e = cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 2, ESR: sysreg.ESR(0x16<<26 | 1<<25)}
		pe.TakeException(&e)
		exit()
		if v.InL2() || held[vpidr] != l0MIDR || held[vmpidr] != l0MPIDR {
			t.Errorf("%v: back at vEL2 (in L2 %v) the PE holds %#x %#x, want L0's", mode, v.InL2(), held[vpidr], held[vmpidr])
		}
		if got := sys(0, 0, 0, true, 0); got != l1VPIDR {
			t.Errorf("%v: VPIDR_EL2 read back = %#x, want %#x", mode, got, uint64(l1VPIDR))
		}
	}
}
