package hostmm

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// Mapping is what FaultIn resolved an HVA to.
type Mapping struct {
	// PA is the host physical address of the byte at the HVA.
	PA mem.PA
	// Writable: the host entry allows writes, so a secondary MMU may map
	// the page writable. A read fault on a KSM page returns false; a
	// write fault always returns true.
	Writable bool
	// Huge: the HVA lies in a 2 MiB huge page whose frames are contiguous
	// and HugeSize-aligned in PA as in HVA, all with the same permissions,
	// so a secondary MMU may map the whole block at once.
	Huge bool
}

// FaultIn resolves hva to its frame for a read or a write, faulting the page
// in when needed (first touch, swap-in, copy-on-write break), as
// get_user_pages does for KVM. The result is only a snapshot: a secondary
// MMU must bracket it with its Invalidation (read Seq before, check Retry
// under its MMU lock before installing). The hit path (page present with
// the needed permission) takes no lock and allocates nothing.
func (as *AddressSpace) FaultIn(hva HVA, write bool) (Mapping, error) {
	v, i := as.lookup(hva)
	if v == nil {
		return Mapping{}, fmt.Errorf("%w: hva %#x is not mapped", ErrFault, uint64(hva))
	}
	off := mem.PA(uint64(hva) & (as.k.pageSize - 1))
	p := &v.b.ptes[i]
	e := pte(p.Load())
	if e.present() && (!write || e&pteWrite != 0) {
		want := pteYoung
		if write {
			want |= pteDirty
		}
		if e&want == want || p.CompareAndSwap(uint64(e), uint64(e|want)) {
			return Mapping{PA: e.pa() + off, Writable: e&pteWrite != 0, Huge: e&pteHuge != 0}, nil
		}
	}
	as.k.notifMu.RLock()
	l := v.b.chunk(i)
	l.Lock()
	e, err := v.b.resolveLocked(i, write)
	l.Unlock()
	as.k.notifMu.RUnlock()
	if err != nil {
		return Mapping{}, fmt.Errorf("hva %#x: %w", uint64(hva), err)
	}
	return Mapping{PA: e.pa() + off, Writable: e&pteWrite != 0, Huge: e&pteHuge != 0}, nil
}

// Translate returns what hva maps now without faulting or marking the page
// young; ok is false when the page is not present. Like FaultIn's result it
// is a snapshot.
func (as *AddressSpace) Translate(hva HVA) (Mapping, bool) {
	v, i := as.lookup(hva)
	if v == nil {
		return Mapping{}, false
	}
	e := pte(v.b.ptes[i].Load())
	if !e.present() {
		return Mapping{}, false
	}
	off := mem.PA(uint64(hva) & (as.k.pageSize - 1))
	return Mapping{PA: e.pa() + off, Writable: e&pteWrite != 0, Huge: e&pteHuge != 0}, true
}

// resolveLocked makes entry i present with the access's permission and
// returns it. The chunk lock and k.notifMu (shared) are held.
func (b *backing) resolveLocked(i int, write bool) (pte, error) {
	if b.dead.Load() {
		return 0, fmt.Errorf("%w: region is being unmapped", ErrFault)
	}
	k := b.k
	p := &b.ptes[i]
	e := pte(p.Load())
	want := pteYoung
	if write {
		want |= pteDirty
	}
	switch {
	case e&(ptePresent|pteSwap|pteMigrating) == 0: // first touch
		if b.huge {
			if e, ok := b.faultHuge(i, want); ok {
				return e, nil
			}
		}
		pa, err := k.arena.AllocZeroed(0)
		if err != nil {
			return 0, err
		}
		e = mkPresent(pa, pteWrite|want)
		p.Store(uint64(e))
		k.faults.Add(1)
		return e, nil
	case e&pteSwap != 0: // swap-in: no notifier, the entry was not present
		pa, err := k.arena.Alloc(0)
		if err != nil {
			return 0, err
		}
		buf, _ := k.arena.Frame(pa)
		copy(buf, k.swap.page(e.slot()))
		k.swap.release(e.slot())
		e = mkPresent(pa, pteWrite|want)
		p.Store(uint64(e))
		k.swapIns.Add(1)
		return e, nil
	case !e.present():
		return 0, fmt.Errorf("hostmm: entry %#x in an unknown state", uint64(e))
	case write && e&pteWrite == 0:
		if e&pteKSM != 0 {
			return b.breakCOW(i, e)
		}
		// An exclusive private page that was write-protected (by a KSM
		// scan that found no match): reuse it, no notifier needed for a
		// permission upgrade (wp_page_reuse).
		e |= pteWrite | want
		p.Store(uint64(e))
		k.reuses.Add(1)
		return e, nil
	}
	if e&want != want {
		e |= want
		p.Store(uint64(e))
	}
	return e, nil
}

