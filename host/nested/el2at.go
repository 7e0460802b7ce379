package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// AT emulation by a guest hypervisor (L1) for the guest hypervisor it
// runs (L2): L2's AT instructions at its virtual EL2 trap (AT S1E2*, S12*
// by L1's HCR_EL2.NV, S1E0*/S1E1* by its HCR_EL2.AT) to L0, which forwards
// them to L1 because L1's HCR_EL2 asked for them; L1's engine then does
// what L0 does for L1's own (emulatedAT): the rules on L2's virtual
// registers, the fast path on L1's hardware — its own virtual EL2, whose
// AT instruction traps to L0 and is emulated there in turn — or the
// software walk over L2's IPA space (L1's stage 2 for L2, through L1's
// loads).

// SetATPath selects how the engine computes the results of the guest
// hypervisor's AT instructions (the default is ATAuto).
func (e *EL2VCPU) SetATPath(p ATPath) { e.atPath = p }

// virtualRegs are the translation registers of the guest hypervisor's view
// while it runs at its virtual EL2: its virtual HCR_EL2 (E2H reads 1),
// VTCR_EL2 and VTTBR_EL2 and its guest's EL1 registers (the VNCR page
// layout), its own EL2&0 regime (the hypervisor's guest EL1 registers,
// which hold it while it runs), and the ID registers it reads. ISAR2 is
// DefaultISAR2: the modelled PE has no ID_AA64ISAR2_EL1 register to read.
func (e *EL2VCPU) virtualRegs() (vmsa.Regs, error) {
	g, err := e.guestRegs()
	if err != nil {
		return vmsa.Regs{}, err
	}
	var el1 [5]uint64
	for i, r := range []cpu.SysReg{cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.TTBR1_EL1, cpu.MAIR_EL1} {
		off, _ := r.VNCROffset()
		if el1[i], err = e.vncrGet(off); err != nil {
			return vmsa.Regs{}, err
		}
	}
	r := &regs{c: e.c}
	vr := vmsa.Regs{
		SCTLR_EL1: sysreg.SCTLR(el1[0]), TCR_EL1: sysreg.TCR(el1[1]), TTBR0_EL1: sysreg.TTBR(el1[2]),
		TTBR1_EL1: sysreg.TTBR(el1[3]), MAIR_EL1: sysreg.MAIR(el1[4]),
		SCTLR_EL2: sysreg.SCTLR(r.get(e.guestEL1(cpu.SCTLR_EL1))), TCR_EL2: r.get(e.guestEL1(cpu.TCR_EL1)),
		TTBR0_EL2: sysreg.TTBR(r.get(e.guestEL1(cpu.TTBR0_EL1))), TTBR1_EL2: sysreg.TTBR(r.get(e.guestEL1(cpu.TTBR1_EL1))),
		MAIR_EL2: sysreg.MAIR(r.get(e.guestEL1(cpu.MAIR_EL1))),
		HCR_EL2:  g.hcr, VTCR_EL2: g.vtcr, VTTBR_EL2: g.vttbr,
		MMFR0: e.ids.MMFR0, MMFR1: e.ids.MMFR1, MMFR2: e.ids.MMFR2, ISAR2: sysreg.DefaultISAR2,
	}
	return vr, r.err
}

// emulateAT is the guest hypervisor's trapped AT op, X<rt> (va = X<rt>):
// PAR_EL1 written and the instruction skipped, or the exception it takes
// injected into its virtual EL2.
func (e *EL2VCPU) emulateAT(op at.Op, rt uint8, va uint64) error {
	vr, err := e.virtualRegs()
	if err != nil {
		return err
	}
	r := &regs{c: e.c}
	spsr, prev := r.get(cpu.SPSR_EL2), r.get(cpu.PAR_EL1)
	if r.err != nil {
		return r.err
	}
	ps := at.PSTATE{EL: 2, PAN: spsr&spsrPAN != 0}
	res, _, how := emulatedAT(e, e.atPath, &e.walker, op, rt, &vr, ps, va, sysreg.PAR(prev))
	if how.fast {
		e.stats.ATFast++
	} else {
		e.stats.ATSoftware++
	}
	if res.Taken {
		return e.injectAT(res.Exception, spsr)
	}
	if err := e.c.MSR(cpu.PAR_EL1, uint64(res.PAR)); err != nil {
		return err
	}
	return e.skip()
}

