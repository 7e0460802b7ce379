package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// AT emulation. The guest hypervisor's AT instructions trap to L0 (AT
// S1E2*, S12* by HCR_EL2.NV; S1E0*, S1E1* by HCR_EL2.AT, which L0 sets
// while it runs), because the PE multiplexes every stage-1 regime on the
// EL1 registers: while L1 runs they hold its own EL2 (E2H=0) or EL2&0
// regime, and its guest's EL1&0 regime lives in the VNCR page layout. L0
// decides what the instruction means with the architecture's rules on
// L1's virtual registers (at.Decide: the regime from its virtual
// HCR_EL2.{E2H,TGE}, stage 2 from {VM,DC}), computes PAR_EL1 and writes
// it to the PE's PAR_EL1, which is L1's (PAR_EL1 has no VNCR offset, and
// no trap routes it), or injects the exception the instruction takes.
//
// The result is computed one of two ways:
//   - the fast path: the real AT on the PE at EL2, with the regime's
//     registers and the stage 2 that translates its tables — for the
//     guest's EL1&0 regime its registers from the VNCR page layout and the
//     matching shadow stage 2 (L0's stage 2 for L1 when the guest's stage
//     2 is off), for L1's own regime the registers as they are while it
//     runs (with HCR_EL2.NV1 for an E2H=0 guest hypervisor) and L0's stage
//     2 for L1. AT S12* add stage 2 by a software walk of the guest's
//     stage 2 on the stage-1 result rebuilt from PAR_EL1;
//   - the software walk: the instruction executed by the translation core
//     on L1's virtual registers over L1 memory (at.ExecuteRt with a walker
//     whose "physical" memory is L1's IPA space) — by construction what
//     `nestmmu at` computes for the same state at a real EL2.
//
// The fast path's answer is kept only where it cannot differ from the
// software walk: not when the PE would honour a feature the guest
// hypervisor's ID registers hide (a larger output size, FEAT_LPA2), not
// for an output address beyond L1's physical address size, and not for a
// stage-2 fault (the shadow may simply not be populated yet, or the guest's
// stage 2 faults: the software walk says which). ATAuto keeps, as KVM
// does, only a success or a stage-1 Permission or Access flag fault.

// ATPath selects how L0 computes the result of the guest hypervisor's AT.
type ATPath uint8

// AT emulation paths.
const (
	// ATAuto: the fast path, kept for a success or a stage-1 Permission or
	// Access flag fault; the software walk otherwise (as KVM).
	ATAuto ATPath = iota
	// ATSoftware: always the software walk.
	ATSoftware
	// ATHardware: the fast path whenever it has an answer (any stage-1
	// result), the software walk only when it has none.
	ATHardware
)

func (p ATPath) String() string {
	switch p {
	case ATAuto:
		return "auto"
	case ATSoftware:
		return "software"
	case ATHardware:
		return "hardware"
	}
	return fmt.Sprintf("ATPath(%d)", uint8(p))
}

// SetATPath selects how the vCPU's AT emulation computes results (tests
// force each path; the default is ATAuto).
func (v *VCPU) SetATPath(p ATPath) { v.atPath = p }

// AT implements EL2: AT op, X0 with input address va (emulated by L0),
// and PAR_EL1 afterwards (the PE's, which is the guest hypervisor's).
func (v *VCPU) AT(op at.Op, va mem.VA) (sysreg.PAR, error) {
	x := &v.k.Ctx().X
	x[0] = uint64(va)
	err := v.exec(func() cpu.Exception { return v.pe.AT(op, 0, mem.VA(x[0])) })
	return v.pe.PAR, err
}

// atOp returns the AT operation with a System instruction encoding.
func atOp(op1, crm, op2 uint8) (at.Op, bool) {
	for _, o := range at.Ops() {
		_, o1, _, cm, o2 := o.Encoding()
		if o1 == op1 && cm == crm && o2 == op2 {
			return o, true
		}
	}
	return 0, false
}

