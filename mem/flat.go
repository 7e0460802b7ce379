package mem

import (
	"fmt"
	"sync/atomic"
)

// Flat is one contiguous range of RAM backed by a Go slice of words. Reads
// and compare-and-swaps are atomic, so concurrent walkers may share it.
// It is the fast memory for benchmarks and simulations that do not need
// host-kernel effects (the host arena in package host/hostmem has those).
type Flat struct {
	base  PA
	words []uint64
}

// NewFlat returns zeroed RAM of size bytes at base (both 8-byte aligned).
func NewFlat(base PA, size uint64) (*Flat, error) {
	if base%8 != 0 || size%8 != 0 || size == 0 {
		return nil, fmt.Errorf("mem: flat RAM %#x+%#x must be non-empty and 8-byte aligned", uint64(base), size)
	}
	if uint64(base)+size < uint64(base) {
		return nil, fmt.Errorf("mem: flat RAM %#x+%#x wraps", uint64(base), size)
	}
	return &Flat{base: base, words: make([]uint64, size/8)}, nil
}

// Range returns the RAM range.
func (m *Flat) Range() Range { return Range{Base: m.base, Size: uint64(len(m.words)) * 8} }

func (m *Flat) index(pa PA) (int, bool) {
	if pa%8 != 0 || pa < m.base {
		return 0, false
	}
	i := uint64(pa-m.base) / 8
	if i >= uint64(len(m.words)) {
		return 0, false
	}
	return int(i), true
}

// Read64 implements Memory.
func (m *Flat) Read64(pa PA) (uint64, bool) {
	i, ok := m.index(pa)
	if !ok {
		return 0, false
	}
	return atomic.LoadUint64(&m.words[i]), true
}

// CompareAndSwap64 implements Memory.
func (m *Flat) CompareAndSwap64(pa PA, old, new uint64) (bool, bool) {
	i, ok := m.index(pa)
	if !ok {
		return false, false
	}
	return atomic.CompareAndSwapUint64(&m.words[i], old, new), true
}

// Write64 stores v at pa.
func (m *Flat) Write64(pa PA, v uint64) error {
	i, ok := m.index(pa)
	if !ok {
		return fmt.Errorf("mem: address %#x is not an aligned address in RAM %#x+%#x", uint64(pa), uint64(m.base), len(m.words)*8)
	}
	atomic.StoreUint64(&m.words[i], v)
	return nil
}

// Zero clears size bytes at pa (both 8-byte aligned), word by word with
// atomic stores, so that concurrent readers see each word old or zero.
func (m *Flat) Zero(pa PA, size uint64) error {
	i, ok := m.index(pa)
	if !ok || size%8 != 0 || size/8 > uint64(len(m.words)-i) {
		return fmt.Errorf("mem: zeroing %#x+%#x: not an aligned range in RAM %#x+%#x", uint64(pa), size, uint64(m.base), len(m.words)*8)
	}
	w := m.words[i : i+int(size/8)]
	for j := range w {
		atomic.StoreUint64(&w[j], 0)
	}
	return nil
}

// Read returns size bytes (1, 2, 4 or 8) at pa, little-endian. An access
// inside one aligned word is single-copy atomic; a misaligned one is read
// byte by byte.
func (m *Flat) Read(pa PA, size int) (uint64, bool) {
	off := uint64(pa) % 8
	if off+uint64(size) <= 8 {
		w, ok := m.Read64(pa - PA(off))
		if !ok {
			return 0, false
		}
		return w >> (8 * off) & sizeMask(size), true
	}
	var v uint64
	for i := 0; i < size; i++ {
		b, ok := m.Read(pa+PA(i), 1)
		if !ok {
			return 0, false
		}
		v |= b << (8 * i)
	}
	return v, true
}

// Write stores the low size bytes of v at pa, little-endian, with a
// compare-and-swap on the containing word so that concurrent writers of
// other bytes of the word are not lost.
func (m *Flat) Write(pa PA, size int, v uint64) bool {
	off := uint64(pa) % 8
	if off+uint64(size) <= 8 {
		i, ok := m.index(pa - PA(off))
		if !ok {
			return false
		}
		mask := sizeMask(size) << (8 * off)
		for {
			o := atomic.LoadUint64(&m.words[i])
			n := o&^mask | v<<(8*off)&mask
			if atomic.CompareAndSwapUint64(&m.words[i], o, n) {
				return true
			}
		}
	}
	for i := 0; i < size; i++ {
		if !m.Write(pa+PA(i), 1, v>>(8*i)) {
			return false
		}
	}
	return true
}

func sizeMask(size int) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(size)) - 1
}

// Words returns the RAM's words from its base, for a PE's hit path
// (cpu.WordMemory); byte i of a word is its bits 8i+7:8i, as Read has it.
func (m *Flat) Words() (PA, []uint64, bool) { return m.base, m.words, true }
