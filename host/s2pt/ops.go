package s2pt

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/mem"
)

// Prot are the access rights and memory type of a mapping.
type Prot uint8

// Protection bits.
const (
	ProtR Prot = 1 << iota // S2AP[0]
	ProtW                  // S2AP[1]
	ProtX                  // XN = 0b00 (executable at EL0 and EL1)
	// ProtDevice maps Device-nGnRE (MemAttr 0b0001) instead of Normal
	// write-back (0b1111).
	ProtDevice
)

// MapFlags modify Map.
type MapFlags uint8

// Map flags.
const (
	// MapBlocks allows block mappings where the range and the IPA/PA
	// alignment allow them; otherwise every leaf is a page.
	MapBlocks MapFlags = 1 << iota
	// MapOld maps with the Access flag clear (the first access faults, or
	// sets it when VTCR_EL2.HA is 1).
	MapOld
	// MapInPlace maps the range only as one leaf written into a table that
	// already exists: no table is allocated, split or freed, so the cache
	// may be nil. When that is not possible Map changes nothing and
	// returns an error matching ErrNeedsTables.
	MapInPlace
)

// ErrNeedsTables is returned (wrapped) by a MapInPlace Map that would need
// to allocate, split or free a table.
var ErrNeedsTables = errors.New("s2pt: the mapping needs a table change")

// Stage-2 leaf descriptor bits.
const (
	bitPage   = 1 << 1
	bitS2APR  = 1 << 6
	bitS2APW  = 1 << 7
	bitAF     = 1 << 10
	bitDBM    = 1 << 51
	bitContig = 1 << 52
	maskXN    = 3 << 53
)

// leaf encodes a leaf mapping pa at level.
func (vm *VM) leaf(pa uint64, level int, prot Prot, flags MapFlags) uint64 {
	l := desc.S2Leaf{OA: pa, SH: 3, AF: flags&MapOld == 0, MemAttr: 0b1111}
	if prot&ProtDevice != 0 {
		l.MemAttr = 0b0001
	}
	if prot&ProtR != 0 {
		l.S2AP |= 1
	}
	if prot&ProtW != 0 {
		l.S2AP |= 2
	}
	if prot&ProtX == 0 {
		l.XN = 2
	}
	return uint64(l.Encode(vm.layout.Format, level))
}

// checkLeaf refuses a valid non-table descriptor the hardware would not
// accept as a leaf at its level.
func (vm *VM) checkLeaf(c *Ctx) error {
	switch k := c.Kind(); k {
	case desc.Page:
		return nil
	case desc.Block:
		if vm.layout.BlockLevel(c.Level) {
			return nil
		}
	}
	return fmt.Errorf("s2pt: descriptor %#x at level %d (IPA %#x) is a %v the %v granule does not allow there", c.Old, c.Level, uint64(c.Addr), c.Kind(), vm.layout.Format.Granule)
}

// attrs strips the output address, AF, the page/table bit and the
// contiguous hint: what must match for entries to form one block.
func (vm *VM) attrs(d uint64) uint64 {
	return vm.layout.Format.WithOA(d, 0) &^ (bitAF | bitPage | bitContig)
}

// restricts reports whether going from old to new removes an access right.
func restricts(old, new uint64) bool {
	return old&^new&(bitS2APR|bitS2APW|bitDBM) != 0 || new&^old&maskXN != 0
}

// installTable points an invalid entry at a fresh table from the cache.
func (vm *VM) installTable(c *Ctx, cache *Cache) error {
	pa, err := vm.newTable(cache, c.PTE, c.Level+1)
	if err != nil {
		return err
	}
	return c.set(uint64(desc.S2Table(vm.layout.Format, uint64(pa))))
}

// breakEntry is the first half of break-before-make: the entry goes invalid
// (compare-and-swap, so a hardware AF/dirty update is kept in the value
// returned) and the TLB forgets it before anything new is written.
func (vm *VM) breakEntry(c *Ctx) (uint64, error) {
	old, err := c.clear()
	if err != nil || old&1 == 0 {
		return old, err
	}
	vm.stats.BBM++
	if desc.KindAt(old, c.Level) == desc.Table {
		vm.tlbiAll() // leaves anywhere below may be cached
	} else {
		vm.tlbiIPA(c.Addr, c.Level)
	}
	return old, nil
}

