// Package hostmem is the host's physical memory: real page frames in one
// anonymous mmap'd arena, handed out by a buddy allocator with per-frame
// reference counts.
//
// Host physical addresses are the arena's base address plus the offset into
// the mapping. The Arena implements mem.Memory with atomic 64-bit loads and
// compare-and-swaps on the mapped words, so stage-2 tables can live in arena
// frames while the modelled hardware walks them and sets access flags, and
// guest data accessed through Read and Write is really stored in the arena.
// Package hostmm builds host address spaces and memory-management events on
// top of it.
package hostmem

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nestmmu/nestmmu/mem"
	"golang.org/x/sys/unix"
)

// DefaultBase is the host physical address of the first arena byte when the
// configuration names none.
const DefaultBase mem.PA = 0x4000_0000

// DefaultPageSize is the host page (frame) size when the configuration names
// none.
const DefaultPageSize = 4096

// BlockSize is the largest contiguous, naturally aligned block the
// allocator hands out: 2 MiB, the size of a transparent huge page and of a
// level-2 block with the 4K granule. Arena sizes and bases are multiples of
// it.
const BlockSize = 2 << 20

// ErrNoMemory is returned (wrapped) when no free block of the requested
// order exists.
var ErrNoMemory = errors.New("hostmem: out of memory")

// Config describes an arena.
type Config struct {
	// Base is the host PA of the first byte. Zero means DefaultBase. It
	// must be a multiple of BlockSize.
	Base mem.PA
	// Size is the arena size in bytes, a non-zero multiple of BlockSize.
	// The mapping is MAP_NORESERVE: untouched frames cost no host memory.
	Size uint64
	// PageSize is the frame size: 4096, 16384 or 65536. Zero means
	// DefaultPageSize.
	PageSize uint64
	// PoisonFreed fills every frame with PoisonWord when its last
	// reference is dropped, and makes the Checked view count every access
	// that touches a free frame (StaleAccesses): an access through a stale
	// translation then reads the poison and is reported. For tests: each
	// checked access costs one reference-count load per frame.
	PoisonFreed bool
}

// PoisonWord is what PoisonFreed writes to every word of a freed frame:
// the byte Linux's slab debugging writes to freed objects (POISON_FREE,
// 0x6b), an obviously wrong value for guest data. (As a descriptor it is
// valid garbage: StaleAccesses, not the value, is what reports a walk
// through a freed table.)
const PoisonWord uint64 = 0x6b6b_6b6b_6b6b_6b6b

// Stats are the arena's frame counters.
type Stats struct {
	Frames uint64 // frames in the arena
	InUse  uint64 // frames with a non-zero reference count
	Free   uint64 // Frames - InUse
}

// Arena is the host's physical memory. All methods are safe for concurrent
// use.
type Arena struct {
	base      mem.PA
	size      uint64
	pageSize  uint64
	pageShift uint
	maxOrder  int
	nframes   int

	data  []byte   // the mapping
	words []uint64 // data as 64-bit words (for atomics)
	halfs []uint32 // data as 32-bit words (for atomics)

	ref []atomic.Int32 // per-frame reference counts

	mu    sync.Mutex // guards the buddy state below
	head  []int8     // order+1 if the frame heads a free block, else 0
	next  []int32    // free-list links (frame indexes, -1 = none)
	prev  []int32
	lists []int32 // per-order free-list heads
	brk   int     // frames below brk have been handed to the buddy lists
	inUse int64   // frames allocated (guarded by mu; read atomically)

	poison     bool          // Config.PoisonFreed
	stale      atomic.Uint64 // accesses to free frames (poison only)
	firstStale atomic.Uint64 // PA of the first, plus one
}