// spsrPAN is PSTATE.PAN in an SPSR.
const spsrPAN = 1 << 22

// virtualRegs are the translation registers of the guest hypervisor's
// view of its PE: its virtual HCR_EL2, VTCR_EL2 and VTTBR_EL2, its own
// EL2 regime's registers (in their EL2 layout), its guest's EL1
// registers, and the ID registers it reads. It is the register state of a
// real EL2 running the same software.
func (v *VCPU) virtualRegs() vmsa.Regs {
	g := v.guestRegs()
	el1 := func(r cpu.SysReg) uint64 {
		off, _ := r.VNCROffset()
		return v.vncrGet(off)
	}
	return vmsa.Regs{
		SCTLR_EL1: sysreg.SCTLR(el1(cpu.SCTLR_EL1)), TCR_EL1: sysreg.TCR(el1(cpu.TCR_EL1)),
		TTBR0_EL1: sysreg.TTBR(el1(cpu.TTBR0_EL1)), TTBR1_EL1: sysreg.TTBR(el1(cpu.TTBR1_EL1)),
		MAIR_EL1:  sysreg.MAIR(el1(cpu.MAIR_EL1)),
		SCTLR_EL2: sysreg.SCTLR(v.ownReg(cpu.SCTLR_EL2)), TCR_EL2: v.ownReg(cpu.TCR_EL2),
		TTBR0_EL2: sysreg.TTBR(v.ownReg(cpu.TTBR0_EL2)), TTBR1_EL2: sysreg.TTBR(v.ownReg(cpu.TTBR1_EL2)),
		MAIR_EL2: sysreg.MAIR(v.ownReg(cpu.MAIR_EL2)),
		HCR_EL2:  g.hcr, VTCR_EL2: g.vtcr, VTTBR_EL2: g.vttbr,
		MMFR0: g.id.MMFR0, MMFR1: g.id.MMFR1, MMFR2: g.id.MMFR2, ISAR2: v.pe.Regs.ISAR2,
	}
}

// emulateAT is the guest hypervisor's trapped AT op, X<rt> (the PE at EL2
// with its PSTATE in SPSR_EL2): PAR_EL1 written and the instruction
// skipped, or the exception it takes injected into vEL2 (a
// *GuestException: the model of the guest hypervisor has no handler).
func (v *VCPU) emulateAT(op at.Op, rt uint8) error {
	va := v.xreg(rt)
	vr := v.virtualRegs()
	ps := at.PSTATE{EL: 2, PAN: v.pe.SPSR[2]&spsrPAN != 0}
	v.resetTrace()
	res, p, how := emulatedAT(v, v.atPath, &v.walker, op, rt, &vr, ps, va, v.pe.PAR)
	if how.fast {
		v.stats.ATFast++
	} else {
		v.stats.ATSoftware++
	}
	if v.observer != nil {
		v.observer.EmulatedAT(&EmulatedAT{Op: op, VA: va, Plan: p, Result: res, Fast: how.fast, Shadow: how.shadow, Walk: v.steps()})
	}
	if res.Taken {
		return v.injectVEL2(res.Exception)
	}
	v.pe.PAR = res.PAR
	v.skip()
	return v.eret()
}

// atHow says how an AT was answered: by the fast path, on a shadow.
type atHow struct{ fast, shadow bool }

