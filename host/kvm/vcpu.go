package kvm

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Context is the guest's general-purpose register file: the part of a
// vCPU that cpu.PE does not model. The PC, PSTATE and the exception
// registers (ELR_EL1, SPSR_EL1, VBAR_EL1) are the PE's.
type Context struct {
	X  [31]uint64
	SP uint64
}

// regs is the mmio.Registers view of a vCPU (a pointer-shaped value, so
// converting it to the interface does not allocate).
type regs struct{ v *VCPU }

func (r regs) X(n int) uint64       { return r.v.ctx.X[n] }
func (r regs) SetX(n int, v uint64) { r.v.ctx.X[n] = v }
func (r regs) SP() uint64           { return r.v.ctx.SP }
func (r regs) SetSP(v uint64)       { r.v.ctx.SP = v }
func (r regs) PC() uint64           { return uint64(*r.v.guestPC()) }

// guestPC is the guest's PC: ELR_EL2 while the hypervisor handles an
// exception at EL2 (exception entry saved it there), the PE's PC otherwise.
func (v *VCPU) guestPC() *mem.VA {
	if v.pe.EL == 2 {
		return &v.pe.ELR[2]
	}
	return &v.pe.PC
}

// reg reads Xn with 31 as the zero register.
func (c *Context) reg(n uint8) uint64 {
	if n >= 31 {
		return 0
	}
	return c.X[n]
}

// VCPU is a virtual CPU: a cpu.PE that runs the guest at EL1 with
// HCR_EL2.VM=1 and the VM's VTTBR_EL2, loaded on one physical CPU at a
// time. A VCPU is not safe for concurrent use: run each on one goroutine.
type VCPU struct {
	vm     *VM
	id     int
	pe     *cpu.PE
	ctx    Context
	cache  *s2pt.Cache
	cpu    *pcpu
	cpuIdx int
	vmidv  uint16
	// pending is the MMIO access of the last ExitMMIO, until CompleteMMIO.
	pending    mmio.Access
	hasPending bool
	// refetch: an MMIO decode could not read the instruction; fetch it at
	// EL1 before executing it again.
	refetch bool
	// fetchIPA, set during MMIOAccessNested, translates a nested guest's
	// IPA to the VM's for the instruction read.
	fetchIPA func(mem.IPA) (mem.IPA, bool)
	// fetch is fetchInsn as the MMIO decoder's FetchFunc.
	fetch mmio.FetchFunc
	// exported is FaultFor's installer while it runs.
	exported exported
	// beforeAT, when set (tests), runs just before the AT S1E1R that
	// resolves the IPA of a permission fault: the guest's stage 1 may
	// change there.
	beforeAT func()
}

// HCR_EL2 bits the hypervisor sets for a guest besides VM: RW (EL1 is
// AArch64), FB (force broadcast: the guest's TLBIs act on every CPU,
// since its vCPUs move between CPUs) and TSC (the guest's SMC traps: the
// hypervisor, not the firmware, answers PSCI, as KVM's HCR_GUEST_FLAGS).
const (
	hcrRW  sysreg.HCR = 1 << 31
	hcrFB  sysreg.HCR = 1 << 9
	hcrTSC sysreg.HCR = 1 << 19
	// GuestHCR is HCR_EL2 while a guest runs.
	GuestHCR = sysreg.HCR_VM | hcrRW | hcrFB | hcrTSC
)

// NewVCPU creates vCPU id of the VM, at EL1 with the guest's stage 1 off
// (SCTLR_EL1 = 0); set the guest's translation registers with MSR (or
// PE().Regs and PE().RegsChanged in tests).
func (vm *VM) NewVCPU(id int) (*VCPU, error) {
	if vm.destroyed.Load() {
		return nil, ErrDestroyed
	}
	if id < 0 {
		return nil, fmt.Errorf("kvm: vCPU number %d is negative", id)
	}
	vm.opMu.Lock()
	defer vm.opMu.Unlock()
	for _, v := range vm.vcpus {
		if v.id == id {
			return nil, fmt.Errorf("kvm: vCPU %d already exists", id)
		}
	}
	regs := vm.host.id
	vm.s2.ApplyRegs(&regs)
	regs.HCR_EL2 = GuestHCR
	pe := cpu.New(0, regs, 1, vm.host.arena.Checked(), nil)
	pe.SP = true // EL1h
	v := &VCPU{vm: vm, id: id, pe: pe, cache: vm.s2.NewCache(), cpuIdx: -1}
	vm.vcpus = append(vm.vcpus, v)
	return v, nil
}

