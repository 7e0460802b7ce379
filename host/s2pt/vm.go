package s2pt

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// table is the manager's record of one table page (the root included):
// where it is, where it hangs, and how many of its descriptors are valid.
type table struct {
	pa     mem.PA
	parent *table // nil for the root
	ppa    mem.PA // parent's address
	index  uint64 // the entry of parent that points here
	base   mem.IPA
	n      uint64 // entries
	level  int8
	inUse  bool  // hung in the tree (or queued to be freed); false in the reserve
	kept   bool  // in vm.kept: emptied by an unmap and kept in place (keep), maybe filled again since
	live   int32 // valid descriptors
}

// tref is a table as a walk needs it, carried by value so that a descent
// does not touch the records (cold memory) of the tables it passes.
type tref struct {
	rec   *table
	pa    mem.PA
	base  mem.IPA // the first IPA the table covers
	level int
}

func (t *table) ref() tref {
	return tref{rec: t, pa: t.pa, base: t.base, level: int(t.level)}
}

// entries returns the number of entries of table t.
func (vm *VM) entries(t tref) uint64 {
	if t.level == vm.layout.StartLevel {
		return vm.layout.RootEntries
	}
	return vm.nent
}

// rcEntry caches one record by address with what validating a table
// descriptor needs: the parent table and entry it must hang from.
type rcEntry struct {
	pa, ppa mem.PA
	index   uint64
	rec     *table
}

// Stats are a VM's page-table accounting.
type Stats struct {
	// Tables is the number of non-root table pages in use.
	Tables int
	// TableBytes is the memory of the root and every table in use.
	TableBytes uint64
	// RootBytes is the root's share of TableBytes.
	RootBytes uint64
	// EmptyTables are tables an unmap emptied that stay in place for
	// the next map there (Config.KeepEmpty), counted in Tables and
	// TableBytes; Trim frees them.
	EmptyTables int
	// ReserveBytes are detached emptied tables kept for reuse (at most
	// reserveMax pages), not in TableBytes.
	ReserveBytes uint64
	// BBM counts break-before-make sequences: a valid entry made invalid,
	// invalidated, and only then replaced.
	BBM uint64
	// TLBIs counts the stage-2 invalidations issued: one per range (or
	// per page or whole VMID where the Invalidator cannot take ranges).
	// Flushes counts the batches they were issued in (at most one per
	// operation, plus one before each make that completes a BBM).
	TLBIs, Flushes uint64
}

