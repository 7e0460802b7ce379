package hostmm

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// Every event follows the same order, the one Linux's reclaim, KSM,
// migration and THP code follow:
//
//	take k.notifMu shared, then the chunk lock
//	check the entry; allocate what the event needs (may fail: no calls made)
//	InvalidateRangeStart        secondary MMUs drop the range
//	change the entries (copy contents while nobody can write them)
//	ChangePTE                   where the entry now maps another frame read-only
//	InvalidateRangeEnd
//	unlock; drop the old frames' references (never before End)

// locate finds the backing page of hva.
func (as *AddressSpace) locate(hva HVA) (*backing, int, error) {
	v, i := as.lookup(hva)
	if v == nil {
		return nil, 0, fmt.Errorf("%w: hva %#x is not mapped", ErrFault, uint64(hva))
	}
	return v.b, i, nil
}

// lockPage takes the locks an event on page i needs.
func (b *backing) lockPage(i int) {
	b.k.notifMu.RLock()
	b.chunk(i).Lock()
}

func (b *backing) unlockPage(i int) {
	b.chunk(i).Unlock()
	b.k.notifMu.RUnlock()
}

// unit returns the pages mapped together with present entry e at i: the
// whole chunk for a huge page, else i alone.
func (b *backing) unit(i int, e pte) (int, int) {
	if e&pteHuge != 0 {
		n := 1 << b.k.chunkShift
		c0 := i &^ (n - 1)
		return c0, c0 + n
	}
	return i, i + 1
}

// SwapOut writes the page at hva to swap and unmaps it (try_to_unmap with
// a swap entry, then pageout). A huge page is split first. Touching the
// page later swaps it back in with its contents.
func (as *AddressSpace) SwapOut(hva HVA) error {
	b, i, err := as.locate(hva)
	if err != nil {
		return err
	}
	b.lockPage(i)
	defer b.unlockPage(i)
	return b.swapOutLocked(i, hva)
}

func (b *backing) swapOutLocked(i int, hva HVA) (err error) {
	k := b.k
	p := &b.ptes[i]
	e := pte(p.Load())
	if !e.present() {
		return fmt.Errorf("%w: hva %#x", ErrNotPresent, uint64(hva))
	}
	slot, err := k.swap.reserve()
	if err != nil {
		return fmt.Errorf("hva %#x: %w", uint64(hva), err)
	}
	if e&pteHuge != 0 {
		b.splitLocked(i, e) // split_huge_page before add_to_swap
		e = pte(p.Load())
	}
	b.invalidateStart(i, i+1, EventClear)
	src, _ := k.arena.Frame(e.pa())
	copy(k.swap.page(slot), src) // no writer: secondaries dropped it, the host holds the lock
	p.Store(uint64(mkSwap(slot)))
	b.invalidateEnd(i, i+1, EventClear)
	k.arena.Put(e.pa()) // for a KSM page: this mapping's reference only
	k.swapOuts.Add(1)
	return nil
}

// SwapOutRange swaps out every present page in [hva, hva+size) that is
// mapped, one page at a time as reclaim does, and returns how many it
// swapped. Pages not present are skipped.
func (as *AddressSpace) SwapOutRange(hva HVA, size uint64) (int, error) {
	n := 0
	for a := hva &^ HVA(as.k.pageSize-1); a < hva+HVA(size); a += HVA(as.k.pageSize) {
		err := as.SwapOut(a)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrNotPresent), errors.Is(err, ErrFault):
		default:
			return n, err
		}
	}
	return n, nil
}

// Migrate moves the page at hva (the whole 2 MiB block for a huge page) to
// newly allocated frames and frees the old ones (migrate_pages: unmap with
// migration entries, copy, remap).
func (as *AddressSpace) Migrate(hva HVA) error {
	b, i, err := as.locate(hva)
	if err != nil {
		return err
	}
	k := b.k
	b.lockPage(i)
	defer b.unlockPage(i)
	e := pte(b.ptes[i].Load())
	switch {
	case !e.present():
		return fmt.Errorf("%w: hva %#x", ErrNotPresent, uint64(hva))
	case e&pteKSM != 0:
		return fmt.Errorf("%w: hva %#x", ErrKSM, uint64(hva))
	}
	i0, i1 := b.unit(i, e)
	order := 0
	if e&pteHuge != 0 {
		order = k.hugeOrder
	}
	npa, err := k.arena.Alloc(order)
	if err != nil {
		return fmt.Errorf("migrating hva %#x: %w", uint64(hva), err)
	}
	old := pte(b.ptes[i0].Load()).pa()
	b.invalidateStart(i0, i1, EventMigrate)
	flags := make([]pte, 0, i1-i0)
	for j := i0; j < i1; j++ {
		f := pte(b.ptes[j].Swap(uint64(pteMigrating))) &^ pteAddrMask
		flags = append(flags, f)
	}
	k.arena.Copy(npa, old, k.pageSize<<order)
	for j := i0; j < i1; j++ {
		b.ptes[j].Store(uint64(mkPresent(npa+mem.PA(uint64(j-i0)<<k.pageShift), flags[j-i0])))
	}
	b.invalidateEnd(i0, i1, EventMigrate)
	k.arena.PutBlock(old, order)
	k.migrations.Add(1)
	return nil
}