// New maps an arena as cfg describes.
func New(cfg Config) (*Arena, error) {
	if cfg.Base == 0 {
		cfg.Base = DefaultBase
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	switch cfg.PageSize {
	case 4096, 16384, 65536:
	default:
		return nil, fmt.Errorf("hostmem: page size %#x is not 4K, 16K or 64K", cfg.PageSize)
	}
	if cfg.Base%BlockSize != 0 {
		return nil, fmt.Errorf("hostmem: base %#x is not a multiple of %#x", uint64(cfg.Base), BlockSize)
	}
	if cfg.Size == 0 || cfg.Size%BlockSize != 0 {
		return nil, fmt.Errorf("hostmem: size %#x is not a non-zero multiple of %#x", cfg.Size, BlockSize)
	}
	if uint64(cfg.Base)+cfg.Size < uint64(cfg.Base) {
		return nil, fmt.Errorf("hostmem: arena %#x+%#x wraps", uint64(cfg.Base), cfg.Size)
	}
	if cfg.Size/cfg.PageSize > 1<<31-1 {
		return nil, fmt.Errorf("hostmem: size %#x has more than 2^31-1 frames", cfg.Size)
	}
	if cfg.Size > uint64(^uint(0)>>1) {
		return nil, fmt.Errorf("hostmem: size %#x does not fit the host address space", cfg.Size)
	}
	var probe uint16 = 1
	if *(*byte)(unsafe.Pointer(&probe)) != 1 {
		return nil, errors.New("hostmem: the host is big-endian; guest memory is modelled little-endian")
	}
	data, err := unix.Mmap(-1, 0, int(cfg.Size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("hostmem: mmap of %#x bytes: %w", cfg.Size, err)
	}
	// The modelled hardware's accesses land anywhere in the arena: backing
	// it with the host's transparent huge pages where the kernel offers
	// them saves the real machine a TLB miss on most of them (only a
	// hint; the model is the same either way).
	_ = unix.Madvise(data, unix.MADV_HUGEPAGE)
	n := int(cfg.Size / cfg.PageSize)
	a := &Arena{
		base:      cfg.Base,
		size:      cfg.Size,
		pageSize:  cfg.PageSize,
		pageShift: uint(bits.TrailingZeros64(cfg.PageSize)),
		nframes:   n,
		data:      data,
		words:     unsafe.Slice((*uint64)(unsafe.Pointer(&data[0])), len(data)/8),
		halfs:     unsafe.Slice((*uint32)(unsafe.Pointer(&data[0])), len(data)/4),
		ref:       make([]atomic.Int32, n),
		head:      make([]int8, n),
		next:      make([]int32, n),
		prev:      make([]int32, n),
		poison:    cfg.PoisonFreed,
	}
	a.maxOrder = bits.TrailingZeros64(BlockSize / cfg.PageSize)
	a.lists = make([]int32, a.maxOrder+1)
	for i := range a.lists {
		a.lists[i] = -1
	}
	return a, nil
}

// Close unmaps the arena. No method may be called afterwards.
func (a *Arena) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.data == nil {
		return errors.New("hostmem: arena already closed")
	}
	err := unix.Munmap(a.data)
	a.data, a.words, a.halfs = nil, nil, nil
	return err
}

// Base returns the host PA of the first byte.
func (a *Arena) Base() mem.PA { return a.base }

// Size returns the arena size in bytes.
func (a *Arena) Size() uint64 { return a.size }

// Range returns the arena's PA range.
func (a *Arena) Range() mem.Range { return mem.Range{Base: a.base, Size: a.size} }

// PageSize returns the frame size in bytes.
func (a *Arena) PageSize() uint64 { return a.pageSize }

// PageShift returns log2 of the frame size.
func (a *Arena) PageShift() uint { return a.pageShift }

// MaxOrder returns the largest allocation order: a block of 2^MaxOrder
// frames is BlockSize bytes.
func (a *Arena) MaxOrder() int { return a.maxOrder }

// Contains reports whether the n bytes at pa all lie in the arena.
func (a *Arena) Contains(pa mem.PA, n uint64) bool {
	off := uint64(pa - a.base)
	return pa >= a.base && off < a.size && n <= a.size-off
}

// Stats returns the frame counters.
func (a *Arena) Stats() Stats {
	a.mu.Lock()
	used := uint64(a.inUse)
	a.mu.Unlock()
	return Stats{Frames: uint64(a.nframes), InUse: used, Free: uint64(a.nframes) - used}
}

// frame returns the index of the frame holding pa, or -1.
func (a *Arena) frame(pa mem.PA) int {
	if pa < a.base || uint64(pa-a.base) >= a.size {
		return -1
	}
	return int(uint64(pa-a.base) >> a.pageShift)
}

func (a *Arena) framePA(i int) mem.PA { return a.base + mem.PA(uint64(i)<<a.pageShift) }

// StaleAccesses returns, with PoisonFreed, how many accesses through the
// Checked view touched a free frame and the PA of the first (ok false when
// there was none).
func (a *Arena) StaleAccesses() (n uint64, first mem.PA, ok bool) {
	n = a.stale.Load()
	f := a.firstStale.Load()
	return n, mem.PA(f - 1), f != 0
}

// checkLive records an access of n bytes at pa that touches a free frame
// (PoisonFreed only; bytes outside the arena are the access's own error).
func (a *Arena) checkLive(pa mem.PA, n uint64) {
	if !a.poison || !a.Contains(pa, n) {
		return
	}
	off := uint64(pa - a.base)
	for f := off >> a.pageShift; f <= (off+n-1)>>a.pageShift; f++ {
		if a.ref[f].Load() <= 0 {
			a.staleAccess(pa, n)
			return
		}
	}
}

// staleAccess counts an access of n bytes at pa that touched a free frame.
func (a *Arena) staleAccess(pa mem.PA, _ uint64) {
	a.stale.Add(1)
	a.firstStale.CompareAndSwap(0, uint64(pa)+1)
}

// Checked is the arena as the modelled hardware sees it (the memory a PE's
// walks, loads and stores reach): the same accesses as the Arena's, and
// with PoisonFreed each one that touches a free frame is counted
// (StaleAccesses). The host kernel's own accesses use the Arena directly,
// and may look at a frame that is being freed (a KSM hash is only a hint).
type Checked struct{ a *Arena }

// Checked returns the arena's checked view.
func (a *Arena) Checked() Checked { return Checked{a} }

// Read64 is Arena.Read64, checked. The aligned word in the arena (every
// descriptor a walk reads) is checked and loaded here without calls: one
// frame, whose count is loaded once.
func (c Checked) Read64(pa mem.PA) (uint64, bool) {
	a := c.a
	off := uint64(pa - a.base)
	if pa < a.base || off >= a.size || off%8 != 0 {
		a.checkLive(pa, 8)
		return 0, false
	}
	if a.poison && a.ref[off>>a.pageShift].Load() <= 0 {
		a.staleAccess(pa, 8)
	}
	return atomic.LoadUint64(&a.words[off>>3]), true
}

// CompareAndSwap64 is Arena.CompareAndSwap64, checked.
func (c Checked) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	c.a.checkLive(pa, 8)
	return c.a.CompareAndSwap64(pa, old, new)
}

