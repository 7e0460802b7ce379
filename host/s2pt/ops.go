package s2pt

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

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
	// ProtPXN and ProtUXN, with ProtX, make it executable at EL0 only (XN
	// = 0b01) or at EL1 only (XN = 0b11): FEAT_XNX, which the hardware
	// must implement (without it only XN[1] counts, and both read as
	// executable at EL0 and EL1).
	ProtPXN
	ProtUXN
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
	// MapClean maps a writable range writable-clean (DBM=1, S2AP[1]=0)
	// for hardware dirty-state tracking: the first write sets S2AP[1]
	// (VTCR_EL2.HD=1, Config.HD) instead of faulting; ClearDirty
	// harvests. Refused when the layout has no HD.
	MapClean

	swShift = 4 // MapSW's field
)

// ErrNeedsTables is returned (wrapped) by a MapInPlace Map that would need
// to allocate, split or free a table.
var ErrNeedsTables = errors.New("s2pt: the mapping needs a table change")

// MapSW returns the flag that stores v (4 bits) in the software-use bits
// [58:55] of every leaf Map writes (the stage-2 Block and Page descriptor
// bits the architecture reserves for software); combine it with the other
// flags. SW reads them back.
func MapSW(v uint8) MapFlags { return MapFlags(v&0xf) << swShift }

// SW returns the software-use bits [58:55] of a descriptor.
func SW(d uint64) uint8 { return uint8(desc.Field(d, desc.SWMask)) }

// Memory attributes of the leaves Map writes (stage-2 MemAttr, FWB=0).
const (
	memNormalWB = 0b1111
	memDeviceE  = 0b0001
	shInner     = 0b11
)

// leaf encodes a leaf mapping pa at level.
func (vm *VM) leaf(pa uint64, level int, prot Prot, flags MapFlags) uint64 {
	l := desc.S2Leaf{OA: pa, SH: shInner, AF: flags&MapOld == 0, MemAttr: memNormalWB}
	if prot&ProtDevice != 0 {
		l.MemAttr = memDeviceE
	}
	if prot&ProtR != 0 {
		l.S2AP |= 1
	}
	if prot&ProtW != 0 {
		if flags&MapClean != 0 {
			l.DBM = true
		} else {
			l.S2AP |= 2
		}
	}
	switch {
	case prot&ProtX == 0 || prot&(ProtPXN|ProtUXN) == ProtPXN|ProtUXN:
		l.XN = 2
	case prot&ProtPXN != 0:
		l.XN = 1
	case prot&ProtUXN != 0:
		l.XN = 3
	}
	l.SW = uint(flags >> swShift)
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
	return vm.layout.Format.WithOA(d, 0) &^ (desc.AFBit | desc.TypeBit | desc.ContigBit)
}

// installTable points an invalid entry at a fresh table from the cache.
func (vm *VM) installTable(c *Ctx, cache *Cache) error {
	t, err := vm.newTable(cache, c.at.t, c.at.idx)
	if err != nil {
		return err
	}
	if _, err := c.store(uint64(desc.S2Table(vm.layout.Format, uint64(t.pa))), commitTable); err != nil {
		vm.release(t)
		return err
	}
	return nil
}

// installLeaf writes leaf v over whatever non-table entry c holds:
// directly when invalid, in place (keeping a hardware-set Access flag)
// when only rights and AF change, else by break-before-make.
func (vm *VM) installLeaf(c *Ctx, v uint64) error {
	if c.Old&desc.ValidBit != 0 && vm.checkLeaf(c) == nil {
		if _, err := vm.layout.classify(c.Level, c.Old, v|c.Old&desc.AFBit); err == nil {
			_, err := c.apply(func(cur uint64) uint64 { return v | cur&desc.AFBit }, 0)
			return err
		}
	}
	if _, err := c.store(0, 0); err != nil {
		return err
	}
	_, err := c.store(v, 0)
	return err
}