// ID returns the vCPU's number.
func (v *VCPU) ID() int { return v.id }

// PE returns the modelled PE (its registers, ESR/FAR, statistics). Change
// it only while the vCPU is not running an access.
func (v *VCPU) PE() *cpu.PE { return v.pe }

// Ctx returns the guest's register context.
func (v *VCPU) Ctx() *Context { return &v.ctx }

// CPU returns the physical CPU the vCPU is loaded on, or -1.
func (v *VCPU) CPU() int { return v.cpuIdx }

// Load puts the vCPU on physical CPU cpu (vcpu_load): the CPU's TLB becomes
// the PE's, the VMID is taken from the allocator (allocating one after a
// rollover) and written to VTTBR_EL2. When another vCPU of the same VM ran
// on that CPU last, the CPU's entries for the VMID are flushed first, since
// the vCPUs' stage-1 contexts may use the same ASIDs.
func (v *VCPU) Load(cpuIdx int) error {
	vm := v.vm
	if vm.destroyed.Load() {
		return ErrDestroyed
	}
	if v.cpu != nil {
		return fmt.Errorf("kvm: vCPU %d is already loaded on CPU %d", v.id, v.cpuIdx)
	}
	if cpuIdx < 0 || cpuIdx >= len(vm.host.cpus) {
		return fmt.Errorf("kvm: CPU %d does not exist (the host has %d)", cpuIdx, len(vm.host.cpus))
	}
	c := &vm.host.cpus[cpuIdx]
	if !c.cur.CompareAndSwap(nil, v) {
		return fmt.Errorf("kvm: CPU %d already runs a vCPU", cpuIdx)
	}
	v.cpu, v.cpuIdx = c, cpuIdx
	if err := v.updateVMID(); err != nil {
		c.cur.Store(nil)
		v.cpu, v.cpuIdx = nil, -1
		return err
	}
	if last := vm.lastRan[cpuIdx]; last != v.id {
		if last >= 0 {
			vm.host.localVMID(cpuIdx, v.vmidv)
		}
		vm.lastRan[cpuIdx] = v.id
	}
	c.mu.Lock()
	v.pe.ID, v.pe.TLB = cpuIdx, c.tlb
	if c.tlb.Config().WalkCache > 0 {
		v.pe.Walker.S2Tables = c.tlb // the CPU's walk cache serves its stage-2 walks
	}
	c.mu.Unlock()
	return nil
}

// Put takes the vCPU off its CPU (vcpu_put).
func (v *VCPU) Put() error {
	if v.cpu == nil {
		return fmt.Errorf("kvm: vCPU %d is not loaded", v.id)
	}
	err := v.vm.host.vmids.Put(v.cpuIdx)
	c := v.cpu
	c.mu.Lock()
	v.pe.TLB, v.pe.Walker.S2Tables = nil, nil
	c.mu.Unlock()
	c.cur.Store(nil)
	v.cpu, v.cpuIdx = nil, -1
	return err
}

// updateVMID is kvm_arm_vmid_update on guest entry: keep or get a VMID
// and program it into VTTBR_EL2.VMID.
func (v *VCPU) updateVMID() error {
	id, err := v.vm.host.vmids.Load(v.cpuIdx, &v.vm.vmid)
	if err != nil {
		return fmt.Errorf("kvm: %w", err)
	}
	if id != v.vmidv || v.pe.Regs.VTTBR_EL2.VMID(true) != id {
		v.vmidv = id
		v.pe.Regs.VTTBR_EL2 = v.pe.Regs.VTTBR_EL2.WithVMID(id)
		v.pe.RegsChanged()
	}
	return nil
}

// ExitReason says why an access returned before completing.
type ExitReason uint8

// Exit reasons.
const (
	// ExitNone: the access completed (PC advanced).
	ExitNone ExitReason = iota
	// ExitMMIO: an access outside memory (or a write to a read-only
	// slot) that the VMM must perform; Exit.MMIO describes it. Complete it
	// with CompleteMMIO before the next access.
	ExitMMIO
	// ExitException: the guest took an exception to EL1 (its own stage-1
	// fault, or an abort the hypervisor injected); Exit.Exception has it
	// and the guest context now points at the vector.
	ExitException
)

// String returns the reason's name.
func (r ExitReason) String() string {
	switch r {
	case ExitNone:
		return "none"
	case ExitMMIO:
		return "mmio"
	case ExitException:
		return "exception"
	}
	return fmt.Sprintf("ExitReason(%d)", uint8(r))
}

