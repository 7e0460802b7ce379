package at

import (
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// Plan is what an AT instruction translates once its execution rules
// allow it: the stage-1 regime, whether stage 2 follows, and the access
// whose permissions are checked.
type Plan struct {
	Regime  vmsa.Regime
	Stage12 bool
	Access  vmsa.Access
	// ExternalAbortToEL2: a synchronous External abort on the walk is
	// taken to EL2 (the instruction runs at EL2, or at EL1 with
	// HCR_EL2.TGE or TEA: AArch64.DataAbort).
	ExternalAbortToEL2 bool
}

// Decide applies the execution rules of AT op, X<rt> at ps with the
// registers r (C5.4, "Executing AT ..."): the exception the instruction
// takes instead (taken: UNDEFINED, trapped to EL2), or the Plan. Execute is
// Decide, the walk and Complete; a hypervisor that emulates AT for a guest
// hypervisor calls Decide on the guest's virtual registers to learn the
// regime the instruction names, translates another way, and completes the
// result with Complete.
func Decide(r *vmsa.Regs, ps PSTATE, op Op, rt uint8) (p Plan, x Exception, taken bool) {
	q, x, taken := decide(r, ps, op, rt)
	return Plan{Regime: q.regime, Stage12: q.stage12, Access: q.acc, ExternalAbortToEL2: q.eaToEL2}, x, taken
}

// Complete composes the outcome of an AT instruction planned by Decide
// from the translation t of its input address va: PAR_EL1 (F, FST, PTW
// and S for a fault; PA, ATTR and SH otherwise), or the exception the
// instruction takes instead (a synchronous External abort on the walk, a
// stage-2 fault of an AT executed at EL1). prevPAR is PAR_EL1 before it.
func Complete(ps PSTATE, p Plan, t vmsa.Translation, va uint64, prevPAR sysreg.PAR) Result {
	return complete(ps, plan{regime: p.Regime, stage12: p.Stage12, acc: p.Access, eaToEL2: p.ExternalAbortToEL2}, t, va, prevPAR)
}
