package nested

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// RunL2 executes the nested guest's access a (its load or store at its
// current EL, on the PE through the TLB and the walk of its stage 1 over
// the shadow stage 2). Shadow faults are resolved by L0 and the access
// retried; faults of the guest hypervisor's stage 2 are injected into vEL2
// and its code runs (and usually returns to L2, when the access is
// retried); an exception to L2's own EL1 returns ExitL2Exception.
func (v *VCPU) RunL2(a kvm.Access) (Exit, error) {
	if !v.inL2 {
		return Exit{}, ErrNotL2
	}
	if v.mmio {
		return Exit{}, kvm.ErrPendingMMIO
	}
	if a.Size != 1 && a.Size != 2 && a.Size != 4 && a.Size != 8 {
		return Exit{}, fmt.Errorf("nested: access size %d is not 1, 2, 4 or 8", a.Size)
	}
	if a.Rt > 31 {
		return Exit{}, fmt.Errorf("nested: register X%d does not exist", a.Rt)
	}
	in := a.Insn()
	x := &v.k.Ctx().X
	return v.execL2(func() cpu.Exception {
		if a.Write {
			return v.pe.Write(a.VA, a.Size, v.xreg(a.Rt), in)
		}
		r, e := v.pe.Read(a.VA, a.Size, in)
		if !e.Taken() && a.Rt < 31 {
			x[a.Rt] = a.Value(r)
		}
		return e
	}, true)
}

// CompleteMMIO finishes the access of the last ExitMMIO (kvm.VCPU's).
func (v *VCPU) CompleteMMIO(data [2]uint64) error {
	if !v.mmio {
		return errors.New("nested: no MMIO access to complete")
	}
	v.mmio = false
	return v.k.CompleteMMIO(data)
}

// l2Exit handles an exception L2 took to L0 (the PE at EL2): L0's own
// first (a FEAT_NV2 access before L0's VNCR frame was ready, a shadow
// stage-2 fault), then traps, forwarded to vEL2 or emulated (forward.go).
func (v *VCPU) l2Exit(e cpu.Exception) (Exit, bool, error) {
	switch {
	case e.Kind == cpu.DataAbort && uint64(e.ESR)&(1<<13) != 0:
		return v.vncrAbort(e)
	case e.Kind == cpu.SysTrap || e.Kind == cpu.ERETTrap:
		return v.l2Trap(e)
	}
	if (e.Kind == cpu.DataAbort || e.Kind == cpu.InstructionAbort) && e.Fault.Stage2 && !e.External {
		v.stats.ShadowFaults++
		return v.shadowFault(e)
	}
	return Exit{}, false, fmt.Errorf("%w: L2 took %v", ErrUnhandled, e)
}

// fscPermission reports a Permission fault status code.
func fscPermission(fsc uint8) bool { return fsc&0x3c == 0x0c }

// fscAccessFlag reports an Access flag fault status code.
func fscAccessFlag(fsc uint8) bool { return fsc&0x3c == 0x08 }

// shadowYoung resolves an Access flag fault on the shadow (a leaf that
// aging made old) by setting the flag, as KVM's handle_access_fault does on
// the stage 2 in use: the leaf exists, so the guest's mapping behind it is
// current. It reports false when there is no leaf any more (the fault then
// takes the full path).
func (v *VCPU) shadowYoung(ipa NestedIPA) bool {
	vm := v.vm
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	if v.shadow.s2 == nil {
		return false
	}
	ok, err := v.shadow.s2.MkYoung(in(ipa))
	if ok && err == nil {
		v.stats.AccessFlagFaults++
	}
	return ok && err == nil
}

// faultIPA returns the L2 IPA of a shadow stage-2 abort: HPFAR_EL2 and FAR
// where the architecture makes HPFAR valid, otherwise (a Permission fault
// not on a stage-1 walk: HPFAR_EL2 is UNKNOWN) the stage-1 translation of
// FAR by AT S1E1R, as KVM does. ok is false when L2's stage 1 no longer
// translates FAR (it changed meanwhile): the access is retried.
func (v *VCPU) faultIPA(e cpu.Exception) (NestedIPA, bool) {
	esr := e.ESR
	if hpfarValid(esr) {
		return NestedIPA(mmio.FaultIPA(uint64(e.HPFAR), uint64(e.FAR))), true
	}
	pe := v.pe
	saved := pe.PAR
	defer func() { pe.PAR = saved }()
	if x := pe.AT(at.S1E1R, 0, e.FAR); x.Taken() || pe.PAR.F() {
		return 0, false
	}
	return NestedIPA(pe.PAR.PA()) | NestedIPA(e.FAR&0xfff), true
}

