package cpu

import (
	"fmt"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/mem"
)

// SysReg names a memory-system register for MSR and MRS.
type SysReg uint8

// The registers MSR/MRS reach. The *_EL12 names are the EL1 registers as
// seen from EL2 with HCR_EL2.E2H=1.
const (
	SCTLR_EL1 SysReg = iota
	TCR_EL1
	TTBR0_EL1
	TTBR1_EL1
	MAIR_EL1
	ESR_EL1
	FAR_EL1
	PAR_EL1
	SCTLR_EL2
	TCR_EL2
	TTBR0_EL2
	TTBR1_EL2
	MAIR_EL2
	HCR_EL2
	VTCR_EL2
	VTTBR_EL2
	ESR_EL2
	FAR_EL2
	HPFAR_EL2
	SCTLR_EL12
	TCR_EL12
	TTBR0_EL12
	TTBR1_EL12
	MAIR_EL12
	ESR_EL12
	FAR_EL12
	ID_AA64MMFR0_EL1
	ID_AA64MMFR1_EL1
	ID_AA64MMFR2_EL1
	numSysRegs
)

type regInfo struct {
	name                    string
	op0, op1, crn, crm, op2 uint8
	el                      uint8 // lowest EL with access (1 or 2)
	tvm                     bool  // trapped by HCR_EL2.TVM (writes) / TRVM (reads)
	readOnly                bool
	e12                     bool // an *_EL12 alias
	redirect                SysReg
	hasRedirect             bool // *_EL1 name redirected to *_EL2 at EL2 with E2H=1
}

// regs is the encoding table (DDI 0487, the System register descriptions).
var regs = [numSysRegs]regInfo{
	SCTLR_EL1:        {"SCTLR_EL1", 3, 0, 1, 0, 0, 1, true, false, false, SCTLR_EL2, true},
	TCR_EL1:          {"TCR_EL1", 3, 0, 2, 0, 2, 1, true, false, false, TCR_EL2, true},
	TTBR0_EL1:        {"TTBR0_EL1", 3, 0, 2, 0, 0, 1, true, false, false, TTBR0_EL2, true},
	TTBR1_EL1:        {"TTBR1_EL1", 3, 0, 2, 0, 1, 1, true, false, false, TTBR1_EL2, true},
	MAIR_EL1:         {"MAIR_EL1", 3, 0, 10, 2, 0, 1, true, false, false, MAIR_EL2, true},
	ESR_EL1:          {"ESR_EL1", 3, 0, 5, 2, 0, 1, true, false, false, ESR_EL2, true},
	FAR_EL1:          {"FAR_EL1", 3, 0, 6, 0, 0, 1, true, false, false, FAR_EL2, true},
	PAR_EL1:          {name: "PAR_EL1", op0: 3, crn: 7, crm: 4, el: 1},
	SCTLR_EL2:        {name: "SCTLR_EL2", op0: 3, op1: 4, crn: 1, el: 2},
	TCR_EL2:          {name: "TCR_EL2", op0: 3, op1: 4, crn: 2, op2: 2, el: 2},
	TTBR0_EL2:        {name: "TTBR0_EL2", op0: 3, op1: 4, crn: 2, el: 2},
	TTBR1_EL2:        {name: "TTBR1_EL2", op0: 3, op1: 4, crn: 2, op2: 1, el: 2},
	MAIR_EL2:         {name: "MAIR_EL2", op0: 3, op1: 4, crn: 10, crm: 2, el: 2},
	HCR_EL2:          {name: "HCR_EL2", op0: 3, op1: 4, crn: 1, crm: 1, el: 2},
	VTCR_EL2:         {name: "VTCR_EL2", op0: 3, op1: 4, crn: 2, crm: 1, op2: 2, el: 2},
	VTTBR_EL2:        {name: "VTTBR_EL2", op0: 3, op1: 4, crn: 2, crm: 1, el: 2},
	ESR_EL2:          {name: "ESR_EL2", op0: 3, op1: 4, crn: 5, crm: 2, el: 2},
	FAR_EL2:          {name: "FAR_EL2", op0: 3, op1: 4, crn: 6, el: 2},
	HPFAR_EL2:        {name: "HPFAR_EL2", op0: 3, op1: 4, crn: 6, op2: 4, el: 2},
	SCTLR_EL12:       {name: "SCTLR_EL12", op0: 3, op1: 5, crn: 1, el: 2, e12: true, redirect: SCTLR_EL1},
	TCR_EL12:         {name: "TCR_EL12", op0: 3, op1: 5, crn: 2, op2: 2, el: 2, e12: true, redirect: TCR_EL1},
	TTBR0_EL12:       {name: "TTBR0_EL12", op0: 3, op1: 5, crn: 2, el: 2, e12: true, redirect: TTBR0_EL1},
	TTBR1_EL12:       {name: "TTBR1_EL12", op0: 3, op1: 5, crn: 2, op2: 1, el: 2, e12: true, redirect: TTBR1_EL1},
	MAIR_EL12:        {name: "MAIR_EL12", op0: 3, op1: 5, crn: 10, crm: 2, el: 2, e12: true, redirect: MAIR_EL1},
	ESR_EL12:         {name: "ESR_EL12", op0: 3, op1: 5, crn: 5, crm: 2, el: 2, e12: true, redirect: ESR_EL1},
	FAR_EL12:         {name: "FAR_EL12", op0: 3, op1: 5, crn: 6, el: 2, e12: true, redirect: FAR_EL1},
	ID_AA64MMFR0_EL1: {name: "ID_AA64MMFR0_EL1", op0: 3, crm: 7, el: 1, readOnly: true},
	ID_AA64MMFR1_EL1: {name: "ID_AA64MMFR1_EL1", op0: 3, crm: 7, op2: 1, el: 1, readOnly: true},
	ID_AA64MMFR2_EL1: {name: "ID_AA64MMFR2_EL1", op0: 3, crm: 7, op2: 2, el: 1, readOnly: true},
}

