package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/nested"
)

// TestKeptEL2Regs: the guest hypervisor's MSR/MRS at vEL2 of the EL2
// registers the PE keeps outside its model trap to L0 (HCR_EL2.NV makes
// EL2 register accesses from EL1 trap), which must keep each one's value
// apart (a distinct value written to every one reads back) and return to
// vEL2 past the instruction.
func TestKeptEL2Regs(t *testing.T) {
	regs := []struct {
		name          string
		crn, crm, op2 uint8
	}{
		{"VPIDR_EL2", 0, 0, 0}, {"VMPIDR_EL2", 0, 0, 5}, {"CNTVOFF_EL2", 14, 0, 3},
		{"HSTR_EL2", 1, 1, 3}, {"CPTR_EL2", 1, 1, 2}, {"MDCR_EL2", 1, 1, 1},
		{"CNTHCTL_EL2", 14, 1, 0}, {"HACR_EL2", 1, 1, 7}, {"ACTLR_EL2", 1, 0, 1},
		{"AFSR0_EL2", 5, 1, 0}, {"AFSR1_EL2", 5, 1, 1}, {"AMAIR_EL2", 10, 3, 0},
		{"CONTEXTIDR_EL2", 13, 0, 1}, {"HCRX_EL2", 1, 2, 2},
	}
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		rig := newOnPERig(t, mode)
		pe := rig.pe
		access := func(crn, crm, op2 uint8, read bool, x uint64) uint64 {
			t.Helper()
			pe.PC = 0x4000_0100
			x = rig.el2Reg(crn, crm, op2, read, x)
			if pe.EL != 1 || pe.PC != 0x4000_0104 {
				t.Fatalf("%v: after the access the PE is at EL%d PC %#x, want vEL2 past it", mode, pe.EL, uint64(pe.PC))
			}
			return x
		}
		for i, r := range regs {
			access(r.crn, r.crm, r.op2, false, 0x1111_0000+uint64(i))
		}
		for i, r := range regs {
			if got, want := access(r.crn, r.crm, r.op2, true, 0), 0x1111_0000+uint64(i); got != want {
				t.Errorf("%v: %s reads %#x, want %#x", mode, r.name, got, want)
			}
		}
	}
}