// Exit is the outcome of a guest access.
type Exit struct {
	Reason    ExitReason
	MMIO      mmio.Access
	Exception cpu.Exception
}

// Access is one guest load or store: the instruction at Ctx().PC.
type Access struct {
	VA    mem.VA
	Size  int // 1, 2, 4 or 8
	Write bool
	// Rt is the transfer register: a store's data comes from it, a load's
	// result goes to it (31 is XZR).
	Rt uint8
	// SignExtend and W describe the load (LDRS*, a W destination).
	SignExtend bool
	W          bool
	// NoSyndrome marks an instruction whose syndrome the architecture
	// does not report (pairs, writeback forms, ...): a stage-2 fault then
	// has ESR_EL2.ISV = 0 and the hypervisor decodes the instruction at PC.
	NoSyndrome bool
	// AcqRel marks LDAR/STLR.
	AcqRel bool
}

func (a *Access) insn() cpu.Insn {
	if a.NoSyndrome {
		return cpu.Insn{}
	}
	return cpu.Insn{Valid: true, Reg: a.Rt, SignExtend: a.SignExtend, SixtyFour: !a.W, AcqRel: a.AcqRel}
}

// ErrNotLoaded is returned when a vCPU that is not loaded runs an access.
var ErrNotLoaded = errors.New("kvm: vCPU not loaded on a CPU")

// ErrNoProgress is returned when one guest instruction exits to EL2
// maxReentries times in a row: the hypervisor failed to resolve its fault.
var ErrNoProgress = errors.New("kvm: guest instruction makes no progress")

// maxReentries bounds the exits of one instruction. Each exit is resolved
// before the retry, so only a host that invalidates the page again every
// time (never in practice) needs more than a few.
const maxReentries = 1 << 20

// ErrPendingMMIO is returned when an access starts before the last MMIO
// exit was completed.
var ErrPendingMMIO = errors.New("kvm: MMIO exit not completed")

// ErrRegisterNumber is returned (wrapped, naming the value) for a register
// number above 31. Number 31 is the zero register (XZR/WZR) for every
// register operand these calls take: a load or store's transfer register
// and the Xt of MSR, MRS, TLBI and AT. (SP is 31 only as a load or store's
// base register, which Access does not name: it gives the VA.)
var ErrRegisterNumber = errors.New("kvm: register number out of range")

func checkReg(what string, n uint8) error {
	if n > 31 {
		return fmt.Errorf("%w: %s register number %d is not 0..31 (31 is XZR)", ErrRegisterNumber, what, n)
	}
	return nil
}

// Run executes the guest access a: on the PE at EL1 through the TLB and the
// two-stage walk. Exceptions taken to EL2 are handled (stage-2 faults,
// MMIO) and the access is retried after ERET; an exception taken to EL1 is
// returned as ExitException. On completion the load's register is written
// and PC advances by 4.
func (v *VCPU) Run(a Access) (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	if v.hasPending {
		return Exit{}, ErrPendingMMIO
	}
	if a.Size != 1 && a.Size != 2 && a.Size != 4 && a.Size != 8 {
		return Exit{}, fmt.Errorf("kvm: access size %d is not 1, 2, 4 or 8", a.Size)
	}
	if err := checkReg("transfer", a.Rt); err != nil {
		return Exit{}, err
	}
	in := a.insn()
	for n := 0; ; n++ {
		if n == maxReentries {
			return Exit{}, fmt.Errorf("%w: %d exits to EL2 on the access to %#x", ErrNoProgress, n, a.VA)
		}
		c := v.cpu
		var val uint64
		var e cpu.Exception
		c.mu.Lock()
		if a.Write {
			e = v.pe.Write(a.VA, a.Size, v.ctx.reg(a.Rt), in)
		} else {
			val, e = v.pe.Read(a.VA, a.Size, in)
		}
		c.mu.Unlock()
		if !e.Taken() {
			if !a.Write && a.Rt < 31 {
				v.ctx.X[a.Rt] = loadValue(val, a.Size, a.SignExtend, !a.W)
			}
			v.pe.PC += 4
			return Exit{}, nil
		}
		exit, retry, err := v.exception(e)
		if err != nil || !retry {
			return exit, err
		}
	}
}

// Ldr is Run of an LDR of size bytes from va into Xrt (zero-extended).
func (v *VCPU) Ldr(rt uint8, va mem.VA, size int) (Exit, error) {
	return v.Run(Access{VA: va, Size: size, Rt: rt})
}

