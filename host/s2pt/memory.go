package s2pt

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// TableMemory is where stage-2 tables live: memory the modelled hardware
// walks (mem.Memory, with atomic Read64 and CompareAndSwap64), atomic
// 64-bit stores for filling tables that are not yet live, and table
// allocation.
type TableMemory interface {
	mem.Memory
	// Write64 atomically stores v at the aligned word pa.
	Write64(pa mem.PA, v uint64) error
	// AllocTable returns size zeroed bytes aligned to size (size a power
	// of two, at least the granule: one table, or a concatenated root).
	AllocTable(size uint64) (mem.PA, error)
	// FreeTable returns a block AllocTable gave out.
	FreeTable(pa mem.PA, size uint64) error
}

// directWords is implemented by the table memories of this package that
// can hand out all their words as one slice (from base): the manager then
// reads and compare-and-swaps descriptors with sync/atomic on the slice,
// as Read64/CompareAndSwap64 would, without a dynamic call per descriptor.
// Memories wrapping another (to watch or interfere with its accesses) do
// not implement it and are used through TableMemory.
type directWords interface {
	allWords() (base mem.PA, words []uint64)
}

// ArenaTables stores tables in host frames of a hostmem.Arena.
type ArenaTables struct {
	Arena *hostmem.Arena
}

// Read64 implements mem.Memory.
func (a ArenaTables) Read64(pa mem.PA) (uint64, bool) { return a.Arena.Read64(pa) }

// CompareAndSwap64 implements mem.Memory.
func (a ArenaTables) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	return a.Arena.CompareAndSwap64(pa, old, new)
}

// Write64 implements TableMemory.
func (a ArenaTables) Write64(pa mem.PA, v uint64) error {
	if !a.Arena.Write64(pa, v) {
		return fmt.Errorf("s2pt: descriptor address %#x is not an aligned arena word", uint64(pa))
	}
	return nil
}

// AllocTable implements TableMemory with hostmem.Arena.AllocTable (zeroed,
// naturally aligned, contiguous frames).
func (a ArenaTables) AllocTable(size uint64) (mem.PA, error) { return a.Arena.AllocTable(size) }

// FreeTable implements TableMemory.
func (a ArenaTables) FreeTable(pa mem.PA, size uint64) error {
	order, err := a.Arena.TableOrder(size)
	if err != nil {
		return err
	}
	return a.Arena.PutBlock(pa, order)
}

// allWords views the arena's bytes as words. The arena's mapping is
// page-aligned, so the words are 8-byte aligned; every access the manager
// makes through the view is atomic, like the arena's own.
func (a ArenaTables) allWords() (mem.PA, []uint64) {
	b, ok := a.Arena.Bytes(a.Arena.Base(), a.Arena.Size())
	if !ok || len(b) < 8 {
		return 0, nil
	}
	return a.Arena.Base(), unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), len(b)/8)
}

// FlatTables stores tables in one Go slice of words at a base address,
// with a simple allocator (bump pointer and per-size free lists). It is
// safe for concurrent use; reads, stores and compare-and-swaps are atomic.
type FlatTables struct {
	base  mem.PA
	words []uint64

	mu    sync.Mutex
	next  mem.PA
	end   mem.PA
	free  map[uint64][]mem.PA
	inUse uint64
}

// NewFlatTables returns table memory of size bytes at base.
func NewFlatTables(base mem.PA, size uint64) (*FlatTables, error) {
	if base%8 != 0 || size%8 != 0 || size == 0 || uint64(base)+size < uint64(base) {
		return nil, fmt.Errorf("s2pt: flat table memory %#x+%#x must be non-empty, 8-byte aligned and not wrap", uint64(base), size)
	}
	return &FlatTables{base: base, words: make([]uint64, size/8), next: base, end: base + mem.PA(size), free: map[uint64][]mem.PA{}}, nil
}

// Range returns the memory's range of host physical addresses.
func (f *FlatTables) Range() mem.Range {
	return mem.Range{Base: f.base, Size: uint64(len(f.words)) * 8}
}

func (f *FlatTables) index(pa mem.PA) (uint64, bool) {
	i := uint64(pa-f.base) / 8
	return i, pa >= f.base && pa%8 == 0 && i < uint64(len(f.words))
}

// Read64 implements mem.Memory.
func (f *FlatTables) Read64(pa mem.PA) (uint64, bool) {
	i, ok := f.index(pa)
	if !ok {
		return 0, false
	}
	return atomic.LoadUint64(&f.words[i]), true
}

// CompareAndSwap64 implements mem.Memory.
func (f *FlatTables) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	i, ok := f.index(pa)
	if !ok {
		return false, false
	}
	return atomic.CompareAndSwapUint64(&f.words[i], old, new), true
}

// Write64 implements TableMemory.
func (f *FlatTables) Write64(pa mem.PA, v uint64) error {
	i, ok := f.index(pa)
	if !ok {
		return fmt.Errorf("s2pt: descriptor address %#x is not an aligned word of table memory %#x+%#x", uint64(pa), uint64(f.base), len(f.words)*8)
	}
	atomic.StoreUint64(&f.words[i], v)
	return nil
}

func (f *FlatTables) allWords() (mem.PA, []uint64) { return f.base, f.words }

func (f *FlatTables) tableWords(pa mem.PA, size uint64) ([]uint64, bool) {
	i, ok := f.index(pa)
	if !ok || size < 8 || size/8 > uint64(len(f.words))-i {
		return nil, false
	}
	return f.words[i : i+size/8 : i+size/8], true
}

// AllocTable implements TableMemory.
func (f *FlatTables) AllocTable(size uint64) (mem.PA, error) {
	if size < 8 || size&(size-1) != 0 {
		return 0, fmt.Errorf("s2pt: table size %#x is not a power of two", size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var pa mem.PA
	if l := f.free[size]; len(l) > 0 {
		pa = l[len(l)-1]
		f.free[size] = l[:len(l)-1]
	} else {
		p := (f.next + mem.PA(size) - 1) &^ mem.PA(size-1)
		if p < f.next || p+mem.PA(size) > f.end || p+mem.PA(size) < p {
			return 0, fmt.Errorf("s2pt: flat table memory exhausted allocating %#x bytes (%#x of %#x in use): %w", size, f.inUse, uint64(f.end-f.base), hostmem.ErrNoMemory)
		}
		pa = p
		f.next = p + mem.PA(size)
	}
	w, _ := f.tableWords(pa, size)
	for j := range w {
		atomic.StoreUint64(&w[j], 0)
	}
	f.inUse += size
	return pa, nil
}

// FreeTable implements TableMemory.
func (f *FlatTables) FreeTable(pa mem.PA, size uint64) error {
	if _, ok := f.tableWords(pa, size); !ok || uint64(pa)%size != 0 {
		return fmt.Errorf("s2pt: freeing table %#x size %#x not allocated here", uint64(pa), size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free[size] = append(f.free[size], pa)
	f.inUse -= size
	return nil
}

// InUse returns the bytes allocated and not freed.
func (f *FlatTables) InUse() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse
}
