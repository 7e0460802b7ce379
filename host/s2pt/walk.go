package s2pt

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/mem"
)

// WalkFlags select when a Visitor is called.
type WalkFlags uint8

// Visit points.
const (
	// VisitLeaf visits every entry in range that is not a table
	// descriptor (invalid, block, page, or unsupported).
	VisitLeaf WalkFlags = 1 << iota
	// VisitTablePre visits a table descriptor before its table is walked.
	VisitTablePre
	// VisitTablePost visits a table descriptor after its table was walked.
	VisitTablePost

	// visitPreCovered limits pre visits to tables whose entry the range
	// covers whole (Map: only there may a table become a block).
	visitPreCovered WalkFlags = 1 << 6
	// visitPostEmpty limits post visits to tables left with no valid
	// entry (Unmap: only those are removed).
	visitPostEmpty WalkFlags = 1 << 7
	exportedFlags            = VisitLeaf | VisitTablePre | VisitTablePost
)

// Visitor is an operation over a range of stage-2 descriptors.
type Visitor interface {
	// Visit is called with the entry's context; at says which visit it
	// is. A non-nil error stops the walk and is returned by it.
	Visit(c *Ctx, at WalkFlags) error
}

// VisitorFunc adapts a function to Visitor.
type VisitorFunc func(c *Ctx, at WalkFlags) error

// Visit implements Visitor.
func (f VisitorFunc) Visit(c *Ctx, at WalkFlags) error { return f(c, at) }

// Ctx describes the descriptor being visited. A visitor changes it only
// through Set and Update, which apply the architecture's rules for
// changing a live descriptor (see ErrBreakBeforeMake).
type Ctx struct {
	vm *VM
	// Level is the entry's level.
	Level int
	// Addr is the first IPA the entry covers; it covers Size() bytes.
	Addr mem.IPA
	// Start and End are the part of the walk's range [Start, End) inside
	// the table holding the entry.
	Start, End mem.IPA
	// PTE is the descriptor's host physical address.
	PTE mem.PA
	// Old is the descriptor as last read or written by the walk.
	Old   uint64
	at    spot   // the entry, for commit (at.d unused)
	size  uint64 // Size()
	child *table // table visits: the table below
}

// Size returns the IPA range one entry at c.Level covers.
func (c *Ctx) Size() uint64 { return c.size }

// Kind returns the kind of c.Old at c.Level.
func (c *Ctx) Kind() desc.Kind { return desc.KindAt(c.Old, c.Level) }

// Covered reports whether the entry's whole range lies inside the walk.
func (c *Ctx) Covered() bool {
	return c.Addr >= c.Start && uint64(c.Addr)+c.Size() <= uint64(c.End)
}

// Reload re-reads the descriptor (hardware may have set AF or dirty state).
func (c *Ctx) Reload() error {
	v, ok := c.vm.load(c.PTE)
	if !ok {
		return fmt.Errorf("s2pt: descriptor at %#x (level %d, IPA %#x) is not readable", uint64(c.PTE), c.Level, uint64(c.Addr))
	}
	c.Old = v
	return nil
}

// Set replaces the descriptor by v, a leaf or invalid descriptor, if the
// architecture allows the change on a live entry (ErrBreakBeforeMake
// otherwise; the TLB invalidation it needs is issued by the manager). A
// hardware Access-flag or dirty update made since c.Old was read is
// overwritten; use Update to keep it.
func (c *Ctx) Set(v uint64) error {
	if desc.KindAt(v, c.Level) == desc.Table {
		return fmt.Errorf("s2pt: Set of table descriptor %#x at level %d: tables are installed by the manager", v, c.Level)
	}
	_, err := c.store(v, 0)
	return err
}

// Update changes the descriptor with a compare-and-swap loop: f maps the
// current value to the new one, and is re-run when hardware changed the
// descriptor meanwhile. Each change is checked as Set's is. It returns
// the value replaced.
func (c *Ctx) Update(f func(uint64) uint64) (uint64, error) {
	return c.apply(f, 0)
}

