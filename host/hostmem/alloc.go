package hostmem

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// The allocator is a binary buddy system over frame indexes. A free block
// of order k is 2^k frames starting at a multiple of 2^k; its buddy is the
// block at index^2^k. Frames above brk have never been handed out and are
// added to the lists one BlockSize block at a time, so a large sparse
// arena costs nothing until it is used.

// Alloc returns the PA of 2^order contiguous frames aligned to their size,
// each with reference count 1. The contents are whatever the frames last
// held; see AllocZeroed.
func (a *Arena) Alloc(order int) (mem.PA, error) {
	if order < 0 || order > a.maxOrder {
		return 0, fmt.Errorf("hostmem: allocation order %d is outside 0..%d", order, a.maxOrder)
	}
	a.mu.Lock()
	i, ok := a.take(order)
	if ok {
		a.inUse += 1 << order
	}
	a.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: no free block of order %d (%#x bytes)", ErrNoMemory, order, a.pageSize<<order)
	}
	for j := i; j < i+1<<order; j++ {
		a.ref[j].Store(1)
	}
	return a.framePA(i), nil
}

// AllocZeroed is Alloc with the block cleared.
func (a *Arena) AllocZeroed(order int) (mem.PA, error) {
	pa, err := a.Alloc(order)
	if err == nil {
		a.Zero(pa, a.pageSize<<order)
	}
	return pa, err
}

// AllocTable returns a zeroed block of at least size bytes aligned to
// size, for a translation table (size a power of two: 4K, 16K or 64K for
// one table, more for concatenated stage-2 level tables). A size below the
// page size gets a whole frame. Free it with PutBlock(pa, TableOrder(size)).
func (a *Arena) AllocTable(size uint64) (mem.PA, error) {
	o, err := a.TableOrder(size)
	if err != nil {
		return 0, err
	}
	return a.AllocZeroed(o)
}

// TableOrder returns the allocation order AllocTable uses for size.
func (a *Arena) TableOrder(size uint64) (int, error) {
	if size == 0 || size&(size-1) != 0 || size > BlockSize {
		return 0, fmt.Errorf("hostmem: table size %#x is not a power of two up to %#x", size, BlockSize)
	}
	o := 0
	for a.pageSize<<o < size {
		o++
	}
	return o, nil
}

// take removes a free block of the order from the lists, splitting a
// larger block or growing brk when needed. a.mu is held.
func (a *Arena) take(order int) (int, bool) {
	for {
		for k := order; k <= a.maxOrder; k++ {
			i := a.lists[k]
			if i < 0 {
				continue
			}
			a.unlink(k, int(i))
			for k > order { // hand the upper halves back
				k--
				a.push(k, int(i)+1<<k)
			}
			return int(i), true
		}
		if a.brk >= a.nframes {
			return 0, false
		}
		a.push(a.maxOrder, a.brk) // sizes are multiples of BlockSize
		a.brk += 1 << a.maxOrder
	}
}

func (a *Arena) push(k, i int) {
	a.head[i] = int8(k + 1)
	h := a.lists[k]
	a.next[i] = h
	a.prev[i] = -1
	if h >= 0 {
		a.prev[h] = int32(i)
	}
	a.lists[k] = int32(i)
}

func (a *Arena) unlink(k, i int) {
	a.head[i] = 0
	n, p := a.next[i], a.prev[i]
	if p >= 0 {
		a.next[p] = n
	} else {
		a.lists[k] = n
	}
	if n >= 0 {
		a.prev[n] = p
	}
}

// release returns the order-0 frame i to the lists, merging it with free
// buddies. a.mu is held.
func (a *Arena) release(i int) {
	k := 0
	for k < a.maxOrder {
		b := i ^ 1<<k
		if b >= a.brk || int(a.head[b]) != k+1 {
			break
		}
		a.unlink(k, b)
		i &= b
		k++
	}
	a.push(k, i)
	a.inUse--
}

// Ref returns the reference count of the frame holding pa (0 when free or
// outside the arena).
func (a *Arena) Ref(pa mem.PA) int32 {
	i := a.frame(pa)
	if i < 0 {
		return 0
	}
	return a.ref[i].Load()
}

// Get adds a reference to the allocated frame holding pa.
func (a *Arena) Get(pa mem.PA) error {
	if !a.TryGet(pa) {
		return fmt.Errorf("hostmem: Get of %#x: not an allocated frame", uint64(pa))
	}
	return nil
}

// TryGet adds a reference to the frame holding pa unless its count is zero
// (the frame is free), and reports whether it did.
func (a *Arena) TryGet(pa mem.PA) bool {
	i := a.frame(pa)
	if i < 0 {
		return false
	}
	r := &a.ref[i]
	for {
		v := r.Load()
		if v <= 0 {
			return false
		}
		if r.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// Put drops a reference to the frame holding pa and frees the frame when
// it was the last one.
func (a *Arena) Put(pa mem.PA) error {
	i := a.frame(pa)
	if i < 0 {
		return fmt.Errorf("hostmem: Put of %#x: outside the arena %#x+%#x", uint64(pa), uint64(a.base), a.size)
	}
	r := &a.ref[i]
	for {
		v := r.Load()
		if v <= 0 {
			return fmt.Errorf("hostmem: Put of %#x: frame is already free", uint64(pa))
		}
		if r.CompareAndSwap(v, v-1) {
			if v == 1 {
				if a.poison {
					a.poisonFrame(i)
				}
				a.mu.Lock()
				a.release(i)
				a.mu.Unlock()
			}
			return nil
		}
	}
}

// PutBlock drops one reference to each of the 2^order frames at pa.
func (a *Arena) PutBlock(pa mem.PA, order int) error {
	if order < 0 || order > a.maxOrder {
		return fmt.Errorf("hostmem: PutBlock order %d is outside 0..%d", order, a.maxOrder)
	}
	for j := 0; j < 1<<order; j++ {
		if err := a.Put(pa + mem.PA(uint64(j)<<a.pageShift)); err != nil {
			return err
		}
	}
	return nil
}