func (r SysReg) String() string {
	if r < numSysRegs {
		return regs[r].name
	}
	return fmt.Sprintf("SysReg(%d)", uint8(r))
}

// ParseSysReg returns the register with an architectural name, in any
// case (as assemblers accept them), e.g. "TTBR0_EL1" or "sctlr_el12".
func ParseSysReg(name string) (SysReg, error) {
	for i, ri := range regs {
		if strings.EqualFold(ri.name, name) {
			return SysReg(i), nil
		}
	}
	return 0, fmt.Errorf("cpu: unknown system register %q", name)
}

// undefined takes the exception of an UNDEFINED instruction (EC 0x00,
// IL=1). AArch64.UndefinedFault routes it to the current EL above EL1, to
// EL2 from EL0 only when HCR_EL2.TGE is 1, otherwise to EL1: unlike an
// abort, HCR_EL2.TGE does not send it from EL1 to EL2.
func (pe *PE) undefined() Exception {
	t := uint8(1)
	if pe.EL == 2 || (pe.EL == 0 && pe.Regs.HCR_EL2.TGE()) {
		t = 2
	}
	e := Exception{Kind: Undefined, FromEL: pe.EL, TargetEL: t, ESR: sysreg.ESR(1 << 25)}
	pe.TakeException(&e)
	return e
}

// sysTrap takes a trap of a System instruction to EL2 (EC 0x18) with the
// ISS: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm
// [4:1], Direction [0] (1 for a read).
func (pe *PE) sysTrap(op0, op1, crn, crm, op2, rt uint8, read bool) Exception {
	return pe.sysTrapTo(2, op0, op1, crn, crm, op2, rt, read)
}

// sysTrapTo is sysTrap to a given EL (AArch64.SystemAccessTrap).
func (pe *PE) sysTrapTo(target, op0, op1, crn, crm, op2, rt uint8, read bool) Exception {
	iss := uint64(op0)<<20 | uint64(op2)<<17 | uint64(op1)<<14 | uint64(crn)<<10 | uint64(rt&31)<<5 | uint64(crm)<<1
	if read {
		iss |= 1
	}
	e := Exception{Kind: SysTrap, FromEL: pe.EL, TargetEL: target, ESR: sysreg.ESR(uint64(sysreg.ECSysRegTrap)<<26 | 1<<25 | iss)}
	pe.TakeException(&e)
	return e
}

