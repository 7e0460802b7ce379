package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Observer receives what L0 does for a vCPU, for explanations and tools
// (package nestjson's `nestmmu explain`). Its methods run on the vCPU's
// goroutine when the work is done, with the vCPU in the state it left.
// While an observer is set, the software walks L0 makes for the vCPU (L1's
// stage 2, AT emulation) are traced: the events carry their steps.
type Observer interface {
	// Executed follows each execution of an L2 instruction on the PE (by
	// RunL2, RunL2AT, RunL2Fetch) with the exception it took, if any,
	// before L0 handles it: the PE's walk trace is still the
	// instruction's.
	Executed(e cpu.Exception)
	// ShadowFault follows L0's handling of a shadow stage-2 fault.
	ShadowFault(*ShadowFault)
	// EmulatedAT follows L0's emulation of an AT from vEL2.
	EmulatedAT(*EmulatedAT)
}

// SetObserver sets (nil: removes) the vCPU's observer.
func (v *VCPU) SetObserver(o Observer) {
	v.observer = o
	if o == nil {
		v.walker.Trace = nil
		return
	}
	v.walker.Trace = &vmsa.Trace{}
}

// resetTrace empties the software walks' trace, if any.
func (v *VCPU) resetTrace() {
	if v.walker.Trace != nil {
		v.walker.Trace.Steps = v.walker.Trace.Steps[:0]
	}
}

// steps returns a copy of the steps of the last traced software walk.
func (v *VCPU) steps() []vmsa.Step {
	if v.walker.Trace == nil {
		return nil
	}
	return append([]vmsa.Step(nil), v.walker.Trace.Steps...)
}

// Rule is what L0 did about a shadow stage-2 fault (docs/NESTED.md,
// "Shadow stage 2").
type Rule uint8

// Rules.
const (
	// RuleRetry: nothing to resolve (the L2 IPA of a Permission fault could
	// not be found because L2's stage 1 changed, or L0's fault path saw an
	// invalidation race): the instruction is executed again.
	RuleRetry Rule = iota
	// RuleYoung: an Access flag fault on a shadow leaf that aging made
	// old: the flag is set.
	RuleYoung
	// RuleForward, rule (a): L1's stage 2 faults; the fault is injected
	// into vEL2 as L1's hardware would report it.
	RuleForward
	// RuleMMIO, rule (c): no memslot behind the L1 IPA: an MMIO access for
	// L0's VMM.
	RuleMMIO
	// RuleExternal: L2's stage-1 walk reads a table, or L2 fetches, at an
	// L1 IPA without memory: L2 takes a synchronous External abort.
	RuleExternal
	// RuleInstall, rules (b) and (d): the L1 IPA goes through L0's fault
	// path (which faults the host page in) and the composed entry is
	// installed in the shadow.
	RuleInstall
)

func (r Rule) String() string {
	switch r {
	case RuleRetry:
		return "retry"
	case RuleYoung:
		return "young"
	case RuleForward:
		return "(a) forward to vEL2"
	case RuleMMIO:
		return "(c) MMIO"
	case RuleExternal:
		return "external abort for L2"
	case RuleInstall:
		return "(b)+(d) install"
	}
	return fmt.Sprintf("Rule(%d)", uint8(r))
}

// ShadowFault is one stage-2 fault on the shadow while L2 ran and what L0
// did about it.
type ShadowFault struct {
	// Exception is the abort the PE took to L0.
	Exception cpu.Exception
	// IPA is the L2 IPA; Access the access L1's stage 2 was checked for.
	IPA    NestedIPA
	Access vmsa.Access
	// Guest is L1's stage 2 for IPA (Level -2 when L1's stage 2 is off)
	// and GuestWalk its descriptor reads in L1 memory (L1 IPAs as "PA").
	Guest     GuestS2
	GuestWalk []vmsa.Step
	Rule      Rule
	// Shadow is the shadow leaf that maps IPA afterwards, if any.
	Shadow ShadowEntry
}

// ShadowEntry is a shadow stage-2 leaf.
type ShadowEntry struct {
	Valid bool
	// Base and Size are the L2 IPA range it maps; PA its output.
	Base  NestedIPA
	Size  uint64
	PA    mem.PA
	Level int
	Perms vmsa.Perms
	// Device: the memory type is Device.
	Device bool
	// GuestLevel is L1's leaf level kept in the descriptor's software bits
	// [58:55] (HasGuestLevel false when none is kept).
	GuestLevel    int
	HasGuestLevel bool
	Desc          uint64
}

// shadowEntry looks the shadow leaf for ipa up (the MMU lock is taken).
func (vm *VM) shadowEntry(sh *shadowMMU, ipa NestedIPA) ShadowEntry {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	if sh.s2 == nil {
		return ShadowEntry{}
	}
	d, level, err := sh.s2.Lookup(in(ipa))
	k := desc.KindAt(d, level)
	if err != nil || d&1 == 0 || (k != desc.Block && k != desc.Page) {
		return ShadowEntry{}
	}
	f := sh.s2.Layout().Format
	size := uint64(1) << f.LeafBits(level)
	s2d := desc.S2(d)
	e := ShadowEntry{Valid: true, Base: ipa &^ NestedIPA(size-1), Size: size, PA: mem.PA(f.LeafOA(d, level)), Level: level,
		Perms: s2Perms(s2d), Device: s2d.MemAttr()>>2 == 0, Desc: d}
	if sw := s2pt.SW(d); sw != 0 {
		e.GuestLevel, e.HasGuestLevel = int(sw)-2, true
	}
	return e
}

// observeShadowFault completes the vCPU's event of the shadow fault on sh
// and gives it to the observer.
func (v *VCPU) observeShadowFault(sh *shadowMMU) {
	ev := &v.event
	if ev.Rule == RuleInstall || ev.Rule == RuleYoung {
		ev.Shadow = v.vm.shadowEntry(sh, ev.IPA)
	}
	v.observer.ShadowFault(ev)
}

// EmulatedAT is an AT instruction of the guest hypervisor and its
// emulation by L0.
type EmulatedAT struct {
	Op at.Op
	VA uint64
	// Plan is what the instruction means on L1's virtual registers (its
	// regime and stages); Result its outcome (PAR_EL1 or the exception
	// injected into vEL2).
	Plan   at.Plan
	Result at.Result
	// Fast: the fast path (the real AT on the PE) answered; Shadow then
	// tells whether it ran on a shadow (L2's regime with L1's stage 2 on)
	// rather than L0's stage 2 for L1. Walk are the software walk's
	// descriptor reads (in L1 memory), and for AT S12* on the fast path the
	// stage-2 software walk's.
	Fast, Shadow bool
	Walk         []vmsa.Step
}

// VirtualRegs returns the translation registers of the guest hypervisor's
// view (its virtual HCR_EL2, VTCR_EL2, VTTBR_EL2, its own EL2 regime's
// registers, its guest's EL1 registers, and the ID registers it reads):
// the state of a real EL2 running the same software. The vCPU must be at
// vEL2.
func (v *VCPU) VirtualRegs() vmsa.Regs { return v.virtualRegs() }