// Read is Arena.Read, checked.
func (c Checked) Read(pa mem.PA, size int) (uint64, bool) {
	if size == 8 && pa%8 == 0 {
		return c.Read64(pa) // the same check and load, without calls
	}
	if validSize(size) {
		c.a.checkLive(pa, uint64(size))
	}
	return c.a.Read(pa, size)
}

// Write is Arena.Write, checked.
func (c Checked) Write(pa mem.PA, size int, v uint64) bool {
	if validSize(size) {
		c.a.checkLive(pa, uint64(size))
	}
	return c.a.Write(pa, size, v)
}

// Words returns the arena's words from its base, for a PE's hit path
// (cpu.WordMemory; the arena is little-endian, New refuses other hosts).
func (a *Arena) Words() (mem.PA, []uint64, bool) { return a.base, a.words, true }

// Words is the arena's Words, except with PoisonFreed (ok false): then
// every access must be checked, through the view or with CheckedWords,
// which counts those touching a free frame. Without the check the hit
// path reads and writes the words directly.
func (c Checked) Words() (mem.PA, []uint64, bool) { return c.a.base, c.a.words, !c.a.poison }

// CheckedWords gives a PE's hit path, with PoisonFreed, the words with
// the check (cpu.FrameCheckedMemory): the per-frame reference counts and
// the frame shift. The hit path loads the count of the frame before each
// access and calls StaleAccess when it is not positive: the check Read
// and Write make, without the calls.
func (c Checked) CheckedWords() (mem.PA, []uint64, []atomic.Int32, uint, bool) {
	return c.a.base, c.a.words, c.a.ref, c.a.pageShift, c.a.poison
}

// StaleAccess counts an access of n bytes at pa that touched a free frame
// (StaleAccesses), for a user of CheckedWords.
func (c Checked) StaleAccess(pa mem.PA, n uint64) { c.a.staleAccess(pa, n) }

// poisonFrame fills free frame i with PoisonWord (single-copy atomic word
// stores, mem.StoreWord: a stale access may race with it).
func (a *Arena) poisonFrame(i int) {
	w := a.words[uint64(i)<<a.pageShift>>3 : uint64(i+1)<<a.pageShift>>3]
	for j := range w {
		mem.StoreWord(&w[j], PoisonWord)
	}
}

// Read64 implements mem.Memory: an atomic load of the aligned word at pa.
func (a *Arena) Read64(pa mem.PA) (uint64, bool) {
	off := uint64(pa - a.base)
	if pa < a.base || off >= a.size || off%8 != 0 {
		return 0, false
	}
	return atomic.LoadUint64(&a.words[off>>3]), true
}

// CompareAndSwap64 implements mem.Memory: an atomic compare-and-swap of the
// aligned word at pa.
func (a *Arena) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	off := uint64(pa - a.base)
	if pa < a.base || off >= a.size || off%8 != 0 {
		return false, false
	}
	return atomic.CompareAndSwapUint64(&a.words[off>>3], old, new), true
}

// Write64 atomically stores v at the aligned word pa. ok is false when pa
// is misaligned or outside the arena.
func (a *Arena) Write64(pa mem.PA, v uint64) bool {
	off := uint64(pa - a.base)
	if pa < a.base || off >= a.size || off%8 != 0 {
		return false
	}
	atomic.StoreUint64(&a.words[off>>3], v)
	return true
}