// installLeaf writes leaf v over whatever non-table entry c holds: directly
// when invalid, in place when only permissions and AF change (no BBM
// needed; restriction queues a TLBI), else by break-before-make (a change of
// output address, size or memory attributes, R_SXWGM).
func (vm *VM) installLeaf(c *Ctx, v uint64) error {
	if c.Old&1 == 0 {
		return c.set(v)
	}
	if vm.checkLeaf(c) == nil && c.Kind() == desc.KindAt(v, c.Level) {
		f := vm.layout.Format
		keep := ^uint64(bitS2APR | bitS2APW | maskXN | bitAF | bitDBM)
		if f.LeafOA(c.Old, c.Level) == f.LeafOA(v, c.Level) && c.Old&keep == v&keep {
			prev, err := c.update(func(cur uint64) uint64 { return v | cur&bitAF })
			if err == nil && restricts(prev, v) {
				vm.queueTLBI(c.Addr, c.Level)
			}
			return err
		}
	}
	if _, err := vm.breakEntry(c); err != nil {
		return err
	}
	return c.set(v)
}

// split replaces a block with a table of the next level's entries mapping
// the same addresses with the same attributes, by break-before-make.
func (vm *VM) split(c *Ctx, cache *Cache) error {
	if c.Kind() != desc.Block || vm.checkLeaf(c) != nil {
		return fmt.Errorf("s2pt: cannot split descriptor %#x at level %d (IPA %#x): not a block the %v granule allows", c.Old, c.Level, uint64(c.Addr), vm.layout.Format.Granule)
	}
	pa, err := vm.newTable(cache, c.PTE, c.Level+1)
	if err != nil {
		return err
	}
	old, err := vm.breakEntry(c)
	if err != nil {
		return err
	}
	f := vm.layout.Format
	cl := c.Level + 1
	csize := uint64(1) << vm.layout.leafBits(cl)
	base := f.LeafOA(old, c.Level)
	tmpl := old &^ bitContig // the contiguous hint's span differs per level
	if cl == 3 {
		tmpl |= bitPage
	}
	n := vm.layout.entries()
	for i := uint64(0); i < n; i++ {
		if err := vm.tm.Write64(pa+mem.PA(i*8), f.WithOA(tmpl, base+i*csize)); err != nil {
			return err
		}
	}
	vm.tables[pa].live = int32(n)
	return c.set(uint64(desc.S2Table(f, uint64(pa))))
}

// replaceTable replaces a table descriptor by leaf v (break-before-make)
// and frees the detached subtree once the TLB no longer walks it.
func (vm *VM) replaceTable(c *Ctx, v uint64) error {
	child := c.child
	if _, err := vm.breakEntry(c); err != nil {
		return err
	}
	if err := c.set(v); err != nil {
		return err
	}
	return vm.freeSubtree(child, c.Level+1, c.Addr)
}

// freeSubtree releases a detached table and every table below it.
func (vm *VM) freeSubtree(t mem.PA, level int, base mem.IPA) error {
	end := base + mem.IPA(1)<<vm.layout.leafBits(level-1)
	err := vm.walkTable(t, vm.tables[t], level, base, vm.layout.entries(), base, end, &vm.visitors.free, VisitTablePost)
	vm.releaseTable(t)
	return err
}

type freeVisitor struct{ vm *VM }

func (v *freeVisitor) Visit(c *Ctx, at WalkFlags) error {
	v.vm.releaseTable(c.child)
	return nil
}

type mapVisitor struct {
	vm    *VM
	cache *Cache
	ipa   mem.IPA
	pa    uint64
	prot  Prot
	flags MapFlags
}

// leafOK reports whether the entry can be a leaf of this mapping.
func (v *mapVisitor) leafOK(c *Ctx) bool {
	if !c.Covered() {
		return false
	}
	if c.Level == 3 {
		return true
	}
	return v.flags&MapBlocks != 0 && v.vm.layout.BlockLevel(c.Level) && v.outAddr(c)%c.Size() == 0
}

func (v *mapVisitor) outAddr(c *Ctx) uint64 { return v.pa + uint64(c.Addr-v.ipa) }

