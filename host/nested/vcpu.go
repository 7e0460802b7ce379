package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// HCR_EL2 bits L0 sets while the guest hypervisor runs (vel2Traps).
const (
	hcrTID3 sysreg.HCR = 1 << 18 // ID group 3 reads trap: sanitized ID registers
	hcrTRVM sysreg.HCR = 1 << 30
	hcrTACR sysreg.HCR = 1 << 21 // ACTLR_EL1 accesses at EL1 trap
)

// VNCR page offsets of the guest hypervisor's own EL2 registers that have
// one (the rest live in the PE's EL1 registers while it runs).
const (
	offHCR   = 0x078
	offVTTBR = 0x020
	offVTCR  = 0x040
	offVNCR  = 0x0b0
	offTCR1  = 0x120 // the guest's TCR_EL1
)

// el1Regs are the EL1 registers a world switch saves and restores, each
// with its VNCR offset (where L2's copy lives while the guest hypervisor
// runs). PAR_EL1 has no VNCR offset and no EL12 alias: it is one register
// for the guest hypervisor and its guests, which a world switch leaves
// alone (a guest hypervisor saves its guest's PAR_EL1 itself).
var el1Regs = [...]cpu.SysReg{cpu.SCTLR_EL1, cpu.TCR_EL1, cpu.TTBR0_EL1, cpu.TTBR1_EL1, cpu.MAIR_EL1,
	cpu.VBAR_EL1, cpu.ELR_EL1, cpu.SPSR_EL1, cpu.ESR_EL1, cpu.FAR_EL1}

// ownEL2 maps the guest hypervisor's own translation-regime registers to
// the EL1 registers that hold them while it runs (on the EL1&0 regime).
var ownEL2 = map[cpu.SysReg]cpu.SysReg{
	cpu.SCTLR_EL2: cpu.SCTLR_EL1, cpu.TCR_EL2: cpu.TCR_EL1, cpu.TTBR0_EL2: cpu.TTBR0_EL1,
	cpu.TTBR1_EL2: cpu.TTBR1_EL1, cpu.MAIR_EL2: cpu.MAIR_EL1, cpu.VBAR_EL2: cpu.VBAR_EL1,
	cpu.ELR_EL2: cpu.ELR_EL1, cpu.SPSR_EL2: cpu.SPSR_EL1, cpu.ESR_EL2: cpu.ESR_EL1, cpu.FAR_EL2: cpu.FAR_EL1,
}

type el1Context struct {
	r  [len(el1Regs)]uint64
	x  [31]uint64
	sp uint64
}

// HPFARUnknown is what the guest hypervisor finds in HPFAR_EL2 after a
// fault for which the architecture leaves it UNKNOWN (a stage-2 Permission
// fault not on a stage-1 walk): the PE's deterministic poison, so that a
// guest hypervisor that trusts it fails here as it might on hardware.
const HPFARUnknown = uint64(cpu.DefaultUnknownHPFAR)

// maxRetries bounds the exits one instruction may take.
const maxRetries = 1 << 16

// VCPU is a vCPU of a VM that runs a guest hypervisor: a kvm.VCPU whose PE
// runs either the guest hypervisor at virtual EL2 or one of its VMs (L2)
// on a shadow stage 2. It implements EL2 for the guest hypervisor's code.
// It is not safe for concurrent use.
type VCPU struct {
	vm  *VM
	idx int // in vm.vcpus
	k   *kvm.VCPU
	pe  *cpu.PE
	hyp GuestHypervisor

	inL2   bool
	shadow *shadowMMU
	// other holds the world not on the PE: the guest hypervisor's EL1
	// registers and GPRs while L2 runs, L2's GPRs while the
	// guest hypervisor runs (L2's other EL1 registers are in the VNCR page).
	other el1Context
	// own0 holds the guest hypervisor's own regime registers as written
	// with E2H=0 (the EL1 registers get converted values).
	own0  map[cpu.SysReg]uint64
	hpfar uint64 // virtual HPFAR_EL2

	vncrPA   mem.PA      // FEAT_NV2: the VNCR page, a host frame
	vncrSoft [512]uint64 // FEAT_NV: the same layout, kept by L0

	walker vmsa.Walker   // guest stage-2 walks over L1 memory
	inst   shadowInstall // the installer of the shadow fault in progress
	atPath ATPath        // how AT from vEL2 is emulated (at.go)
	stats  Stats
	mmio   bool // an ExitMMIO awaits CompleteMMIO
	fwd    forwardState
	// observer and event: see observe.go.
	observer Observer
	event    ShadowFault
	// onPE: the guest hypervisor is code the PE executes (onpe.go);
	// spsr2 is its SPSR_EL2 as last written by software (spsrEL2).
	onPE  bool
	spsr2 uint64
	// ids: the PE's ID registers outside its register model (onpe_id.go).
	ids func(op0, op1, crn, crm, op2 uint8) (uint64, bool)
	// el2Kept: its EL2 registers without a VNCR offset (onpe_el2regs.go).
	el2Kept [numKeptEL2]uint64
	// setKept writes the PE's kept registers (SetKeptWriter); l0Kept
	// holds L0's own values of keptEL2Regs.
	setKept func(op0, op1, crn, crm, op2 uint8, x uint64) bool
	l0Kept  [len(keptEL2Regs)]uint64
}