// VM is one VM's stage-2 address space. The modelled hardware may walk
// its tables at any time.
//
// Its methods are serialized by the MMU lock: Config.MMULock when set (the
// hypervisor's lock, which the caller must hold around every call, as KVM
// holds kvm->mmu_lock around its page-table calls; a call without it
// returns an error), otherwise a mutex of the VM's own that every method
// takes.
type VM struct {
	// The fields every operation reads, first (a few cache lines); the
	// big arrays at the end.
	ext       *sync.Mutex // Config.MMULock
	busy      bool        // an operation is running (visitors must not call back)
	destroyed bool
	blocks    uint8 // bit level+1 set where blocks are allowed (Layout.BlockLevel)
	npend     int
	// mbase and mw are the table memory's words when it gives them
	// directly (directWords), else nil.
	mbase mem.PA
	mw    []uint64
	lbits [8]uint   // leafBits per level -1..3 at level+1 (8 entries: &7 needs no bounds check)
	span  [8]uint64 // 1<<lbits
	// gmask is the granule's offset mask; ipaEnd and paEnd are the
	// sizes of the IPA and PA spaces.
	gmask, ipaEnd, paEnd uint64
	// A table descriptor's next-level address, branch-free in every
	// layout: d&oaLo | (d>>oaHS&oaHM)<<oaHP | d&oaHK.
	oaLo, oaHM, oaHK uint64
	oaHS, oaHP       uint
	root             *table
	reserve          []*table // see reserveCap
	freeq            []*table
	rinv             RangeInvalidator // inv, when it takes ranges
	noInv            bool             // inv is noInvalidator: a flush calls nothing
	accErr           error
	// levelOf is the level whose entries map 1<<n bytes, at n (-9: none);
	// fastLevel is the same for the leaves the common cases of Map and
	// unmap handle: a page, or a block of a block level, below the
	// root.
	levelOf, fastLevel [64]int8
	// kept are the tables kept in place when emptied (table.kept, some
	// maybe filled again since), oldest first, at most keepCap; evict are
	// empty kept tables a newer one displaced, which
	// finish detaches and frees if they are still empty.
	kept, evict []*table
	keepCap     int
	stats       Stats
	visitors    visitors

	mu     sync.Mutex // the MMU lock when Config.MMULock is nil
	layout Layout
	gbits  uint   // log2 of the granule
	nent   uint64 // entries of a non-root table
	// blockMasks are the offset masks of the block sizes, largest first
	// (nblock of them).
	blockMasks [4]uint64
	nblock     int
	tm         TableMemory
	inv        Invalidator
	// tables are the non-root tables by address, the reserve's too
	// (table.inUse tells them apart); rc caches recent records of tables
	// in use by address (direct-mapped), in front of the map.
	tables map[mem.PA]*table
	// reserve holds up to reserveMax detached, invalidated, empty tables
	// for the next tables this VM makes (instead of a trip through the
	// table memory's allocator and a zeroing); Destroy frees them.
	reserveCap int // reserveMax; tests set 0 to see every free

	pend [maxPending]Range
	ctx  [5]Ctx // one per level -1..3, reused by every walk
	path [8]struct {
		t, child tref
		idx      uint64
	} // the table entries walk descended through, for post visits (5 used)
	rc [256]rcEntry
	// wc is a walk cache: per table level, the last tables descended
	// into, by the IPA span they cover (direct-mapped). A walk whose range
	// lies in a cached table starts there. Exact: release drops a table's
	// entry, and nothing else changes which table covers a span.
	wc [4][64]tref
}