func (v *mapVisitor) Visit(c *Ctx, at WalkFlags) error {
	if !v.leafOK(c) {
		if at == VisitTablePre {
			return nil
		}
		if c.Old&1 == 0 {
			return v.vm.installTable(c, v.cache)
		}
		return v.vm.split(c, v.cache) // keep what the rest of the block maps
	}
	leaf := v.vm.leaf(v.outAddr(c), c.Level, v.prot, v.flags)
	if at == VisitTablePre {
		return v.vm.replaceTable(c, leaf)
	}
	return v.vm.installLeaf(c, leaf)
}

// splitEdges splits a block the walk range covers only in part, so the
// operation changes exactly the range; it reports whether it did.
func splitEdges(c *Ctx, cache *Cache) (bool, error) {
	if c.Covered() || c.Kind() != desc.Block {
		return false, nil
	}
	return true, c.vm.split(c, cache)
}

// unmapVisitor removes every valid entry the range touches. A leaf the
// range covers only in part (a block straddling an end) is removed whole,
// as Linux's stage-2 unmap does: unmapping needs no memory, so it cannot
// fail for lack of it, and the rest of the block faults back in lazily.
type unmapVisitor struct {
	vm *VM
}

func (v *unmapVisitor) Visit(c *Ctx, at WalkFlags) error {
	if at == VisitTablePost {
		if c.childInfo.live != 0 {
			return nil
		}
		// The count says the table is empty (checkCounts in the tests
		// holds it to memory). Were it wrong, freeing would lose only
		// entries the manager never made: the table is detached and
		// invalidated before it is freed, and no table of this VM can
		// hang below an entry it did not install (childOf).
		if _, err := c.clear(); err != nil {
			return err
		}
		v.vm.queueTLBI(c.Addr, NoLevelHint)
		v.vm.releaseTable(c.child)
		return nil
	}
	if c.Old&1 == 0 {
		return nil
	}
	// Any valid non-table descriptor goes, covered or not, well-formed or
	// not: removing a translation is always safe.
	if _, err := c.clear(); err != nil {
		return err
	}
	v.vm.queueTLBI(c.Addr, c.Level)
	return nil
}

// permVisitor restricts (write-protect) or relaxes permissions. Relax
// changes exactly its range (a straddling block is split, from the cache);
// write-protect changes whole leaves, a straddling block included, so it
// needs no memory: removing write permission from more than asked is safe
// (a later write faults, and a fault that maps a page splits the block
// with the faulting vCPU's cache).
type permVisitor struct {
	vm      *VM
	cache   *Cache
	relax   bool
	set     uint64 // bits to set (relax)
	clrBits uint64 // bits to clear
}

func (v *permVisitor) Visit(c *Ctx, at WalkFlags) error {
	if c.Old&1 == 0 {
		return nil
	}
	if err := v.vm.checkLeaf(c); err != nil {
		return err
	}
	if v.relax {
		if did, err := splitEdges(c, v.cache); did || err != nil {
			return err
		}
	}
	prev, err := c.update(func(cur uint64) uint64 { return cur&^v.clrBits | v.set })
	if err != nil {
		return err
	}
	// Permission restriction needs a TLBI; relaxation does not (a stale
	// entry only causes a spurious permission fault).
	if !v.relax && prev != c.Old {
		v.vm.queueTLBI(c.Addr, c.Level)
	}
	return nil
}

type youngMode uint8

const (
	testYoung youngMode = iota
	mkOld
	mkYoung
)

// youngVisitor tests, clears or sets the Access flag. AF changes need
// neither BBM nor a TLBI: a stale TLB entry only delays the next update.
type youngVisitor struct {
	vm    *VM
	mode  youngMode
	young bool
	found bool
}

func (v *youngVisitor) Visit(c *Ctx, at WalkFlags) error {
	if c.Old&1 == 0 {
		return nil
	}
	if err := v.vm.checkLeaf(c); err != nil {
		return err
	}
	v.found = true
	v.young = v.young || c.Old&bitAF != 0
	switch v.mode {
	case mkOld:
		_, err := c.update(func(cur uint64) uint64 { return cur &^ bitAF })
		return err
	case mkYoung:
		_, err := c.update(func(cur uint64) uint64 { return cur | bitAF })
		return err
	}
	return nil
}

type splitVisitor struct {
	vm    *VM
	cache *Cache
}

func (v *splitVisitor) Visit(c *Ctx, at WalkFlags) error {
	if c.Old&1 == 0 || c.Kind() != desc.Block {
		return nil
	}
	return v.vm.split(c, v.cache)
}