// ErrBreakBeforeMake is returned (wrapped, with the values and the reason)
// for a change of a valid descriptor that the architecture allows only
// through an invalid entry and a TLB invalidation: a change of output
// address, of size (level or Contiguous hint) or of memory attributes
// (DDI 0487I.a D8.13.1, R_WHZWS), or replacing a table by anything but an
// invalid entry. Visitors make such changes in two steps: Set(0), then
// Set(new), and the manager issues the invalidation in between.
var ErrBreakBeforeMake = errors.New("s2pt: the change needs break-before-make")

// change classifies a descriptor change (see classify).
type change uint8

const (
	changeNone     change = iota // invalid to invalid
	changeMake                   // invalid to valid
	changeBreak                  // valid to invalid
	changeRelax                  // same translation, no right removed: no invalidation
	changeRestrict               // same translation, a right removed: invalidation after
)

// classify decides from the old and new descriptor at level whether the
// change is allowed on a live entry without break-before-make, and what
// invalidation it needs. Allowed in place: the stage-2 access rights
// (S2AP, XN), the Access flag, DBM and the software bits. Everything else
// on a valid entry (output address, block or page, the Contiguous hint,
// MemAttr, shareability, any other bit, a table on either side) needs BBM
// (R_WHZWS).
func (l *Layout) classify(level int, old, new uint64) (change, error) {
	switch ov, nv := old&desc.ValidBit != 0, new&desc.ValidBit != 0; {
	case !ov && !nv:
		return changeNone, nil
	case !ov:
		return changeMake, nil
	case !nv:
		return changeBreak, nil
	}
	ok, nk := desc.KindAt(old, level), desc.KindAt(new, level)
	f := l.Format
	var why string
	switch {
	case ok == desc.Table || nk == desc.Table:
		why = "a table entry is replaced only through an invalid entry"
	case ok != nk:
		why = fmt.Sprintf("the entry changes from %v to %v", ok, nk)
	case f.LeafOA(old, level) != f.LeafOA(new, level):
		why = "the output address changes"
	case (old^new)&desc.ContigBit != 0:
		why = "the Contiguous hint (the size of the TLB entry) changes"
	case (old^new)&desc.S2MemAttrMask != 0 || (!f.DS && (old^new)&desc.SHMask != 0):
		why = "the memory attributes change"
	case f.WithOA(old^new, 0)&^inPlaceBits != 0:
		why = fmt.Sprintf("bits %#x change", f.WithOA(old^new, 0)&^inPlaceBits)
	}
	if why != "" {
		return 0, fmt.Errorf("%w: %#x -> %#x at level %d: %s", ErrBreakBeforeMake, old, new, level, why)
	}
	if removesRights(old, new) {
		return changeRestrict, nil
	}
	return changeRelax, nil
}

// inPlaceBits are the leaf bits a live entry may change without BBM.
const inPlaceBits = desc.S2APReadBit | desc.S2APWriteBit | desc.S2XNMask | desc.AFBit | desc.DBMBit | desc.SWMask

// removesRights reports whether going from old to new (two leaves with the
// same translation) takes away a right a TLB may hold: read, write
// (S2AP[1], or DBM, by which the hardware may make the page writable), or
// execution at EL0 or EL1 (XN[1:0] as FEAT_XNX reads it; without it only
// XN[1] counts, and the extra invalidation is harmless).
func removesRights(old, new uint64) bool {
	if old&^new&(desc.S2APReadBit|desc.S2APWriteBit|desc.DBMBit) != 0 {
		return true
	}
	ox0, ox1 := xnRights(desc.Field(old, desc.S2XNMask))
	nx0, nx1 := xnRights(desc.Field(new, desc.S2XNMask))
	return ox0 && !nx0 || ox1 && !nx1
}

// xnRights returns execution at EL0 and EL1 for XN[1:0] (FEAT_XNX).
func xnRights(xn uint64) (el0, el1 bool) {
	switch xn {
	case 0:
		return true, true
	case 1:
		return true, false
	case 3:
		return false, true
	}
	return false, false
}

// Ways a commit may write (commitFlags).
const (
	// commitTable: the manager installs a table descriptor.
	commitTable = 1 << iota
	// commitConst: the new value does not depend on the old one, so a
	// break may swap it in whatever hardware set meanwhile.
	commitConst
)