// New creates a VM's stage-2 tables: it allocates the (concatenated) root
// from tm. inv may be nil when no TLB is modelled.
func New(cfg Config, tm TableMemory, inv Invalidator) (*VM, error) {
	l, err := NewLayout(cfg)
	if err != nil {
		return nil, err
	}
	if inv == nil {
		inv = noInvalidator{}
	}
	root, err := tm.AllocTable(l.RootBytes)
	if err != nil {
		return nil, fmt.Errorf("s2pt: allocating the %d-byte stage-2 root: %w", l.RootBytes, err)
	}
	vm := &VM{layout: l, tm: tm, inv: inv, ext: cfg.MMULock, tables: map[mem.PA]*table{}, reserve: make([]*table, 0, reserveMax), reserveCap: reserveMax, keepCap: keepDefault}
	if cfg.KeepEmpty != 0 {
		vm.keepCap = max(cfg.KeepEmpty, 0)
	}
	vm.kept, vm.evict = make([]*table, 0, vm.keepCap), make([]*table, 0, vm.keepCap)
	vm.rinv, _ = inv.(RangeInvalidator)
	_, vm.noInv = inv.(noInvalidator)
	if uint64(root)%l.RootBytes != 0 || uint64(root)>>l.PABits != 0 || (uint64(root)>>48 != 0 && !l.Format.DS && !l.Format.OA52) {
		_ = tm.FreeTable(root, l.RootBytes)
		return nil, fmt.Errorf("s2pt: root %#x is not aligned to %#x or not expressible in VTTBR_EL2 with %d-bit PA", uint64(root), l.RootBytes, l.PABits)
	}
	for i := range vm.levelOf {
		vm.levelOf[i], vm.fastLevel[i] = -9, -9
	}
	for lvl := -1; lvl <= 3; lvl++ {
		vm.lbits[lvl+1] = l.leafBits(lvl)
		vm.span[lvl+1] = 1 << l.leafBits(lvl)
		if lvl >= l.StartLevel {
			vm.levelOf[l.leafBits(lvl)&63] = int8(lvl)
		}
		if lvl > l.StartLevel && (lvl == 3 || l.BlockLevel(lvl)) {
			vm.fastLevel[l.leafBits(lvl)&63] = int8(lvl)
		}
		if l.BlockLevel(lvl) {
			vm.blocks |= 1 << (lvl + 1)
			vm.blockMasks[vm.nblock&3] = 1<<l.leafBits(lvl) - 1
			vm.nblock++
		}
	}
	vm.gbits = l.Format.Granule.Bits()
	vm.gmask, vm.ipaEnd, vm.paEnd = l.TableBytes-1, 1<<l.IPABits, 1<<l.PABits
	vm.oaLo = (1<<48 - 1) &^ (1<<vm.gbits - 1)
	switch {
	case l.Format.Granule == sysreg.Granule64K && l.Format.OA52:
		vm.oaHS, vm.oaHM, vm.oaHP = 12, 0xf, 48 // OA[51:48] in bits [15:12]
	case l.Format.DS && l.Format.Granule != sysreg.Granule64K:
		vm.oaHS, vm.oaHM, vm.oaHP, vm.oaHK = 8, 3, 50, 3<<48 // OA[51:50] in [9:8], OA[49:48] in place
	}
	vm.nent = l.entries()
	vm.root = &table{pa: root, n: l.RootEntries, level: int8(l.StartLevel)}
	if d, ok := tm.(directWords); ok {
		vm.mbase, vm.mw = d.allWords()
	}
	vm.stats.RootBytes = l.RootBytes
	vm.stats.TableBytes = l.RootBytes
	for i := range vm.ctx {
		vm.ctx[i].vm = vm
	}
	vm.visitors.init(vm)
	return vm, nil
}

// errLockNotHeld is returned by a VM with an external MMU lock when the
// caller does not hold it.
var errLockNotHeld = errors.New("s2pt: the MMU lock (Config.MMULock) is not held")

// lock enters an operation: it takes the VM's own lock, or checks that
// the caller holds the external one (TryLock fails on a held mutex
// without writing it). An operation cannot be entered from a visitor.
func (vm *VM) lock() error {
	if vm.held() {
		vm.busy = true
		return nil
	}
	return vm.lockSlow()
}

// held reports whether the caller holds the external MMU lock and no
// operation is running: lock's fast path, small enough to inline.
func (vm *VM) held() bool { return vm.ext != nil && !vm.busy && !vm.ext.TryLock() }

func (vm *VM) lockSlow() error {
	if vm.ext == nil {
		vm.mu.Lock()
	} else if !vm.busy {
		vm.ext.Unlock() // TryLock took it: the caller did not hold it
		return errLockNotHeld
	}
	if vm.busy {
		return vm.reentered()
	}
	vm.busy = true
	return nil
}

func (vm *VM) reentered() error {
	vm.unlockOnly()
	return errors.New("s2pt: VM method called from inside a walk (a visitor must not call the VM)")
}

func (vm *VM) unlock() {
	vm.busy = false
	if vm.ext == nil { // tested here too: with an external lock, no call
		vm.unlockOnly()
	}
}

func (vm *VM) unlockOnly() {
	if vm.ext == nil {
		vm.mu.Unlock()
	}
}

// Layout returns the VM's layout.
func (vm *VM) Layout() Layout { return vm.layout }

// Root returns the root table's host physical address.
func (vm *VM) Root() mem.PA { return vm.root.pa }

// VTCR returns VTCR_EL2 for the VM.
func (vm *VM) VTCR() sysreg.VTCR { return vm.layout.VTCR }

