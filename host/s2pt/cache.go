package s2pt

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// Cache is a VM's memory cache of zeroed table pages. Fill it with Topup
// before calling an operation (outside the MMU lock); operations take pages
// only from it. A Cache is not safe for concurrent use: give each vCPU (or
// caller) its own, like KVM's per-vCPU cache.
type Cache struct {
	vm    *VM
	pages []cachedPage
}

// cachedPage is a zeroed table page and the record the manager will keep
// for it, both allocated by Topup so that operations allocate nothing.
type cachedPage struct {
	pa  mem.PA
	rec *table
}

// NewCache returns an empty cache for vm's tables.
func (vm *VM) NewCache() *Cache { return &Cache{vm: vm} }

// Topup allocates table pages until the cache holds at least n.
func (c *Cache) Topup(n int) error {
	if n >= 0 && len(c.pages) >= n {
		return nil
	}
	return c.topup(n)
}

func (c *Cache) topup(n int) error {
	if n < 0 {
		return fmt.Errorf("s2pt: negative cache top-up %d", n)
	}
	for len(c.pages) < n {
		pa, err := c.vm.tm.AllocTable(c.vm.layout.TableBytes)
		if err != nil {
			return fmt.Errorf("s2pt: topping up the memory cache to %d pages (have %d): %w", n, len(c.pages), err)
		}
		c.pages = append(c.pages, cachedPage{pa, &table{pa: pa}})
	}
	return nil
}

// Len returns the number of pages in the cache.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.pages)
}

// Bytes returns the memory the cache holds.
func (c *Cache) Bytes() uint64 { return uint64(c.Len()) * c.vm.layout.TableBytes }

// Release frees every page in the cache.
func (c *Cache) Release() error {
	var err error
	for _, p := range c.pages {
		if e := c.vm.tm.FreeTable(p.pa, c.vm.layout.TableBytes); e != nil && err == nil {
			err = e
		}
	}
	c.pages = c.pages[:0]
	return err
}

// MapPagesNeeded returns the most table pages Map of size bytes at ipa to pa
// can take from the cache: for each level above 3, one table below every
// entry the range touches, except entries the range covers that can be
// blocks (flags has MapBlocks, a block level, IPA and PA congruent).
func (vm *VM) MapPagesNeeded(ipa mem.IPA, pa mem.PA, size uint64, flags MapFlags) int {
	if size == vm.gmask+1 {
		return 3 - vm.layout.StartLevel // one page: one table per level below the root
	}
	return vm.mapPagesNeeded(ipa, pa, size, flags)
}

func (vm *VM) mapPagesNeeded(ipa mem.IPA, pa mem.PA, size uint64, flags MapFlags) int {
	l := &vm.layout
	if size == 0 {
		return 0
	}
	if level, ok := vm.oneLeaf(ipa, uint64(pa), size, flags); ok {
		return level - l.StartLevel // one leaf: one table per level below the root down to it
	}
	start, end := uint64(ipa), uint64(ipa)+size
	n := 0
	for lvl := l.StartLevel; lvl < 3; lvl++ {
		bits := vm.lbits[lvl+1]
		cnt := (end-1)>>bits - start>>bits + 1
		if flags&MapBlocks != 0 && vm.blocks>>(lvl+1)&1 != 0 && (start-uint64(pa))&(1<<bits-1) == 0 {
			lo, hi := (start+1<<bits-1)>>bits, end>>bits
			if hi > lo {
				cnt -= hi - lo
			}
		}
		n += int(cnt)
	}
	return n
}

// SplitPagesNeeded returns the most table pages Split of the range can take:
// one table under every block-level entry the range touches.
func (vm *VM) SplitPagesNeeded(ipa mem.IPA, size uint64) int {
	l := &vm.layout
	if size == 0 {
		return 0
	}
	start, end := uint64(ipa), uint64(ipa)+size
	n := 0
	for lvl := l.StartLevel; lvl < 3; lvl++ {
		if l.BlockLevel(lvl) {
			bits := l.leafBits(lvl)
			n += int((end-1)>>bits - start>>bits + 1)
		}
	}
	return n
}

// EdgePagesNeeded returns the most table pages Relax of the range can take:
// splitting the blocks that straddle its two ends. (Unmap and WriteProtect
// act on whole leaves and take none.)
func (vm *VM) EdgePagesNeeded(ipa mem.IPA, size uint64) int {
	n := 0
	for _, m := range vm.blockMasks[:vm.nblock] {
		if uint64(ipa)&m == 0 && size&m == 0 {
			break // aligned to this block size, so to every smaller one
		}
		if uint64(ipa)&m != 0 {
			n++
		}
		if (uint64(ipa)+size)&m != 0 {
			n++
		}
	}
	return n
}