// Str is Run of an STR of the low size bytes of Xrt to va.
func (v *VCPU) Str(rt uint8, va mem.VA, size int) (Exit, error) {
	return v.Run(Access{VA: va, Size: size, Rt: rt, Write: true})
}

// loadValue extends a loaded item to the register (SignExtend, SixtyFour).
func loadValue(raw uint64, size int, sext, x bool) uint64 {
	b := uint(size * 8)
	if b < 64 {
		raw &= 1<<b - 1
		if sext && raw>>(b-1)&1 == 1 {
			raw |= ^uint64(0) << b
		}
	}
	if !x {
		raw &= 0xffff_ffff
	}
	return raw
}

// Fetch fetches the instruction at PC (handling stage-2 faults on it) and
// returns it; PC does not move.
func (v *VCPU) Fetch() (uint32, Exit, error) {
	if v.cpu == nil {
		return 0, Exit{}, ErrNotLoaded
	}
	for n := 0; ; n++ {
		if n == maxReentries {
			return 0, Exit{}, fmt.Errorf("%w: %d exits to EL2 on the fetch at %#x", ErrNoProgress, n, v.pe.PC)
		}
		c := v.cpu
		c.mu.Lock()
		w, e := v.pe.Fetch(v.pe.PC)
		c.mu.Unlock()
		if !e.Taken() {
			return w, Exit{}, nil
		}
		exit, retry, err := v.exception(e)
		if err != nil || !retry {
			return 0, exit, err
		}
	}
}

// MSR executes the guest's MSR <r>, X<rt> at EL1 (PC advances).
func (v *VCPU) MSR(r cpu.SysReg, rt uint8) (Exit, error) {
	if err := checkReg("MSR source", rt); err != nil {
		return Exit{}, err
	}
	return v.sys(func() cpu.Exception { return v.pe.MSR(r, rt, v.ctx.reg(rt)) }, false)
}

// MRS executes the guest's MRS X<rt>, <r> at EL1 (PC advances).
func (v *VCPU) MRS(r cpu.SysReg, rt uint8) (Exit, error) {
	if err := checkReg("MRS destination", rt); err != nil {
		return Exit{}, err
	}
	return v.sys(func() cpu.Exception {
		x, e := v.pe.MRS(r, rt)
		if !e.Taken() && rt < 31 {
			v.ctx.X[rt] = x
		}
		return e
	}, false)
}

// TLBI executes the guest's TLBI <op>, X<rt> at EL1. With HCR_EL2.FB every
// EL1 TLBI is broadcast, so the PE executes it with every CPU's lock held
// and reaches every CPU's TLB through the Domain.
func (v *VCPU) TLBI(op tlb.Op, rt uint8) (Exit, error) {
	if err := checkReg("TLBI operand", rt); err != nil {
		return Exit{}, err
	}
	return v.sys(func() cpu.Exception { return v.pe.TLBI(op, rt, v.ctx.reg(rt)) }, true)
}

// AT executes the guest's AT <op>, X<rt> at EL1; PAR_EL1 gets the result.
// A stage-2 fault on the stage-1 walk is taken to EL2, handled, and the
// instruction retried.
func (v *VCPU) AT(op at.Op, rt uint8) (Exit, error) {
	if err := checkReg("AT operand", rt); err != nil {
		return Exit{}, err
	}
	return v.sys(func() cpu.Exception { return v.pe.AT(op, rt, mem.VA(v.ctx.reg(rt))) }, false)
}

func (v *VCPU) sys(f func() cpu.Exception, broadcast bool) (Exit, error) {
	if v.cpu == nil {
		return Exit{}, ErrNotLoaded
	}
	if v.hasPending {
		return Exit{}, ErrPendingMMIO
	}
	h := v.vm.host
	for n := 0; ; n++ {
		if n == maxReentries {
			return Exit{}, fmt.Errorf("%w: %d exits to EL2 on the instruction at %#x", ErrNoProgress, n, v.pe.PC)
		}
		var e cpu.Exception
		if broadcast {
			h.lockAll()
			v.pe.Domain = h.domain
			e = f()
			v.pe.Domain = nil
			h.unlockAll()
		} else {
			c := v.cpu
			c.mu.Lock()
			e = f()
			c.mu.Unlock()
		}
		if !e.Taken() {
			v.pe.PC += 4
			return Exit{}, nil
		}
		exit, retry, err := v.exception(e)
		if err != nil || !retry {
			return exit, err
		}
	}
}