// commit is the one place a live descriptor is written: entry idx of
// table t (at pte, covering the IPAs from addr at level t.level) held cur
// when last seen and is to hold n. The change is classified (R_WHZWS) and
// refused with ErrBreakBeforeMake when it needs break-before-make; a make
// first completes any invalidation still pending for its range (the TLBI
// between break and make); a break or a restriction queues its
// invalidation, and a removed table is released with everything below it
// (freed after the invalidation). Only the manager installs tables
// (commitTable). It returns the value replaced; done is false (prev then
// being the value found) when memory no longer held cur: hardware set AF
// or dirty state, and the caller decides again.
//
// A make is a plain atomic store: hardware writes a descriptor only by
// an update that compares it with the valid descriptor its walk read
// (AArch64.MemSwapTableDesc), so an invalid entry has no other writer.
// A constant break is a swap, which takes whatever hardware set with it;
// every other change is a compare-and-swap. make and breakLeaf, the parts
// of commit for a make and for a constant break of a leaf (which need no
// classification), are called directly only by Map's and unmap's one-leaf
// common cases; nothing else writes a live descriptor.
func (vm *VM) commit(at *spot, cur, n uint64, flags uint8) (prev uint64, done bool, err error) {
	t, pte, addr := &at.t, at.pte, at.addr
	level := t.level
	switch cur&desc.ValidBit<<1 | n&desc.ValidBit {
	case 1:
		if flags&commitTable == 0 && n&desc.TypeBit != 0 && level < 3 {
			return cur, false, fmt.Errorf("s2pt: table descriptor %#x at level %d (IPA %#x): tables are installed by the manager", n, level, uint64(addr))
		}
		return cur, true, vm.make(t.rec, level, pte, addr, n)
	case 2: // break
		if level == 3 || cur&desc.TypeBit == 0 { // a leaf
			if flags&commitConst != 0 {
				prev, err = vm.breakLeaf(t.rec, level, pte, addr, n)
				return prev, err == nil, err
			}
			if prev, done, err = vm.casDesc(pte, cur, n); !done {
				return prev, false, err
			}
			vm.brokeLeaf(t.rec, level, addr)
			return prev, true, nil
		}
		// A table: swapped or compare-and-swapped as a leaf is.
		if flags&commitConst != 0 {
			var ok bool
			if prev, ok = vm.swapDesc(pte, n); !ok {
				return cur, false, vm.notTableMemory(pte)
			}
		} else if prev, done, err = vm.casDesc(pte, cur, n); !done {
			return prev, false, err
		}
		vm.account(t.rec, cur, n)
		// Walk caches may hold the table: the invalidation is not
		// last-level, and its leaves may be of any level.
		vm.queue(addr, addr+mem.IPA(vm.span[level+1&7]), NoLevelHint, false, vm.layout.TableBytes)
		if c, ok := vm.child(*t, at.idx, cur); ok {
			vm.release(c.rec)
		}
		return prev, true, nil
	}
	size := mem.IPA(1) << vm.lbits[level+1&7]
	cl, err := vm.layout.classify(level, cur, n)
	if err != nil {
		return cur, false, fmt.Errorf("%w (IPA %#x)", err, uint64(addr))
	}
	if prev, done, err = vm.casDesc(pte, cur, n); !done {
		return prev, false, err
	}
	if cl == changeRestrict {
		vm.queue(addr, addr+size, level, true, uint64(size))
	}
	return prev, true, nil
}

// make is commit's make of n over the invalid entry at pte (in table rec
// of level, covering the IPAs from addr): the invalidation a break of its
// range queued completes first (the TLBI between break and make), then n
// is stored. It takes the spot's fields, not a *spot, so that Map's
// common case builds no spot.
func (vm *VM) make(rec *table, level int, pte mem.PA, addr mem.IPA, n uint64) error {
	if vm.npend != 0 && vm.pendingOverlaps(addr, addr+mem.IPA(1)<<vm.lbits[level+1&7]) {
		vm.flush() // break ... TLBI ... make
		vm.stats.BBM++
	}
	if i := uint64(pte-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		atomic.StoreUint64(&vm.mw[i], n) // vm.storeDesc inlined by hand
	} else if !vm.storeDesc(pte, n) {
		return vm.notTableMemory(pte)
	}
	if rec != vm.root {
		rec.live++ // a kept table stays listed (see keep)
	}
	return nil
}