// atHardware is the hardware a hypervisor runs the fast path of an
// emulated AT on: L0 the PE (VCPU), a guest hypervisor its own virtual EL2
// (EL2VCPU, whose AT L0 emulates in turn).
type atHardware interface {
	// stage1AT executes the stage-1 form of op (stage1Op) for va on the
	// hardware, with the registers of plan p's regime loaded from the
	// view vr (PSTATE ps) and the stage 2 that holds its tables for the
	// hardware: for the guest's EL1&0 regime the matching shadow (shadow
	// is then set; the canonical stage 2 when the guest's stage 2 is
	// off), for the guest hypervisor's own regime the registers as it
	// runs with them. ok is false when it has no answer: no shadow holds
	// the tables yet, the hardware would translate the regime another way
	// than the view (sameOutputSize: checked before the instruction runs,
	// whose walk may update descriptors), the instruction took an
	// exception, or the hardware cannot take the view's PSTATE.
	stage1AT(op at.Op, p at.Plan, vr *vmsa.Regs, ps at.PSTATE, va uint64) (par sysreg.PAR, shadow, ok bool)
}

// emulatedAT computes the outcome of AT op, X<rt> for va, executed by a
// guest hypervisor whose view of its PE is vr (PSTATE ps, PAR_EL1 prev):
// the architecture's rules decide what it means (at.Decide); then the fast
// path's answer (hardware's stage1AT, kept as path says: fastKept) or the
// software walk's (at.ExecuteRt with w, whose "physical" memory is the
// guest hypervisor's IPA space). AT S12* take stage 1 from the fast path
// and stage 2 from a software walk of the guest's stage 2 on the stage-1
// result rebuilt from PAR_EL1 (its address; ATTR decoded as MAIR, SH),
// combined by vmsa.Walker.ApplyStage2 and completed by at.Complete. Every
// hypervisor level emulates AT with it.
func emulatedAT(hw atHardware, path ATPath, w *vmsa.Walker, op at.Op, rt uint8, vr *vmsa.Regs, ps at.PSTATE, va uint64, prev sysreg.PAR) (at.Result, at.Plan, atHow) {
	p, x, taken := at.Decide(vr, ps, op, rt)
	if taken {
		return at.Result{PAR: prev, Taken: true, Exception: x}, p, atHow{}
	}
	if path != ATSoftware {
		if par, shadow, ok := hw.stage1AT(op, p, vr, ps, va); ok && fastKept(path, par, vr) {
			how := atHow{fast: true, shadow: shadow}
			if par.F() || !p.Stage12 {
				t := vmsa.Translation{Fault: faultOfPAR(par)}
				return at.Result{PAR: par, Translation: t, Regime: p.Regime, Stage12: p.Stage12}, p, how
			}
			attrs := vmsa.DecodeMAIR(par.ATTR())
			attrs.Shareability = uint8(par.SH())
			t := vmsa.Translation{IPA: mem.IPA(par.PA() | va&0xfff), IPAOnly: true, Attrs: attrs, Level: -2}
			if vmsa.S2Enabled(vr) {
				if w.Trace != nil {
					w.Trace.Steps = w.Trace.Steps[:0]
				}
				t = w.ApplyStage2(vr, t, p.Access)
			} else {
				t.OA, t.IPAOnly = mem.PA(t.IPA), false
			}
			return at.Complete(ps, p, t, va, prev), p, how
		}
	}
	return at.ExecuteRt(w, vr, ps, op, va, rt, prev), p, atHow{}
}

// fastKept reports whether the fast path's PAR_EL1 par is kept for the
// view vr: never for an output beyond the view's PA size, for a stage-2
// fault on a table walk (the shadow may simply not be populated yet, or
// the guest's stage 2 faults: the software walk says which) or for a
// synchronous External abort; with ATAuto, as KVM, only a success or a
// stage-1 Permission or Access flag fault.
func fastKept(path ATPath, par sysreg.PAR, vr *vmsa.Regs) bool {
	viewPA, _ := sysreg.PASizeBits(vr.MMFR0.PARange())
	switch {
	case !par.F() && par.PA()>>viewPA != 0:
		return false
	case par.F() && par.S():
		return false
	case par.F() && path == ATAuto && !fscPermission(par.FST()) && !fscAccessFlag(par.FST()):
		return false
	case par.F() && par.FST()&0x38 == 0x10:
		return false
	}
	return true
}

