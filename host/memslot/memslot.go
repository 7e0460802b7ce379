// Package memslot keeps a VM's memory slots: guest-physical ranges backed
// by host virtual ranges, as a VMM registers them with KVM
// (KVM_SET_USER_MEMORY_REGION). A stage-2 fault handler resolves a faulting
// IPA through the slots to an HVA; an IPA outside every slot is MMIO.
//
// Changes return the guest-physical ranges whose stage-2 mappings must be
// invalidated (a moved or deleted slot), so that the caller unmaps them
// before the change becomes visible. Lookups are lock-free reads of an
// immutable snapshot, so vCPUs resolve faults while the VMM edits slots.
package memslot

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// Flags of a slot.
type Flags uint8

// Slot flags.
const (
	// ReadOnly slots fault on writes: the write becomes an MMIO exit.
	ReadOnly Flags = 1 << iota
	// LogDirty slots record written pages in a dirty bitmap.
	LogDirty

	knownFlags = ReadOnly | LogDirty
)

// MaxPages is the largest slot in pages, as KVM's KVM_MEM_MAX_NR_PAGES
// (2^31 - 1): it bounds the dirty bitmap a slot can ask for.
const MaxPages = 1<<31 - 1

// Slot is one memory slot.
type Slot struct {
	ID    int
	GPA   mem.IPA // guest-physical base
	Size  uint64
	HVA   hostmm.HVA // host virtual base
	Flags Flags
	// Dirty is the slot's dirty bitmap, one bit per page, when LogDirty.
	Dirty *Bitmap
}

// End returns the first GPA past the slot.
func (s *Slot) End() mem.IPA { return s.GPA + mem.IPA(s.Size) }

// Contains reports whether gpa lies in the slot.
func (s *Slot) Contains(gpa mem.IPA) bool { return gpa >= s.GPA && uint64(gpa-s.GPA) < s.Size }

// HVAOf returns the host virtual address backing gpa (which must be in
// the slot): the one place a guest-physical address becomes a host
// virtual one.
func (s *Slot) HVAOf(gpa mem.IPA) hostmm.HVA { return s.HVA + hostmm.HVA(gpa-s.GPA) }

// GPAOf returns the guest-physical address that hva (which must be in the
// slot's HVA range) backs.
func (s *Slot) GPAOf(hva hostmm.HVA) mem.IPA { return s.GPA + mem.IPA(hva-s.HVA) }

// Range is a guest-physical range [Start, End).
type Range struct{ Start, End mem.IPA }

// Set is a VM's slots.
type Set struct {
	pageSize uint64
	ipaBits  uint
	mu       sync.Mutex // serialises writers
	snap     atomic.Pointer[[]*Slot]
}

// Errors callers may test for with errors.Is.
var (
	ErrOverlap   = errors.New("memslot: overlapping slots")
	ErrAlignment = errors.New("memslot: misaligned slot")
	ErrNoSlot    = errors.New("memslot: no such slot")
)

// NewSet returns an empty slot set for a VM with the given page size
// (4K, 16K or 64K) and IPA size in bits.
func NewSet(pageSize uint64, ipaBits uint) (*Set, error) {
	if pageSize != 4<<10 && pageSize != 16<<10 && pageSize != 64<<10 {
		return nil, fmt.Errorf("memslot: page size %#x is not 4K, 16K or 64K", pageSize)
	}
	if ipaBits < 32 || ipaBits > 52 {
		return nil, fmt.Errorf("memslot: IPA size %d bits outside 32..52", ipaBits)
	}
	s := &Set{pageSize: pageSize, ipaBits: ipaBits}
	empty := []*Slot{}
	s.snap.Store(&empty)
	return s, nil
}

// Slots returns the current slots in GPA order (do not modify them).
func (s *Set) Slots() []*Slot { return *s.snap.Load() }

// Lookup returns the slot containing gpa, or nil. It takes no lock.
func (s *Set) Lookup(gpa mem.IPA) *Slot {
	sl := *s.snap.Load()
	i := sort.Search(len(sl), func(i int) bool { return sl[i].End() > gpa })
	if i < len(sl) && sl[i].Contains(gpa) {
		return sl[i]
	}
	return nil
}