// collapseVisitor replaces, after its table was walked, a table whose
// entries are all leaves mapping one aligned, contiguous range with equal
// attributes by one block (break-before-make).
type collapseVisitor struct {
	vm *VM
	n  int
}

func (v *collapseVisitor) Visit(c *Ctx, at WalkFlags) error {
	vm := v.vm
	l := &vm.layout
	if !c.Covered() || !l.BlockLevel(c.Level) {
		return nil
	}
	f := l.Format
	cl := c.Level + 1
	csize := uint64(1) << l.leafBits(cl)
	var base, attrs uint64
	n := l.entries()
	for i := uint64(0); i < n; i++ {
		d, ok := vm.tm.Read64(c.child + mem.PA(i*8))
		if !ok {
			return fmt.Errorf("s2pt: table %#x is not readable", uint64(c.child))
		}
		k := desc.KindAt(d, cl)
		if !(k == desc.Page || (k == desc.Block && l.BlockLevel(cl))) {
			return nil
		}
		oa := f.LeafOA(d, cl)
		if i == 0 {
			base, attrs = oa, vm.attrs(d)
			if base%c.Size() != 0 {
				return nil
			}
		} else if oa != base+i*csize || vm.attrs(d) != attrs {
			return nil
		}
	}
	child := c.child
	if _, err := vm.breakEntry(c); err != nil {
		return err
	}
	var af uint64
	for i := uint64(0); i < n; i++ { // final AF values: nothing walks the table now
		d, _ := vm.tm.Read64(child + mem.PA(i*8))
		af |= d & bitAF
	}
	if err := c.set(f.WithOA(attrs|af, base)); err != nil {
		return err
	}
	vm.releaseTable(child)
	v.n++
	return nil
}

// visitors are preallocated so operations do not allocate.
type visitors struct {
	free     freeVisitor
	mapv     mapVisitor
	unmap    unmapVisitor
	perm     permVisitor
	young    youngVisitor
	split    splitVisitor
	collapse collapseVisitor
}

func (v *visitors) init(vm *VM) {
	v.free.vm, v.mapv.vm, v.unmap.vm, v.perm.vm = vm, vm, vm, vm
	v.young.vm, v.split.vm, v.collapse.vm = vm, vm, vm
}

// checkArgs validates an IPA range (granule-aligned, inside the IPA space).
func (vm *VM) checkArgs(ipa mem.IPA, size uint64) error {
	g := vm.layout.TableBytes
	if size == 0 || uint64(ipa)%g != 0 || size%g != 0 {
		return fmt.Errorf("s2pt: IPA range %#x+%#x is empty or not aligned to the %#x-byte granule", uint64(ipa), size, g)
	}
	end := uint64(ipa) + size
	if end < uint64(ipa) {
		return fmt.Errorf("s2pt: IPA range %#x+%#x wraps", uint64(ipa), size)
	}
	return vm.checkRange(ipa, mem.IPA(end))
}

func (vm *VM) checkCache(cache *Cache, need int) error {
	if cache.Len() < need {
		return fmt.Errorf("s2pt: memory cache holds %d pages, the operation may need %d: top it up before taking the lock", cache.Len(), need)
	}
	if cache != nil && cache.vm != vm {
		return errors.New("s2pt: memory cache belongs to another VM")
	}
	return nil
}

// Map maps [ipa, ipa+size) to [pa, pa+size) with prot. It takes table pages
// only from cache, which must hold MapPagesNeeded pages (checked before
// anything changes). Existing mappings in the range are replaced.
func (vm *VM) Map(cache *Cache, ipa mem.IPA, pa mem.PA, size uint64, prot Prot, flags MapFlags) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	if uint64(pa)%vm.layout.TableBytes != 0 || uint64(pa)+size < uint64(pa) || (uint64(pa)+size-1)>>vm.layout.PABits != 0 {
		return fmt.Errorf("s2pt: output range %#x+%#x is not granule-aligned or exceeds the %d-bit PA size", uint64(pa), size, vm.layout.PABits)
	}
	if prot&^(ProtR|ProtW|ProtX|ProtDevice) != 0 {
		return fmt.Errorf("s2pt: unknown protection bits %#x", uint8(prot))
	}
	if flags&MapInPlace != 0 {
		if done, err := vm.mapOne(ipa, uint64(pa), size, prot, flags); done {
			return vm.finish(err)
		}
		return fmt.Errorf("%w: IPA %#x+%#x is not one leaf of an existing table", ErrNeedsTables, uint64(ipa), size)
	}
	if err := vm.checkCache(cache, vm.MapPagesNeeded(ipa, pa, size, flags)); err != nil {
		return err
	}
	if done, err := vm.mapOne(ipa, uint64(pa), size, prot, flags); done {
		return vm.finish(err)
	}
	v := &vm.visitors.mapv
	v.cache, v.ipa, v.pa, v.prot, v.flags = cache, ipa, uint64(pa), prot, flags
	err := vm.walk(ipa, ipa+mem.IPA(size), v, VisitLeaf|VisitTablePre)
	v.cache = nil
	return vm.finish(err)
}