// VTTBR returns VTTBR_EL2 for the VM with VMID field 0: the root (BADDR,
// with bits [51:48] in [5:2] for the 52-bit formats). The hypervisor sets
// the VMID it currently holds for the VM (sysreg.VTTBR.WithVMID) on guest
// entry.
func (vm *VM) VTTBR() sysreg.VTTBR {
	return sysreg.VTTBRFields{BADDR: uint64(vm.root.pa)}.Value()
}

// ApplyRegs loads the VM's stage-2 registers (and the ID registers the
// layout was derived from) into r for the hardware walker.
func (vm *VM) ApplyRegs(r *vmsa.Regs) {
	r.VTCR_EL2 = vm.VTCR()
	r.VTTBR_EL2 = vm.VTTBR()
}

// Stats returns the VM's page-table accounting.
func (vm *VM) Stats() Stats {
	if err := vm.lock(); err != nil {
		return Stats{}
	}
	defer vm.unlock()
	s := vm.stats
	s.Tables = len(vm.tables) - len(vm.reserve)
	s.EmptyTables = vm.emptyKept()
	s.ReserveBytes = uint64(len(vm.reserve)) * vm.layout.TableBytes
	return s
}

// Destroy frees every table and the root after invalidating the VMID. The
// VM must not be used afterwards.
func (vm *VM) Destroy() error {
	if err := vm.lock(); err != nil {
		return err
	}
	defer vm.unlock()
	if vm.destroyed {
		return errors.New("s2pt: VM destroyed twice")
	}
	vm.destroyed = true
	vm.inv.InvalidateVMID()
	vm.stats.TLBIs++
	vm.stats.Flushes++
	pas := make([]mem.PA, 0, len(vm.tables))
	for pa := range vm.tables {
		pas = append(pas, pa)
	}
	sort.Slice(pas, func(i, j int) bool { return pas[i] < pas[j] })
	var errs []error
	for _, pa := range pas {
		errs = append(errs, vm.tm.FreeTable(pa, vm.layout.TableBytes))
	}
	vm.reserve = nil // their records are in vm.tables
	clear(vm.kept)
	clear(vm.evict)
	vm.kept, vm.evict = vm.kept[:0], vm.evict[:0]
	errs = append(errs, vm.tm.FreeTable(vm.root.pa, vm.layout.RootBytes))
	clear(vm.tables)
	vm.wc = [4][64]tref{}
	vm.rc = [256]rcEntry{}
	vm.root = &table{}
	vm.stats.TableBytes = 0
	return errors.Join(errs...)
}

// account keeps the valid-entry count of table t when one of its
// descriptors changes from old to new.
func (vm *VM) account(t *table, old, new uint64) {
	if (old^new)&desc.ValidBit == 0 || t == vm.root {
		return
	}
	if new&desc.ValidBit != 0 {
		t.live++ // a kept table stays listed (see keep)
		return
	}
	if t.live > 1 {
		t.live--
		return
	}
	vm.emptying(t)
}

// emptying counts the last valid entry of t going (or more than the
// count knew of: an accounting error).
func (vm *VM) emptying(t *table) {
	t.live--
	if t.live < 0 {
		t.live = 0
		if vm.accErr == nil {
			vm.accErr = fmt.Errorf("s2pt: valid-entry count of table %#x went negative: the table was changed behind the manager", uint64(t.pa))
		}
	}
}

// keepDefault is Config.KeepEmpty's default: one table (with the tables
// above it that it alone holds: a few pages per VM, within the
// architectural minimum's 1% for a GiB of pages).
const keepDefault = 1

