package s2pt

import (
	"fmt"
	"sync"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// TableMemory is where stage-2 tables live: memory the modelled hardware
// walks (mem.Memory, with atomic Read64 and CompareAndSwap64), atomic
// 64-bit stores for descriptor updates, and table allocation.
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

// FlatTables stores tables in a mem.Flat, with a simple allocator (bump
// pointer and per-size free lists). It is safe for concurrent use.
type FlatTables struct {
	*mem.Flat
	mu   sync.Mutex
	next mem.PA
	end  mem.PA
	free map[uint64][]mem.PA
	// InUse is the number of bytes allocated and not freed.
	inUse uint64
}

// NewFlatTables returns table memory of size bytes at base.
func NewFlatTables(base mem.PA, size uint64) (*FlatTables, error) {
	f, err := mem.NewFlat(base, size)
	if err != nil {
		return nil, err
	}
	return &FlatTables{Flat: f, next: base, end: base + mem.PA(size), free: map[uint64][]mem.PA{}}, nil
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
			return 0, fmt.Errorf("s2pt: flat table memory exhausted allocating %#x bytes (%#x of %#x in use): %w", size, f.inUse, uint64(f.end-f.Range().Base), hostmem.ErrNoMemory)
		}
		pa = p
		f.next = p + mem.PA(size)
	}
	if err := f.Flat.Zero(pa, size); err != nil {
		return 0, err
	}
	f.inUse += size
	return pa, nil
}

// FreeTable implements TableMemory.
func (f *FlatTables) FreeTable(pa mem.PA, size uint64) error {
	if !f.Range().Contains(pa) || uint64(pa)%size != 0 {
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
