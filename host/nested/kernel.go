package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// L2Kernel is the nested guest's own EL1 and EL0 as a guest kernel drives
// them: its loads and stores (one at a time or in batches), fetches, system
// registers, TLB maintenance, exception return, system calls and virtual
// interrupts, each executed on the PE in L2 with every trap and fault the
// architecture gives it (shadow faults resolved by L0, faults of the guest
// hypervisor's stage 2 forwarded to it), and answered in host/kvm's terms
// (kvm.Exit, kvm.Context, kvm.BatchAccess), as kvm.VCPU answers them for a
// VM of L0. So the same guest OS model (package guestos) runs in a VM of
// L0 and in a VM of a guest hypervisor (or, through a guest hypervisor of
// its own, one level further) without a copy. Valid while the vCPU runs
// the nested guest; an exception that leaves the vCPU at vEL2 (the guest
// hypervisor did not return to it) is an error.
type L2Kernel struct{ v *VCPU }

// Kernel returns the guest-kernel interface of the nested guest.
func (v *VCPU) Kernel() *L2Kernel { return &L2Kernel{v} }

// VCPU returns the vCPU.
func (k *L2Kernel) VCPU() *VCPU { return k.v }

// Ctx returns the general-purpose registers (the nested guest's while it
// runs).
func (k *L2Kernel) Ctx() *kvm.Context { return k.v.k.Ctx() }

// PE returns the modelled PE.
func (k *L2Kernel) PE() *cpu.PE { return k.v.pe }

// exit turns the outcome of an L2 instruction into kvm's terms.
func (k *L2Kernel) exit(x Exit, err error) (kvm.Exit, error) {
	if err != nil {
		return kvm.Exit{}, err
	}
	switch x.Reason {
	case ExitNone:
		return kvm.Exit{}, nil
	case ExitL2Exception:
		return kvm.Exit{Reason: kvm.ExitException, Exception: x.Exception}, nil
	case ExitMMIO:
		return kvm.Exit{Reason: kvm.ExitMMIO, MMIO: x.MMIO}, nil
	}
	return kvm.Exit{}, fmt.Errorf("%w (%v) at L2 PC %#x", ErrLeftL2, x.Reason, uint64(k.v.pe.PC))
}

func (k *L2Kernel) ready() error {
	switch {
	case !k.v.inL2:
		return ErrNotL2
	case k.v.mmio:
		return kvm.ErrPendingMMIO
	}
	return nil
}

// Ldr is an LDR of size bytes from va into Xrt (zero-extended), as
// kvm.VCPU.Ldr.
func (k *L2Kernel) Ldr(rt uint8, va mem.VA, size int) (kvm.Exit, error) {
	return k.exit(k.v.RunL2(kvm.Access{VA: va, Size: size, Rt: rt}))
}

// Str is an STR of the low size bytes of Xrt to va, as kvm.VCPU.Str.
func (k *L2Kernel) Str(rt uint8, va mem.VA, size int) (kvm.Exit, error) {
	return k.exit(k.v.RunL2(kvm.Access{VA: va, Size: size, Rt: rt, Write: true}))
}

// l2BatchInsn is the syndrome of a batch access: LDR/STR X0.
var l2BatchInsn = cpu.Insn{Valid: true, Reg: 0, SixtyFour: true}

// batchHold bounds the TLB hits run under one hold of the CPU lock.
const batchHold = 256