// Read returns the little-endian value of the size bytes at pa (size 1, 2,
// 4 or 8). A naturally aligned access is single-copy atomic; a misaligned
// one is made of single-copy atomic byte reads. ok is false for a bad size
// or when any byte lies outside the arena.
func (a *Arena) Read(pa mem.PA, size int) (uint64, bool) {
	if !validSize(size) || !a.Contains(pa, uint64(size)) {
		return 0, false
	}
	off := uint64(pa - a.base)
	if off%uint64(size) == 0 {
		switch size {
		case 8:
			return atomic.LoadUint64(&a.words[off>>3]), true
		case 4:
			return uint64(atomic.LoadUint32(&a.halfs[off>>2])), true
		default:
			w := atomic.LoadUint32(&a.halfs[off>>2])
			return uint64(w>>(8*(off&3))) & (1<<(8*size) - 1), true
		}
	}
	var v uint64
	for i := 0; i < size; i++ {
		o := off + uint64(i)
		b := atomic.LoadUint32(&a.halfs[o>>2]) >> (8 * (o & 3)) & 0xff
		v |= uint64(b) << (8 * i)
	}
	return v, true
}

// Write stores the low size bytes of v little-endian at pa (size 1, 2, 4 or
// 8), with the atomicity Read describes. ok is false for a bad size or when
// any byte lies outside the arena.
func (a *Arena) Write(pa mem.PA, size int, v uint64) bool {
	if !validSize(size) || !a.Contains(pa, uint64(size)) {
		return false
	}
	off := uint64(pa - a.base)
	if off%uint64(size) == 0 {
		switch size {
		case 8:
			atomic.StoreUint64(&a.words[off>>3], v)
		case 4:
			atomic.StoreUint32(&a.halfs[off>>2], uint32(v))
		default:
			a.storeSub(off, uint32(1)<<(8*size)-1, uint32(v))
		}
		return true
	}
	for i := 0; i < size; i++ {
		a.storeSub(off+uint64(i), 0xff, uint32(v>>(8*i)))
	}
	return true
}

// storeSub atomically replaces the bits mask<<shift of the 32-bit word
// holding byte off (off aligned to the mask's width).
func (a *Arena) storeSub(off uint64, mask, v uint32) {
	sh := 8 * (off & 3)
	p := &a.halfs[off>>2]
	for {
		old := atomic.LoadUint32(p)
		nw := old&^(mask<<sh) | (v&mask)<<sh
		if atomic.CompareAndSwapUint32(p, old, nw) {
			return
		}
	}
}

func validSize(size int) bool { return size == 1 || size == 2 || size == 4 || size == 8 }

// Bytes returns the n arena bytes at pa as a slice aliasing the arena. The
// accesses through it are plain (not atomic): use it only for frames that
// no other agent is writing, such as a frame being copied while unmapped.
func (a *Arena) Bytes(pa mem.PA, n uint64) ([]byte, bool) {
	if !a.Contains(pa, n) {
		return nil, false
	}
	off := uint64(pa - a.base)
	return a.data[off : off+n : off+n], true
}

// Frame returns the bytes of the frame holding pa, with Bytes' caveat.
func (a *Arena) Frame(pa mem.PA) ([]byte, bool) {
	i := a.frame(pa)
	if i < 0 {
		return nil, false
	}
	return a.Bytes(a.framePA(i), a.pageSize)
}

// Zero clears the n bytes at pa (plain stores, Bytes' caveat).
func (a *Arena) Zero(pa mem.PA, n uint64) bool {
	b, ok := a.Bytes(pa, n)
	if ok {
		clear(b)
	}
	return ok
}

// Equal compares the n bytes at p and q with atomic 64-bit loads (n and
// both addresses 8-byte aligned), so it may race with writers.
func (a *Arena) Equal(p, q mem.PA, n uint64) bool {
	if !a.Contains(p, n) || !a.Contains(q, n) || (p|q)%8 != 0 || n%8 != 0 {
		return false
	}
	x := uint64(p-a.base) >> 3
	y := uint64(q-a.base) >> 3
	for i := uint64(0); i < n/8; i++ {
		if atomic.LoadUint64(&a.words[x+i]) != atomic.LoadUint64(&a.words[y+i]) {
			return false
		}
	}
	return true
}

// Copy copies n bytes from src to dst (plain accesses, Bytes' caveat).
func (a *Arena) Copy(dst, src mem.PA, n uint64) bool {
	d, ok1 := a.Bytes(dst, n)
	s, ok2 := a.Bytes(src, n)
	if !ok1 || !ok2 {
		return false
	}
	copy(d, s)
	return true
}