// faultHuge maps the whole chunk of i with a 2 MiB block if the chunk is
// wholly inside the backing, untouched, and a block is free.
func (b *backing) faultHuge(i int, want pte) (pte, bool) {
	k := b.k
	n := 1 << k.chunkShift
	c0 := i &^ (n - 1)
	if c0+n > b.npages {
		return 0, false
	}
	for j := c0; j < c0+n; j++ {
		if b.ptes[j].Load() != 0 {
			return 0, false
		}
	}
	pa, err := k.arena.AllocZeroed(k.hugeOrder)
	if err != nil {
		return 0, false // fall back to a small page, as THP does
	}
	var mine pte
	for j := c0; j < c0+n; j++ {
		e := mkPresent(pa+mem.PA(uint64(j-c0)<<k.pageShift), pteWrite|pteHuge)
		if j == i {
			e |= want
			mine = e
		}
		b.ptes[j].Store(uint64(e))
	}
	k.hugeFaults.Add(1)
	return mine, true
}

// breakCOW gives entry i, mapping KSM page e, a private writable copy
// (wp_page_copy): invalidate, replace with change_pte, end, drop the KSM
// reference after End.
func (b *backing) breakCOW(i int, e pte) (pte, error) {
	k := b.k
	pa, err := k.arena.Alloc(0)
	if err != nil {
		return 0, err
	}
	k.arena.Copy(pa, e.pa(), k.pageSize) // the KSM page is read-only everywhere
	b.invalidateStart(i, i+1, EventClear)
	ne := mkPresent(pa, pteWrite|pteYoung|pteDirty)
	b.ptes[i].Store(uint64(ne))
	b.changePTE(i, pa)
	b.invalidateEnd(i, i+1, EventClear)
	k.arena.Put(e.pa())
	k.cowBreaks.Add(1)
	return ne, nil
}

// Read returns the size-byte (1, 2, 4 or 8) little-endian value at hva, as
// a host CPU load: it faults the page in and marks it young. An access
// crossing a page boundary is made of byte accesses.
func (as *AddressSpace) Read(hva HVA, size int) (uint64, error) {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, fmt.Errorf("hostmm: access size %d is not 1, 2, 4 or 8", size)
	}
	if (uint64(hva)&(as.k.pageSize-1))+uint64(size) > as.k.pageSize {
		var v uint64
		for j := 0; j < size; j++ {
			b, err := as.Read(hva+HVA(j), 1)
			if err != nil {
				return 0, err
			}
			v |= b << (8 * j)
		}
		return v, nil
	}
	var v uint64
	err := as.access(hva, false, func(pa mem.PA) { v, _ = as.k.arena.Read(pa, size) })
	return v, err
}

// Write stores the low size bytes (1, 2, 4 or 8) of val little-endian at
// hva, as a host CPU store: it faults the page in (breaking copy-on-write)
// and marks it young and dirty. A store crossing a page boundary faults
// both pages in (writable) before it writes a byte, so one that cannot
// (no memory, no mapping) writes nothing; then it stores byte by byte, and
// only if an event takes the second page away in between and it cannot be
// faulted back in are the first bytes already written, as a CPU store
// crossing pages may be when its second part faults.
func (as *AddressSpace) Write(hva HVA, size int, val uint64) error {
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return fmt.Errorf("hostmm: access size %d is not 1, 2, 4 or 8", size)
	}
	if (uint64(hva)&(as.k.pageSize-1))+uint64(size) > as.k.pageSize {
		for _, a := range []HVA{hva, hva + HVA(size-1)} {
			if _, err := as.FaultIn(a, true); err != nil {
				return err
			}
		}
		for j := 0; j < size; j++ {
			if err := as.Write(hva+HVA(j), 1, val>>(8*j)); err != nil {
				return err
			}
		}
		return nil
	}
	return as.access(hva, true, func(pa mem.PA) { as.k.arena.Write(pa, size, val) })
}