// RunBatch runs the loads, stores and fetches of b in order, as kvm.VCPU.RunBatch
// does for a VM of L0, and returns how many completed: the TLB hits a
// batch at a time under one hold of the physical CPU's lock (the PE's hit
// path), each other access alone through the full path (the walk of L2's
// stage 1 over the shadow, and every exit that takes). It stops before
// completing b[n] when that access exits to the caller (ExitException:
// L2's own fault, the PE at L2's vector; ExitMMIO, after CompleteMMIO the
// access is complete and a load's value is in X0).
func (k *L2Kernel) RunBatch(b []kvm.BatchAccess) (n int, exit kvm.Exit, err error) {
	if err := k.ready(); err != nil {
		return 0, kvm.Exit{}, err
	}
	v, pe := k.v, k.v.pe
	x := &v.k.Ctx().X
	var ext cpu.Exception // an External abort the hit path took
	hits := func() cpu.Exception {
		for held := 0; n < len(b) && held < batchHold; held++ {
			if m := kvm.HitGroup(pe, b[n:min(len(b), n+batchHold-held)]); m > 0 {
				n, held = n+m, held+m-1
				continue
			}
			a := &b[n]
			kvm.Hint(a.Hint)
			if a.Fetch {
				pe.PC = a.VA
				w, e, done := pe.FetchHit(a.VA)
				if !done {
					break
				}
				if e != nil {
					return *e
				}
				a.Val = uint64(w)
				pe.PC += 4
				n++
				continue
			}
			size := int(a.Size)
			if a.Write {
				e, done := pe.WriteHit(a.VA, size, a.Val)
				if !done {
					break
				}
				if e != nil {
					return *e
				}
			} else {
				val, e, done := pe.ReadHit(a.VA, size)
				if !done {
					break
				}
				if e != nil {
					return *e
				}
				a.Val = zeroExtend(val, size)
			}
			pe.PC += 4
			n++
		}
		return cpu.Exception{}
	}
	for n < len(b) {
		a := &b[n]
		if s := a.Size; !a.Fetch && s != 1 && s != 2 && s != 4 && s != 8 {
			return n, kvm.Exit{}, fmt.Errorf("nested: batch access %d: size %d is not 1, 2, 4 or 8", n, s)
		}
		before := n
		if ext, err = v.k.Exec(hits, false); err != nil {
			return n, kvm.Exit{}, err
		}
		if ext.Taken() {
			return n, kvm.Exit{}, fmt.Errorf("%w: L2's access to %#x took %v on a TLB hit", ErrUnhandled, uint64(b[n].VA), ext)
		}
		if n == len(b) || n > before {
			continue
		}
		// b[n] needs the full path.
		a = &b[n]
		if a.Fetch {
			w, xl, err := v.RunL2Fetch(a.VA)
			if exit, err = k.exit(xl, err); err != nil || exit.Reason != kvm.ExitNone {
				return n, exit, err
			}
			a.Val = uint64(w)
			v.pe.PC = a.VA + 4
			n++
			continue
		}
		size := int(a.Size)
		xl, err := v.execL2(func() cpu.Exception {
			if a.Write {
				x[0] = a.Val // the data register, should the store exit as MMIO
				return pe.Write(a.VA, size, a.Val, l2BatchInsn)
			}
			val, e := pe.Read(a.VA, size, l2BatchInsn)
			if !e.Taken() {
				a.Val = zeroExtend(val, size)
			}
			return e
		}, true)
		if exit, err = k.exit(xl, err); err != nil || exit.Reason != kvm.ExitNone {
			return n, exit, err
		}
		n++
	}
	return n, kvm.Exit{}, nil
}

// zeroExtend keeps the low size bytes of a loaded item.
func zeroExtend(v uint64, size int) uint64 {
	if size < 8 {
		v &= 1<<(8*uint(size)) - 1
	}
	return v
}

// Fetch fetches the instruction at PC (resolving the exits it takes); PC
// does not move, as kvm.VCPU.Fetch.
func (k *L2Kernel) Fetch() (uint32, kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return 0, kvm.Exit{}, err
	}
	w, x, err := k.v.RunL2Fetch(k.v.pe.PC)
	exit, err := k.exit(x, err)
	return w, exit, err
}

// MSR executes MSR <r>, X<rt> (PC advances).
func (k *L2Kernel) MSR(r cpu.SysReg, rt uint8) (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	return k.exit(v.execL2(func() cpu.Exception { return v.pe.MSR(r, rt, v.xreg(rt)) }, true))
}