// ErrUnhandledTrap is returned for an exception taken to EL2 that the
// hypervisor does not handle (a trapped system instruction).
var ErrUnhandledTrap = errors.New("kvm: unhandled exception to EL2")

// exception handles an exception the PE took: the guest's (EL1) is
// already at its vector (the PE saved PC in ELR_EL1); the hypervisor's
// (EL2) is handled, then ERET. retry reports that the instruction must be
// executed again.
func (v *VCPU) exception(e cpu.Exception) (exit Exit, retry bool, err error) {
	if e.TargetEL != 2 {
		return Exit{Reason: ExitException, Exception: e}, false, nil
	}
	// At EL2 now.
	switch {
	case (e.Kind == cpu.DataAbort || e.Kind == cpu.InstructionAbort) && e.Fault.Stage2 && !e.External:
		exit, retry, err = v.stage2Abort(e)
	default:
		err = fmt.Errorf("%w: %v", ErrUnhandledTrap, e)
	}
	if x := v.pe.ERET(); x.Taken() && err == nil {
		err = fmt.Errorf("kvm: ERET from EL2 took %v", x)
	}
	if exit.Reason == ExitException {
		v.inject(&exit.Exception)
	}
	if retry {
		// Guest entry again: the VMID may have changed in a rollover.
		if verr := v.updateVMID(); verr != nil && err == nil {
			err = verr
		}
	}
	if retry && err == nil && v.refetch {
		// The instruction's page is fetched as the PE does (its stage-2
		// faults handled), so its decode can read it on the next exit.
		v.refetch = false
		v.vm.c.refetches.Add(1)
		if _, fx, ferr := v.Fetch(); ferr != nil || fx.Reason != ExitNone {
			return fx, false, ferr
		}
	}
	return exit, retry, err
}

// inject performs exception entry to the guest's EL1 for an abort the
// hypervisor injects (KVM's inject_abt64), after ERET returned the PE to
// the guest's EL: ESR_EL1, FAR_EL1, the state a guest ERET returns to, EL1
// and the vector.
func (v *VCPU) inject(e *cpu.Exception) {
	pe := v.pe
	ec := e.ESR.EC()
	if pe.EL == 1 {
		ec |= 1 // the "same Exception level" class is one above the "lower" one
	}
	e.ESR = sysreg.ESR(uint64(e.ESR)&^(0x3f<<26) | uint64(ec)<<26)
	e.TargetEL = 1
	pe.TakeException(e)
	v.vm.c.injected.Add(1)
}

// abortExit builds the exception to inject: a synchronous External abort
// (FSC 0b010000, as KVM's inject_abt64 reports) on far, with the "lower EL"
// class; inject corrects it for an abort from EL1.
func abortExit(fetch bool, far mem.VA) Exit {
	ec := uint64(mmio.ECDataAbortLowerEL)
	kind := cpu.DataAbort
	if fetch {
		ec = 0x20 // Instruction Abort from a lower Exception level
		kind = cpu.InstructionAbort
	}
	esr := sysreg.ESR(ec<<26 | 1<<25 | 0x10)
	return Exit{Reason: ExitException, Exception: cpu.Exception{Kind: kind, TargetEL: 1, ESR: esr, FAR: far, External: true}}
}

// CompleteMMIO finishes the access of the last ExitMMIO with the device's
// data (data[1] is the second register of a pair; ignored for stores): the
// load's register(s) and any base writeback are written and PC advances.
func (v *VCPU) CompleteMMIO(data [2]uint64) error {
	if !v.hasPending {
		return errors.New("kvm: no MMIO access to complete")
	}
	a := &v.pending
	if a.Write {
		a.CompleteStore(regs{v})
	} else {
		a.CompleteLoad(data, regs{v})
	}
	v.hasPending = false
	v.pe.PC += 4
	return nil
}