// resolve applies the access rules of MSR/MRS at the current EL: UNDEFINED
// accesses, HCR_EL2.TVM/TRVM, TID3 and NV traps, the FEAT_IDST trap of
// EL0 ID register reads, and the E2H redirections. HCR_EL2.NV2 is not
// modelled: the registers it would redirect to memory trap as with NV.
func (pe *PE) resolve(r SysReg, rt uint8, read bool) (SysReg, Exception) {
	if r >= numSysRegs {
		return 0, pe.undefined()
	}
	ri := regs[r]
	h := pe.Regs.HCR_EL2
	if ri.readOnly && !read {
		return 0, pe.undefined() // there is no MSR encoding of an ID register
	}
	if pe.EL == 0 {
		// ID_AA64MMFR*_EL1 at EL0: trapped to EL1 (to EL2 with
		// HCR_EL2.TGE=1) with FEAT_IDST (ID_AA64MMFR2_EL1.IDS=1),
		// UNDEFINED without; every other register here is UNDEFINED.
		if ri.readOnly && uint64(pe.Regs.MMFR2)>>36&0xf >= 1 {
			return 0, pe.sysTrapTo(pe.targetEL(), ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
		}
		return 0, pe.undefined()
	}
	if pe.EL == 1 {
		if ri.el == 2 {
			if h.NV() && pe.Regs.MMFR2.NV() >= 1 {
				return 0, pe.sysTrap(ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
			}
			return 0, pe.undefined()
		}
		// HCR_EL2.TID3 (bit 18) traps EL1 reads of the ID group 3 registers.
		if ri.readOnly && h.Has(hcrTID3) {
			return 0, pe.sysTrap(ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
		}
		// HCR_EL2.TVM traps EL1 writes, HCR_EL2.TRVM (bit 30) EL1 reads,
		// of the stage-1 controls.
		if ri.tvm && ((!read && h.Has(sysreg.HCR_TVM)) || (read && h.Has(hcrTRVM))) {
			return 0, pe.sysTrap(ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
		}
		return r, Exception{}
	}
	// EL2.
	if ri.e12 {
		if !h.E2H() {
			return 0, pe.undefined()
		}
		return ri.redirect, Exception{}
	}
	if ri.hasRedirect && h.E2H() {
		return ri.redirect, Exception{}
	}
	return r, Exception{}
}

const (
	hcrTRVM sysreg.HCR = 1 << 30
	hcrTID3 sysreg.HCR = 1 << 18
)

func (pe *PE) slot(r SysReg) *uint64 {
	g := &pe.Regs
	switch r {
	case SCTLR_EL1:
		return (*uint64)(&g.SCTLR_EL1)
	case TCR_EL1:
		return (*uint64)(&g.TCR_EL1)
	case TTBR0_EL1:
		return (*uint64)(&g.TTBR0_EL1)
	case TTBR1_EL1:
		return (*uint64)(&g.TTBR1_EL1)
	case MAIR_EL1:
		return (*uint64)(&g.MAIR_EL1)
	case ESR_EL1:
		return (*uint64)(&pe.ESR[1])
	case FAR_EL1:
		return &pe.FAR[1]
	case PAR_EL1:
		return (*uint64)(&pe.PAR)
	case SCTLR_EL2:
		return (*uint64)(&g.SCTLR_EL2)
	case TCR_EL2:
		return &g.TCR_EL2
	case TTBR0_EL2:
		return (*uint64)(&g.TTBR0_EL2)
	case TTBR1_EL2:
		return (*uint64)(&g.TTBR1_EL2)
	case MAIR_EL2:
		return (*uint64)(&g.MAIR_EL2)
	case HCR_EL2:
		return (*uint64)(&g.HCR_EL2)
	case VTCR_EL2:
		return (*uint64)(&g.VTCR_EL2)
	case VTTBR_EL2:
		return (*uint64)(&g.VTTBR_EL2)
	case ESR_EL2:
		return (*uint64)(&pe.ESR[2])
	case FAR_EL2:
		return &pe.FAR[2]
	case HPFAR_EL2:
		return (*uint64)(&pe.HPFAR)
	case ID_AA64MMFR0_EL1:
		return (*uint64)(&g.MMFR0)
	case ID_AA64MMFR1_EL1:
		return (*uint64)(&g.MMFR1)
	case ID_AA64MMFR2_EL1:
		return (*uint64)(&g.MMFR2)
	}
	return nil
}

// MSR writes v to r (MSR <r>, X<rt>) at the current EL.
func (pe *PE) MSR(r SysReg, rt uint8, v uint64) Exception {
	t, e := pe.resolve(r, rt, false)
	if e.Taken() {
		return e
	}
	*pe.slot(t) = v
	pe.c.valid = false
	return Exception{}
}

// MRS reads r (MRS X<rt>, <r>) at the current EL.
func (pe *PE) MRS(r SysReg, rt uint8) (uint64, Exception) {
	t, e := pe.resolve(r, rt, true)
	if e.Taken() {
		return 0, e
	}
	return *pe.slot(t), Exception{}
}

// TLBI executes TLBI op, X<rt> with operand xt at the current EL:
// UNDEFINED at EL0 and for the EL2 and stage-2 forms at EL1 (trapped with
// HCR_EL2.NV), trapped to EL2 by HCR_EL2.TTLB (and TTLBIS/TTLBOS for the
// shareable forms, FEAT_EVT), and upgraded to Inner Shareable at EL1 by
// HCR_EL2.FB.
func (pe *PE) TLBI(op tlb.Op, rt uint8, xt uint64) Exception {
	pe.Stats.TLBIs++
	op1, crm, op2, ok := op.Sys()
	if !ok || pe.EL == 0 {
		return pe.undefined()
	}
	h := pe.Regs.HCR_EL2
	if pe.EL == 1 {
		if op1 != 0 { // the EL2 and stage-2 forms are encoded with op1=4
			if h.NV() && pe.Regs.MMFR2.NV() >= 1 {
				return pe.sysTrap(1, op1, 8, crm, op2, rt, false)
			}
			return pe.undefined()
		}
		trap := h.TTLB() ||
			(op.InnerShareable() && h.Has(sysreg.HCR_TTLBIS)) ||
			(op.OuterShareable() && h.Has(sysreg.HCR_TTLBOS))
		if trap {
			return pe.sysTrap(1, op1, 8, crm, op2, rt, false)
		}
		if h.Has(hcrFB) && !op.InnerShareable() && !op.OuterShareable() {
			op = op.IS()
		}
	}
	ctx := tlb.ContextFromRegs(&pe.Regs, pe.EL)
	var err error
	switch {
	case pe.Domain != nil:
		_, err = pe.Domain.Invalidate(pe.ID, op, xt, ctx)
	case pe.TLB != nil:
		_, err = pe.TLB.Invalidate(op, xt, ctx)
	}
	if err != nil {
		return pe.undefined()
	}
	return Exception{}
}

const hcrFB sysreg.HCR = 1 << 9

// AT executes AT op, X<rt> with input address va at the current EL: PAR_EL1
// is written, or the exception the instruction takes is taken. AT does not
// use the TLB (the architecture permits but does not require it).
func (pe *PE) AT(op at.Op, rt uint8, va mem.VA) Exception {
	pe.Stats.ATs++
	if pe.EL == 0 {
		return pe.undefined()
	}
	res := at.ExecuteRt(&pe.Walker, &pe.Regs, at.PSTATE{EL: pe.EL, PAN: pe.PAN}, op, uint64(va), rt, pe.PAR)
	if !res.Taken {
		pe.PAR = res.PAR
		return Exception{}
	}
	x := res.Exception
	e := Exception{FromEL: pe.EL, TargetEL: x.TargetEL, ESR: x.ESR, FAR: mem.VA(x.FAR), HPFAR: x.HPFAR, Fault: res.Translation.Fault}
	switch x.Kind {
	case at.Undefined:
		e.Kind = Undefined
	case at.TrapEL2:
		e.Kind = SysTrap
	default:
		e.Kind = DataAbort
	}
	pe.TakeException(&e)
	return e
}
