// Package hostmm models the host kernel's memory management under a
// hypervisor: host user address spaces (HVA -> frame) filled on first
// touch, optionally backed by 2 MiB transparent huge pages, and the events
// that move pages under running VMs (swap-out and swap-in, KSM merging
// with copy-on-write, migration, huge page split, aging), each raising
// MMU-notifier calls the way Linux does.
//
// A stage-2 manager sits on top: it translates GPA -> HVA through its
// memslots, asks FaultIn for the frame behind the HVA, maps the frame's
// host PA (an address in a hostmem.Arena) into stage 2, and registers a
// Notifier to unmap, age and change its stage-2 entries when the host moves
// pages. Invalidation gives it KVM's sequence-count retry so that a frame
// the host is moving is never installed. See docs/HOST-MEMORY.md.
package hostmm

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// HVA is a host virtual address in one AddressSpace.
type HVA uint64

// HugeSize is the size of a transparent huge page: 2 MiB, whatever the
// host page size.
const HugeSize = hostmem.BlockSize

var (
	// ErrFault: no region maps the address, or the access is not allowed
	// (the host would deliver SIGSEGV).
	ErrFault = errors.New("hostmm: bad address")
	// ErrNotPresent: the page has no frame (never touched, or swapped out).
	ErrNotPresent = errors.New("hostmm: page not present")
	// ErrNotHuge: the page is not mapped by a huge page.
	ErrNotHuge = errors.New("hostmm: page not huge")
	// ErrKSM: the page is a KSM page, which this model does not migrate.
	ErrKSM = errors.New("hostmm: page is a KSM page")
	// ErrSwapFull: the swap store has no free slot.
	ErrSwapFull = errors.New("hostmm: swap full")
	// ErrClosed: the address space or shared memory object is closed.
	ErrClosed = errors.New("hostmm: closed")
	// ErrAlreadyHuge: Collapse of a chunk a huge page already maps.
	ErrAlreadyHuge = errors.New("hostmm: already a huge page")
)

// Config configures a Kernel.
type Config struct {
	// SwapPages bounds the swap store in pages (0: unbounded).
	SwapPages int
}

// Stats counts what the kernel did.
type Stats struct {
	Faults      uint64 // first-touch faults on small pages
	HugeFaults  uint64 // first-touch faults that mapped a huge page
	SwapOuts    uint64 // pages written to swap and unmapped
	SwapIns     uint64 // pages read back from swap on touch
	Migrations  uint64 // pages or huge pages moved to new frames
	Splits      uint64 // huge pages split
	Collapses   uint64 // huge pages formed from small pages
	KSMMerged   uint64 // mappings replaced by a KSM page
	KSMPages    uint64 // KSM pages currently in the stable tree
	COWBreaks   uint64 // writes to KSM pages that got a private copy
	Reuses      uint64 // write faults that upgraded a write-protected private page
	SwapUsed    uint64 // swap slots in use
	Invalidates uint64 // invalidate-range Start calls made (per notifier)
}

// Kernel is the host kernel's memory management: it owns the frame arena
// (shared with whoever else allocates from it, such as a stage-2 manager's
// table allocator), the swap store, the KSM state and the address spaces.
type Kernel struct {
	arena      *hostmem.Arena
	pageSize   uint64
	pageShift  uint
	chunkShift uint // log2 of pages per HugeSize chunk
	hugeOrder  int

	// notifMu orders events against notifier registration: events hold it
	// shared from before their first notifier call until after their last,
	// (un)registration holds it exclusively. Lock order: AddressSpace.mmapMu,
	// ksm.mu, then notifMu, then chunk locks.
	notifMu sync.RWMutex

	spacesMu sync.Mutex
	spaces   atomic.Pointer[[]*AddressSpace]
	nextID   int

	swap swapStore
	ksm  ksmState

	faults, hugeFaults, swapOuts, swapIns, migrations, splits atomic.Uint64
	ksmMerged, cowBreaks, reuses, invalidates, collapses      atomic.Uint64
}