// split replaces a block with a table of the next level's entries mapping
// the same addresses with the same attributes, by break-before-make: the
// block goes invalid, the new table is filled from its final value (any
// Access flag the hardware set is kept), the invalidation completes, and
// the table is published.
func (vm *VM) split(c *Ctx, cache *Cache) error {
	if c.Kind() != desc.Block || vm.checkLeaf(c) != nil {
		return fmt.Errorf("s2pt: cannot split descriptor %#x at level %d (IPA %#x): not a block the %v granule allows", c.Old, c.Level, uint64(c.Addr), vm.layout.Format.Granule)
	}
	t, err := vm.newTable(cache, c.at.t, c.at.idx)
	if err != nil {
		return err
	}
	old, err := c.store(0, 0)
	if err != nil {
		vm.release(t)
		return err
	}
	f := vm.layout.Format
	cl := c.Level + 1
	csize := uint64(1) << vm.lbits[cl+1]
	base := f.LeafOA(old, c.Level)
	tmpl := old &^ desc.ContigBit // the contiguous hint's span differs per level
	if cl == 3 {
		tmpl |= desc.TypeBit
	}
	// The table is not yet reachable: plain atomic stores fill it.
	for i := uint64(0); i < t.n; i++ {
		if err := vm.tm.Write64(t.pa+mem.PA(i*8), f.WithOA(tmpl, base+i*csize)); err != nil {
			return err
		}
	}
	t.live = int32(t.n)
	_, err = c.store(uint64(desc.S2Table(f, uint64(t.pa))), commitTable)
	return err
}

// replaceTable replaces a table descriptor by leaf v (break-before-make);
// the detached subtree is freed after the invalidation.
func (vm *VM) replaceTable(c *Ctx, v uint64) error {
	if _, err := c.store(0, 0); err != nil {
		return err
	}
	_, err := c.store(v, 0)
	return err
}

type mapVisitor struct {
	vm      *VM
	cache   *Cache
	ipa     mem.IPA
	pa      uint64
	prot    Prot
	flags   MapFlags
	inPlace bool
	// page and block are the leaves with output address 0 for the prot
	// and flags in tmplKey (kept from one Map to the next).
	page, block uint64
	tmplKey     uint16
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
		switch {
		case at == VisitTablePre:
			return nil
		case v.inPlace:
			return fmt.Errorf("%w: IPA %#x is under a level-%d %v", ErrNeedsTables, uint64(c.Addr), c.Level, c.Kind())
		case c.Old&desc.ValidBit == 0:
			return v.vm.installTable(c, v.cache)
		}
		return v.vm.split(c, v.cache) // keep what the rest of the block maps
	}
	tmpl := v.block
	if c.Level == 3 {
		tmpl = v.page
	}
	leaf := v.vm.withOA(tmpl, v.outAddr(c))
	if at == VisitTablePre {
		if v.inPlace {
			return fmt.Errorf("%w: a level-%d table holds IPA %#x", ErrNeedsTables, c.Level, uint64(c.Addr))
		}
		return v.vm.replaceTable(c, leaf)
	}
	return v.vm.installLeaf(c, leaf)
}

// unmapVisitor removes every valid entry the range touches. A leaf the
// range covers only in part (a block straddling an end) is removed whole,
// as Linux's stage-2 unmap does: unmapping needs no memory, so it cannot
// fail for lack of it, and the rest of the block faults back in lazily;
// with exact set it is split instead, from cache, so that exactly the
// range goes. A table left with no valid entry is kept in place (keep,
// with keep set) or removed and freed.
type unmapVisitor struct {
	vm    *VM
	cache *Cache
	keep  bool
	exact bool
}

