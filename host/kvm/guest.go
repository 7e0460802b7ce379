package kvm

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
)

// The guest's own exception instructions, for a guest OS model that enters
// its processes at EL0 (MSR SPSR_EL1 and ELR_EL1, then ERET) and takes
// their system calls and timer interrupts at EL1.

// ERET executes the guest's ERET (at EL1: to the state in SPSR_EL1, at
// ELR_EL1). An ERET the architecture traps (HCR_EL2.NV) or makes UNDEFINED
// comes back as the exception, handled as any other.
func (v *VCPU) ERET() (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	c := v.cpu
	c.mu.Lock()
	e := v.pe.ERET()
	c.mu.Unlock()
	if !e.Taken() {
		return Exit{}, nil
	}
	exit, _, err := v.exception(e)
	return exit, err
}

// SVC executes the guest's SVC #imm at PC: the exception is taken to the
// guest's EL1 (ESR_EL1 EC 0x15, ELR_EL1 the next instruction, PC at the
// synchronous vector) and returned as ExitException.
func (v *VCPU) SVC(imm uint16) (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	c := v.cpu
	c.mu.Lock()
	e := v.pe.SVC(imm)
	c.mu.Unlock()
	if e.TargetEL != 1 {
		return Exit{}, fmt.Errorf("%w: SVC taken to EL%d", ErrUnhandledTrap, e.TargetEL)
	}
	return Exit{Reason: ExitException, Exception: e}, nil
}

// VirtualIRQ delivers a virtual interrupt the hypervisor injected (the
// guest's timer, say): the guest takes it at EL1, at its vector's IRQ entry,
// ELR_EL1 the interrupted instruction. Returns ExitException with the IRQ,
// or ExitNone when the PE does not take it now (PSTATE.I masks it).
func (v *VCPU) VirtualIRQ() (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	c := v.cpu
	c.mu.Lock()
	e := v.pe.VirtualIRQ()
	c.mu.Unlock()
	if e.Kind != cpu.IRQ {
		return Exit{}, nil
	}
	return Exit{Reason: ExitException, Exception: e}, nil
}