// NewVCPU makes k (a vCPU of the VM) run the guest hypervisor: the PE at
// virtual EL2 (real EL1, EL2h, interrupts masked) with the guest
// hypervisor's MMU off, its virtual HCR_EL2 = RW (+E2H), and hyp as the
// code run on exceptions taken to it (nil: such exits return ExitVEL2).
// Load the vCPU on a CPU (LoadCPU) before running it.
func (vm *VM) NewVCPU(k *kvm.VCPU, hyp GuestHypervisor) (*VCPU, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if len(vm.vcpus) >= vm.cfg.VCPUs {
		return nil, fmt.Errorf("nested: the VM was configured for %d vCPUs", vm.cfg.VCPUs)
	}
	v := &VCPU{vm: vm, idx: len(vm.vcpus), k: k, pe: k.PE(), hyp: hyp, own0: map[cpu.SysReg]uint64{}}
	v.walker.Mem = guestMemory{vm.k, vm}
	if vm.cfg.Mode == ModeNV2 {
		pa, err := s2pt.ArenaTables{Arena: vm.k.Host().Arena()}.AllocTable(vm.k.Host().PageSize())
		if err != nil {
			return nil, fmt.Errorf("nested: VNCR page: %w", err)
		}
		v.vncrPA = pa
	}
	hcr := sysreg.HCR_RW
	if vm.cfg.E2H {
		hcr |= sysreg.HCR_E2H
	}
	v.vncrSet(offHCR, uint64(hcr))
	pe := v.pe
	for _, r := range el1Regs {
		pe.Set(r, 0)
	}
	pe.EL, pe.SP, pe.DAIF, pe.PAN, pe.PC = 1, true, 0xf, false, 0
	v.vel2Controls()
	vm.vcpus = append(vm.vcpus, v)
	return v, nil
}

func (v *VCPU) close() error {
	if err := v.fwd.vncr.close(v); err != nil {
		return err
	}
	if v.vncrPA != 0 {
		err := s2pt.ArenaTables{Arena: v.vm.k.Host().Arena()}.FreeTable(v.vncrPA, v.vm.k.Host().PageSize())
		v.vncrPA = 0
		return err
	}
	return nil
}

// KVM returns the underlying vCPU; PE its processing element.
func (v *VCPU) KVM() *kvm.VCPU { return v.k }

// PE returns the modelled PE.
func (v *VCPU) PE() *cpu.PE { return v.pe }

// InL2 reports whether the vCPU runs a nested guest (else it is at vEL2).
func (v *VCPU) InL2() bool { return v.inL2 }

// Stats returns the vCPU's counters.
func (v *VCPU) Stats() Stats { return v.stats }

// LoadCPU puts the vCPU on physical CPU c (kvm.VCPU.Load) and gives the
// stage 2 in use its VMID there.
func (v *VCPU) LoadCPU(c int) error {
	if err := v.k.Load(c); err != nil {
		return err
	}
	if v.inL2 {
		return v.shadowVMID()
	}
	v.vel2Controls()
	return v.k.EnterGuest()
}

// PutCPU takes the vCPU off its CPU.
func (v *VCPU) PutCPU() error { return v.k.Put() }