// mapOne is Map's fast path, a stage-2 fault's usual map: one leaf (a
// page, or a block where MapBlocks allows it) below existing tables, over
// an entry that is not a table. It writes the leaf exactly as the walk's
// visitor would (installLeaf) and reports done; anything else (a missing
// table, a block to split, a table to replace, a descriptor the walk would
// refuse) it leaves untouched for the walk.
func (vm *VM) mapOne(ipa mem.IPA, pa, size uint64, prot Prot, flags MapFlags) (bool, error) {
	l := &vm.layout
	level := l.StartLevel
	for level < 3 && uint64(1)<<l.leafBits(level) != size {
		level++
	}
	switch {
	case uint64(1)<<l.leafBits(level) != size:
		return false, nil // not one leaf's size
	case level < 3 && (flags&MapBlocks == 0 || !l.BlockLevel(level) || pa%size != 0 || uint64(ipa)%size != 0):
		return false, nil // a block the walk would not make: it maps pages
	}
	table, info, lvl, base := vm.root, (*tableInfo)(nil), l.StartLevel, mem.IPA(0)
	for {
		bits := l.leafBits(lvl)
		idx := uint64(ipa-base) >> bits
		pte := table + mem.PA(idx*8)
		d, ok := vm.tm.Read64(pte)
		if !ok {
			return false, nil
		}
		addr := base + mem.IPA(idx<<bits)
		isTable := desc.KindAt(d, lvl) == desc.Table
		if lvl == level {
			if isTable {
				return false, nil
			}
			c := &vm.ctx[lvl+1]
			*c = Ctx{vm: vm, Level: lvl, Addr: addr, Start: ipa, End: ipa + mem.IPA(size), PTE: pte, Old: d, table: table, info: info}
			return true, vm.installLeaf(c, vm.leaf(pa, lvl, prot, flags))
		}
		if !isTable {
			return false, nil
		}
		child, cinfo, err := vm.childOf(pte, lvl, d)
		if err != nil {
			return false, nil
		}
		table, info, base, lvl = child, cinfo, addr, lvl+1
	}
}

// Unmap removes every mapping that covers any part of [ipa, ipa+size): a
// block straddling an end of the range is removed whole (the rest of it
// faults back in on the next access), as Linux's kvm_pgtable_stage2_unmap
// does. It takes no memory, so it never fails for lack of it. Tables it
// empties are freed, after the TLB invalidation, which is complete when
// Unmap returns.
func (vm *VM) Unmap(ipa mem.IPA, size uint64) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	err := vm.walk(ipa, ipa+mem.IPA(size), &vm.visitors.unmap, VisitLeaf|VisitTablePost)
	return vm.finish(err)
}

func (vm *VM) perm(cache *Cache, ipa mem.IPA, size uint64, relax bool, set, clr uint64) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	if relax {
		if err := vm.checkCache(cache, vm.EdgePagesNeeded(ipa, size)); err != nil {
			return err
		}
	}
	v := &vm.visitors.perm
	v.cache, v.relax, v.set, v.clrBits = cache, relax, set, clr
	err := vm.walk(ipa, ipa+mem.IPA(size), v, VisitLeaf)
	v.cache = nil
	return vm.finish(err)
}

// WriteProtect removes write permission (S2AP[1] and DBM) from every leaf
// that covers any part of the range (a straddling block whole, as Linux's
// kvm_pgtable_stage2_wrprotect does), keeping any Access flag the hardware
// sets meanwhile, and invalidates the TLB before returning. It takes no
// memory, so it never fails for lack of it.
func (vm *VM) WriteProtect(ipa mem.IPA, size uint64) error {
	return vm.perm(nil, ipa, size, false, 0, bitS2APW|bitDBM)
}