func (v *unmapVisitor) Visit(c *Ctx, at WalkFlags) error {
	// Post visits come only for tables with no valid entry. The count
	// says the table is empty (checkCounts in the tests holds it to
	// memory). Were it wrong, freeing would lose only entries the
	// manager never made: the table is detached and invalidated before
	// it is freed, and no table of this VM can hang below an entry it
	// did not install (child). Any valid non-table descriptor goes,
	// covered or not, well-formed or not: removing a translation is
	// always safe.
	if at == VisitTablePost {
		if v.keep && v.vm.keep(c.child) {
			return nil
		}
	} else if v.exact && c.Kind() == desc.Block && !c.Covered() && v.vm.checkLeaf(c) == nil {
		return v.vm.split(c, v.cache)
	}
	_, err := c.store(0, 0)
	return err
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
	if c.Old&desc.ValidBit == 0 {
		return nil
	}
	if err := v.vm.checkLeaf(c); err != nil {
		return err
	}
	if v.relax && !c.Covered() && c.Kind() == desc.Block {
		return v.vm.split(c, v.cache)
	}
	// The check classifies the change: restriction queues its
	// invalidation; relaxation needs none (a stale entry only causes a
	// spurious permission fault).
	_, err := c.apply(func(cur uint64) uint64 { return cur&^v.clrBits | v.set }, 0)
	return err
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
	if c.Old&desc.ValidBit == 0 {
		return nil
	}
	if err := v.vm.checkLeaf(c); err != nil {
		return err
	}
	v.found = true
	v.young = v.young || c.Old&desc.AFBit != 0
	var err error
	switch v.mode {
	case mkOld:
		_, err = c.apply(clearAF, 0)
	case mkYoung:
		_, err = c.apply(setAF, 0)
	}
	return err
}

func clearAF(d uint64) uint64 { return d &^ desc.AFBit }
func setAF(d uint64) uint64   { return d | desc.AFBit }

type splitVisitor struct {
	vm    *VM
	cache *Cache
}

