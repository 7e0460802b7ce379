package hostmm

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/mem"
)

// firstHVA is where the first region of every address space goes.
const firstHVA HVA = 0x7f00_0000_0000

// maxMapping bounds a region or shared object: its entries take 8 bytes
// per page (virtual memory, committed as they are touched).
const maxMapping = 1 << 38

// MapFlags select a region's backing.
type MapFlags uint8

const (
	// MapHuge backs the region with 2 MiB transparent huge pages where a
	// whole aligned 2 MiB chunk is untouched and a 2 MiB block is free
	// (falling back to small pages otherwise), as THP "always" does.
	MapHuge MapFlags = 1 << iota
	// MapMergeable lets KSM merge the region's pages (MADV_MERGEABLE).
	MapMergeable
)

// backing holds the page table entries of an anonymous region or a shared
// memory object, with one lock per HugeSize chunk (the split PMD lock).
type backing struct {
	k         *Kernel
	npages    int
	ptes      []atomic.Uint64
	locks     []sync.Mutex
	huge      bool
	mergeable bool
	dead      atomic.Bool // being unmapped: faults must not fill it

	mapMu   sync.Mutex
	mappers atomic.Pointer[[]mapper] // the reverse map
}

// mapper is one mapping of a backing: pages [pgoff, pgoff+npages) at start.
type mapper struct {
	as     *AddressSpace
	start  HVA
	pgoff  int
	npages int
}

func (k *Kernel) newBacking(npages int, huge, mergeable bool) *backing {
	nchunks := (npages + 1<<k.chunkShift - 1) >> k.chunkShift
	b := &backing{k: k, npages: npages, ptes: make([]atomic.Uint64, npages),
		locks: make([]sync.Mutex, nchunks), huge: huge, mergeable: mergeable}
	empty := []mapper{}
	b.mappers.Store(&empty)
	return b
}

func (b *backing) chunk(i int) *sync.Mutex { return &b.locks[i>>b.k.chunkShift] }

func (b *backing) addMapper(m mapper) {
	b.mapMu.Lock()
	defer b.mapMu.Unlock()
	old := *b.mappers.Load()
	ns := append(old[:len(old):len(old)], m)
	b.mappers.Store(&ns)
}

func (b *backing) removeMapper(as *AddressSpace, start HVA) {
	b.mapMu.Lock()
	defer b.mapMu.Unlock()
	old := *b.mappers.Load()
	ns := make([]mapper, 0, len(old))
	for _, m := range old {
		if m.as != as || m.start != start {
			ns = append(ns, m)
		}
	}
	b.mappers.Store(&ns)
}

// vma is a region of an address space.
type vma struct {
	start, end HVA
	b          *backing
	pgoff      int // backing page of start
	flags      MapFlags
	shm        *SharedMemory // nil for anonymous memory
}

// Region describes a mapped region.
type Region struct {
	Start, End HVA
	Flags      MapFlags
	Shared     bool
}

// AddressSpace is a host process's address space (its mm).
type AddressSpace struct {
	k  *Kernel
	id int

	mmapMu  sync.Mutex // serialises Mmap, Munmap and Close (the mmap lock)
	vmas    atomic.Pointer[[]*vma]
	nextHVA HVA

	notifiers []*Registration // guarded by k.notifMu
	closed    bool            // written with mmapMu and k.notifMu held
}

// ID returns the address space's number (unique in its kernel).
func (as *AddressSpace) ID() int { return as.id }

// Kernel returns the kernel the address space belongs to.
func (as *AddressSpace) Kernel() *Kernel { return as.k }

// Regions returns the mapped regions in address order.
func (as *AddressSpace) Regions() []Region {
	vs := *as.vmas.Load()
	out := make([]Region, len(vs))
	for i, v := range vs {
		out[i] = Region{Start: v.start, End: v.end, Flags: v.flags, Shared: v.shm != nil}
	}
	return out
}