// breakLeaf is commit's constant break of the leaf at pte (in table rec
// of level, covering the IPAs from addr) to the invalid n: n is swapped in,
// taking whatever the hardware set meanwhile with it (brokeLeaf then). It
// returns the value replaced. It takes the spot's fields, not a *spot, so
// that unmap's common case builds no spot.
func (vm *VM) breakLeaf(rec *table, level int, pte mem.PA, addr mem.IPA, n uint64) (prev uint64, err error) {
	if i := uint64(pte-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		prev = atomic.SwapUint64(&vm.mw[i], n) // vm.swapDesc inlined by hand
	} else {
		var ok bool
		if prev, ok = vm.swapDesc(pte, n); !ok {
			return prev, vm.notTableMemory(pte)
		}
	}
	vm.brokeLeaf(rec, level, addr)
	return prev, nil
}

// brokeLeaf accounts for the break of a leaf of table rec at level
// covering the IPAs from addr: its table counts one valid entry less, and
// the last-level invalidation of the leaf is queued.
func (vm *VM) brokeLeaf(rec *table, level int, addr mem.IPA) {
	if rec != vm.root && rec.live > 0 {
		rec.live-- // vm.account inlined by hand
	} else {
		vm.account(rec, 1, 0)
	}
	size := vm.span[level+1&7]
	if vm.npend != 0 {
		vm.queue(addr, addr+mem.IPA(size), level, true, size)
		return
	}
	// vm.queue's first range, inlined by hand, field by field: a Range
	// literal is built on the stack and copied, and the copy's wide loads
	// stall on its narrow stores (no store forwarding).
	p := &vm.pend[0]
	p.Start, p.End, p.Level, p.LeafOnly, p.Stride = addr, addr+mem.IPA(size), level, true, size
	vm.npend = 1
}

// casDesc compare-and-swaps the descriptor at pte from cur to n; when
// memory no longer holds cur, it returns the value it holds (done false).
func (vm *VM) casDesc(pte mem.PA, cur, n uint64) (prev uint64, done bool, err error) {
	swapped, ok := vm.cas(pte, cur, n)
	if ok && !swapped {
		prev, ok = vm.load(pte)
	}
	if !ok {
		return cur, false, vm.notTableMemory(pte)
	}
	if !swapped {
		return prev, false, nil
	}
	return cur, true, nil
}

func (vm *VM) notTableMemory(pte mem.PA) error {
	return fmt.Errorf("s2pt: descriptor at %#x is not in table memory", uint64(pte))
}

// commit writes the visited descriptor (VM.commit), keeping c.Old the
// value memory holds.
func (c *Ctx) commit(cur, n uint64, flags uint8) (prev uint64, done bool, err error) {
	prev, done, err = c.vm.commit(&c.at, cur, n, flags)
	switch {
	case done:
		c.Old = n
	case err == nil:
		c.Old = prev
	}
	return prev, done, err
}

// apply changes the descriptor to f(current value) through commit,
// re-running f when hardware changed it meanwhile. It returns the value
// replaced.
func (c *Ctx) apply(f func(uint64) uint64, flags uint8) (uint64, error) {
	for {
		cur := c.Old
		n := f(cur)
		if n == cur {
			return cur, nil
		}
		if prev, done, err := c.commit(cur, n, flags); done || err != nil {
			return prev, err
		}
	}
}

// store changes the descriptor to v through commit and returns the value
// replaced.
func (c *Ctx) store(v uint64, flags uint8) (uint64, error) {
	for {
		cur := c.Old
		if v == cur {
			return cur, nil
		}
		if prev, done, err := c.commit(cur, v, flags|commitConst); done || err != nil {
			return prev, err
		}
	}
}

