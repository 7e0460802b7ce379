package kvm

import (
	"fmt"
)

// The guest's own exception instructions and registers, for a guest OS
// model that enters its processes at EL0 and takes their faults, system
// calls and timer interrupts at EL1.

// SPSR returns SPSR_EL1 (MRS X, SPSR_EL1): the state a guest ERET returns
// to (cpu.PE.SPSR's layout).
func (v *VCPU) SPSR() uint64 { return v.pe.SPSR(1) }

// SetSPSR writes SPSR_EL1 (MSR SPSR_EL1, X): with ELR (Ctx().ELR), what
// the guest's next ERET returns to.
func (v *VCPU) SetSPSR(x uint64) {
	v.pe.SetSPSR(1, x)
	v.ctx.PC += 4
}

// ERET executes the guest's ERET at EL1: PC = ELR_EL1 and the EL and
// PSTATE.PAN from SPSR_EL1. An ERET to an EL above EL1 is refused (the
// model does not implement illegal exception returns).
func (v *VCPU) ERET() error {
	if v.cpu == nil {
		return ErrNotLoaded
	}
	pe := v.pe
	if pe.EL != 1 {
		return fmt.Errorf("kvm: guest ERET at EL%d", pe.EL)
	}
	if to := pe.SPSR(1) >> 2 & 3; to > 1 {
		return fmt.Errorf("kvm: guest ERET to EL%d (SPSR_EL1 %#x) is an illegal exception return", to, pe.SPSR(1))
	}
	if err := pe.ERET(); err != nil {
		return err
	}
	v.ctx.PC = v.ctx.ELR
	return nil
}

// SVC executes the guest's SVC #imm: the exception is taken to the guest's
// EL1 (ESR_EL1 EC 0x15), ELR_EL1 holds the address of the next
// instruction, and PC is at the synchronous vector. The result is
// ExitException with the exception.
func (v *VCPU) SVC(imm uint16) (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	e := v.pe.SVC(imm)
	if e.TargetEL != 1 {
		return Exit{}, fmt.Errorf("%w: SVC taken to EL%d", ErrUnhandledTrap, e.TargetEL)
	}
	v.ctx.PC += 4 // the preferred return address of SVC is the next instruction
	v.deliver(e)
	return Exit{Reason: ExitException, Exception: e}, nil
}

// VirtualIRQ delivers a virtual interrupt the hypervisor injected (the
// guest's timer, say): the guest takes it at EL1 at the IRQ vector
// (synchronous offset + 0x80), ELR_EL1 = PC. Returns ExitException with
// the IRQ, or ExitNone when the PE is where virtual IRQs are not taken.
func (v *VCPU) VirtualIRQ() (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	e := v.pe.VirtualIRQ()
	if !e.Taken() {
		return Exit{}, nil
	}
	v.deliver(e)
	v.ctx.PC += 0x80 // IRQ entries follow the synchronous ones in each group
	return Exit{Reason: ExitException, Exception: e}, nil
}
