package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// SetIDSource gives L0 the PE's ID registers that its register model
// (cpu.SysRegByEncoding) does not hold, by encoding: those an interpreter
// keeps. L0 sets HCR_EL2.TID3 for the guest hypervisor and its guest, and
// answers their trapped reads of ID group 3 with these values, except
// ID_AA64MMFR0/1/2_EL1, which are the sanitized IDRegs.
func (v *VCPU) SetIDSource(f func(op0, op1, crn, crm, op2 uint8) (uint64, bool)) { v.ids = f }

// idAccess answers a trapped access (the PE at EL2) to an ID group 3
// register: a read gets the sanitized value or the source's (an
// encoding neither has is an error from L0); a write is UNDEFINED, taken where the access came from (these
// registers are read-only: the MSR encoding is unallocated).
func (v *VCPU) idAccess(op0, op1, crn, crm, op2, rt uint8, read bool) error {
	if !read {
		return v.undefinedHere()
	}
	var x uint64
	r, ok := cpu.SysRegByEncoding(op0, op1, crn, crm, op2)
	if ok {
		x, ok = v.vm.ids.value(r)
	}
	if !ok && v.ids != nil {
		x, ok = v.ids(op0, op1, crn, crm, op2)
	}
	if !ok {
		return fmt.Errorf("%w: no value for ID register S%d_%d_C%d_C%d_%d", ErrUnhandled, op0, op1, crn, crm, op2)
	}
	v.setXreg(rt, x)
	v.skip()
	return v.eret()
}

// undefinedHere returns to the world the trapped instruction came from
// and takes the UNDEFINED exception there (EC 0x00, IL 1, ELR at the
// instruction): to EL1 from L2's EL1 or from vEL2.
func (v *VCPU) undefinedHere() error {
	if err := v.eret(); err != nil {
		return err
	}
	x := cpu.Exception{Kind: cpu.Undefined, TargetEL: 1, ESR: sysreg.ESR(1 << 25)}
	v.pe.TakeException(&x)
	return nil
}
