package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// RunL2Fetch fetches the instruction at va in the nested guest at its
// current EL, as the PE does before executing it (PC = va): through its
// stage 1 and the shadow stage 2, with the execute permissions of both
// (the shadow's per EL with FEAT_XNX). Shadow faults are resolved and the
// fetch retried; a fault of L1's stage 2 (execute permission for the EL,
// translation, ...) is injected into vEL2 as an Instruction Abort from a
// lower EL and L1's code runs; L2's own faults return ExitL2Exception.
// The PC is va afterwards.
func (v *VCPU) RunL2Fetch(va mem.VA) (uint32, Exit, error) {
	if !v.inL2 {
		return 0, Exit{}, ErrNotL2
	}
	if v.mmio {
		return 0, Exit{}, kvm.ErrPendingMMIO
	}
	var insn uint32
	v.pe.PC = va
	exit, err := v.execL2(func() cpu.Exception {
		w, e := v.pe.Fetch(va)
		insn = w
		return e
	}, true)
	if err != nil {
		return 0, exit, fmt.Errorf("nested: L2 fetch at %#x: %w", uint64(va), err)
	}
	if exit.Reason == ExitNone {
		v.pe.PC = va // fetched: about to execute it
	}
	return insn, exit, nil
}