// stage1Op is the AT instruction the fast path executes at EL2 for op: the
// EL1&0 stage-1 form (the EL2 regimes run on the EL1&0 regime, and S12*
// get their stage 2 by software).
func stage1Op(op at.Op) at.Op {
	switch op {
	case at.S1E2R, at.S12E1R:
		return at.S1E1R
	case at.S1E2W, at.S12E1W:
		return at.S1E1W
	case at.S1E2A:
		return at.S1E1A
	case at.S12E0R:
		return at.S1E0R
	case at.S12E0W:
		return at.S1E0W
	}
	return op
}

// stage1AT implements atHardware on the PE at EL2. The PE's registers,
// PAR_EL1 and PAN are restored afterwards.
func (v *VCPU) stage1AT(op at.Op, p at.Plan, vr *vmsa.Regs, ps at.PSTATE, va uint64) (sysreg.PAR, bool, bool) {
	pe := v.pe
	shadow := false
	saved, savedPAR, savedPAN := pe.Regs, pe.PAR, pe.PAN
	defer func() {
		pe.Regs, pe.PAR, pe.PAN = saved, savedPAR, savedPAN
		pe.RegsChanged()
	}()
	vm := v.vm
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	if p.Regime == vmsa.RegimeEL10 {
		// The guest's EL1&0 regime: its registers, HCR_EL2 as for running
		// it with the guest's DC, PTW and TGE (which, with E2H=0, turns
		// both stages off), and the stage 2 that holds its tables for the
		// hardware: the matching shadow, or with the guest's stage 2 off
		// L0's stage 2 for L1 (L2 IPA = L1 IPA).
		r := &pe.Regs
		r.SCTLR_EL1, r.TCR_EL1, r.TTBR0_EL1, r.TTBR1_EL1, r.MAIR_EL1 = vr.SCTLR_EL1, vr.TCR_EL1, vr.TTBR0_EL1, vr.TTBR1_EL1, vr.MAIR_EL1
		r.HCR_EL2 = kvm.GuestHCR | vr.HCR_EL2&(sysreg.HCR_DC|sysreg.HCR_PTW|sysreg.HCR_TGE)
		if stage2On(vr.HCR_EL2) {
			g := v.guestRegs()
			sh := vm.pool.lookup(&g)
			if sh == nil {
				return 0, false, false
			}
			r.VTCR_EL2, r.VTTBR_EL2 = sh.s2.VTCR(), sh.s2.VTTBR()
			shadow = true
		} else {
			vm.k.Stage2().ApplyRegs(r)
		}
	}
	// Otherwise the PE's registers are the guest hypervisor's, as it runs.
	if !sameOutputSize(&pe.Regs, vr) {
		return 0, false, false
	}
	pe.PAN = ps.PAN
	pe.RegsChanged()
	if e := pe.AT(stage1Op(op), 0, mem.VA(va)); e.Taken() {
		return 0, false, false // an External abort on the walk: the software walk reports it
	}
	return pe.PAR, shadow, true
}

// faultOfPAR is the kind and level of a stage-1 fault in PAR_EL1 (for
// explanations: the fast path has only the register).
func faultOfPAR(par sysreg.PAR) vmsa.Fault {
	if !par.F() {
		return vmsa.Fault{}
	}
	fst := par.FST()
	f := vmsa.Fault{Level: int8(fst & 3)}
	switch fst & 0x3c {
	case 0x00:
		f.Kind = vmsa.FaultAddressSize
	case 0x04:
		f.Kind = vmsa.FaultTranslation
	case 0x08:
		f.Kind = vmsa.FaultAccessFlag
	case 0x0c:
		f.Kind = vmsa.FaultPermission
	}
	switch fst {
	case 0x29:
		f.Kind, f.Level = vmsa.FaultAddressSize, -1
	case 0x2b:
		f.Kind, f.Level = vmsa.FaultTranslation, -1
	}
	return f
}