// Mmap maps size bytes (rounded up to pages) of zero-filled private
// anonymous memory at a 2 MiB-aligned HVA it chooses.
func (as *AddressSpace) Mmap(size uint64, flags MapFlags) (HVA, error) {
	if flags&^(MapHuge|MapMergeable) != 0 {
		return 0, fmt.Errorf("hostmm: Mmap flags %#x unknown", uint8(flags))
	}
	np, err := as.pages(size)
	if err != nil {
		return 0, err
	}
	b := as.k.newBacking(np, flags&MapHuge != 0, flags&MapMergeable != 0)
	return as.insert(b, 0, np, flags, nil)
}

// MmapShared maps size bytes of sm starting at byte offset off (both
// page-aligned). Every mapping of sm sees the same frames.
func (as *AddressSpace) MmapShared(sm *SharedMemory, off, size uint64) (HVA, error) {
	if off%as.k.pageSize != 0 || off > sm.size || size > sm.size-off {
		return 0, fmt.Errorf("hostmm: MmapShared offset %#x size %#x outside object of %#x bytes (or misaligned)", off, size, sm.size)
	}
	np, err := as.pages(size)
	if err != nil {
		return 0, err
	}
	sm.mu.Lock()
	if sm.closed {
		sm.mu.Unlock()
		return 0, fmt.Errorf("%w: shared memory object", ErrClosed)
	}
	sm.maps++ // before insert: lock order is mmapMu before sm.mu
	sm.mu.Unlock()
	hva, err := as.insert(sm.b, int(off>>as.k.pageShift), np, 0, sm)
	if err != nil {
		sm.mu.Lock()
		sm.maps--
		sm.mu.Unlock()
	}
	return hva, err
}

func (as *AddressSpace) pages(size uint64) (int, error) {
	if size == 0 || size > maxMapping {
		return 0, fmt.Errorf("hostmm: mapping size %#x is not in 1..%#x", size, uint64(maxMapping))
	}
	return int((size + as.k.pageSize - 1) >> as.k.pageShift), nil
}

func (as *AddressSpace) insert(b *backing, pgoff, np int, flags MapFlags, shm *SharedMemory) (HVA, error) {
	as.mmapMu.Lock()
	defer as.mmapMu.Unlock()
	if as.closed {
		return 0, fmt.Errorf("%w: address space %d", ErrClosed, as.id)
	}
	start := as.nextHVA
	end := start + HVA(uint64(np)<<as.k.pageShift)
	// Leave a 2 MiB guard gap and keep every start 2 MiB aligned.
	as.nextHVA = (end + 2*HugeSize - 1) &^ (HugeSize - 1)
	v := &vma{start: start, end: end, b: b, pgoff: pgoff, flags: flags, shm: shm}
	b.addMapper(mapper{as: as, start: start, pgoff: pgoff, npages: np})
	old := *as.vmas.Load()
	ns := append(old[:len(old):len(old)], v) // starts ascend
	as.vmas.Store(&ns)
	return start, nil
}