// SplitHuge splits the huge page holding hva into small pages mapping the
// same frames (split_huge_pmd and split_huge_page).
func (as *AddressSpace) SplitHuge(hva HVA) error {
	b, i, err := as.locate(hva)
	if err != nil {
		return err
	}
	b.lockPage(i)
	defer b.unlockPage(i)
	e := pte(b.ptes[i].Load())
	if !e.present() || e&pteHuge == 0 {
		return fmt.Errorf("%w: hva %#x", ErrNotHuge, uint64(hva))
	}
	b.splitLocked(i, e)
	return nil
}

func (b *backing) splitLocked(i int, e pte) {
	i0, i1 := b.unit(i, e)
	b.invalidateStart(i0, i1, EventClear)
	for j := i0; j < i1; j++ {
		b.ptes[j].Store(b.ptes[j].Load() &^ uint64(pteHuge))
	}
	b.invalidateEnd(i0, i1, EventClear)
	b.k.splits.Add(1)
}

// Age clears the accessed state of the page at hva (the whole block for a
// huge page) in the host entry and in every secondary MMU, and reports
// whether either had it set (folio_referenced: ptep_clear_flush_young_notify,
// or with flush false ptep_clear_young_notify). A page that is not present
// is not young.
func (as *AddressSpace) Age(hva HVA, flush bool) (bool, error) {
	op := 0 // ClearYoung
	if flush {
		op = 1 // ClearFlushYoung
	}
	return as.accessed(hva, op)
}

// TestYoung reports whether the page at hva was accessed since it was last
// aged, by the host or by a secondary MMU, without clearing anything.
func (as *AddressSpace) TestYoung(hva HVA) (bool, error) { return as.accessed(hva, 2) }

// accessed is Age and TestYoung: op is backing.young's (0 ClearYoung, 1
// ClearFlushYoung, 2 TestYoung). Clearing asks the secondary MMUs always;
// testing only when the host entries are not young.
func (as *AddressSpace) accessed(hva HVA, op int) (bool, error) {
	b, i, err := as.locate(hva)
	if err != nil {
		return false, err
	}
	b.lockPage(i)
	defer b.unlockPage(i)
	e := pte(b.ptes[i].Load())
	if !e.present() {
		return false, nil
	}
	i0, i1 := b.unit(i, e)
	young := false
	for j := i0; j < i1; j++ {
		var v uint64
		if op == 2 {
			v = b.ptes[j].Load()
		} else {
			v = b.ptes[j].And(^uint64(pteYoung))
		}
		young = young || pte(v)&pteYoung != 0
	}
	if young && op == 2 {
		return true, nil
	}
	return b.young(i0, i1, op) || young, nil
}

// Collapse replaces the small pages of the 2 MiB chunk holding hva by one
// huge page (khugepaged's collapse_huge_page): it allocates a 2 MiB block,
// invalidates the whole chunk, copies each present page (pages never
// touched stay zero), maps the block and frees the old frames after End.
// The region must be a MapHuge region whose chunk lies wholly inside it,
// with at least one page present and none swapped out or merged by KSM.
func (as *AddressSpace) Collapse(hva HVA) error {
	b, i, err := as.locate(hva)
	if err != nil {
		return err
	}
	k := b.k
	n := 1 << k.chunkShift
	c0 := i &^ (n - 1)
	if !b.huge || c0+n > b.npages {
		return fmt.Errorf("%w: hva %#x is not in a whole huge-page chunk of a MapHuge region", ErrNotHuge, uint64(hva))
	}
	b.lockPage(i)
	defer b.unlockPage(i)
	present := 0
	for j := c0; j < c0+n; j++ {
		e := pte(b.ptes[j].Load())
		if e.present() {
			present++
		}
		switch {
		case e&pteHuge != 0:
			return fmt.Errorf("%w: hva %#x", ErrAlreadyHuge, uint64(hva))
		case e&(pteSwap|pteKSM|pteMigrating) != 0:
			return fmt.Errorf("%w: a page of the chunk at hva %#x is swapped out or merged", ErrNotPresent, uint64(hva))
		}
	}
	if present == 0 {
		return fmt.Errorf("%w: no page of the chunk at hva %#x is present", ErrNotPresent, uint64(hva))
	}
	npa, err := k.arena.Alloc(k.hugeOrder)
	if err != nil {
		return fmt.Errorf("collapsing hva %#x: %w", uint64(hva), err)
	}
	b.invalidateStart(c0, c0+n, EventClear)
	var old []mem.PA
	for j := c0; j < c0+n; j++ {
		dst := npa + mem.PA(uint64(j-c0)<<k.pageShift)
		e := pte(b.ptes[j].Load())
		if e.present() {
			k.arena.Copy(dst, e.pa(), k.pageSize)
			old = append(old, e.pa())
		} else {
			k.arena.Zero(dst, k.pageSize)
		}
		b.ptes[j].Store(uint64(mkPresent(dst, pteWrite|pteHuge|e&(pteYoung|pteDirty))))
	}
	b.invalidateEnd(c0, c0+n, EventClear)
	for _, pa := range old {
		k.arena.Put(pa)
	}
	k.collapses.Add(1)
	return nil
}