// mmioAccess decodes and performs (or exits with) the MMIO access of a
// stage-2 data abort at ipa.
func (v *VCPU) mmioAccess(e cpu.Exception, ipa mem.IPA) (Exit, bool, error) {
	vm := v.vm
	if v.fetch == nil {
		v.fetch = v.fetchInsn // once: a method value allocates
	}
	a, err := mmio.Decode(mmio.ESR(e.ESR), uint64(e.FAR), uint64(ipa), regs{v}, v.fetch)
	switch {
	case errors.Is(err, mmio.ErrCacheMaintenance):
		// DC on an address without memory: nothing to do; skip it.
		vm.c.cmSkipped.Add(1)
		*v.guestPC() += 4
		return Exit{}, false, nil
	case errors.Is(err, mmio.ErrCannotEmulate):
		return abortExit(false, e.FAR), false, nil
	case errors.Is(err, errRefetch):
		v.refetch = true // after ERET: fetch PC at EL1, then execute again
		return Exit{}, true, nil
	case err != nil:
		return Exit{}, false, fmt.Errorf("kvm: MMIO access at IPA %#x: %w", ipa, err)
	}
	if vm.bus != nil {
		if err := mmio.Emulate(&a, regs{v}, vm.bus); err != nil {
			if errors.Is(err, mmio.ErrCannotEmulate) {
				// No device answers: a synchronous External abort, as a
				// VMM asks with KVM_ARM_VCPU_EXT_DABT.
				return abortExit(false, e.FAR), false, nil
			}
			return Exit{}, false, fmt.Errorf("kvm: MMIO access at IPA %#x: %w", ipa, err)
		}
		vm.c.mmioEmulated.Add(1)
		*v.guestPC() += 4
		return Exit{}, false, nil
	}
	vm.c.mmioExits.Add(1)
	v.pending, v.hasPending = a, true
	return Exit{Reason: ExitMMIO, MMIO: a}, false, nil
}

// errFetch is the instruction-fetch failure mmio.Decode reports.
var errFetch = errors.New("kvm: cannot read the faulting instruction")

// errRefetch says the faulting instruction cannot be read through the
// guest's translation without a fault of its own: its page, or a stage-1
// table page on the way, is not mapped at stage 2 (never touched, aged,
// swapped or migrated by the host), or the guest changed its stage 1. The
// hypervisor then does what the hardware would on re-executing it: the PE
// fetches PC at EL1, its stage-2 faults are resolved like any other (or the
// guest takes its own abort), and the instruction is executed again.
var errRefetch = errors.New("kvm: faulting instruction not reachable without a fault")

// fetchInsn reads the instruction at the guest PC through the guest's own
// translation: AT S12E1R at EL2 (stage 1 of EL1&0, then stage 2) and a read
// of the PA, under the MMU lock so that the frame cannot be freed between
// the two. When stage 2 does not map the instruction's page (the host took
// it away), AT S1E1R gives its IPA and the word is read through the
// memslot's HVA, as KVM reads guest memory. When that fails too (a stage-1
// table page is not mapped at stage 2, or PC no longer translates) it
// returns errRefetch. PAR_EL1 is the guest's and is restored.
func (v *VCPU) fetchInsn() (uint32, error) {
	pe, vm := v.pe, v.vm
	pc := *v.guestPC()
	saved := pe.PAR
	defer func() { pe.PAR = saved }()
	vm.mu.Lock()
	ex := pe.AT(at.S12E1R, 0, pc)
	if !ex.Taken() && !pe.PAR.F() {
		w, ok := vm.host.arena.Checked().Read(mem.PA(pe.PAR.PA())|mem.PA(pc&0xfff), 4)
		vm.mu.Unlock()
		if !ok {
			return 0, fmt.Errorf("%w: PA %#x is not memory", errFetch, pe.PAR.PA())
		}
		return uint32(w), nil
	}
	if !ex.Taken() {
		ex = pe.AT(at.S1E1R, 0, pc)
	}
	vm.mu.Unlock()
	if ex.Taken() {
		return 0, fmt.Errorf("%w: AT at PC %#x took %v", errFetch, pc, ex)
	}
	if pe.PAR.F() {
		return 0, fmt.Errorf("%w: AT S1E1R of PC %#x: PAR %#x", errRefetch, pc, uint64(pe.PAR))
	}
	ipa := mem.IPA(pe.PAR.PA()) | mem.IPA(pc&0xfff)
	if v.fetchIPA != nil {
		l1, ok := v.fetchIPA(ipa)
		if !ok {
			return 0, fmt.Errorf("%w: PC %#x: the guest hypervisor's stage 2 does not map IPA %#x", errRefetch, pc, ipa)
		}
		ipa = l1
	}
	s := vm.slots.Lookup(ipa)
	if s == nil {
		// Code outside memory: executing it again takes the abort.
		return 0, fmt.Errorf("%w: PC %#x is at IPA %#x outside memory", errRefetch, pc, ipa)
	}
	w, err := vm.as.Read(s.HVAOf(ipa), 4)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errFetch, err)
	}
	return uint32(w), nil
}

// log2 of a power of two.
func log2(x uint64) uint { return uint(bits.TrailingZeros64(x)) }
