// Package at executes the AArch64 address translation instructions (AT)
// on the modelled MMU and composes PAR_EL1 exactly as the architecture
// does, or the exception the instruction takes instead (DDI 0487, C5.4
// "A64 System instructions for address translation", and the pseudocode
// AArch64.AT).
package at

import (
	"fmt"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Op is an AT operation.
type Op uint8

// The AArch64 AT operations (Non-secure; EL3 forms are not modelled).
const (
	S1E0R Op = iota
	S1E0W
	S1E1R
	S1E1W
	S1E1RP
	S1E1WP
	S1E1A
	S1E2R
	S1E2W
	S1E2A
	S12E0R
	S12E0W
	S12E1R
	S12E1W
	numOps
)

var opNames = [numOps]string{"S1E0R", "S1E0W", "S1E1R", "S1E1W", "S1E1RP", "S1E1WP", "S1E1A",
	"S1E2R", "S1E2W", "S1E2A", "S12E0R", "S12E0W", "S12E1R", "S12E1W"}

// Ops lists every operation.
func Ops() []Op {
	out := make([]Op, numOps)
	for i := range out {
		out[i] = Op(i)
	}
	return out
}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// ParseOp parses an operation name such as "S1E1R" (case-insensitive,
// an "AT " prefix allowed).
func ParseOp(s string) (Op, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimPrefix(u, "AT ")
	for i, n := range opNames {
		if n == u {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("unknown AT operation %q (want one of %s)", s, strings.Join(opNames[:], " "))
}

// Encoding returns the operation's System instruction encoding
// (op0, op1, CRn, CRm, op2), from the tables of DDI 0487 C5.4.
func (o Op) Encoding() (op0, op1, crn, crm, op2 uint8) {
	enc := [numOps][3]uint8{ // op1, CRm, op2; op0=1, CRn=7 for all
		S1E0R: {0, 8, 2}, S1E0W: {0, 8, 3}, S1E1R: {0, 8, 0}, S1E1W: {0, 8, 1},
		S1E1RP: {0, 9, 0}, S1E1WP: {0, 9, 1}, S1E1A: {0, 9, 2},
		S1E2R: {4, 8, 0}, S1E2W: {4, 8, 1}, S1E2A: {4, 9, 2},
		S12E1R: {4, 8, 4}, S12E1W: {4, 8, 5}, S12E0R: {4, 8, 6}, S12E0W: {4, 8, 7},
	}
	if o >= numOps {
		return 0, 0, 0, 0, 0
	}
	e := enc[o]
	return 1, e[0], 7, e[1], e[2]
}

// sysTrapISS is the ISS of an exception from a trapped System instruction
// (EC 0x18): Op0, Op2, Op1, CRn, Rt, CRm, Direction=0 (a write).
func sysTrapISS(o Op, rt uint8) uint64 {
	op0, op1, crn, crm, op2 := o.Encoding()
	return uint64(op0)<<20 | uint64(op2)<<17 | uint64(op1)<<14 | uint64(crn)<<10 | uint64(rt&31)<<5 | uint64(crm)<<1
}

// Write reports whether the operation checks write permission.
func (o Op) Write() bool {
	switch o {
	case S1E0W, S1E1W, S1E1WP, S1E2W, S12E0W, S12E1W:
		return true
	}
	return false
}

// PSTATE is the part of the PE state an AT instruction reads.
type PSTATE struct {
	EL  uint8 // 1 or 2
	PAN bool
}

// ExceptionKind says why an AT instruction took an exception.
type ExceptionKind uint8

// Exception kinds.
const (
	// Undefined: the instruction is UNDEFINED at this EL or without the feature.
	Undefined ExceptionKind = iota
	// TrapEL2: trapped to EL2 as a system instruction (EC 0x18).
	TrapEL2
	// DataAbort: a synchronous External abort on the walk, or a stage-2
	// fault of an AT executed at EL1, taken as a Data Abort.
	DataAbort
)

// Exception is an exception taken instead of writing PAR_EL1. Nothing in
// it is formatted when it is taken (String does that), so that an AT that
// traps or faults allocates nothing.
type Exception struct {
	Kind     ExceptionKind
	TargetEL uint8
	ESR      sysreg.ESR
	FAR      uint64
	// HPFAR is HPFAR_EL2 when HPFARValid: the faulting IPA of a stage-2
	// Translation, Access flag or Address size fault, or of a Permission
	// fault on a stage-1 walk (IPAValid in AArch64.ReportException). For
	// every other exception taken to EL2 (a synchronous External abort,
	// on a stage-2 walk too) the architecture leaves HPFAR_EL2 UNKNOWN.
	HPFAR      sysreg.HPFAR
	HPFARValid bool
	// Reason names the rule that applied (a constant string).
	Reason string
	// Op and EL are the instruction and the Exception level it was
	// executed at; Fault is the walk's fault of a DataAbort.
	Op    Op
	EL    uint8
	Fault vmsa.Fault
}

func (e Exception) String() string {
	switch e.Kind {
	case Undefined:
		if e.Reason == "" {
			return fmt.Sprintf("UNDEFINED: AT %s at EL%d", e.Op, e.EL)
		}
		return fmt.Sprintf("UNDEFINED: AT %s at EL%d: %s", e.Op, e.EL, e.Reason)
	case TrapEL2:
		return fmt.Sprintf("trap to EL2 (ESR %#x): AT %s at EL%d with %s", uint64(e.ESR), e.Op, e.EL, e.Reason)
	}
	return fmt.Sprintf("data abort to EL%d (ESR %#x, FAR %#x): %s: %s", e.TargetEL, uint64(e.ESR), e.FAR, e.Reason, e.Fault)
}

// Result is the outcome of one AT instruction.
type Result struct {
	// PAR is PAR_EL1 after the instruction (unchanged input when Taken).
	PAR sysreg.PAR
	// Taken reports that Exception was taken instead of writing PAR.
	Taken     bool
	Exception Exception
	// Translation is the walk's result (for explanation and tests).
	Translation vmsa.Translation
	// Regime and Stage12 say what was translated.
	Regime  vmsa.Regime
	Stage12 bool
}

// Fault returns the fault the walk reported, if any.
func (r Result) Fault() vmsa.Fault { return r.Translation.Fault }

// plan is what AArch64.AT is called with after the instruction's checks.
type plan struct {
	regime  vmsa.Regime
	stage12 bool
	acc     vmsa.Access
	// eaToEL2: a synchronous External abort on the walk is taken to EL2
	// (executed at EL2, or at EL1 with HCR_EL2.TGE or TEA: AArch64.DataAbort).
	eaToEL2 bool
}

// Reasons of the exceptions decide reports.
const (
	reasonEL      = "only EL1 and EL2 are modelled"
	reasonPAN2    = "needs FEAT_PAN2 (ID_AA64MMFR1_EL1.PAN < 2)"
	reasonATS1A   = "needs FEAT_ATS1A (ID_AA64ISAR2_EL1.ATS1A = 0)"
	reasonAtEL1   = "" // the instruction's name and EL say it all
	reasonUnknown = "unknown operation"
	reasonAT      = "HCR_EL2.AT=1"
	reasonNV      = "HCR_EL2.NV=1"
	reasonWalkEA  = "synchronous external abort on translation table walk"
	reasonS2AtEL1 = "stage 2 fault of AT executed at EL1"
)

// decide applies the instruction's execution rules (C5.4: "Executing AT
// ..."): UNDEFINED and trapped cases, the regime from HCR_EL2.{E2H,TGE},
// and whether stage 2 applies. taken reports the exception x instead.
func decide(r *vmsa.Regs, ps PSTATE, op Op, rt uint8) (p plan, x Exception, taken bool) {
	hcr := r.HCR_EL2
	undef := func(why string) (plan, Exception, bool) {
		return plan{}, Exception{Kind: Undefined, TargetEL: ps.EL, ESR: sysreg.ESR(1 << 25), Reason: why, Op: op, EL: ps.EL}, true
	}
	trap := func(why string) (plan, Exception, bool) {
		esr := uint64(sysreg.ECSysRegTrap)<<26 | 1<<25 | sysTrapISS(op, rt)
		return plan{}, Exception{Kind: TrapEL2, TargetEL: 2, ESR: sysreg.ESR(esr), Reason: why, Op: op, EL: ps.EL}, true
	}
	if ps.EL != 1 && ps.EL != 2 {
		return undef(reasonEL)
	}
	if (op == S1E1RP || op == S1E1WP) && r.MMFR1.PAN() < 2 {
		return undef(reasonPAN2)
	}
	if (op == S1E1A || op == S1E2A) && r.ISAR2.ATS1A() == 0 {
		return undef(reasonATS1A)
	}
	host := hcr.E2H() && hcr.TGE() // ELIsInHost(EL0)
	p.acc = vmsa.Access{AT: true}
	p.eaToEL2 = ps.EL == 2 || hcr.TGE() || hcr.TEA()
	if op.Write() {
		p.acc.Kind = vmsa.Write
	}
	switch op {
	case S1E0R, S1E0W, S1E1R, S1E1W, S1E1RP, S1E1WP, S1E1A:
		if ps.EL == 1 && hcr.AT() && r.MMFR2.NV() >= 1 {
			return trap(reasonAT)
		}
		p.regime = vmsa.RegimeEL10
		p.acc.EL = 1
		if ps.EL == 2 && host {
			p.regime = vmsa.RegimeEL20
			p.acc.EL = 2
		}
		if op == S1E0R || op == S1E0W {
			p.acc.EL = 0
		}
		// Only the RP/WP forms take PSTATE.PAN into account (FEAT_PAN2).
		p.acc.PAN = (op == S1E1RP || op == S1E1WP) && ps.PAN
		p.acc.NoPerm = op == S1E1A
	case S1E2R, S1E2W, S1E2A:
		if ps.EL == 1 {
			if hcr.NV() && r.MMFR2.NV() >= 1 {
				return trap(reasonNV)
			}
			return undef(reasonAtEL1)
		}
		p.regime = vmsa.RegimeEL2
		if hcr.E2H() {
			p.regime = vmsa.RegimeEL20
		}
		p.acc.EL = 2
		p.acc.NoPerm = op == S1E2A
	case S12E0R, S12E0W, S12E1R, S12E1W:
		if ps.EL == 1 {
			if hcr.NV() && r.MMFR2.NV() >= 1 {
				return trap(reasonNV)
			}
			return undef(reasonAtEL1)
		}
		p.acc.EL = 1
		if op == S12E0R || op == S12E0W {
			p.acc.EL = 0
		}
		switch {
		case host:
			p.regime = vmsa.RegimeEL20
			if p.acc.EL == 1 {
				p.acc.EL = 2
			}
		default:
			p.regime = vmsa.RegimeEL10
			p.stage12 = hcr.DC() || hcr.VM()
		}
	default:
		return undef(reasonUnknown)
	}
	return p, Exception{}, false
}

// Execute runs AT op on va with the given state and returns PAR_EL1 or
// the exception taken. prevPAR is PAR_EL1 before the instruction. A trap
// to EL2 reports Rt=0; use ExecuteRt when the instruction's Xt is known.
func Execute(w *vmsa.Walker, r *vmsa.Regs, ps PSTATE, op Op, va uint64, prevPAR sysreg.PAR) Result {
	return ExecuteRt(w, r, ps, op, va, 0, prevPAR)
}

// ExecuteRt is Execute for the instruction AT <op>, X<rt>: rt goes into
// the ISS of a trap to EL2.
func ExecuteRt(w *vmsa.Walker, r *vmsa.Regs, ps PSTATE, op Op, va uint64, rt uint8, prevPAR sysreg.PAR) Result {
	p, x, taken := decide(r, ps, op, rt)
	if taken {
		return Result{PAR: prevPAR, Taken: true, Exception: x}
	}
	t := w.Translate(r, p.regime, mem.VA(va), p.acc, vmsa.TranslateOptions{Stage1Only: !p.stage12})
	return complete(ps, p, t, va, prevPAR)
}

// complete composes the outcome of an AT instruction from its translation:
// PAR_EL1, or the exception taken instead.
func complete(ps PSTATE, p plan, t vmsa.Translation, va uint64, prevPAR sysreg.PAR) Result {
	res := Result{Translation: t, Regime: p.regime, Stage12: p.stage12}
	f := t.Fault
	switch {
	case f.Kind == vmsa.FaultSyncExternalOnWalk:
		// "Synchronous faults generated by address translation
		// instructions": an External abort on the walk is taken.
		res.Taken = true
		res.Exception = dataAbort(ps, p, f, va, reasonWalkEA)
	case f.IsFault() && f.Stage2 && ps.EL == 1:
		// A stage-2 fault of an AT executed at EL1 is taken to EL2.
		res.Taken = true
		res.Exception = dataAbort(ps, p, f, va, reasonS2AtEL1)
	case f.IsFault():
		res.PAR = FaultPAR(f)
	default:
		res.PAR = SuccessPAR(t)
	}
	if res.Taken {
		res.PAR = prevPAR
	}
	return res
}

// dataAbort builds the Data Abort an AT instruction takes: to EL2 for a
// stage-2 fault or, for a synchronous External abort, when p.eaToEL2
// (AArch64.DataAbort's route_to_el2: HCR_EL2.TGE, or HCR_EL2.TEA for an
// External abort); ISS.CM=1 and WnR=1 for address translation
// instructions, the FSC of the fault, S1PTW; FAR = the input address;
// HPFAR only where IPAValid holds (not for an External abort, on a
// stage-2 walk either: AArch64.ReportException leaves it UNKNOWN).
func dataAbort(ps PSTATE, p plan, f vmsa.Fault, va uint64, why string) Exception {
	target := ps.EL
	ea := f.Kind == vmsa.FaultSyncExternalOnWalk
	if f.Stage2 || ea && p.eaToEL2 {
		target = 2
	}
	ec := sysreg.ECDataAbortSame
	if target > ps.EL {
		ec = sysreg.ECDataAbortLower
	}
	iss := uint64(f.FSC()) | 1<<6 | 1<<8 // WnR, CM
	if f.S1PTW {
		iss |= 1 << 7
	}
	e := Exception{Kind: DataAbort, TargetEL: target, FAR: va, Reason: why, EL: ps.EL, Fault: f,
		ESR: sysreg.ESR(uint64(ec)<<26 | 1<<25 | iss)}
	if target == 2 && IPAValid(f) {
		e.HPFAR, e.HPFARValid = sysreg.HPFARFor(uint64(f.IPA)), true
	}
	return e
}

// IPAValid is the pseudocode's IPAValid (AArch64.ReportException): whether
// an exception taken to EL2 for fault f reports its IPA in HPFAR_EL2: a
// stage-2 Translation, Access flag or Address size fault, or a stage-2
// Permission fault on a stage-1 walk. For anything else (a synchronous
// External abort, on a stage-2 walk too) HPFAR_EL2 is UNKNOWN.
func IPAValid(f vmsa.Fault) bool {
	if !f.Stage2 {
		return false
	}
	switch f.Kind {
	case vmsa.FaultTranslation, vmsa.FaultAccessFlag, vmsa.FaultAddressSize:
		return true
	case vmsa.FaultPermission:
		return f.S1PTW
	}
	return false
}

// FaultPAR composes PAR_EL1 for a failed translation: F, FST, PTW, S and
// the RES1 bit 11.
func FaultPAR(f vmsa.Fault) sysreg.PAR {
	v := uint64(1) | uint64(f.FSC())<<1 | 1<<11
	if f.S1PTW {
		v |= 1 << 8
	}
	if f.Stage2 {
		v |= 1 << 9
	}
	return sysreg.PAR(v)
}

// SuccessPAR composes PAR_EL1 for a successful translation: PA[51:12],
// SH (PAREncodeShareability), NS, the RES1 bit 11 and ATTR. NS is UNKNOWN
// for a Non-secure regime; we report 1, as QEMU does.
func SuccessPAR(t vmsa.Translation) sysreg.PAR {
	v := t.Output() & 0x000f_ffff_ffff_f000
	v |= uint64(vmsa.PARShareability(t.Attrs)) << 7
	v |= 1<<9 | 1<<11
	v |= uint64(vmsa.EncodePARAttrs(t.Attrs)) << 56
	return sysreg.PAR(v)
}
