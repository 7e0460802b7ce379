package hostmm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/mem"
)

// Event says why a range is being invalidated (Linux's mmu_notifier_event).
type Event uint8

const (
	// EventUnmap: the range is being unmapped (Munmap, Close).
	EventUnmap Event = iota
	// EventClear: the entries are cleared or changed: swap-out, KSM
	// write-protect and merge, copy-on-write break, huge page split.
	EventClear
	// EventMigrate: the pages are moving to other frames.
	EventMigrate
)

// String returns the event's name.
func (e Event) String() string {
	switch e {
	case EventUnmap:
		return "unmap"
	case EventClear:
		return "clear"
	case EventMigrate:
		return "migrate"
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Range is an invalidated HVA range [Start, End) with its reason.
type Range struct {
	Start, End HVA
	Event      Event
}

// String formats the range as event[start,end).
func (r Range) String() string {
	return fmt.Sprintf("%s[%#x,%#x)", r.Event, uint64(r.Start), uint64(r.End))
}

// Notifier is a secondary MMU (a stage-2 manager) following one address
// space, as Linux's mmu_notifier_ops. The host calls it from whatever
// goroutine runs the event.
//
// Protocol:
//   - InvalidateRangeStart(r) is called before any entry in r is changed or
//     removed; from then until the matching InvalidateRangeEnd the
//     secondary MMU must not map anything in r from what FaultIn returns
//     (use Invalidation to enforce this). When Start returns, the
//     secondary MMU must hold no mapping of r: frames may be copied and
//     freed right after End.
//   - ChangePTE(hva, pa) is called between Start and End of a range that
//     contains hva when the host entry now maps pa read-only (KSM) or maps a
//     new private copy (copy-on-write). The secondary MMU may map pa at hva
//     read-only, or ignore the call.
//   - ClearYoung, ClearFlushYoung and TestYoung report whether the
//     secondary MMU accessed any page of [start, end) since the last clear.
//   - Release is called once when the address space is torn down or the
//     notifier unregistered; no call follows it.
//
// Calls are made with the host's page lock for the range held: a callback
// must not call back into the AddressSpace or Kernel (doing so deadlocks).
// Calls for different ranges may run concurrently.
type Notifier interface {
	InvalidateRangeStart(r Range)
	InvalidateRangeEnd(r Range)
	ChangePTE(hva HVA, pa mem.PA)
	ClearYoung(start, end HVA) bool
	ClearFlushYoung(start, end HVA) bool
	TestYoung(start, end HVA) bool
	Release()
}

// Registration is a notifier registered with an address space.
type Registration struct {
	as       *AddressSpace
	n        Notifier
	released bool // guarded by the kernel's notifier lock
}

// RegisterNotifier adds n to the address space. It waits for events in
// progress, so n sees only whole Start/End pairs.
func (as *AddressSpace) RegisterNotifier(n Notifier) (*Registration, error) {
	k := as.k
	k.notifMu.Lock()
	defer k.notifMu.Unlock()
	if as.closed {
		return nil, fmt.Errorf("hostmm: RegisterNotifier on closed address space %d", as.id)
	}
	r := &Registration{as: as, n: n}
	as.notifiers = append(as.notifiers[:len(as.notifiers):len(as.notifiers)], r)
	return r, nil
}

// Unregister removes the notifier, waiting for events in progress, and
// calls its Release unless the address space already did.
func (r *Registration) Unregister() {
	k := r.as.k
	k.notifMu.Lock()
	if r.released {
		k.notifMu.Unlock()
		return
	}
	r.released = true
	ns := make([]*Registration, 0, len(r.as.notifiers))
	for _, x := range r.as.notifiers {
		if x != r {
			ns = append(ns, x)
		}
	}
	r.as.notifiers = ns
	k.notifMu.Unlock()
	r.n.Release()
}

// Invalidation is the invalidate sequence a secondary MMU keeps to order
// its faults against host invalidations (KVM's mmu_invalidate_seq,
// mmu_invalidate_in_progress and mmu_invalidate_range_start/end).
//
// The secondary's InvalidateRangeStart calls Begin and its
// InvalidateRangeEnd calls End, both with its MMU lock held. Its fault
// path reads Seq before resolving the page with FaultIn, takes the MMU
// lock and calls Retry: if Retry is true the page it resolved may be stale
// and it must not be installed. Fault packages that sequence.
type Invalidation struct {
	seq        atomic.Uint64
	inProgress atomic.Int64
	start, end HVA // union of the ranges in progress; guarded by the MMU lock
}

// Begin records the start of an invalidation of [start, end). Call it with
// the MMU lock held.
func (v *Invalidation) Begin(start, end HVA) {
	if v.inProgress.Add(1) == 1 {
		v.start, v.end = start, end
		return
	}
	v.start, v.end = min(v.start, start), max(v.end, end)
}

// End records the end of an invalidation. Call it with the MMU lock held.
// The sequence count moves before the in-progress count drops, so a fault
// that saw neither change cannot pass Retry. An End without a Begin is an
// error and changes nothing.
func (v *Invalidation) End(start, end HVA) error {
	if v.inProgress.Load() <= 0 {
		return fmt.Errorf("hostmm: Invalidation.End(%#x, %#x) without Begin", uint64(start), uint64(end))
	}
	v.seq.Add(1)
	v.inProgress.Add(-1)
	return nil
}

// Seq returns the sequence count. A fault reads it before FaultIn.
func (v *Invalidation) Seq() uint64 { return v.seq.Load() }

// InProgress returns the number of invalidations between Begin and End.
func (v *Invalidation) InProgress() int64 { return v.inProgress.Load() }

// Retry reports whether a fault on hva that read seq before resolving its
// page must retry: an invalidation covering hva is in progress, or one
// ended since seq was read. Call it with the MMU lock held.
func (v *Invalidation) Retry(seq uint64, hva HVA) bool {
	if v.inProgress.Load() > 0 && hva >= v.start && hva < v.end {
		return true
	}
	return v.seq.Load() != seq
}

// Fault runs a secondary MMU's fault on hva: read the sequence, resolve
// (typically FaultIn, without the MMU lock), take mmuLock, and install
// unless Retry says the resolved page may be stale, in which case it
// yields and starts again. It returns resolve's or install's error.
func (v *Invalidation) Fault(mmuLock sync.Locker, hva HVA, resolve func() error, install func() error) error {
	for {
		seq := v.Seq()
		if err := resolve(); err != nil {
			return err
		}
		mmuLock.Lock()
		if v.Retry(seq, hva) {
			mmuLock.Unlock()
			runtime.Gosched()
			continue
		}
		err := install()
		mmuLock.Unlock()
		return err
	}
}