// shadowFault is a stage-2 fault on the shadow: walk the guest
// hypervisor's stage 2 for the L2 IPA; forward a fault there to vEL2;
// send an L1 IPA without memory to L0's VMM as MMIO; otherwise resolve the
// L1 IPA through the VM's fault path and install the composed entry.
func (v *VCPU) shadowFault(e cpu.Exception) (Exit, bool, error) {
	esr := e.ESR
	ev := &v.event // what happens, for the observer (observe.go)
	*ev = ShadowFault{Exception: e}
	if v.observer != nil {
		defer v.observeShadowFault(v.shadow)
	}
	ipa, ok := v.faultIPA(e)
	if !ok {
		return Exit{}, true, v.eret()
	}
	ev.IPA = ipa
	if fscAccessFlag(esr.FSC()) && v.shadowYoung(ipa) {
		ev.Rule = RuleYoung
		return Exit{}, true, v.eret()
	}
	fetch := e.Kind == cpu.InstructionAbort
	sh := v.shadow
	var g GuestS2
	var acc vmsa.Access
	if sh.guestVM {
		gr := v.guestRegs()
		g, acc = walkFaulted(&v.walker, &gr, ipa, fetch, esr, e.FromEL)
		ev.Access, ev.Guest, ev.GuestWalk = acc, g, v.steps()
		if g.Fault.IsFault() {
			ev.Rule = RuleForward
			return v.forward(e, g.Fault, ipa)
		}
	} else {
		acc, _ = faultAccess(fetch, esr, e.FromEL)
		g = stage2Off(ipa)
		ev.Access, ev.Guest = acc, g
	}
	// A stage-1 walk's read is a read: its tables may be in a read-only
	// memslot (kvm_is_write_fault counts only its Permission faults, the
	// hardware updates, as writes).
	write := acc.Kind == vmsa.Write
	v.inst = shadowInstall{vm: v.vm, sh: sh, cache: cacheFor(sh, v.idx), ipa: ipa, g: g} // held by the vCPU: no allocation per fault
	retry, err := v.k.FaultFor(g.L1, write, &v.inst)
	v.inst.sh, v.inst.cache = nil, nil
	switch {
	case errors.Is(err, kvm.ErrNoMemory) && esr.S1PTW() && write:
		// The walk's hardware update of a table in read-only memory: KVM
		// injects a synchronous External abort (kvm_inject_dabt: FSC
		// 0b010000, no WnR).
		ev.Rule = RuleExternal
		e.ESR &^= 1 << 6
		return v.externalAbortToL2(e, 0b010000, vmsa.Fault{})
	case errors.Is(err, kvm.ErrNoMemory) && esr.S1PTW():
		ev.Rule = RuleExternal
		return v.walkAbortToL2(e) // a stage-1 table where L1 has no memory
	case errors.Is(err, kvm.ErrNoMemory) && fetch:
		// A fetch from L1 memory that does not exist: a synchronous
		// External abort on the fetch (no MMIO emulation of fetches).
		ev.Rule = RuleExternal
		return v.externalAbortToL2(e, 0b010000, vmsa.Fault{})
	case errors.Is(err, kvm.ErrNoMemory):
		ev.Rule = RuleMMIO
		v.stats.MMIOExits++
		exit, retry, refetch, err := v.k.MMIOAccessNested(e, g.L1, v.fetchL1IPA)
		if err != nil {
			return Exit{}, false, err
		}
		if refetch {
			if err := v.eret(); err != nil {
				return Exit{}, false, err
			}
			return v.fetchL2()
		}
		if exit.Reason == kvm.ExitMMIO {
			v.mmio = true
		}
		if exit.Reason == kvm.ExitException {
			// No device at the L1 IPA: the hardware's synchronous
			// External abort on the access.
			ev.Rule = RuleExternal
			return v.externalAbortToL2(e, 0b010000, vmsa.Fault{})
		}
		if eerr := v.eret(); eerr != nil {
			return Exit{}, false, eerr
		}
		out := Exit{}
		if exit.Reason == kvm.ExitMMIO {
			out = Exit{Reason: ExitMMIO, MMIO: exit.MMIO}
		}
		return out, retry, nil
	case err != nil:
		return Exit{}, false, err
	}
	if retry {
		ev.Rule = RuleInstall
		v.stats.Installed++
	}
	return Exit{}, retry, v.eret()
}