func (s *Set) check(n Slot, skipID int) error {
	ps := s.pageSize
	gpa, hva := uint64(n.GPA), uint64(n.HVA)
	switch {
	case n.Size == 0:
		return fmt.Errorf("%w: slot %d has size 0", ErrAlignment, n.ID)
	case gpa%ps != 0 || n.Size%ps != 0:
		return fmt.Errorf("%w: slot %d GPA %#x size %#x not multiples of the page size %#x", ErrAlignment, n.ID, gpa, n.Size, ps)
	case hva%ps != 0:
		return fmt.Errorf("%w: slot %d HVA %#x not page aligned", ErrAlignment, n.ID, hva)
	case n.ID < 0:
		return fmt.Errorf("memslot: slot ID %d is negative", n.ID)
	case n.Flags&^knownFlags != 0:
		return fmt.Errorf("memslot: slot %d flags %#x has unknown bits %#x", n.ID, n.Flags, n.Flags&^knownFlags)
	case n.Size/ps > MaxPages:
		return fmt.Errorf("memslot: slot %d size %#x is %d pages, more than %d", n.ID, n.Size, n.Size/ps, MaxPages)
	case hva+n.Size < hva:
		return fmt.Errorf("memslot: slot %d HVA range [%#x, +%#x) wraps around", n.ID, hva, n.Size)
	case gpa+n.Size < gpa || (gpa+n.Size)>>s.ipaBits != 0 && gpa+n.Size != 1<<s.ipaBits:
		return fmt.Errorf("memslot: slot %d [%#x, %#x) exceeds the %d-bit IPA space", n.ID, gpa, gpa+n.Size, s.ipaBits)
	}
	for _, o := range *s.snap.Load() {
		if o.ID == skipID {
			continue
		}
		if o.ID == n.ID && skipID < 0 {
			return fmt.Errorf("memslot: slot %d already exists", n.ID)
		}
		if n.GPA < o.End() && o.GPA < n.End() {
			return fmt.Errorf("%w: slot %d [%#x, %#x) overlaps slot %d [%#x, %#x)", ErrOverlap,
				n.ID, gpa, uint64(n.End()), o.ID, uint64(o.GPA), uint64(o.End()))
		}
	}
	return nil
}

func (s *Set) publish(sl []*Slot) {
	sort.Slice(sl, func(i, j int) bool { return sl[i].GPA < sl[j].GPA })
	s.snap.Store(&sl)
}

// Add creates a slot. It fails on overlap, misalignment, a duplicate ID or
// a range outside the IPA space.
func (s *Set) Add(n Slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(n, -1); err != nil {
		return err
	}
	c := n
	if c.Flags&LogDirty != 0 && c.Dirty == nil {
		c.Dirty = NewBitmap(c.Size / s.pageSize)
	}
	sl := append(append([]*Slot(nil), *s.snap.Load()...), &c)
	s.publish(sl)
	return nil
}

// Delete removes slot id and returns its range, which the caller must
// unmap from stage 2.
func (s *Set) Delete(id int) (Range, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.snap.Load()
	out := make([]*Slot, 0, len(old))
	var r Range
	found := false
	for _, o := range old {
		if o.ID == id {
			r, found = Range{o.GPA, o.End()}, true
			continue
		}
		out = append(out, o)
	}
	if !found {
		return Range{}, fmt.Errorf("%w: %d", ErrNoSlot, id)
	}
	s.publish(out)
	return r, nil
}

// Move changes slot id's GPA base (same size and HVA, as KVM_MR_MOVE) and
// returns the old range, which the caller must unmap from stage 2.
func (s *Set) Move(id int, newGPA mem.IPA) (Range, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.snap.Load()
	for i, o := range old {
		if o.ID != id {
			continue
		}
		n := *o
		n.GPA = newGPA
		if err := s.check(n, id); err != nil {
			return Range{}, err
		}
		out := append([]*Slot(nil), old...)
		out[i] = &n
		s.publish(out)
		return Range{o.GPA, o.End()}, nil
	}
	return Range{}, fmt.Errorf("%w: %d", ErrNoSlot, id)
}

// SetFlags changes slot id's flags and returns the slot as it now is.
// Enabling LogDirty allocates a clean bitmap; the caller write-protects the
// slot in stage 2.
func (s *Set) SetFlags(id int, f Flags) (*Slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.snap.Load()
	for i, o := range old {
		if o.ID != id {
			continue
		}
		n := *o
		n.Flags = f
		if err := s.check(n, id); err != nil {
			return nil, err
		}
		if f&LogDirty != 0 && n.Dirty == nil {
			n.Dirty = NewBitmap(n.Size / s.pageSize)
		}
		if f&LogDirty == 0 {
			n.Dirty = nil
		}
		out := append([]*Slot(nil), old...)
		out[i] = &n
		s.publish(out)
		return &n, nil
	}
	return nil, fmt.Errorf("%w: %d", ErrNoSlot, id)
}

// Bitmap is a concurrent dirty bitmap.
type Bitmap struct {
	words []atomic.Uint64
	n     uint64
}

// NewBitmap returns a clean bitmap of n bits.
func NewBitmap(n uint64) *Bitmap {
	return &Bitmap{words: make([]atomic.Uint64, (n+63)/64), n: n}
}

// Len returns the number of bits.
func (b *Bitmap) Len() uint64 { return b.n }

// Set marks bit i.
func (b *Bitmap) Set(i uint64) {
	if i >= b.n {
		return
	}
	w := &b.words[i/64]
	m := uint64(1) << (i % 64)
	for {
		o := w.Load()
		if o&m != 0 || w.CompareAndSwap(o, o|m) {
			return
		}
	}
}

// Test reports bit i.
func (b *Bitmap) Test(i uint64) bool {
	return i < b.n && b.words[i/64].Load()>>(i%64)&1 == 1
}

// GetAndClear returns the set bits' indices and clears them atomically
// word by word (KVM_GET_DIRTY_LOG with clearing).
func (b *Bitmap) GetAndClear() []uint64 {
	var out []uint64
	for wi := range b.words {
		v := b.words[wi].Swap(0)
		for v != 0 {
			bit := uint64(0)
			for v>>bit&1 == 0 {
				bit++
			}
			out = append(out, uint64(wi)*64+bit)
			v &^= 1 << bit
		}
	}
	return out
}