// NewKernel returns a kernel that takes frames from arena.
func NewKernel(arena *hostmem.Arena, cfg Config) (*Kernel, error) {
	if arena == nil {
		return nil, errors.New("hostmm: nil arena")
	}
	if cfg.SwapPages < 0 {
		return nil, fmt.Errorf("hostmm: SwapPages %d is negative", cfg.SwapPages)
	}
	k := &Kernel{
		arena:     arena,
		pageSize:  arena.PageSize(),
		pageShift: arena.PageShift(),
		hugeOrder: arena.MaxOrder(),
	}
	k.chunkShift = uint(bits.TrailingZeros64(HugeSize >> k.pageShift))
	k.swap.limit = cfg.SwapPages
	k.swap.pageSize = int(k.pageSize)
	k.ksm.stable = make(map[uint64][]mem.PA)
	empty := []*AddressSpace{}
	k.spaces.Store(&empty)
	return k, nil
}

// Arena returns the frame arena.
func (k *Kernel) Arena() *hostmem.Arena { return k.arena }

// PageSize returns the host page size.
func (k *Kernel) PageSize() uint64 { return k.pageSize }

// Stats returns the counters.
func (k *Kernel) Stats() Stats {
	k.ksm.mu.Lock()
	kp := 0
	for _, l := range k.ksm.stable {
		kp += len(l)
	}
	k.ksm.mu.Unlock()
	return Stats{
		Faults: k.faults.Load(), HugeFaults: k.hugeFaults.Load(),
		SwapOuts: k.swapOuts.Load(), SwapIns: k.swapIns.Load(),
		Migrations: k.migrations.Load(), Splits: k.splits.Load(), Collapses: k.collapses.Load(),
		KSMMerged: k.ksmMerged.Load(), KSMPages: uint64(kp),
		COWBreaks: k.cowBreaks.Load(), Reuses: k.reuses.Load(),
		SwapUsed: uint64(k.swap.inUse()), Invalidates: k.invalidates.Load(),
	}
}

// NewAddressSpace creates an empty address space (a host process).
func (k *Kernel) NewAddressSpace() *AddressSpace {
	k.spacesMu.Lock()
	defer k.spacesMu.Unlock()
	k.nextID++
	as := &AddressSpace{k: k, id: k.nextID, nextHVA: firstHVA}
	empty := []*vma{}
	as.vmas.Store(&empty)
	old := *k.spaces.Load()
	ns := append(old[:len(old):len(old)], as)
	k.spaces.Store(&ns)
	return as
}

func (k *Kernel) removeSpace(as *AddressSpace) {
	k.spacesMu.Lock()
	defer k.spacesMu.Unlock()
	old := *k.spaces.Load()
	ns := make([]*AddressSpace, 0, len(old))
	for _, x := range old {
		if x != as {
			ns = append(ns, x)
		}
	}
	k.spaces.Store(&ns)
}

// Spaces returns the live address spaces.
func (k *Kernel) Spaces() []*AddressSpace { return append([]*AddressSpace(nil), *k.spaces.Load()...) }

// swapStore keeps the contents of swapped-out pages.
type swapStore struct {
	mu       sync.Mutex
	pages    [][]byte
	free     []uint64
	used     int
	limit    int
	pageSize int
}

// reserve returns a free slot.
func (s *swapStore) reserve() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 && s.used >= s.limit {
		return 0, fmt.Errorf("%w: %d of %d slots used", ErrSwapFull, s.used, s.limit)
	}
	s.used++
	if n := len(s.free); n > 0 {
		slot := s.free[n-1]
		s.free = s.free[:n-1]
		return slot, nil
	}
	s.pages = append(s.pages, make([]byte, s.pageSize))
	return uint64(len(s.pages) - 1), nil
}

// page returns the slot's buffer. The slot's owner (the entry holding it,
// under its chunk lock) is the only user.
func (s *swapStore) page(slot uint64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages[slot]
}

func (s *swapStore) release(slot uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free = append(s.free, slot)
	s.used--
}

func (s *swapStore) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
