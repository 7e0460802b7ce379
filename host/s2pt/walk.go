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
	t     tref   // the table holding the entry
	idx   uint64 // the entry's index in t
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
	_, err := c.store(v, false)
	return err
}

// Update changes the descriptor with a compare-and-swap loop: f maps the
// current value to the new one, and is re-run when hardware changed the
// descriptor meanwhile. Each change is checked as Set's is. It returns
// the value replaced.
func (c *Ctx) Update(f func(uint64) uint64) (uint64, error) {
	return c.apply(f, false)
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

// commit is the one place a live descriptor is written: cur, the value
// the walk last saw, is to become n. The change is classified (R_WHZWS)
// and refused with ErrBreakBeforeMake when it needs break-before-make; a
// make first completes any invalidation still pending for its range (the
// TLBI between break and make); the write is a compare-and-swap, and
// reports done=false (c.Old reloaded) when memory no longer held cur
// (hardware set AF or dirty state: the caller decides again); a break or
// a restriction queues its invalidation, and a removed table is released
// with everything below it (freed after the invalidation). Only the
// manager installs tables (table).
func (c *Ctx) commit(cur, n uint64, table bool) (done bool, err error) {
	vm := c.vm
	if !table && n&(desc.ValidBit|desc.TypeBit) == desc.ValidBit|desc.TypeBit && c.Level < 3 {
		return false, fmt.Errorf("s2pt: table descriptor %#x at level %d (IPA %#x): tables are installed by the manager", n, c.Level, uint64(c.Addr))
	}
	var cl change
	switch {
	case cur&desc.ValidBit == 0 && n&desc.ValidBit != 0:
		cl = changeMake
	case cur&desc.ValidBit != 0 && n&desc.ValidBit == 0:
		cl = changeBreak
	default:
		var err error
		if cl, err = vm.layout.classify(c.Level, cur, n); err != nil {
			return false, fmt.Errorf("%w (IPA %#x)", err, uint64(c.Addr))
		}
	}
	size := mem.IPA(c.size)
	if cl == changeMake && vm.npend != 0 && vm.pendingOverlaps(c.Addr, c.Addr+size) {
		vm.flush() // break ... TLBI ... make
		vm.stats.BBM++
	}
	swapped, mapped := vm.cas(c.PTE, cur, n)
	if !mapped {
		return false, fmt.Errorf("s2pt: descriptor at %#x is not in table memory", uint64(c.PTE))
	}
	if !swapped {
		return false, c.Reload()
	}
	c.Old = n
	vm.account(c.t.rec, cur, n)
	switch cl {
	case changeBreak:
		if desc.KindAt(cur, c.Level) == desc.Table {
			// Walk caches may hold the table: the invalidation is not
			// last-level, and its leaves may be of any level.
			vm.queue(c.Addr, c.Addr+size, NoLevelHint, false, vm.layout.TableBytes)
			if t, ok := vm.child(c.t, c.idx, cur); ok {
				vm.release(t.rec)
			}
		} else {
			vm.queue(c.Addr, c.Addr+size, c.Level, true, uint64(size))
		}
	case changeRestrict:
		vm.queue(c.Addr, c.Addr+size, c.Level, true, uint64(size))
	}
	return true, nil
}

// apply changes the descriptor to f(current value) through commit,
// re-running f when hardware changed it meanwhile. It returns the value
// replaced.
func (c *Ctx) apply(f func(uint64) uint64, table bool) (uint64, error) {
	for {
		cur := c.Old
		n := f(cur)
		if n == cur {
			return cur, nil
		}
		if done, err := c.commit(cur, n, table); done || err != nil {
			return cur, err
		}
	}
}

// store changes the descriptor to v through commit (apply with a
// constant).
func (c *Ctx) store(v uint64, table bool) (uint64, error) {
	for {
		cur := c.Old
		if v == cur {
			return cur, nil
		}
		if done, err := c.commit(cur, v, table); done || err != nil {
			return cur, err
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

// walk is the one descent of the tables: every operation (map, unmap,
// lookup, write-protect, the Access-flag operations, relax, split,
// collapse, dirty-state harvesting) is a visitor of it. While the range
// lies inside one entry of a table and that entry is a table wanting no
// pre visit, it descends without building a visit context (the path is
// kept for the post visits, made on the way back up); the rest is
// walkTable's.
func (vm *VM) walk(start, end mem.IPA, v Visitor, flags WalkFlags) error {
	t := vm.root.ref()
	depth := 0
	pre := flags&VisitTablePre != 0
	preCovered := flags&visitPreCovered != 0
	post := flags&VisitTablePost != 0
	// Start in the deepest cached table holding the range, when the
	// tables above it want no visit: pre visits only of covered tables
	// (they span more than the range), post visits only of emptied
	// tables (made below through the records' parents).
	if (!pre || preCovered) && (!post || flags&visitPostEmpty != 0) {
		for l := 3; l > vm.layout.StartLevel; l-- {
			w := vm.wcSlot(l, start)
			span := mem.IPA(1) << vm.lbits[l&7]
			// Not a range covering the table whole: its entry above
			// would then be covered (a pre visit, for Map).
			if w.rec != nil && start-w.base < span && end-1-w.base < span && (start != w.base || end-w.base != span) {
				t = *w
				break
			}
		}
	}
	first := t.rec
	var err error
	for {
		bits := vm.lbits[t.level+1&7]
		idx := uint64(start-t.base) >> bits
		if uint64(end-1-t.base)>>bits != idx {
			err = vm.walkTable(t, start, end, v, flags)
			break
		}
		addr := t.base + mem.IPA(idx<<bits)
		pte := t.pa + mem.PA(idx*8)
		// vm.load and vm.child inlined by hand: this loop is every
		// operation's descent.
		var d uint64
		if i := uint64(pte-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
			d = atomic.LoadUint64(&vm.mw[i])
		} else {
			d, _ = vm.tm.Read64(pte) // a failed read is reported by walkEntry
		}
		if leaf := desc.KindAt(d, t.level) != desc.Table; leaf || pre && (!preCovered || addr == start && addr+mem.IPA(1)<<bits == end) {
			// A leaf is visited here; walkEntry goes on when the visit
			// made it a table (or for a table to visit).
			if leaf && flags&VisitLeaf != 0 {
				c := vm.visitCtx(t, idx, pte, d, addr, start, end)
				if err = v.Visit(c, VisitLeaf); err != nil || desc.KindAt(c.Old, t.level) != desc.Table {
					break
				}
			} else if leaf {
				break
			}
			err = vm.walkEntry(t, idx, addr, start, end, v, flags)
			break
		}
		cpa := vm.tableOA(d)
		s := &vm.rc[uint64(cpa)>>vm.gbits%uint64(len(vm.rc))]
		if s.pa != cpa || s.rec == nil {
			s = vm.rcFill(s, cpa)
		}
		if s == nil || s.ppa != t.pa || s.index != idx {
			err = vm.childErr(t, idx, d)
			break
		}
		child := tref{rec: s.rec, pa: cpa, base: addr, level: t.level + 1}
		*vm.wcSlot(child.level, addr) = child
		if post {
			p := &vm.path[depth&7]
			p.t, p.child, p.idx = t, child, idx
			depth++
		}
		t = child
	}
	if post && err == nil {
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
	c.PTE, c.Old, c.t, c.idx, c.child = pte, d, t, idx, nil
	c.size = 1 << vm.lbits[t.level+1&7]
	return c
}