// fetchL1IPA translates the L2 IPA of L2's PC (stage 1's output) to an L1
// IPA with the guest hypervisor's stage 2, for the instruction read of an
// MMIO decode.
func (v *VCPU) fetchL1IPA(ipa mem.IPA) (mem.IPA, bool) {
	g := v.WalkGuestStage2(NestedIPA(ipa), vmsa.Access{Kind: vmsa.Fetch, EL: v.pe.EL})
	return g.L1, !g.Fault.IsFault()
}

// fetchL2 fetches the instruction at L2's PC on the PE, as the hardware
// did before executing it, resolving the shadow faults that takes (or
// forwarding them to the guest hypervisor), so that an MMIO decode can
// then read it through the shadow; the access is executed again. The PE
// is in L2.
func (v *VCPU) fetchL2() (Exit, bool, error) {
	for n := 0; n < maxRetries; n++ {
		e, err := v.k.Exec(func() cpu.Exception {
			_, e := v.pe.Fetch(v.pe.PC)
			return e
		}, false)
		if err != nil {
			return Exit{}, false, err
		}
		if !e.Taken() {
			return Exit{}, true, nil
		}
		if e.TargetEL != 2 {
			return Exit{Reason: ExitL2Exception, Exception: e}, false, nil
		}
		exit, retry, err := v.l2Exit(e)
		if err != nil || !retry || !v.inL2 {
			return exit, retry, err
		}
	}
	return Exit{}, false, fmt.Errorf("nested: the fetch at L2's PC %#x makes no progress", uint64(v.pe.PC))
}

// forward injects a fault of the guest hypervisor's stage 2 into vEL2 as
// the hardware would report it to the guest hypervisor: the hardware
// syndrome with its fault status code replaced by the guest walk's (kind
// and guest level), FAR_EL2 the faulting VA, HPFAR_EL2 the L2 IPA except
// where the architecture leaves it UNKNOWN (a Permission fault not on a
// stage-1 walk), and the synchronous vector for a lower EL (+0x400). Then
// the guest hypervisor's code runs.
func (v *VCPU) forward(e cpu.Exception, f vmsa.Fault, ipa NestedIPA) (Exit, bool, error) {
	v.stats.Forwarded++
	esr, hpfar := forwardedAbort(e.ESR, f, ipa)
	if err := v.toVEL2(esr, e.FAR, hpfar, 0x400, true); err != nil {
		return Exit{}, false, err
	}
	return v.runGuestHypervisor()
}

// runGuestHypervisor runs the guest hypervisor's code for an exception
// just taken to vEL2. retry: it returned to L2. A *GuestException from
// its code after it returned to L2 says that it made L2 take that
// exception (a guest hypervisor injecting the exception of an instruction
// it emulated): L2 is at its vector, ExitL2Exception.
func (v *VCPU) runGuestHypervisor() (Exit, bool, error) {
	if v.hyp == nil {
		return Exit{Reason: ExitVEL2}, false, nil
	}
	if err := v.hyp.Exception(v); err != nil {
		var ge *GuestException
		if errors.As(err, &ge) && v.inL2 {
			return Exit{Reason: ExitL2Exception, Exception: ge.Exception}, false, nil
		}
		return Exit{}, false, err
	}
	if !v.inL2 {
		return Exit{Reason: ExitVEL2}, false, nil
	}
	return Exit{}, true, nil
}

// shadowInstall is the kvm.Installer of a shadow fault: it composes the
// guest stage-2 leaf with the canonical mapping the VM's fault path chose
// and installs the result in the shadow (shadowPool.install).
type shadowInstall struct {
	vm    *VM
	sh    *shadowMMU
	cache *s2pt.Cache // the faulting vCPU's
	ipa   NestedIPA
	g     GuestS2
}

// Topup implements kvm.Installer.
func (s *shadowInstall) Topup(base mem.IPA, pa mem.PA, size uint64, _ s2pt.MapFlags) error {
	return s.vm.pool.topup(s.sh, s.cache, s.ipa, &s.g, base, pa, size)
}

// Install implements kvm.Installer.
func (s *shadowInstall) Install(base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, _ s2pt.MapFlags) error {
	return s.vm.pool.install(s.sh, s.cache, s.ipa, &s.g, base, pa, size, prot, s.vm.xnx)
}