// sameOutputSize reports whether the PE, whose ID registers are the
// host's, gives the stage-1 regime of hw (the EL1&0 registers the fast
// path loaded) the output size and descriptor format the guest
// hypervisor's view vr gives it: the same effective TCR.IPS (the smaller
// of IPS and PARange, AArch64.PAMax), no TCR.DS the view lacks FEAT_LPA2
// for, and for the 64K granule the same FEAT_LPA.
func sameOutputSize(hw, vr *vmsa.Regs) bool {
	tcr := hw.TCR_EL1
	hostPA, _ := sysreg.PASizeBits(hw.MMFR0.PARange())
	viewPA, _ := sysreg.PASizeBits(vr.MMFR0.PARange())
	ips, ok := sysreg.PASizeBits(tcr.IPS())
	if !ok {
		ips = 52 // a reserved IPS reads as the largest size
	}
	if min(ips, hostPA) != min(ips, viewPA) {
		return false
	}
	lpa2 := func(m sysreg.MMFR0) bool { return m.TGran4() == 1 || m.TGran16() == 2 }
	if tcr.DS() && lpa2(hw.MMFR0) && !lpa2(vr.MMFR0) {
		return false
	}
	// FEAT_LPA (a 52-bit PARange) gives 64K descriptors OA[51:48] in bits
	// [15:12], which are RES0 without it (AArch64.LeafBase).
	k64 := tcr.TG0() == sysreg.Granule64K || tcr.TG1() == sysreg.Granule64K
	return !k64 || (hostPA == 52) == (viewPA == 52)
}

// injectVEL2 makes the guest hypervisor take the exception x of one of its
// instructions (the PE at EL2 handling its trap): the PE returns to it and
// takes x as the hardware would take it at EL1 — which is vEL2: ESR_EL2,
// FAR_EL2, ELR_EL2 and SPSR_EL2 (the EL1 registers), the vector VBAR_EL2 +
// 0x200 (the same EL with SP_EL2) — and HPFAR_EL2 for a stage-2 fault. The
// guest hypervisor's model has no code for such an exception: the
// instruction returns it as a *GuestException.
func (v *VCPU) injectVEL2(x at.Exception) error {
	if err := v.eret(); err != nil {
		return err
	}
	e := cpu.Exception{Kind: cpu.DataAbort, TargetEL: 1, ESR: x.ESR, FAR: mem.VA(x.FAR)}
	switch x.Kind {
	case at.Undefined:
		e.Kind, e.FAR = cpu.Undefined, 0
	case at.TrapEL2:
		return fmt.Errorf("%w: AT from vEL2 trapped to EL2 (%v)", ErrUnhandled, x)
	}
	v.pe.TakeException(&e)
	v.hpfar = HPFARUnknown
	if e.Kind == cpu.DataAbort && x.HPFARValid {
		v.hpfar = uint64(x.HPFAR)
	}
	return &GuestException{Exception: e}
}

// RunL2AT executes AT op, X<rt> (X<rt> = va) in the nested guest at its
// current EL: the real instruction on the PE, through its stage 1 and the
// shadow stage 2. A shadow fault on its stage-1 walk is resolved by L0 and
// the instruction retried; a fault of the guest hypervisor's stage 2 is
// injected into vEL2 as the Data Abort the architecture gives an AT
// (ISS.CM=1, WnR=1, S1PTW, the guest's fault status code), and its code
// runs; an exception to L2's own EL1 (UNDEFINED, a synchronous External
// abort on its walk) returns ExitL2Exception. PAR_EL1 holds the result
// when the instruction completes (ExitNone).
func (v *VCPU) RunL2AT(op at.Op, rt uint8, va mem.VA) (Exit, error) {
	if !v.inL2 {
		return Exit{}, ErrNotL2
	}
	if v.mmio {
		return Exit{}, kvm.ErrPendingMMIO
	}
	if rt > 31 {
		return Exit{}, fmt.Errorf("nested: register X%d does not exist", rt)
	}
	v.setXreg(rt, uint64(va))
	return v.execL2(func() cpu.Exception { return v.pe.AT(op, rt, mem.VA(v.xreg(rt))) }, true)
}