// MRS executes MRS X<rt>, <r> (PC advances).
func (k *L2Kernel) MRS(r cpu.SysReg, rt uint8) (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	return k.exit(v.execL2(func() cpu.Exception {
		x, e := v.pe.MRS(r, rt)
		if !e.Taken() {
			v.setXreg(rt, x)
		}
		return e
	}, true))
}

// TLBI executes TLBI <op>, X<rt>. L0 runs its guests with HCR_EL2.FB, so
// the nested guest's EL1 TLBIs are broadcast: the PE executes it with
// every physical CPU's lock held and reaches every CPU's TLB (as
// kvm.VCPU.TLBI); a TLBI that traps (the guest hypervisor's TTLB) goes
// the way of every L2 exit, and if it is executed again after that, on
// this CPU.
func (k *L2Kernel) TLBI(op tlb.Op, rt uint8) (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	f := func() cpu.Exception { return v.pe.TLBI(op, rt, v.xreg(rt)) }
	e, err := v.k.Exec(f, true)
	if err != nil {
		return kvm.Exit{}, err
	}
	if !e.Taken() {
		v.pe.PC += 4
		return kvm.Exit{}, nil
	}
	if e.TargetEL != 2 {
		return kvm.Exit{Reason: kvm.ExitException, Exception: e}, nil
	}
	return k.exit(v.handleTaken(e, f))
}

// handleTaken goes on with an L2 instruction f whose first execution took
// e to L0 (the PE at EL2): the exit is handled as execL2 handles one, and
// f runs again if the PC is still on the instruction.
func (v *VCPU) handleTaken(e cpu.Exception, f func() cpu.Exception) (Exit, error) {
	pc := v.pe.ELR[2]
	exit, retry, err := v.l2Exit(e)
	if err != nil || !retry {
		return exit, err
	}
	if !v.inL2 {
		return Exit{Reason: ExitVEL2}, nil
	}
	if v.pe.PC != pc {
		return Exit{}, nil // emulated
	}
	return v.execL2(f, true)
}

// ERET executes the nested guest's ERET at its EL1 (to SPSR_EL1's state at
// ELR_EL1).
func (k *L2Kernel) ERET() (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	return k.exit(v.execL2(func() cpu.Exception { return v.pe.ERET() }, false))
}

// SVC executes SVC #imm: the exception is taken to the nested guest's EL1
// and returned as ExitException, as kvm.VCPU.SVC.
func (k *L2Kernel) SVC(imm uint16) (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	e, err := v.k.Exec(func() cpu.Exception { return v.pe.SVC(imm) }, false)
	if err != nil {
		return kvm.Exit{}, err
	}
	if e.TargetEL != 1 {
		return kvm.Exit{}, fmt.Errorf("%w: L2's SVC taken to EL%d", ErrUnhandled, e.TargetEL)
	}
	return kvm.Exit{Reason: kvm.ExitException, Exception: e}, nil
}

// VirtualIRQ delivers a virtual interrupt to the nested guest (its timer,
// injected by the hypervisor above it): taken at its EL1's IRQ vector,
// ExitException; ExitNone when PSTATE.I masks it.
func (k *L2Kernel) VirtualIRQ() (kvm.Exit, error) {
	if err := k.ready(); err != nil {
		return kvm.Exit{}, err
	}
	v := k.v
	e, err := v.k.Exec(func() cpu.Exception { return v.pe.VirtualIRQ() }, false)
	if err != nil || e.Kind != cpu.IRQ {
		return kvm.Exit{}, err
	}
	return kvm.Exit{Reason: kvm.ExitException, Exception: e}, nil
}

// CompleteMMIO finishes the access of the last ExitMMIO.
func (k *L2Kernel) CompleteMMIO(data [2]uint64) error { return k.v.CompleteMMIO(data) }