// stage1AT implements atHardware on the hypervisor's own virtual EL2: for
// the guest hypervisor's EL2&0 regime, which is on the hypervisor's guest
// EL1 registers with its stage 2 for the VM while the guest hypervisor
// runs, the AT as they are; for its guest's EL1&0 regime, those registers
// loaded from the view, HCR_EL2 with the view's DC and PTW, and the
// matching shadow (or, with the guest's stage 2 off, the hypervisor's
// stage 2 for the VM), all put back afterwards. Not for AT S1E1RP/WP: the
// hypervisor cannot give its own instruction the guest hypervisor's
// PSTATE.PAN.
func (e *EL2VCPU) stage1AT(op at.Op, p at.Plan, vr *vmsa.Regs, _ at.PSTATE, va uint64) (sysreg.PAR, bool, bool) {
	if op == at.S1E1RP || op == at.S1E1WP {
		return 0, false, false
	}
	hw := *vr
	hw.MMFR0, hw.MMFR1, hw.MMFR2 = e.own.MMFR0, e.own.MMFR1, e.own.MMFR2
	if p.Regime != vmsa.RegimeEL10 {
		hw.TCR_EL1 = sysreg.TCR(vr.TCR_EL2) // the guest hypervisor is a VHE one: the EL1 layout
		if !sameOutputSize(&hw, vr) {
			return 0, false, false
		}
		par, err := e.c.AT(stage1Op(op), mem.VA(va))
		return par, false, err == nil
	}
	if !sameOutputSize(&hw, vr) {
		return 0, false, false
	}
	vttbr, vtcr, shadow := e.p.VTTBR(), e.p.VTCR(), false
	if stage2On(vr.HCR_EL2) {
		g := guestRegs{vtcr: vr.VTCR_EL2, vttbr: vr.VTTBR_EL2, hcr: vr.HCR_EL2, id: e.ids}
		sh := e.pool.lookup(&g)
		if sh == nil {
			return 0, false, false
		}
		vttbr, vtcr, shadow = uint64(sh.s2.VTTBR().WithVMID(sh.x.vmid)), sh.s2.VTCR(), true
	}
	names := [...]cpu.SysReg{cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.TTBR1_EL1, cpu.MAIR_EL1}
	view := [...]uint64{uint64(vr.SCTLR_EL1), uint64(vr.TCR_EL1), uint64(vr.TTBR0_EL1), uint64(vr.TTBR1_EL1), uint64(vr.MAIR_EL1)}
	var saved [len(names)]uint64
	r := &regs{c: e.c}
	for i, n := range names {
		saved[i] = r.get(e.guestEL1(n))
		r.set(e.guestEL1(n), view[i])
	}
	r.set(cpu.HCR_EL2, uint64(e.baseHCR()|vr.HCR_EL2&(sysreg.HCR_DC|sysreg.HCR_PTW)))
	var par sysreg.PAR
	if r.err == nil {
		r.err = e.p.SetStage2(vttbr, vtcr)
	}
	if r.err == nil {
		par, r.err = e.c.AT(stage1Op(op), mem.VA(va))
	}
	ok := r.err == nil
	// Put the guest hypervisor's world back (an error there is the next
	// instruction's).
	r.err = nil
	for i, n := range names {
		r.set(e.guestEL1(n), saved[i])
	}
	r.set(cpu.HCR_EL2, uint64(e.vel2HCR()))
	if r.err == nil {
		r.err = e.p.SetStage2(e.p.VTTBR(), e.p.VTCR())
	}
	return par, shadow, ok && r.err == nil
}

// injectAT makes the guest hypervisor take the exception x of its AT at
// its virtual EL2 (its PSTATE spsr): injectVEL2.
func (e *EL2VCPU) injectAT(x at.Exception, spsr uint64) error {
	switch x.Kind {
	case at.Undefined:
		return e.injectVEL2(cpu.Undefined, x.ESR, 0, HPFARUnknown, spsr)
	case at.TrapEL2:
		return fmt.Errorf("%w: the guest hypervisor's AT trapped to its EL2 (%v)", ErrUnhandled, x)
	}
	hpfar := HPFARUnknown
	if x.HPFARValid {
		hpfar = uint64(x.HPFAR)
	}
	return e.injectVEL2(cpu.DataAbort, x.ESR, x.FAR, hpfar, spsr)
}

// injectVEL2 makes the guest hypervisor take an exception of kind k
// (syndrome esr, FAR far for an abort, HPFAR_EL2 hpfar) from its own
// virtual EL2 (its PSTATE spsr, as the hypervisor's SPSR_EL2 recorded it),
// as the hardware takes an exception from EL2 to EL2
// (AArch64.TakeException): ESR_EL2, FAR_EL2, ELR_EL2 the instruction and
// SPSR_EL2 its PSTATE reporting EL2 (I_ZJRNN) — all four the hypervisor's
// guest EL1 registers, which hold them for a VHE guest hypervisor —,
// HPFAR_EL2, and the vector VBAR_EL2 + 0x200 (from SP_EL2) or + 0x000
// (SP_EL0) with D, A, I, F masked. The guest hypervisor's model has no
// code for it: the instruction ends with a *GuestException (the
// hypervisor's Exception returns it; L0 reports it as an exception of its
// guest).
func (e *EL2VCPU) injectVEL2(k cpu.ExceptionKind, esr sysreg.ESR, far, hpfar, spsr uint64) error {
	r := &regs{c: e.c}
	pc := r.get(cpu.ELR_EL2)
	vbar := r.get(e.guestEL1(cpu.VBAR_EL1))
	r.set(e.guestEL1(cpu.ELR_EL1), pc)
	r.set(e.guestEL1(cpu.SPSR_EL1), spsr&^(3<<2)|2<<2)
	r.set(e.guestEL1(cpu.ESR_EL1), uint64(esr))
	if k != cpu.Undefined {
		r.set(e.guestEL1(cpu.FAR_EL1), far)
	}
	off := uint64(0x200)
	if spsr&1 == 0 {
		off = 0 // from SP_EL0 (EL2t)
	}
	r.set(cpu.ELR_EL2, vbar&^0x7ff+off)
	r.set(cpu.SPSR_EL2, spsr&spsrPAN|0b0101|0xf<<6) // EL2h as the hypervisor runs it: EL1h
	if r.err != nil {
		return r.err
	}
	e.hpfar = hpfar
	if err := e.p.SetStage2(e.p.VTTBR(), e.p.VTCR()); err != nil {
		return err
	}
	if err := e.c.ERET(); err != nil {
		return err
	}
	return &GuestException{Exception: cpu.Exception{Kind: k, FromEL: 1, TargetEL: 1, ESR: esr, FAR: mem.VA(far)}}
}