// Walk calls v for the descriptors covering [start, end) (VisitLeaf,
// VisitTablePre, VisitTablePost as flags select), under the MMU lock.
// Invalidations the visitor's changes need are issued, and tables it
// removed freed, before Walk returns.
func (vm *VM) Walk(start, end mem.IPA, v Visitor, flags WalkFlags) error {
	if err := vm.lock(); err != nil {
		return err
	}
	defer vm.unlock()
	if err := vm.checkRange(start, end); err != nil {
		return err
	}
	return vm.finish(vm.walk(start, end, v, flags&exportedFlags))
}

func (vm *VM) checkRange(start, end mem.IPA) error {
	if vm.destroyed {
		return errors.New("s2pt: VM is destroyed")
	}
	if start >= end || uint64(end) > 1<<vm.layout.IPABits {
		return fmt.Errorf("s2pt: IPA range [%#x, %#x) is empty or beyond the %d-bit IPA space", uint64(start), uint64(end), vm.layout.IPABits)
	}
	return nil
}

// spot is an entry a descent stopped at: entry idx of table t, at pte,
// holding d (as read) and covering the IPAs from addr.
type spot struct {
	t    tref
	idx  uint64
	pte  mem.PA
	d    uint64
	addr mem.IPA
}

// Where entryOf stops.
const (
	stopEntry   = iota // at an entry that is not a table, holding the whole range
	stopSpan           // in table s.t, whose entries the range spans several of
	stopPre            // at a table entry to visit before descending (flags)
	stopRefused        // at a table descriptor that is not this entry's table
)

// entryOf is the descent of every operation: from the deepest table of
// the walk cache holding [start, end) (the root when none may be used),
// through table descriptors while the range lies inside one entry, to the
// first entry that is not a table, building no visit context. It stops
// earlier at a table entry that wants a pre visit (flags), or in a table
// whose entries the range spans several of, where the walk goes on entry
// by entry. With post visits (flags) it starts at the root, or in a
// cached table when only emptied tables are visited (made above it
// through the records' parents), and records the table entries it
// descends through in vm.path (depth of them). first is the table it
// started in.
func (vm *VM) entryOf(s *spot, start, end mem.IPA, flags WalkFlags) (stop int, first *table, depth int) {
	t := vm.root.ref()
	pre := flags&VisitTablePre != 0
	preCovered := flags&visitPreCovered != 0
	post := flags&VisitTablePost != 0
	// Start in the deepest cached table holding the range, when the
	// tables above it want no visit: pre visits only of covered tables
	// (they span more than the range), post visits only of emptied
	// tables.
	if (!pre || preCovered) && (!post || flags&visitPostEmpty != 0) {
		for l := 3; l > vm.layout.StartLevel; l-- {
			// A table spanning more than the range (a range covering a
			// table whole would make its entry above covered: a pre
			// visit, for Map).
			span := mem.IPA(1) << (vm.lbits[l&7] & 63)
			if end-start >= span {
				continue
			}
			if w := vm.wcSlot(l, start); w.rec != nil && start-w.base < span && end-1-w.base < span {
				t = *w
				break
			}
		}
	}
	first = t.rec
	for {
		bits := vm.lbits[t.level+1&7]
		idx := uint64(start-t.base) >> bits
		if uint64(end-1-t.base)>>bits != idx {
			s.t = t
			return stopSpan, first, depth
		}
		s.t, s.idx, s.pte, s.addr = t, idx, t.pa+mem.PA(idx*8), t.base+mem.IPA(idx<<bits)
		// vm.load and vm.child inlined by hand: this loop is every
		// operation's descent.
		if i := uint64(s.pte-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
			s.d = atomic.LoadUint64(&vm.mw[i])
		} else {
			s.d, _ = vm.tm.Read64(s.pte) // a failed read is reported by walkEntry
		}
		if desc.KindAt(s.d, t.level) != desc.Table {
			return stopEntry, first, depth
		}
		if pre && (!preCovered || s.addr == start && s.addr+mem.IPA(1)<<bits == end) {
			return stopPre, first, depth
		}
		cpa := vm.tableOA(s.d)
		r := &vm.rc[uint64(cpa)>>vm.gbits%uint64(len(vm.rc))]
		if r.pa != cpa || r.rec == nil {
			r = vm.rcFill(r, cpa)
		}
		if r == nil || r.ppa != t.pa || r.index != idx {
			return stopRefused, first, depth
		}
		child := tref{rec: r.rec, pa: cpa, base: s.addr, level: t.level + 1}
		*vm.wcSlot(child.level, s.addr) = child
		if post {
			p := &vm.path[depth&7]
			p.t, p.child, p.idx = t, child, idx
			depth++
		}
		t = child
	}
}