// vncrGet and vncrSet access the VNCR page layout: the page in host memory
// with FEAT_NV2 (where the hardware puts what the guest hypervisor writes),
// L0's copy with FEAT_NV (where L0's trap emulation puts it).
func (v *VCPU) vncrGet(off uint16) uint64 {
	if v.vncrPA != 0 {
		x, _ := v.vm.k.Host().Arena().Read64(v.vncrPA + mem.PA(off))
		return x
	}
	return v.vncrSoft[off/8]
}

func (v *VCPU) vncrSet(off uint16, x uint64) {
	if v.vncrPA != 0 {
		v.vm.k.Host().Arena().Write64(v.vncrPA+mem.PA(off), x)
		return
	}
	v.vncrSoft[off/8] = x
}

// vHCR is the guest hypervisor's HCR_EL2 (E2H as configured: it is fixed).
func (v *VCPU) vHCR() sysreg.HCR {
	h := sysreg.HCR(v.vncrGet(offHCR)) &^ sysreg.HCR_E2H
	if v.vm.cfg.E2H {
		h |= sysreg.HCR_E2H
	}
	return h
}

// ownReg returns the guest hypervisor's own EL2 register r (one of ownEL2)
// wherever it lives now.
func (v *VCPU) ownReg(r cpu.SysReg) uint64 {
	if x, ok := v.own0[r]; ok && !v.vm.cfg.E2H {
		return x
	}
	e1 := ownEL2[r]
	if !v.inL2 {
		return v.pe.Get(e1)
	}
	for i, rr := range el1Regs {
		if rr == e1 {
			return v.other.r[i]
		}
	}
	return 0
}

// guestRegs are the guest hypervisor's registers the guest stage-2 walk
// and the shadow key read.
func (v *VCPU) guestRegs() guestRegs {
	return guestRegs{vtcr: sysreg.VTCR(v.vncrGet(offVTCR)), vttbr: sysreg.VTTBR(v.vncrGet(offVTTBR)),
		hcr: v.vHCR(), sctlr: sysreg.SCTLR(v.ownReg(cpu.SCTLR_EL2)), id: v.vm.ids}
}

// vel2Controls sets the PE's HCR_EL2, VTTBR_EL2, VTCR_EL2 and VNCR_EL2 for
// running the guest hypervisor: L0's stage 2 for its VM and vel2Traps.
func (v *VCPU) vel2Controls() {
	pe := v.pe
	pe.Regs.HCR_EL2 = kvm.GuestHCR | vel2Traps(v.vm.cfg.Mode, v.vm.cfg.E2H)
	v.vm.k.Stage2().ApplyRegs(&pe.Regs)
	pe.VNCR = uint64(v.vncrPA)
	pe.RegsChanged()
}

// shadowVMID gives the shadow in use a VMID on this CPU (after a rollover,
// a new one) and writes VTTBR_EL2. When another nested vCPU ran on the
// shadow on this CPU last, the CPU's entries of its VMID are flushed
// first, as KVM does per stage-2 MMU on vcpu_load: the vCPUs' stage-1
// contexts may give the same VA and ASID different translations, and on
// hardware each would have a TLB of its own.
func (v *VCPU) shadowVMID() error {
	h, c, sh := v.vm.k.Host(), v.k.CPU(), v.shadow
	id, err := h.LoadVMID(c, &sh.x.vmid)
	if err != nil {
		return fmt.Errorf("nested: %w", err)
	}
	if last := sh.x.lastRan[c]; last != v.k.ID() {
		if last >= 0 {
			h.LocalTLBIVMID(c, id)
		}
		sh.x.lastRan[c] = v.k.ID()
	}
	if t := v.shadow.s2.VTTBR().WithVMID(id); v.pe.Regs.VTTBR_EL2 != t {
		v.pe.Regs.VTTBR_EL2 = t
		v.pe.RegsChanged()
	}
	return nil
}

// eret returns from L0's EL2 to the world on the PE.
func (v *VCPU) eret() error {
	if x := v.pe.ERET(); x.Taken() {
		return fmt.Errorf("nested: ERET from EL2 took %v", x)
	}
	if v.inL2 {
		return v.shadowVMID()
	}
	return v.k.EnterGuest()
}

// skip advances the guest's PC past the instruction L0 emulated.
func (v *VCPU) skip() { v.pe.ELR[2] += 4 }