// CompareAndSwap64 is a host CPU atomic compare-and-swap of the aligned
// 64-bit word at hva: it faults the page in for writing (breaking
// copy-on-write), marks it young and dirty, and stores new if the word
// equals old, reporting whether it did.
func (as *AddressSpace) CompareAndSwap64(hva HVA, old, new uint64) (bool, error) {
	if hva%8 != 0 {
		return false, fmt.Errorf("hostmm: compare-and-swap at %#x is not 8-byte aligned", uint64(hva))
	}
	var swapped bool
	err := as.access(hva, true, func(pa mem.PA) { swapped, _ = as.k.arena.CompareAndSwap64(pa, old, new) })
	return swapped, err
}

// access runs do on the PA of hva with the page's chunk lock held, so no
// event moves the page meanwhile (a host CPU access completes before the
// TLB shootdown of an event does).
func (as *AddressSpace) access(hva HVA, write bool, do func(pa mem.PA)) error {
	v, i := as.lookup(hva)
	if v == nil {
		return fmt.Errorf("%w: hva %#x is not mapped", ErrFault, uint64(hva))
	}
	off := mem.PA(uint64(hva) & (as.k.pageSize - 1))
	p := &v.b.ptes[i]
	l := v.b.chunk(i)
	l.Lock()
	e := pte(p.Load())
	if e.present() && (!write || e&pteWrite != 0) && !v.b.dead.Load() {
		want := pteYoung
		if write {
			want |= pteDirty
		}
		if e&want != want {
			p.Or(uint64(want)) // only flag bits change outside the lock
		}
		do(e.pa() + off)
		l.Unlock()
		return nil
	}
	l.Unlock()
	as.k.notifMu.RLock()
	l.Lock()
	e, err := v.b.resolveLocked(i, write)
	if err == nil {
		do(e.pa() + off)
	}
	l.Unlock()
	as.k.notifMu.RUnlock()
	if err != nil {
		return fmt.Errorf("hva %#x: %w", uint64(hva), err)
	}
	return nil
}

// Notifier fan-out. k.notifMu is held shared by the caller.

// span calls f for each mapping's part of backing pages [i0, i1).
func (b *backing) span(i0, i1 int, f func(as *AddressSpace, start, end HVA)) {
	sh := b.k.pageShift
	for _, m := range *b.mappers.Load() {
		lo, hi := max(i0, m.pgoff), min(i1, m.pgoff+m.npages)
		if lo < hi {
			f(m.as, m.start+HVA(uint64(lo-m.pgoff)<<sh), m.start+HVA(uint64(hi-m.pgoff)<<sh))
		}
	}
}

func (b *backing) invalidateStart(i0, i1 int, ev Event) {
	b.span(i0, i1, func(as *AddressSpace, s, e HVA) { as.invalidateStart(Range{s, e, ev}) })
}

func (b *backing) invalidateEnd(i0, i1 int, ev Event) {
	b.span(i0, i1, func(as *AddressSpace, s, e HVA) { as.invalidateEnd(Range{s, e, ev}) })
}

func (b *backing) changePTE(i int, pa mem.PA) {
	b.span(i, i+1, func(as *AddressSpace, s, _ HVA) {
		for _, r := range as.notifiers {
			r.n.ChangePTE(s, pa)
		}
	})
}

// young asks the secondary MMUs about [i0, i1): op 0 ClearYoung, 1
// ClearFlushYoung, 2 TestYoung.
func (b *backing) young(i0, i1 int, op int) bool {
	y := false
	b.span(i0, i1, func(as *AddressSpace, s, e HVA) {
		for _, r := range as.notifiers {
			switch op {
			case 0:
				y = r.n.ClearYoung(s, e) || y
			case 1:
				y = r.n.ClearFlushYoung(s, e) || y
			default:
				y = r.n.TestYoung(s, e) || y
			}
		}
	})
	return y
}

func (as *AddressSpace) invalidateStart(r Range) {
	for _, x := range as.notifiers {
		as.k.invalidates.Add(1)
		x.n.InvalidateRangeStart(r)
	}
}

func (as *AddressSpace) invalidateEnd(r Range) {
	for _, x := range as.notifiers {
		x.n.InvalidateRangeEnd(r)
	}
}
