package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// xnProt is the shadow's execute permission for a guest stage-2 leaf that
// allows execution at EL0 (x0) and EL1 (x1): per EL with FEAT_XNX (XN
// 0b01, 0b11); without it the hardware reads only XN[1], so execution is
// all or nothing and a leaf executable at one EL only is mapped
// non-executable (its fetches fault to L0, which resolves them again:
// never wider than the guest).
func xnProt(x0, x1, xnx bool) s2pt.Prot {
	switch {
	case x0 && x1:
		return s2pt.ProtX
	case !xnx || !x0 && !x1:
		return 0
	case x0:
		return s2pt.ProtX | s2pt.ProtPXN
	}
	return s2pt.ProtX | s2pt.ProtUXN
}

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
	exit, err := v.runL2(func() cpu.Exception {
		w, e := v.pe.Fetch(va)
		insn = w
		return e
	}, func() { v.pe.PC = va - 4 })
	if err != nil {
		return 0, exit, fmt.Errorf("nested: L2 fetch at %#x: %w", uint64(va), err)
	}
	return insn, exit, nil
}