// walkAbortToL2 handles a shadow fault on L2's stage-1 walk whose table
// address L1's stage 2 maps to an L1 IPA without memory: the hardware
// would read no memory there, so L2 takes a synchronous External abort on
// its translation table walk (AArch64.S1Walk), at the level the walk read
// it. L0 finds the level by walking L2's stage 1 in software (its EL1
// registers on the PE, the guest's stage 2 over L1 memory). retry is set
// when the software walk does not reach the abort (L2's tables changed
// meanwhile): the instruction is executed again.
func (v *VCPU) walkAbortToL2(e cpu.Exception) (Exit, bool, error) {
	pe := v.pe
	r := v.virtualRegs()
	r.SCTLR_EL1, r.TCR_EL1, r.TTBR0_EL1, r.TTBR1_EL1, r.MAIR_EL1 = pe.Regs.SCTLR_EL1, pe.Regs.TCR_EL1, pe.Regs.TTBR0_EL1, pe.Regs.TTBR1_EL1, pe.Regs.MAIR_EL1
	acc := vmsa.Access{Kind: vmsa.Read, EL: uint8(pe.SPSR[2] >> 2 & 3)}
	if e.Kind == cpu.InstructionAbort {
		acc.Kind = vmsa.Fetch
	}
	t := v.walker.Translate(&r, vmsa.RegimeEL10, e.FAR, acc, vmsa.TranslateOptions{Stage1Only: true})
	if f := t.Fault; f.Kind == vmsa.FaultSyncExternalOnWalk && !f.Stage2 {
		return v.externalAbortToL2(e, f.FSC(), f)
	}
	return Exit{}, true, v.eret()
}

// externalAbortToL2 makes L2 take a synchronous External abort (fault
// status code fsc, recorded as f) for the access whose shadow fault e L0
// is handling (a fetch, or a stage-1 walk, that reads L1 memory that does
// not exist): the PE returns to L2 and takes the Data (or Instruction)
// Abort to L2's EL1 — the hardware syndrome with fsc, S1PTW and ISV clear
// (WnR and CM kept), the class for the same EL from EL1, FAR the VA — or,
// when the guest hypervisor's HCR_EL2.TEA routes External aborts to its
// EL2, it is injected into vEL2 instead.
func (v *VCPU) externalAbortToL2(e cpu.Exception, fsc uint8, f vmsa.Fault) (Exit, bool, error) {
	pe := v.pe
	from := uint8(pe.SPSR[2] >> 2 & 3)
	ec := uint64(e.ESR) >> 26
	iss := uint64(e.ESR) & (1<<6 | 1<<8) // WnR, CM
	if v.vHCR().TEA() {
		// The guest hypervisor routes External aborts to its EL2
		// (AArch64.DataAbort, AArch64.InstructionAbort): it takes this one
		// from the lower EL, HPFAR_EL2 UNKNOWN.
		v.stats.Forwarded++
		if err := v.toVEL2(sysreg.ESR(ec<<26|1<<25|iss|uint64(fsc)), e.FAR, HPFARUnknown, 0x400, true); err != nil {
			return Exit{}, false, err
		}
		return v.runGuestHypervisor()
	}
	if err := v.eret(); err != nil {
		return Exit{}, false, err
	}
	if from == 1 {
		ec |= 1 // the "same Exception level" class is one above
	}
	x := cpu.Exception{Kind: e.Kind, TargetEL: 1, FAR: e.FAR, Fault: f,
		ESR: sysreg.ESR(ec<<26 | 1<<25 | iss | uint64(fsc))}
	pe.TakeException(&x)
	return Exit{Reason: ExitL2Exception, Exception: x}, false, nil
}