// toL2 is the world switch on the guest hypervisor's ERET to EL1 or EL0:
// its EL1-held registers and GPRs are saved, L2's EL1 registers loaded
// from the VNCR page layout, the shadow for its virtual HCR_EL2, VTTBR_EL2
// and VTCR_EL2 taken, and the PE returns to ELR_EL2 with SPSR_EL2 (both
// held in the EL1 registers while the guest hypervisor runs). The PE is
// at EL2 handling the ERET trap.
func (v *VCPU) toL2() error {
	pe := v.pe
	target, spsr := pe.ELR[1], v.spsrEL2()
	ctx := v.k.Ctx()
	var saved el1Context
	for i, r := range el1Regs {
		saved.r[i] = pe.Get(r)
	}
	saved.x, saved.sp = ctx.X, ctx.SP
	g := v.guestRegs()
	if err := v.vncrEnter(v.l2HCR(g.hcr)); err != nil {
		return err
	}
	sh, err := v.vm.acquire(&g)
	if err != nil {
		return err
	}
	for _, r := range el1Regs {
		off, _ := r.VNCROffset()
		pe.Set(r, v.vncrGet(off))
	}
	v.gprsToL2(ctx)
	v.other = saved
	pe.Regs.HCR_EL2 = v.l2HCR(g.hcr)
	pe.Regs.VTCR_EL2 = sh.s2.VTCR()
	pe.Regs.VTTBR_EL2 = sh.s2.VTTBR()
	pe.RegsChanged()
	v.shadow, v.inL2 = sh, true
	v.stats.L2Entries++
	pe.ELR[2], pe.SPSR[2] = target, spsr
	return v.eret()
}

// toVEL2 is the world switch for an exception taken to virtual EL2 from L2
// (the PE is at EL2 with L2's state in ELR_EL2 and SPSR_EL2): L2's EL1
// registers go to the VNCR page layout, the guest hypervisor's come back,
// ELR_EL2, SPSR_EL2, ESR_EL2 and FAR_EL2 (the EL1 registers) and
// HPFAR_EL2 describe the exception, and the PE enters the guest
// hypervisor's vector: VBAR_EL2 + off, at vEL2 with SP_EL2 and D, A, I, F
// masked (AArch64.TakeException).
func (v *VCPU) toVEL2(esr sysreg.ESR, far mem.VA, hpfar uint64, off mem.VA, setSyndrome bool) error {
	pe := v.pe
	l2pc, l2spsr := pe.ELR[2], pe.SPSR[2]
	ctx := v.k.Ctx()
	if err := v.vncrExit(); err != nil {
		return err
	}
	var l2 el1Context
	for _, r := range el1Regs {
		off, _ := r.VNCROffset()
		v.vncrSet(off, pe.Get(r))
	}
	l2.x, l2.sp = ctx.X, ctx.SP
	for i, r := range el1Regs {
		pe.Set(r, v.other.r[i])
	}
	v.gprsToVEL2(ctx)
	v.other = l2
	pe.ELR[1] = l2pc
	v.setSPSREL2(l2spsr)
	if setSyndrome {
		pe.ESR[1], pe.FAR[1], v.hpfar = esr, uint64(far), hpfar
	}
	if v.shadow != nil {
		v.vm.release(v.shadow)
		v.shadow = nil
	}
	v.inL2 = false
	v.vel2Controls()
	v.stats.VEL2Entries++
	pe.ELR[2] = mem.VA(v.ownReg(cpu.VBAR_EL2))&^0x7ff + off
	pe.SPSR[2] = 0b0101 | 0xf<<6 // EL2h as the PE runs it: EL1h, DAIF masked
	if v.ownReg(cpu.SCTLR_EL2)>>62&1 == 0 {
		// FEAT_NMI: PSTATE.ALLINT = NOT SCTLR_EL2.SPINTMASK
		// (AArch64.TakeException); SPSR bit 13, RES0 without it.
		pe.SPSR[2] |= 1 << 13
	}
	return v.eret()
}

// InterruptToVEL2 takes an IRQ to the guest hypervisor while L2 runs (its
// vector's IRQ entry, VBAR_EL2 + 0x480): the vCPU is at vEL2 afterwards,
// for the guest hypervisor to run another VM or change this one's
// mappings. The guest hypervisor's code is not called.
func (v *VCPU) InterruptToVEL2() error {
	if !v.inL2 {
		return ErrNotL2
	}
	e := cpu.Exception{Kind: cpu.IRQ, TargetEL: 2}
	_, err := v.k.Exec(func() cpu.Exception {
		v.pe.TakeException(&e)
		return e
	}, false)
	if err != nil {
		return err
	}
	return v.toVEL2(0, 0, 0, 0x480, false)
}