// walk is the one walk of the tables: every operation (map, unmap,
// write-protect, the Access-flag operations, relax, split, collapse,
// dirty-state harvesting) is a visitor of it, after entryOf's descent.
// Post visits are made on the way back up.
func (vm *VM) walk(start, end mem.IPA, v Visitor, flags WalkFlags) error {
	var s spot
	stop, first, depth := vm.entryOf(&s, start, end, flags)
	var err error
	switch stop {
	case stopSpan:
		err = vm.walkTable(s.t, start, end, v, flags)
	case stopRefused:
		err = vm.childErr(s.t, s.idx, s.d)
	case stopPre:
		err = vm.walkEntry(s.t, s.idx, s.addr, start, end, v, flags)
	case stopEntry:
		if flags&VisitLeaf == 0 {
			break
		}
		// walkEntry goes on when the visit made the entry a table.
		c := vm.visitCtx(s.t, s.idx, s.pte, s.d, s.addr, start, end)
		if err = v.Visit(c, VisitLeaf); err == nil && desc.KindAt(c.Old, s.t.level) == desc.Table {
			err = vm.walkEntry(s.t, s.idx, s.addr, start, end, v, flags)
		}
	}
	if flags&VisitTablePost != 0 && err == nil {
		err = vm.postVisits(first, depth, start, end, v, flags)
	}
	return err
}

// postVisits makes walk's post visits on the way back up: of the depth
// table entries it descended through, then, when it started below the
// root (first), of the tables above that the walk emptied, through the
// records (post visits of emptied tables only; a table not emptied keeps
// its parents non-empty).
func (vm *VM) postVisits(first *table, depth int, start, end mem.IPA, v Visitor, flags WalkFlags) error {
	for depth > 0 {
		depth--
		p := &vm.path[depth&7]
		if flags&visitPostEmpty != 0 && p.child.rec.live != 0 {
			continue
		}
		pte := p.t.pa + mem.PA(p.idx*8)
		d, ok := vm.load(pte)
		if !ok || desc.KindAt(d, p.t.level) != desc.Table || vm.tableOA(d) != p.child.pa {
			continue // replaced below (not by a visit of this walk: tables are not)
		}
		c := vm.visitCtx(p.t, p.idx, pte, d, p.child.base, start, end)
		c.child = p.child.rec
		if err := v.Visit(c, VisitTablePost); err != nil {
			return err
		}
	}
	for r := first; r != vm.root && r.live == 0 && r.inUse; {
		p := r.parent
		pt := p.ref()
		pte := p.pa + mem.PA(r.index*8)
		d, ok := vm.load(pte)
		if !ok || desc.KindAt(d, pt.level) != desc.Table || vm.tableOA(d) != r.pa {
			break
		}
		c := vm.visitCtx(pt, r.index, pte, d, r.base, start, end)
		c.child = r
		if err := v.Visit(c, VisitTablePost); err != nil {
			return err
		}
		r = p
	}
	return nil
}

