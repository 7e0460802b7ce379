package virt

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// RAM is the board's RAM: 4 KiB pages of little-endian words allocated on
// first write, so that a short program on a large RAM costs what it
// touches. Reads of untouched pages return zero. It is not safe for
// concurrent use (the board runs one PE).
type RAM struct {
	base  mem.PA
	size  uint64
	pages []*[512]uint64
}

// NewRAM returns zeroed RAM of size bytes at base (both 4 KiB aligned).
func NewRAM(base mem.PA, size uint64) (*RAM, error) {
	if base%4096 != 0 || size%4096 != 0 || size == 0 || uint64(base)+size < uint64(base) {
		return nil, fmt.Errorf("virt: RAM %#x+%#x must be non-empty, 4 KiB aligned and not wrap", uint64(base), size)
	}
	return &RAM{base: base, size: size, pages: make([]*[512]uint64, size/4096)}, nil
}

// Range returns the RAM's physical range.
func (r *RAM) Range() mem.Range { return mem.Range{Base: r.base, Size: r.size} }

// Contains reports whether pa is RAM.
func (r *RAM) Contains(pa mem.PA) bool { return pa >= r.base && uint64(pa-r.base) < r.size }

// zero is the page untouched RAM reads from.
var zero [512]uint64

// page returns the page holding pa, allocating it when alloc is set;
// nil outside RAM (or untouched when !alloc).
func (r *RAM) page(pa mem.PA, alloc bool) *[512]uint64 {
	if !r.Contains(pa) {
		return nil
	}
	i := uint64(pa-r.base) >> 12
	p := r.pages[i]
	if p == nil && alloc {
		p = new([512]uint64)
		r.pages[i] = p
	}
	return p
}

// Page implements interp.RAMPages: the page at pa, allocated.
func (r *RAM) Page(pa mem.PA) *[512]uint64 { return r.page(pa, true) }

// Read64 implements mem.Memory.
func (r *RAM) Read64(pa mem.PA) (uint64, bool) {
	if pa%8 != 0 || !r.Contains(pa) {
		return 0, false
	}
	p := r.page(pa, false)
	if p == nil {
		return 0, true
	}
	return p[pa>>3&511], true
}

// CompareAndSwap64 implements mem.Memory.
func (r *RAM) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	if pa%8 != 0 || !r.Contains(pa) {
		return false, false
	}
	p := r.page(pa, true)
	w := &p[pa>>3&511]
	if *w != old {
		return false, true
	}
	*w = new
	return true, true
}

// Read returns size bytes (1, 2, 4 or 8) at pa, little-endian.
func (r *RAM) Read(pa mem.PA, size int) (uint64, bool) {
	if !r.Contains(pa) || !r.Contains(pa+mem.PA(size-1)) {
		return 0, false
	}
	off := uint64(pa) & 7
	if off+uint64(size) <= 8 {
		p := r.page(pa, false)
		if p == nil {
			return 0, true
		}
		return p[pa>>3&511] >> (8 * off) & mask(size), true
	}
	var v uint64
	for i := 0; i < size; i++ {
		b, _ := r.Read(pa+mem.PA(i), 1)
		v |= b << (8 * i)
	}
	return v, true
}

// Write stores the low size bytes of v at pa, little-endian.
func (r *RAM) Write(pa mem.PA, size int, v uint64) bool {
	if !r.Contains(pa) || !r.Contains(pa+mem.PA(size-1)) {
		return false
	}
	off := uint64(pa) & 7
	if off+uint64(size) <= 8 {
		w := &r.page(pa, true)[pa>>3&511]
		m := mask(size) << (8 * off)
		*w = *w&^m | v<<(8*off)&m
		return true
	}
	for i := 0; i < size; i++ {
		r.Write(pa+mem.PA(i), 1, v>>(8*i))
	}
	return true
}

// WriteBytes copies b to RAM at pa (the loader).
func (r *RAM) WriteBytes(pa mem.PA, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if !r.Contains(pa) || !r.Contains(pa+mem.PA(len(b)-1)) {
		return fmt.Errorf("virt: %#x+%#x is outside RAM", uint64(pa), len(b))
	}
	for i, c := range b {
		r.Write(pa+mem.PA(i), 1, uint64(c))
	}
	return nil
}

func mask(size int) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(size)) - 1
}