// exec runs one instruction of the guest hypervisor at vEL2: exits to L0
// are handled (trap emulation, faults on L0's stage 2) until it completes.
func (v *VCPU) exec(f func() cpu.Exception) error {
	if v.inL2 {
		return ErrNotVEL2
	}
	for n := 0; n < maxRetries; n++ {
		e, err := v.k.Exec(f, false)
		if err != nil {
			return err
		}
		if !e.Taken() {
			v.pe.PC += 4
			return nil
		}
		if e.TargetEL != 2 {
			return &GuestException{Exception: e}
		}
		done, err := v.vel2Exit(e)
		if err != nil || done {
			return err
		}
	}
	return fmt.Errorf("nested: the guest hypervisor's instruction at %#x makes no progress", uint64(v.pe.PC))
}

// The EL2 interface. Each instruction names X0 as its transfer register.

// MRS implements EL2.
func (v *VCPU) MRS(r cpu.SysReg) (uint64, error) {
	x := &v.k.Ctx().X
	err := v.exec(func() cpu.Exception {
		val, e := v.pe.MRS(r, 0)
		if !e.Taken() {
			x[0] = val
		}
		return e
	})
	return x[0], err
}

// MSR implements EL2.
func (v *VCPU) MSR(r cpu.SysReg, val uint64) error {
	x := &v.k.Ctx().X
	x[0] = val
	return v.exec(func() cpu.Exception { return v.pe.MSR(r, 0, x[0]) })
}

// Load implements EL2.
func (v *VCPU) Load(va mem.VA, size int) (uint64, error) {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, fmt.Errorf("nested: access size %d is not 1, 2, 4 or 8", size)
	}
	x := &v.k.Ctx().X
	err := v.exec(func() cpu.Exception {
		val, e := v.pe.Read(va, size, cpu.Insn{Valid: true, SixtyFour: true})
		if !e.Taken() {
			x[0] = val
		}
		return e
	})
	return x[0], err
}

// Store implements EL2.
func (v *VCPU) Store(va mem.VA, size int, val uint64) error {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return fmt.Errorf("nested: access size %d is not 1, 2, 4 or 8", size)
	}
	x := &v.k.Ctx().X
	x[0] = val
	return v.exec(func() cpu.Exception { return v.pe.Write(va, size, x[0], cpu.Insn{Valid: true, SixtyFour: true}) })
}

// CompareAndSwap64 implements EL2.
func (v *VCPU) CompareAndSwap64(va mem.VA, old, new uint64) (bool, error) {
	var swapped bool
	err := v.exec(func() cpu.Exception {
		s, e := v.pe.CompareAndSwap64(va, old, new, cpu.Insn{})
		swapped = s
		return e
	})
	return swapped, err
}

// TLBI implements EL2.
func (v *VCPU) TLBI(op tlb.Op, xt uint64) error {
	x := &v.k.Ctx().X
	x[0] = xt
	return v.exec(func() cpu.Exception { return v.pe.TLBI(op, 0, x[0]) })
}

// ERET implements EL2.
func (v *VCPU) ERET() error {
	return v.exec(func() cpu.Exception { return v.pe.ERET() })
}

var _ EL2 = (*VCPU)(nil)