func (v *splitVisitor) Visit(c *Ctx, at WalkFlags) error {
	if c.Old&desc.ValidBit == 0 || c.Kind() != desc.Block {
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
	t := c.child
	cl := c.Level + 1
	csize := uint64(1) << vm.lbits[cl+1]
	var base, attrs uint64
	for i := uint64(0); i < t.n; i++ {
		d, ok := vm.load(t.pa + mem.PA(i*8))
		if !ok {
			return fmt.Errorf("s2pt: table %#x is not readable", uint64(t.pa))
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
	// The table goes invalid (released: freed after the invalidation),
	// so nothing walks it any more: its final Access flags are read and
	// the block's is their OR.
	if _, err := c.store(0, 0); err != nil {
		return err
	}
	var af uint64
	for i := uint64(0); i < t.n; i++ {
		d, _ := vm.load(t.pa + mem.PA(i*8))
		af |= d & desc.AFBit
	}
	if _, err := c.store(f.WithOA(attrs|af, base), 0); err != nil {
		return err
	}
	v.n++
	return nil
}

// visitors are preallocated so operations do not allocate.
type visitors struct {
	mapv     mapVisitor
	unmap    unmapVisitor
	perm     permVisitor
	young    youngVisitor
	split    splitVisitor
	collapse collapseVisitor
	dirty    dirtyVisitor
}

func (v *visitors) init(vm *VM) {
	v.mapv.vm, v.unmap.vm, v.perm.vm = vm, vm, vm
	v.young.vm, v.split.vm, v.collapse.vm, v.dirty.vm = vm, vm, vm, vm
}

// checkArgs validates an IPA range (granule-aligned, inside the IPA space).
func (vm *VM) checkArgs(ipa mem.IPA, size uint64) error {
	end := uint64(ipa) + size
	if size != 0 && (uint64(ipa)|size)&vm.gmask == 0 && end > uint64(ipa) && end <= vm.ipaEnd && !vm.destroyed {
		return nil
	}
	return vm.argsErr(ipa, size)
}

func (vm *VM) argsErr(ipa mem.IPA, size uint64) error {
	g := vm.layout.TableBytes
	end := uint64(ipa) + size
	if size == 0 || uint64(ipa)%g != 0 || size%g != 0 {
		return fmt.Errorf("s2pt: IPA range %#x+%#x is empty or not aligned to the %#x-byte granule", uint64(ipa), size, g)
	}
	if end < uint64(ipa) {
		return fmt.Errorf("s2pt: IPA range %#x+%#x wraps", uint64(ipa), size)
	}
	return vm.checkRange(ipa, mem.IPA(end))
}

func (vm *VM) checkCache(cache *Cache, need int) error {
	if cache != nil && cache.vm == vm && len(cache.pages)+len(vm.reserve) >= need {
		return nil
	}
	return vm.cacheErr(cache, need)
}

func (vm *VM) cacheErr(cache *Cache, need int) error {
	if cache.Len()+len(vm.reserve) < need {
		return fmt.Errorf("s2pt: memory cache holds %d pages (and the VM's reserve %d), the operation may need %d: top it up before taking the lock", cache.Len(), len(vm.reserve), need)
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
	if vm.held() { // vm.lock inlined by hand
		vm.busy = true
	} else if err := vm.lockSlow(); err != nil {
		return err
	}
	// The common case, kept short (a stage-2 fault's path): one leaf (a
	// page, or a block where allowed) with valid arguments and the prot
	// and flags of the previous Map, over an invalid entry of a table the
	// walk cache holds. It is made there (commit's make); anything else is
	// mapLocked's. The checks are oneLeaf's, checkArgs' (aligned to the
	// leaf: to the granule) and checkCache's by hand; the template key is
	// set only by a Map whose prot and flags were accepted; one leaf needs
	// a table per level below the root down to it, at most. (A destroyed
	// VM's walk cache is empty.)
	v := &vm.visitors.mapv
	level := int(vm.fastLevel[bits.TrailingZeros64(size)&63])
	if level >= 0 && size&(size-1) == 0 && (level == 3 || flags&MapBlocks != 0) && (uint64(ipa)|uint64(pa))&(size-1) == 0 &&
		uint64(ipa)|(size-1) < vm.ipaEnd && uint64(pa)|(size-1) < vm.paEnd && v.tmplKey == uint16(prot)<<8|uint16(flags)|1<<15 &&
		(flags&MapInPlace != 0 || cache != nil && cache.vm == vm && len(cache.pages)+len(vm.reserve) >= level-vm.layout.StartLevel) {
		if w, pte, i, ok := vm.wcEntry(level, ipa); ok && atomic.LoadUint64(&vm.mw[i])&desc.ValidBit == 0 {
			tmpl := v.block
			if level == 3 {
				tmpl = v.page
			}
			if vm.make(w.rec, level, pte, ipa, vm.withOA(tmpl, uint64(pa))) == nil {
				vm.unlock()
				return nil
			}
		}
	}
	err := vm.mapLocked(cache, ipa, pa, size, prot, flags)
	vm.unlock() // no defer: a stage-2 fault's path
	return err
}

func (vm *VM) mapLocked(cache *Cache, ipa mem.IPA, pa mem.PA, size uint64, prot Prot, flags MapFlags) error {
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	if uint64(pa)&vm.gmask != 0 || uint64(pa)+size < uint64(pa) || uint64(pa)+size > vm.paEnd {
		return fmt.Errorf("s2pt: output range %#x+%#x is not granule-aligned or exceeds the %d-bit PA size", uint64(pa), size, vm.layout.PABits)
	}
	if prot&^(ProtR|ProtW|ProtX|ProtDevice|ProtPXN|ProtUXN) != 0 {
		return fmt.Errorf("s2pt: unknown protection bits %#x", uint8(prot))
	}
	if flags&MapClean != 0 && !vm.layout.VTCR.HD() {
		return errors.New("s2pt: MapClean needs hardware dirty-state updates (Config.HD)")
	}
	inPlace := flags&MapInPlace != 0
	level, one := vm.oneLeaf(ipa, uint64(pa), size, flags)
	if inPlace {
		if !one {
			return fmt.Errorf("%w: IPA %#x+%#x is not one leaf", ErrNeedsTables, uint64(ipa), size)
		}
		cache = nil
	} else {
		need := level - vm.layout.StartLevel // one leaf: a table per level below the root down to it
		if !one {
			need = vm.MapPagesNeeded(ipa, pa, size, flags)
		}
		if err := vm.checkCache(cache, need); err != nil {
			return err
		}
	}
	v := &vm.visitors.mapv
	if k := uint16(prot)<<8 | uint16(flags) | 1<<15; v.tmplKey != k {
		v.tmplKey, v.page, v.block = k, vm.leaf(0, 3, prot, flags), vm.leaf(0, 2, prot, flags)
	}
	end := ipa + mem.IPA(size)
	if one {
		// One leaf over an invalid entry of a table that exists: made
		// where the descent ends, without a visit.
		var s spot
		stop := vm.leafEntry(&s, ipa, end, level)
		if stop == stopEntry && s.t.level == level && s.d&desc.ValidBit == 0 {
			tmpl := v.block
			if level == 3 {
				tmpl = v.page
			}
			_, _, err := vm.commit(&s, s.d, vm.withOA(tmpl, uint64(pa)), commitConst)
			return vm.finish(err)
		}
	}
	v.cache, v.ipa, v.pa, v.prot, v.flags, v.inPlace = cache, ipa, uint64(pa), prot, flags, inPlace
	err := vm.walk(ipa, end, v, VisitLeaf|VisitTablePre|visitPreCovered)
	v.cache = nil
	return vm.finish(err)
}

// wcEntry finds the entry at level (below the root) holding ipa in the
// walk cache's table of that level: the table, the entry's address and
// its index in vm.mw; ok is false when the cache holds no such table or
// the table memory gives no direct words. Small enough to inline: the
// fast paths' lookup.
func (vm *VM) wcEntry(level int, ipa mem.IPA) (w *tref, pte mem.PA, i uint64, ok bool) {
	w = &vm.wc[level&3][uint64(ipa)>>(vm.lbits[level&7]&63)&63]
	off := uint64(ipa - w.base)
	pte = w.pa + mem.PA(off>>(vm.lbits[level+1&7]&63)*8)
	i = uint64(pte-vm.mbase) >> 3
	return w, pte, i, w.rec != nil && off < vm.span[level&7] && i < uint64(len(vm.mw))
}

// cachedEntry reads the entry wcEntry finds into s.
func (vm *VM) cachedEntry(s *spot, level int, ipa mem.IPA) bool {
	w, pte, i, ok := vm.wcEntry(level, ipa)
	if !ok {
		return false
	}
	bits := vm.lbits[level+1&7] & 63
	idx := uint64(ipa-w.base) >> bits
	s.t, s.idx, s.pte, s.addr, s.d = *w, idx, pte, w.base+mem.IPA(idx<<bits), atomic.LoadUint64(&vm.mw[i])
	return true
}

// leafEntry is the entry at level of the one-leaf range [ipa, end): in
// the walk cache's table of that level, or where entryOf's descent ends.
func (vm *VM) leafEntry(s *spot, ipa, end mem.IPA, level int) int {
	if vm.cachedEntry(s, level, ipa) && desc.KindAt(s.d, level) != desc.Table {
		return stopEntry
	}
	stop, _, _ := vm.entryOf(s, ipa, end, VisitTablePre|visitPreCovered)
	return stop
}

// oneLeaf reports whether the range is exactly one leaf Map would write
// (a page, or a block where MapBlocks and the alignment allow one), and
// its level.
func (vm *VM) oneLeaf(ipa mem.IPA, pa, size uint64, flags MapFlags) (int, bool) {
	if size&(size-1) != 0 || size < vm.layout.TableBytes {
		return 0, false
	}
	level := int(vm.levelOf[bits.TrailingZeros64(size)&63])
	if level == 3 {
		return 3, true
	}
	return level, level > -2 && flags&MapBlocks != 0 && vm.blocks>>(level+1)&1 != 0 && (pa|uint64(ipa))&(size-1) == 0
}

// Unmap removes every mapping that covers any part of [ipa, ipa+size): a
// block straddling an end of the range is removed whole (the rest of it
// faults back in on the next access), as Linux's kvm_pgtable_stage2_unmap
// does. It takes no memory, so it never fails for lack of it. Tables it
// empties are kept in place (Config.KeepEmpty) or freed, after the TLB
// invalidation, which is complete when Unmap returns.
func (vm *VM) Unmap(ipa mem.IPA, size uint64) error { return vm.unmap(nil, ipa, size, false) }

// UnmapExact removes the mappings of exactly [ipa, ipa+size): a block
// straddling an end is split first (break-before-make), the part outside
// the range mapped as before, taking table pages from cache, which must
// hold EdgePagesNeeded pages (checked before anything changes, except for
// a range that is exactly one leaf, which needs none), as an embedder
// whose callers unmap exact ranges wants. Otherwise it is Unmap.
func (vm *VM) UnmapExact(cache *Cache, ipa mem.IPA, size uint64) error {
	return vm.unmap(cache, ipa, size, true)
}

// unmap is Unmap (UnmapExact with exact).
func (vm *VM) unmap(cache *Cache, ipa mem.IPA, size uint64, exact bool) error {
	if vm.held() { // vm.lock inlined by hand
		vm.busy = true
	} else if err := vm.lockSlow(); err != nil {
		return err
	}
	// The common case, kept short (an MMU notifier's path): a range that
	// is exactly one valid leaf of a table the walk cache holds (Unmap and
	// UnmapExact agree there). The leaf is broken (commit's breakLeaf),
	// the table kept or freed when that empties it, the invalidation
	// issued and what is to be freed freed (finish); anything else is
	// unmapLocked's. (A destroyed VM's walk cache is empty.)
	if level := int(vm.fastLevel[bits.TrailingZeros64(size)&63]); level >= 0 && size&(size-1) == 0 &&
		uint64(ipa)&(size-1) == 0 && uint64(ipa)|(size-1) < vm.ipaEnd {
		w, pte, i, ok := vm.wcEntry(level, ipa)
		if d := uint64(0); ok {
			d = atomic.LoadUint64(&vm.mw[i])
			ok = d&desc.ValidBit != 0 && desc.KindAt(d, level) != desc.Table
		}
		if ok {
			t := w.rec
			_, err := vm.breakLeaf(t, level, pte, ipa, 0)
			if err == nil && t.live == 0 && !t.kept && !vm.keep(t) {
				v := &vm.visitors.unmap
				v.keep = true
				err = vm.postVisits(t, 0, ipa, ipa+mem.IPA(size), v, VisitLeaf|VisitTablePost|visitPostEmpty)
			}
			err = vm.finish(err)
			vm.unlock() // no defer: an MMU notifier's path
			return err
		}
	}
	err := vm.unmapLocked(cache, ipa, size, exact)
	vm.unlock()
	return err
}

// unmapLocked is Unmap (UnmapExact with exact) off unmap's common case.
func (vm *VM) unmapLocked(cache *Cache, ipa mem.IPA, size uint64, exact bool) error {
	if err := vm.checkArgs(ipa, size); err != nil {
		return err
	}
	if exact {
		if err := vm.checkCache(cache, vm.EdgePagesNeeded(ipa, size)); err != nil {
			return err
		}
	}
	end := ipa + mem.IPA(size)
	v := &vm.visitors.unmap
	const flags = VisitLeaf | VisitTablePost | visitPostEmpty
	// The range inside one leaf (one page, one block) is unmapped where
	// the descent ends, without a visit, unless the leaf straddles the
	// range and exact is set.
	var s spot
	stop, _, _ := vm.entryOf(&s, ipa, end, 0)
	if stop == stopEntry && (!exact || s.d&desc.ValidBit == 0 || s.addr == ipa && s.addr+mem.IPA(1)<<vm.lbits[s.t.level+1&7] == end) {
		var err error
		if s.d&desc.ValidBit != 0 {
			if _, _, err = vm.commit(&s, s.d, 0, commitConst); err == nil && s.t.rec.live == 0 && s.t.rec != vm.root && !vm.keep(s.t.rec) {
				v.keep = true
				err = vm.postVisits(s.t.rec, 0, ipa, end, v, flags)
			}
		}
		return vm.finish(err)
	}
	v.cache, v.keep, v.exact = cache, true, exact
	err := vm.walk(ipa, end, v, flags)
	v.cache, v.exact = nil, false
	return vm.finish(err)
}

func (vm *VM) perm(cache *Cache, ipa mem.IPA, size uint64, relax bool, set, clr uint64) error {
	if err := vm.lock(); err != nil {
		return err
	}
	defer vm.unlock()
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
	return vm.perm(nil, ipa, size, false, 0, desc.S2APWriteBit|desc.DBMBit)
}

// Relax adds the rights in prot (R, W, X) to the mappings of the range,
// without break-before-make or TLB invalidation.
func (vm *VM) Relax(cache *Cache, ipa mem.IPA, size uint64, prot Prot) error {
	if prot&^(ProtR|ProtW|ProtX) != 0 {
		return fmt.Errorf("s2pt: Relax takes only R, W and X, not %#x", uint8(prot))
	}
	var set, clr uint64
	if prot&ProtR != 0 {
		set |= desc.S2APReadBit
	}
	if prot&ProtW != 0 {
		set |= desc.S2APWriteBit
	}
	if prot&ProtX != 0 {
		clr |= desc.S2XNMask
	}
	return vm.perm(cache, ipa, size, true, set, clr)
}

func (vm *VM) young(ipa mem.IPA, size uint64, mode youngMode) (young, found bool, err error) {
	if err := vm.lock(); err != nil {
		return false, false, err
	}
	defer vm.unlock()
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
	if err := vm.lock(); err != nil {
		return err
	}
	defer vm.unlock()
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
	if err := vm.lock(); err != nil {
		return 0, err
	}
	defer vm.unlock()
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
	if vm.held() { // vm.lock inlined by hand
		vm.busy = true
	} else if err := vm.lockSlow(); err != nil {
		return 0, 0, err
	}
	d, level, err = vm.lookupLocked(ipa)
	vm.unlock() // no defer: the hottest read path
	return d, level, err
}

// lookupLocked is Lookup under the MMU lock.
func (vm *VM) lookupLocked(ipa mem.IPA) (d uint64, level int, err error) {
	g := mem.IPA(vm.layout.TableBytes)
	ipa &^= g - 1
	if vm.destroyed || uint64(ipa)>>vm.layout.IPABits != 0 {
		err = vm.checkRange(ipa, ipa+g)
	} else {
		// One granule lies in one entry of every level: the deepest
		// table of the walk cache holding it answers without a descent
		// when its entry is not a table (a page, a block, invalid);
		// otherwise the descent ends at the entry.
		for l := 3; l > vm.layout.StartLevel; l-- {
			if _, _, i, ok := vm.wcEntry(l, ipa); ok {
				if d = atomic.LoadUint64(&vm.mw[i]); desc.KindAt(d, l) != desc.Table {
					return d, l, nil
				}
				break
			}
		}
		var s spot
		stop, _, _ := vm.entryOf(&s, ipa, ipa+g, 0)
		if d, level = s.d, s.t.level; stop != stopEntry {
			d, level, err = 0, 0, fmt.Errorf("%w (IPA %#x)", vm.childErr(s.t, s.idx, s.d), uint64(ipa))
		}
	}
	return d, level, err
}