// keep keeps table t, just emptied by an unmap, in place for the next map
// there: an empty table is a valid table descriptor whose walks end in a
// Translation fault one level down, so it needs neither break-before-make
// nor an invalidation. A kept table a map fills again stays listed (a map
// writes its entry and nothing else; emptied again, it is kept already),
// so the list holds the tables kept empty and tables kept once and in use
// again; the latter make way first. With keepCap tables kept empty the
// oldest is displaced (detached and freed by finish, outside any walk).
// It reports whether t was kept (otherwise, with KeepEmpty < 0, the
// caller detaches it).
func (vm *VM) keep(t *table) bool {
	if t.kept {
		return true
	}
	if vm.keepCap <= 0 {
		return false
	}
	if len(vm.kept) >= vm.keepCap {
		old := vm.kept[0]
		for _, k := range vm.kept {
			if k.live != 0 { // in use again: no longer kept, nothing to free
				old = k
				break
			}
		}
		vm.unkeep(old)
		if old.live == 0 {
			vm.evict = append(vm.evict, old)
		}
	}
	t.kept = true
	vm.kept = append(vm.kept, t)
	return true
}

// emptyKept returns how many listed tables are kept empty.
func (vm *VM) emptyKept() int {
	n := 0
	for _, k := range vm.kept {
		if k.live == 0 {
			n++
		}
	}
	return n
}

// unkeep ends the keeping of t (in use again, released, displaced).
func (vm *VM) unkeep(t *table) {
	t.kept = false
	if n := len(vm.kept) - 1; n >= 0 && vm.kept[n] == t { // the newest: no copy
		vm.kept[n] = nil
		vm.kept = vm.kept[:n]
		return
	}
	for i, k := range vm.kept {
		if k == t {
			vm.kept = append(vm.kept[:i], vm.kept[i+1:]...)
			vm.kept[len(vm.kept):cap(vm.kept)][0] = nil
			return
		}
	}
}

// detachEmpty detaches table t, if still in use and empty, and the tables
// above it that this empties (unmap's post visits, keeping none); they
// are freed by finish after the invalidation.
func (vm *VM) detachEmpty(t *table) error {
	if !t.inUse || t.live != 0 || t.kept {
		return nil
	}
	v := &vm.visitors.unmap
	keep := v.keep
	v.keep = false
	err := vm.postVisits(t, 0, t.base, t.base+1, v, VisitTablePost|visitPostEmpty)
	v.keep = keep
	return err
}

// Trim frees the empty tables unmaps kept in place (Config.KeepEmpty),
// and the tables above them that this empties, after the invalidation
// that removes them from walk caches: the memory a hypervisor gets back
// under memory pressure. It returns how many tables it freed.
func (vm *VM) Trim() (int, error) {
	if err := vm.lock(); err != nil {
		return 0, err
	}
	defer vm.unlock()
	if vm.destroyed {
		return 0, errors.New("s2pt: VM is destroyed")
	}
	before := vm.stats.TableBytes
	var err error
	for len(vm.kept) > 0 && err == nil {
		t := vm.kept[0]
		vm.unkeep(t)
		err = vm.detachEmpty(t)
	}
	n := int((before - vm.stats.TableBytes) / vm.layout.TableBytes)
	return n, vm.finish(err)
}

// load reads the descriptor at pa (an atomic load, as the hardware's walk
// reads it).
func (vm *VM) load(pa mem.PA) (uint64, bool) {
	if i := uint64(pa-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		return atomic.LoadUint64(&vm.mw[i]), true
	}
	return vm.tm.Read64(pa)
}

// cas compare-and-swaps the descriptor at pa; mapped is false outside
// table memory.
func (vm *VM) cas(pa mem.PA, old, new uint64) (swapped, mapped bool) {
	if i := uint64(pa-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		return atomic.CompareAndSwapUint64(&vm.mw[i], old, new), true
	}
	return vm.tm.CompareAndSwap64(pa, old, new)
}

// storeDesc atomically stores v at the descriptor at pa; false outside
// table memory.
func (vm *VM) storeDesc(pa mem.PA, v uint64) bool {
	if i := uint64(pa-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		atomic.StoreUint64(&vm.mw[i], v)
		return true
	}
	return vm.tm.Write64(pa, v) == nil
}