// vel2Exit handles an exit from the guest hypervisor to L0 (the PE at
// EL2). done reports that the instruction completed (emulated, or the
// world switched); otherwise it is executed again.
func (v *VCPU) vel2Exit(e cpu.Exception) (done bool, err error) {
	iss := uint64(e.ESR.ISS())
	switch e.Kind {
	case cpu.SysTrap:
		op0, op2, op1 := uint8(iss>>20&3), uint8(iss>>17&7), uint8(iss>>14&7)
		crn, rt, crm, read := uint8(iss>>10&0xf), uint8(iss>>5&0x1f), uint8(iss>>1&0xf), iss&1 == 1
		switch {
		case op0 == 3:
			v.stats.SysRegTraps++
			r, ok := cpu.SysRegByEncoding(op0, op1, crn, crm, op2)
			if !ok {
				return false, fmt.Errorf("%w: MSR/MRS S%d_%d_C%d_C%d_%d", ErrUnhandled, op0, op1, crn, crm, op2)
			}
			if err := v.emulateSysReg(r, rt, read); err != nil {
				return false, err
			}
		case op0 == 1 && crn == 8:
			v.stats.TLBITraps++
			op, ok := tlb.OpFromSys(op0, op1, crn, crm, op2)
			if !ok {
				return false, fmt.Errorf("%w: TLBI encoding op1=%d CRm=%d op2=%d", ErrUnhandled, op1, crm, op2)
			}
			if err := v.emulateTLBI(op, v.xreg(rt)); err != nil {
				return false, err
			}
		case op0 == 1 && crn == 7:
			v.stats.ATTraps++
			op, ok := atOp(op1, crm, op2)
			if !ok {
				return false, fmt.Errorf("%w: AT encoding op1=%d CRm=%d op2=%d", ErrUnhandled, op1, crm, op2)
			}
			return true, v.emulateAT(op, rt)
		default:
			return false, fmt.Errorf("%w: system instruction trap ISS %#x", ErrUnhandled, iss)
		}
		v.skip()
		return true, v.eret()
	case cpu.ERETTrap:
		v.stats.ERETTraps++
		return true, v.emulateERET()
	case cpu.DataAbort, cpu.InstructionAbort:
		if !e.Fault.Stage2 || e.External {
			return false, fmt.Errorf("%w: %v", ErrUnhandled, e)
		}
		v.stats.CanonicalFaults++
		exit, retry, err := v.k.HandleStage2Abort(e)
		if err != nil {
			return false, err
		}
		if exit.Reason == kvm.ExitException && v.onPE {
			return true, v.externalAbortVEL2(e)
		}
		if exit.Reason != kvm.ExitNone {
			return false, fmt.Errorf("%w: the guest hypervisor's access to %#x is %v", ErrUnhandled, uint64(e.FAR), exit.Reason)
		}
		return !retry, v.eret()
	}
	return false, fmt.Errorf("%w: %v", ErrUnhandled, e)
}

// xreg reads the current world's X<rt> (31 is XZR).
func (v *VCPU) xreg(rt uint8) uint64 {
	if rt >= 31 {
		return 0
	}
	return v.k.Ctx().X[rt]
}

func (v *VCPU) setXreg(rt uint8, x uint64) {
	if rt < 31 {
		v.k.Ctx().X[rt] = x
	}
}

// emulateERET is the guest hypervisor's trapped ERET: within vEL2 when
// SPSR_EL2.M names EL2, else into L2.
func (v *VCPU) emulateERET() error {
	pe := v.pe
	spsr := v.spsrEL2()
	switch spsr >> 2 & 3 {
	case 2:
		pe.ELR[2] = pe.ELR[1]
		pe.SPSR[2] = spsr&^(3<<2) | 1<<2 // vEL2 runs at EL1
		return v.eret()
	case 3:
		return fmt.Errorf("%w: ERET to EL3 (SPSR_EL2 %#x)", ErrUnhandled, spsr)
	}
	if h := v.vHCR(); h.TGE() {
		// No guest below a guest hypervisor with TGE: a return to EL1 is
		// illegal, one to EL0 is to its own EL0 (tgeReturn), modelled for
		// its EL2&0 regime (E2H=1), which runs on the EL1 registers as
		// its EL2 does.
		if spsr>>2&3 == 0 && !h.E2H() {
			return fmt.Errorf("%w: ERET to EL0 with HCR_EL2.{E2H,TGE}={0,1} (the guest hypervisor's own EL0 in the EL1&0 regime)", ErrUnhandled)
		}
		pe.ELR[2], pe.SPSR[2] = pe.ELR[1], tgeReturn(spsr, pe.SPSR[2])
		return v.eret()
	}
	return v.toL2()
}