// walkTable visits the entries of table t that intersect [start, end).
// Leaves are visited here; tables (and leaves a visit makes tables) are
// walkEntry's.
func (vm *VM) walkTable(t tref, start, end mem.IPA, v Visitor, flags WalkFlags) error {
	bits := vm.lbits[t.level+1&7]
	n := vm.entries(t)
	leafVisits := flags&VisitLeaf != 0
	for idx := uint64(start-t.base) >> bits; idx < n; idx++ {
		addr := t.base + mem.IPA(idx<<bits)
		if addr >= end {
			return nil
		}
		pte := t.pa + mem.PA(idx*8)
		var d uint64 // vm.load inlined by hand, as in walk (too costly to inline)
		if i := uint64(pte-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
			d = atomic.LoadUint64(&vm.mw[i])
		} else {
			d, _ = vm.tm.Read64(pte) // a failed read is reported by walkEntry
		}
		if desc.KindAt(d, t.level) != desc.Table {
			if !leafVisits {
				continue
			}
			c := vm.visitCtx(t, idx, pte, d, addr, start, end)
			if err := v.Visit(c, VisitLeaf); err != nil {
				return err
			}
			if desc.KindAt(c.Old, t.level) != desc.Table {
				continue
			}
		}
		if err := vm.walkEntry(t, idx, addr, start, end, v, flags); err != nil {
			return err
		}
	}
	return nil
}

// walkEntry visits entry idx of table t (covering IPAs from addr) and the
// table below it. An entry a leaf visit turns into a table is descended
// into; a table a pre visit replaces is not.
func (vm *VM) walkEntry(t tref, idx uint64, addr, start, end mem.IPA, v Visitor, flags WalkFlags) error {
	level := t.level
	pte := t.pa + mem.PA(idx*8)
	d, ok := vm.load(pte)
	if !ok {
		return fmt.Errorf("s2pt: descriptor at %#x (level %d, IPA %#x) is not readable", uint64(pte), level, uint64(addr))
	}
	next := addr + mem.IPA(1)<<vm.lbits[level+1]
	if desc.KindAt(d, level) == desc.Table &&
		(flags&VisitTablePre == 0 || flags&visitPreCovered != 0 && (addr < start || next > end)) {
		// A table passed through without a pre visit: no context.
		child, ok := vm.child(t, idx, d)
		if !ok {
			return vm.childErr(t, idx, d)
		}
		if err := vm.walkTable(child, max(start, addr), min(end, next), v, flags); err != nil {
			return err
		}
		if flags&VisitTablePost != 0 && (flags&visitPostEmpty == 0 || child.rec.live == 0) {
			c := vm.visitCtx(t, idx, pte, d, addr, start, end)
			c.child = child.rec
			return v.Visit(c, VisitTablePost)
		}
		return nil
	}
	c := vm.visitCtx(t, idx, pte, d, addr, start, end)
	var child tref
	if desc.KindAt(d, level) != desc.Table {
		if flags&VisitLeaf == 0 {
			return nil
		}
		if err := v.Visit(c, VisitLeaf); err != nil {
			return err
		}
		if desc.KindAt(c.Old, level) != desc.Table {
			return nil
		}
	} else {
		if child, ok = vm.child(t, idx, d); !ok {
			return vm.childErr(t, idx, d)
		}
		c.child = child.rec
		if err := v.Visit(c, VisitTablePre); err != nil {
			return err
		}
		if c.Old != d {
			if desc.KindAt(c.Old, level) != desc.Table {
				return nil
			}
			child.rec = nil
		}
	}
	if child.rec == nil {
		if child, ok = vm.child(t, idx, c.Old); !ok {
			return vm.childErr(t, idx, c.Old)
		}
	}
	if err := vm.walkTable(child, max(start, addr), min(end, next), v, flags); err != nil {
		return err
	}
	if flags&VisitTablePost != 0 && (flags&visitPostEmpty == 0 || child.rec.live == 0) {
		c.child = child.rec // the deeper levels used other Ctx slots; this one is intact
		return v.Visit(c, VisitTablePost)
	}
	return nil
}

// visitCtx fills the level's context for a visit of entry idx of t.
func (vm *VM) visitCtx(t tref, idx uint64, pte mem.PA, d uint64, addr, start, end mem.IPA) *Ctx {
	c := &vm.ctx[t.level+1]
	// Field by field: a composite literal would be built aside and copied
	// with the pointer fields' write barriers.
	c.Level, c.Addr, c.Start, c.End = t.level, addr, start, end
	c.PTE, c.Old, c.child = pte, d, nil
	c.at.t, c.at.idx, c.at.pte, c.at.addr = t, idx, pte, addr
	c.size = 1 << vm.lbits[t.level+1&7]
	return c
}