// swapDesc atomically replaces the descriptor at pa by v and returns the
// value replaced (a compare-and-swap loop where the table memory gives no
// words); ok is false outside table memory.
func (vm *VM) swapDesc(pa mem.PA, v uint64) (old uint64, ok bool) {
	if i := uint64(pa-vm.mbase) >> 3; i < uint64(len(vm.mw)) {
		return atomic.SwapUint64(&vm.mw[i], v), true
	}
	for {
		if old, ok = vm.tm.Read64(pa); !ok {
			return 0, false
		}
		if swapped, ok := vm.tm.CompareAndSwap64(pa, old, v); !ok || swapped {
			return old, ok
		}
	}
}

// tableOA is the next-level table address of a table descriptor
// (AArch64.NextTableBase), as desc.Format.TableOA computes it
// (TestTableOA) without its switch on the format.
func (vm *VM) tableOA(d uint64) mem.PA {
	return mem.PA(d&vm.oaLo | (d>>vm.oaHS&vm.oaHM)<<vm.oaHP | d&vm.oaHK)
}

// withOA returns descriptor d with output address oa (aligned to what d
// maps), as desc.Format.WithOA does (TestTableOA) without its switch.
func (vm *VM) withOA(d, oa uint64) uint64 {
	if vm.oaHM|vm.oaHK == 0 { // OA[47:0] only
		return d&^vm.oaLo | oa&vm.oaLo
	}
	hiField := vm.oaHM<<vm.oaHS | vm.oaHK
	return d&^(vm.oaLo|hiField) | oa&vm.oaLo | (oa>>vm.oaHP&vm.oaHM)<<vm.oaHS | oa&vm.oaHK
}

// rcSlot is the record cache slot of a table address.
func (vm *VM) rcSlot(pa mem.PA) *rcEntry {
	return &vm.rc[uint64(pa)>>vm.gbits%uint64(len(vm.rc))]
}

// newTable takes a page from the cache and records it as the table for
// entry idx of parent.
func (vm *VM) newTable(cache *Cache, parent tref, idx uint64) (*table, error) {
	var t *table
	switch {
	case len(vm.reserve) > 0: // its record is in vm.tables
		t = vm.reserve[len(vm.reserve)-1]
		vm.reserve = vm.reserve[:len(vm.reserve)-1]
	case cache == nil || len(cache.pages) == 0:
		return nil, fmt.Errorf("s2pt: memory cache empty mapping at level %d: top it up first", parent.level+1)
	case cache.vm != vm:
		return nil, errors.New("s2pt: memory cache belongs to another VM")
	default:
		t = cache.pages[len(cache.pages)-1].rec
		cache.pages = cache.pages[:len(cache.pages)-1]
		vm.tables[t.pa] = t
	}
	t.parent, t.ppa, t.index, t.level, t.live = parent.rec, parent.pa, idx, int8(parent.level+1), 0
	t.base = parent.base + mem.IPA(idx<<vm.lbits[parent.level+1])
	t.n = vm.nent
	t.inUse = true
	*vm.rcSlot(t.pa) = rcEntry{pa: t.pa, ppa: t.ppa, index: idx, rec: t}
	vm.stats.TableBytes += vm.layout.TableBytes
	return t, nil
}

// child returns the table the table descriptor d (entry idx of t) points
// to, after checking that it is the table this VM allocated for exactly
// that entry. Garbage (a table address the VM does not own, or one of its
// tables hung elsewhere) is refused (ok false: childErr says why), never
// followed.
func (vm *VM) child(t tref, idx uint64, d uint64) (c tref, ok bool) {
	pa := vm.tableOA(d)
	s := &vm.rc[uint64(pa)>>vm.gbits%uint64(len(vm.rc))]
	if s.pa != pa || s.rec == nil {
		s = vm.rcFill(s, pa)
	}
	if s == nil || s.ppa != t.pa || s.index != idx {
		return c, false
	}
	return tref{rec: s.rec, pa: pa, base: t.base + mem.IPA(idx<<vm.lbits[t.level+1&7]), level: t.level + 1}, true
}