// emulateSysReg is a trapped MSR or MRS of the guest hypervisor.
func (v *VCPU) emulateSysReg(r cpu.SysReg, rt uint8, read bool) error {
	pe := v.pe
	acc := func(get func() uint64, set func(uint64)) {
		if read {
			v.setXreg(rt, get())
		} else {
			set(v.xreg(rt))
		}
	}
	off, hasOff := r.VNCROffset()
	switch r {
	case cpu.HCR_EL2, cpu.VTTBR_EL2, cpu.VTCR_EL2, cpu.VNCR_EL2:
		acc(func() uint64 {
			if r == cpu.HCR_EL2 {
				return uint64(v.vHCR())
			}
			return v.vncrGet(off)
		}, func(x uint64) { v.vncrSet(off, x) })
	case cpu.HPFAR_EL2:
		acc(func() uint64 { return v.hpfar }, func(x uint64) { v.hpfar = x })
	case cpu.SPSR_EL2:
		acc(v.spsrEL2, v.setSPSREL2)
	case cpu.ELR_EL2, cpu.ESR_EL2, cpu.FAR_EL2:
		e1 := ownEL2[r]
		acc(func() uint64 { return pe.Get(e1) }, func(x uint64) { pe.Set(e1, x) })
	case cpu.SCTLR_EL2, cpu.TCR_EL2, cpu.TTBR0_EL2, cpu.TTBR1_EL2, cpu.MAIR_EL2, cpu.VBAR_EL2:
		acc(func() uint64 { return v.ownReg(r) }, func(x uint64) { v.setOwnReg(r, x) })
	case cpu.ID_AA64MMFR0_EL1, cpu.ID_AA64MMFR1_EL1, cpu.ID_AA64MMFR2_EL1:
		if !read {
			return fmt.Errorf("%w: write to %v", ErrUnhandled, r)
		}
		ids := map[cpu.SysReg]uint64{cpu.ID_AA64MMFR0_EL1: uint64(v.vm.ids.MMFR0),
			cpu.ID_AA64MMFR1_EL1: uint64(v.vm.ids.MMFR1), cpu.ID_AA64MMFR2_EL1: uint64(v.vm.ids.MMFR2)}
		v.setXreg(rt, ids[r])
	default:
		if !hasOff {
			return fmt.Errorf("%w: trapped access to %v", ErrUnhandled, r)
		}
		// The guest's EL1 registers: an *_EL12 alias, or (E2H=0) an
		// *_EL1 name trapped by NV1 or TVM/TRVM.
		acc(func() uint64 { return v.vncrGet(off) }, func(x uint64) { v.vncrSet(off, x) })
	}
	pe.RegsChanged()
	return nil
}

// setOwnReg writes the guest hypervisor's own regime register r: with
// E2H=1 the EL1 register holds it as is; with E2H=0 L0 keeps the value
// written and gives the EL1 register its EL1&0 equivalent (the PE runs
// the regime with HCR_EL2.NV1, which reads the descriptors in the EL2
// layout).
func (v *VCPU) setOwnReg(r cpu.SysReg, x uint64) {
	e1 := ownEL2[r]
	if !v.vm.cfg.E2H {
		v.own0[r] = x
		switch r {
		case cpu.TCR_EL2:
			x = tcr2ToTCR1(x)
		case cpu.SCTLR_EL2:
			x = x&sctlrEL2Common | 1<<23 // SPAN: entry to vEL2 leaves PAN alone
		}
	}
	v.pe.Set(e1, x)
}

// sctlrEL2Common are the SCTLR_EL2 (E2H=0) fields with the same meaning
// at the same place in SCTLR_EL1: M, A, C, SA, I, WXN, EE, and FEAT_NMI's
// NMI and SPINTMASK (PSTATE.ALLINT on exception entry).
const sctlrEL2Common = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<12 | 1<<19 | 1<<25 | 1<<61 | 1<<62

// tcr2ToTCR1 gives TCR_EL2 (E2H=0 layout) as TCR_EL1: T0SZ, IRGN0, ORGN0,
// SH0 and TG0 in place, PS to IPS, TBI to TBI0, HA, HD, HPD to HPD0, TBID
// to TBID0, DS; TTBR1 walks disabled (EPD1).
func tcr2ToTCR1(t uint64) uint64 {
	b := func(from, to uint) uint64 { return (t >> from & 1) << to }
	v := t & 0xffff
	v |= (t >> 16 & 7) << 32
	v |= b(20, 37) | b(21, 39) | b(22, 40) | b(24, 41) | b(29, 51) | b(32, 59)
	return v | 1<<23
}

// SetGuestHypervisor sets the code run on exceptions taken to vEL2.
func (v *VCPU) SetGuestHypervisor(h GuestHypervisor) { v.hyp = h }