// Relax adds the rights in prot (R, W, X) to the mappings of the range,
// without break-before-make or TLB invalidation.
func (vm *VM) Relax(cache *Cache, ipa mem.IPA, size uint64, prot Prot) error {
	if prot&^(ProtR|ProtW|ProtX) != 0 {
		return fmt.Errorf("s2pt: Relax takes only R, W and X, not %#x", uint8(prot))
	}
	var set, clr uint64
	if prot&ProtR != 0 {
		set |= bitS2APR
	}
	if prot&ProtW != 0 {
		set |= bitS2APW
	}
	if prot&ProtX != 0 {
		clr |= maskXN
	}
	return vm.perm(cache, ipa, size, true, set, clr)
}

func (vm *VM) young(ipa mem.IPA, size uint64, mode youngMode) (young, found bool, err error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return false, false, err
	}
	v := &vm.visitors.young
	v.mode, v.young, v.found = mode, false, false
	err = vm.walk(ipa, ipa+mem.IPA(size), v, VisitLeaf)
	return v.young, v.found, vm.finish(err)
}

// TestYoung reports whether any mapping in the range has its Access flag set.
func (vm *VM) TestYoung(ipa mem.IPA, size uint64) (bool, error) {
	y, _, err := vm.young(ipa, size, testYoung)
	return y, err
}

// MkOld clears the Access flag of the mappings in the range (whole leaves)
// and reports whether any was set.
func (vm *VM) MkOld(ipa mem.IPA, size uint64) (bool, error) {
	y, _, err := vm.young(ipa, size, mkOld)
	return y, err
}

// MkYoung sets the Access flag of the leaf mapping ipa and reports whether
// there is one.
func (vm *VM) MkYoung(ipa mem.IPA) (bool, error) {
	g := mem.IPA(vm.layout.TableBytes)
	_, found, err := vm.young(ipa&^(g-1), uint64(g), mkYoung)
	return found, err
}

// Split replaces every block in the range by page mappings with the same
// attributes (cache must hold SplitPagesNeeded pages).
func (vm *VM) Split(cache *Cache, ipa mem.IPA, size uint64) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	if err := vm.checkCache(cache, vm.SplitPagesNeeded(ipa, size)); err != nil {
		return err
	}
	v := &vm.visitors.split
	v.cache = cache
	err := vm.walk(ipa, ipa+mem.IPA(size), v, VisitLeaf)
	v.cache = nil
	return vm.finish(err)
}

// Collapse replaces every table in the range whose entries map one aligned,
// contiguous output range with equal attributes by a block, bottom-up, and
// returns how many it replaced.
func (vm *VM) Collapse(ipa mem.IPA, size uint64) (int, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkArgs(ipa, size); err != nil {
		return 0, err
	}
	v := &vm.visitors.collapse
	v.n = 0
	err := vm.walk(ipa, ipa+mem.IPA(size), v, VisitTablePost)
	return v.n, vm.finish(err)
}

// Lookup returns the leaf-or-invalid descriptor the tables hold for ipa
// and its level.
func (vm *VM) Lookup(ipa mem.IPA) (d uint64, level int, err error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	g := mem.IPA(vm.layout.TableBytes)
	ipa &^= g - 1
	if err := vm.checkRange(ipa, ipa+g); err != nil {
		return 0, 0, err
	}
	// A read-only descent: no visitor, nothing to invalidate or free.
	l := &vm.layout
	table, level, base := vm.root, l.StartLevel, mem.IPA(0)
	for {
		bits := l.leafBits(level)
		pte := table + mem.PA(uint64(ipa-base)>>bits*8)
		d, ok := vm.tm.Read64(pte)
		if !ok {
			return 0, 0, fmt.Errorf("s2pt: descriptor at %#x (level %d, IPA %#x) is not readable", uint64(pte), level, uint64(ipa))
		}
		if desc.KindAt(d, level) != desc.Table {
			return d, level, nil
		}
		child, _, err := vm.childOf(pte, level, d)
		if err != nil {
			return 0, 0, fmt.Errorf("%w (IPA %#x)", err, uint64(ipa))
		}
		table, base, level = child, base+mem.IPA(uint64(ipa-base)>>bits<<bits), level+1
	}
}