// rcFill fills the record cache slot s with the record of the table at pa,
// or returns nil when the VM has none there.
func (vm *VM) rcFill(s *rcEntry, pa mem.PA) *rcEntry {
	r := vm.tables[pa]
	if r == nil || !r.inUse {
		return nil
	}
	*s = rcEntry{pa: pa, ppa: r.ppa, index: r.index, rec: r}
	return s
}

// childErr is the error of a table descriptor child refused.
func (vm *VM) childErr(t tref, idx uint64, d uint64) error {
	return fmt.Errorf("s2pt: table descriptor %#x at level %d (at %#x, IPA %#x) points to %#x, which is not this entry's stage-2 table",
		d, t.level, uint64(t.pa)+idx*8, uint64(t.base)+idx<<vm.lbits[t.level+1], uint64(vm.tableOA(d)))
}

// release forgets a detached table and every table below it, and queues
// them to be freed once the invalidation queued with the detach is done.
func (vm *VM) release(t *table) {
	if !t.inUse {
		return
	}
	if t.level < 3 && t.live > 0 {
		for i := uint64(0); i < t.n; i++ {
			d, ok := vm.load(t.pa + mem.PA(i*8))
			if !ok || desc.KindAt(d, int(t.level)) != desc.Table {
				continue
			}
			if c := vm.tables[mem.PA(vm.layout.Format.TableOA(d))]; c != nil && c.inUse && c.parent == t && c.index == i {
				vm.release(c)
			}
		}
	}
	t.inUse = false
	if t.kept {
		vm.unkeep(t)
	}
	if s := vm.rcSlot(t.pa); s.rec == t {
		*s = rcEntry{}
	}
	if w := vm.wcSlot(int(t.level), t.base); w.rec == t {
		*w = tref{}
	}
	vm.stats.TableBytes -= vm.layout.TableBytes
	vm.freeq = append(vm.freeq, t)
}

// reserveMax is how many emptied tables a VM keeps for reuse.
const reserveMax = 4

// cachedTable is the walk cache's table at level (3 at most) holding
// ipa, if it holds one.
func (vm *VM) cachedTable(level int, ipa mem.IPA) (tref, bool) {
	w := vm.wcSlot(level, ipa)
	return *w, w.rec != nil && ipa-w.base < mem.IPA(1)<<vm.lbits[level&7]
}

// wcSlot is the walk-cache slot of the table at level covering base.
func (vm *VM) wcSlot(level int, base mem.IPA) *tref {
	return &vm.wc[level&3][uint64(base)>>vm.lbits[level&7]%64]
}

// finish issues the queued invalidations, then frees the tables queued for
// freeing (only once no TLB can hold a walk through them), and returns err
// joined with any accounting error.
func (vm *VM) finish(err error) error {
	if len(vm.freeq)|len(vm.evict) != 0 || vm.accErr != nil {
		return vm.finishSlow(err)
	}
	if vm.npend != 0 {
		vm.flush()
	}
	return err
}

func (vm *VM) finishSlow(err error) error {
	for _, t := range vm.evict {
		if derr := vm.detachEmpty(t); derr != nil && err == nil {
			err = derr
		}
	}
	clear(vm.evict)
	vm.evict = vm.evict[:0]
	vm.flush()
	for _, t := range vm.freeq {
		// Its count says it is empty (see unmapVisitor): kept for reuse
		// as it is, or freed.
		if t.live == 0 && len(vm.reserve) < vm.reserveCap {
			vm.reserve = append(vm.reserve, t) // its record stays in vm.tables
			continue
		}
		delete(vm.tables, t.pa)
		if ferr := vm.tm.FreeTable(t.pa, vm.layout.TableBytes); ferr != nil && err == nil {
			err = ferr
		}
	}
	clear(vm.freeq)
	vm.freeq = vm.freeq[:0]
	if vm.accErr != nil {
		err = errors.Join(err, vm.accErr)
		vm.accErr = nil
	}
	return err
}