// lookup finds the region holding hva and the backing page index. It is
// lock-free and allocation-free.
func (as *AddressSpace) lookup(hva HVA) (*vma, int) {
	vs := *as.vmas.Load()
	lo, hi := 0, len(vs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if vs[m].end <= hva {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(vs) || hva < vs[lo].start {
		return nil, 0
	}
	v := vs[lo]
	return v, v.pgoff + int(uint64(hva-v.start)>>as.k.pageShift)
}

// Munmap removes the region that starts at hva. Its secondary MMUs see one
// unmap invalidation of the whole region; its frames and swap slots are
// freed after that (for shared memory they stay with the object).
func (as *AddressSpace) Munmap(hva HVA) error {
	as.mmapMu.Lock()
	defer as.mmapMu.Unlock()
	vs := *as.vmas.Load()
	for i, v := range vs {
		if v.start == hva {
			ns := make([]*vma, 0, len(vs)-1)
			ns = append(append(ns, vs[:i]...), vs[i+1:]...)
			as.vmas.Store(&ns)
			as.unmap(v)
			as.k.pruneKSM()
			return nil
		}
	}
	return fmt.Errorf("%w: no region starts at %#x", ErrFault, uint64(hva))
}

// unmap tears down v, already removed from the region list; mmapMu held.
func (as *AddressSpace) unmap(v *vma) {
	k := as.k
	b := v.b
	if v.shm == nil {
		b.dead.Store(true)
	}
	r := Range{Start: v.start, End: v.end, Event: EventUnmap}
	k.notifMu.RLock()
	as.invalidateStart(r)
	var frames []mem.PA
	var slots []uint64
	if v.shm == nil {
		frames, slots = b.clearAll()
	}
	b.removeMapper(as, v.start)
	as.invalidateEnd(r)
	k.notifMu.RUnlock()
	k.freeAll(frames, slots)
	if v.shm != nil {
		v.shm.mu.Lock()
		v.shm.maps--
		v.shm.mu.Unlock()
	}
}

// clearAll empties every entry, returning the frames and slots they held.
func (b *backing) clearAll() ([]mem.PA, []uint64) {
	var frames []mem.PA
	var slots []uint64
	for c := range b.locks {
		b.locks[c].Lock()
		lo := c << b.k.chunkShift
		hi := min(lo+1<<b.k.chunkShift, b.npages)
		for i := lo; i < hi; i++ {
			e := pte(b.ptes[i].Swap(0))
			switch {
			case e.present():
				frames = append(frames, e.pa())
			case e&pteSwap != 0:
				slots = append(slots, e.slot())
			}
		}
		b.locks[c].Unlock()
	}
	return frames, slots
}

func (k *Kernel) freeAll(frames []mem.PA, slots []uint64) {
	for _, pa := range frames {
		k.arena.Put(pa)
	}
	for _, s := range slots {
		k.swap.release(s)
	}
}

// Close tears the address space down as process exit does: every notifier
// gets Release first (Linux's mmu_notifier_release from exit_mmap), then
// all regions are unmapped and their memory freed.
func (as *AddressSpace) Close() error {
	as.mmapMu.Lock()
	defer as.mmapMu.Unlock()
	k := as.k
	k.notifMu.Lock()
	if as.closed {
		k.notifMu.Unlock()
		return fmt.Errorf("%w: address space %d closed twice", ErrClosed, as.id)
	}
	as.closed = true
	regs := as.notifiers
	as.notifiers = nil
	for _, r := range regs {
		r.released = true
	}
	k.notifMu.Unlock()
	for _, r := range regs {
		r.n.Release()
	}
	vs := *as.vmas.Load()
	empty := []*vma{}
	as.vmas.Store(&empty)
	for _, v := range vs {
		as.unmap(v)
	}
	k.removeSpace(as)
	k.pruneKSM()
	return nil
}

// SharedMemory is a shared memory object (like a memfd or a shmem file):
// its pages are shared by every mapping and live until the object is
// closed with no mappings left. KSM does not merge its pages and it is not
// backed by huge pages.
type SharedMemory struct {
	k      *Kernel
	b      *backing
	size   uint64
	mu     sync.Mutex
	maps   int
	closed bool
}

// NewSharedMemory creates a zero-filled shared memory object of size bytes
// (rounded up to pages).
func (k *Kernel) NewSharedMemory(size uint64) (*SharedMemory, error) {
	if size == 0 || size > maxMapping {
		return nil, fmt.Errorf("hostmm: shared memory size %#x is not in 1..%#x", size, uint64(maxMapping))
	}
	np := int((size + k.pageSize - 1) >> k.pageShift)
	return &SharedMemory{k: k, b: k.newBacking(np, false, false), size: uint64(np) << k.pageShift}, nil
}

// Size returns the object's size in bytes.
func (sm *SharedMemory) Size() uint64 { return sm.size }

// Close frees the object's pages. It fails while the object is mapped.
func (sm *SharedMemory) Close() error {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.closed {
		return fmt.Errorf("%w: shared memory closed twice", ErrClosed)
	}
	if sm.maps > 0 {
		return fmt.Errorf("hostmm: shared memory still has %d mappings", sm.maps)
	}
	sm.closed = true
	sm.b.dead.Store(true)
	sm.k.freeAll(sm.b.clearAll())
	return nil
}
