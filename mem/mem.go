// Package mem defines the address spaces of the modelled hardware and the
// physical memory it reads and writes: the address types VA, IPA and PA,
// the Memory interface that translation-table walks use, and Sparse, a
// small RAM model for tests, the JSON contract and conformance cases.
//
// Host memory backed by real frames (the hypervisor's side) implements the
// same interface, so the translation core walks tables wherever they live.
//
// Each address space has its own type, so that a value of one cannot be
// used as another without a visible conversion: a translation's input and
// output, a TLB entry's tag and output, a stage-2 table's input and the
// frames it maps all carry the type of the space they belong to.
package mem

import (
	"fmt"
	"sort"
)

// VA is a virtual address: the input of a stage-1 translation regime.
type VA uint64

// IPA is an intermediate physical address: the output of stage 1 of the
// EL1&0 translation regime and the input of stage 2. A hypervisor's guest
// physical addresses (GPAs, memslot addresses) are IPAs.
type IPA uint64

// PA is a physical address (the output of the last stage of translation).
type PA uint64

// Memory is a physical address space as a translation table walk sees it.
//
// Both methods take a naturally aligned 64-bit word address. ok is false
// when no memory answers at that address; the walker turns that into a
// synchronous External abort on the walk. Implementations used by
// concurrent walkers must make CompareAndSwap64 atomic with respect to
// Read64 and to other CompareAndSwap64 calls (hardware AF/DBM updates are
// atomic read-modify-writes: AArch64.MemSwapTableDesc).
type Memory interface {
	// Read64 returns the little-endian 64-bit word at pa.
	Read64(pa PA) (v uint64, ok bool)
	// CompareAndSwap64 stores new at pa if the word there equals old, and
	// reports whether it did.
	CompareAndSwap64(pa PA, old, new uint64) (swapped, ok bool)
}

// Range is a half-open physical range [Base, Base+Size).
type Range struct {
	Base PA
	Size uint64
}

// End returns the first address past the range.
func (r Range) End() PA { return r.Base + PA(r.Size) }

// Contains reports whether pa lies in the range.
func (r Range) Contains(pa PA) bool { return pa >= r.Base && uint64(pa-r.Base) < r.Size }

// Sparse is RAM described by a list of ranges, all bytes zero except the
// 64-bit words that have been written. It is not safe for concurrent use.
type Sparse struct {
	ram   []Range
	words map[PA]uint64
}

// NewSparse returns a Sparse memory whose RAM is the given ranges. Ranges
// must be non-empty, 8-byte aligned, must not wrap and must not overlap.
func NewSparse(ram []Range) (*Sparse, error) {
	rs := append([]Range(nil), ram...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Base < rs[j].Base })
	for i, r := range rs {
		if r.Size == 0 {
			return nil, fmt.Errorf("mem: RAM range at %#x has size 0", uint64(r.Base))
		}
		if r.Base%8 != 0 || r.Size%8 != 0 {
			return nil, fmt.Errorf("mem: RAM range %#x+%#x is not 8-byte aligned", uint64(r.Base), r.Size)
		}
		if r.End() < r.Base && r.End() != 0 {
			return nil, fmt.Errorf("mem: RAM range %#x+%#x wraps past the top of the address space", uint64(r.Base), r.Size)
		}
		if i > 0 && rs[i-1].End() > r.Base {
			return nil, fmt.Errorf("mem: RAM ranges %#x+%#x and %#x+%#x overlap",
				uint64(rs[i-1].Base), rs[i-1].Size, uint64(r.Base), r.Size)
		}
	}
	return &Sparse{ram: rs, words: make(map[PA]uint64)}, nil
}

// RAM returns the RAM ranges in ascending order.
func (m *Sparse) RAM() []Range { return append([]Range(nil), m.ram...) }

// InRAM reports whether the 8-byte word at pa is RAM. It takes O(log n)
// time in the number of ranges.
func (m *Sparse) InRAM(pa PA) bool {
	// The ranges are sorted and disjoint: only the last one starting at or
	// below pa can hold it.
	i := sort.Search(len(m.ram), func(i int) bool { return m.ram[i].Base > pa }) - 1
	if i < 0 {
		return false
	}
	r := m.ram[i]
	return r.Contains(pa) && r.Contains(pa+7)
}

// Write64 stores v at the 8-byte aligned address pa. It fails when pa is
// misaligned or not RAM.
func (m *Sparse) Write64(pa PA, v uint64) error {
	if pa%8 != 0 {
		return fmt.Errorf("mem: address %#x is not 8-byte aligned", uint64(pa))
	}
	if !m.InRAM(pa) {
		return fmt.Errorf("mem: address %#x is not in RAM", uint64(pa))
	}
	if v == 0 {
		delete(m.words, pa)
	} else {
		m.words[pa] = v
	}
	return nil
}

// Read64 implements Memory.
func (m *Sparse) Read64(pa PA) (uint64, bool) {
	if pa%8 != 0 || !m.InRAM(pa) {
		return 0, false
	}
	return m.words[pa], true
}

// CompareAndSwap64 implements Memory.
func (m *Sparse) CompareAndSwap64(pa PA, old, new uint64) (bool, bool) {
	v, ok := m.Read64(pa)
	if !ok {
		return false, false
	}
	if v != old {
		return false, true
	}
	if new == 0 {
		delete(m.words, pa)
	} else {
		m.words[pa] = new
	}
	return true, true
}

// Words returns a copy of every non-zero word.
func (m *Sparse) Words() map[PA]uint64 {
	out := make(map[PA]uint64, len(m.words))
	for k, v := range m.words {
		out[k] = v
	}
	return out
}
