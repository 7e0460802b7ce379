package nested

import (
	"errors"

	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Changes of the canonical stage 2 (the hypervisor's stage 2 for the
// guest hypervisor's VM), which the shadows derived from it must follow:
// L0's kvm calls the VM's hooks with the MMU lock held, before the host
// can reuse a frame; a guest hypervisor that runs one of its own calls its
// EL2VCPU's when it changes its stage 2 for that VM. With the reverse map
// each acts on exactly the shadow entries derived from the range;
// untracked shadows (and every shadow without the map) get the coarse
// treatment mainline KVM gives every shadow.

// coarse reports whether shadow sh must be treated whole for a change of
// [lo, hi): the map is off (every shadow, as mainline), or sh is
// untracked and its entries may derive from the range.
func (p *shadowPool[X]) coarse(sh *shadow[X], lo, hi mem.IPA) bool {
	r := &p.rmap
	if !r.on {
		return true
	}
	return r.sh[sh.idx].untracked && r.mayDerive(sh.idx, lo, hi)
}

// unmapped removes the shadow leaves derived from [gpa, gpa+size) (whole
// leaves, with their TLB entries); an untracked shadow whose entries may
// derive from the range is emptied, as is every shadow without the
// reverse map.
func (p *shadowPool[X]) unmapped(gpa mem.IPA, size uint64) error {
	hi := gpa + mem.IPA(size)
	var err error
	for _, sh := range p.shadows {
		if sh.s2 != nil && p.coarse(sh, gpa, hi) {
			p.rmap.st.coarseFlushes++
			err = errors.Join(err, p.flush(sh))
		}
	}
	p.rmap.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		p.rmap.st.unmapped++
		err = errors.Join(err, p.shadows[n.sh].s2.Unmap(in(l2), size))
	})
	return err
}

// writeProtected write-protects the shadow leaves derived from [gpa,
// gpa+size); untracked shadows that may hold such entries, and every
// shadow without the reverse map, whole.
func (p *shadowPool[X]) writeProtected(gpa mem.IPA, size uint64) error {
	hi := gpa + mem.IPA(size)
	var err error
	for _, sh := range p.shadows {
		if sh.s2 != nil && p.coarse(sh, gpa, hi) {
			p.rmap.st.coarseProtects++
			err = errors.Join(err, sh.s2.WriteProtect(0, uint64(1)<<sh.ipaBits))
		}
	}
	p.rmap.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		p.rmap.st.protected++
		err = errors.Join(err, p.shadows[n.sh].s2.WriteProtect(in(l2), size))
	})
	return err
}

// age clears (clear) or tests the Access flags of the shadow leaves derived
// from [gpa, gpa+size), invalidating the cleared ones' TLB entries when
// flush, and reports whether any was set. Untracked shadows are skipped
// (counted).
func (p *shadowPool[X]) age(gpa mem.IPA, size uint64, clear, flush bool) (bool, error) {
	r := &p.rmap
	hi := gpa + mem.IPA(size)
	for _, sh := range p.shadows {
		if sh.s2 != nil && r.on && r.sh[sh.idx].untracked && r.mayDerive(sh.idx, gpa, hi) {
			r.st.ageSkipped++
		}
	}
	young := false
	var err error
	r.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		sh := p.shadows[n.sh]
		var y bool
		var e error
		if clear {
			r.st.aged++
			y, e = sh.s2.MkOld(in(l2), size)
			if y && flush {
				p.level.invalidate(sh, l2, size)
			}
		} else {
			y, e = sh.s2.TestYoung(in(l2), size)
		}
		err = errors.Join(err, e)
		if y {
			r.st.young++
		}
		young = young || y
	})
	return young, err
}

// changedPTE follows change_pte: the page [gpa, gpa+pg) now maps pa
// read-only (KSM, copy-on-write; between the start of an invalidation,
// which unmapped the shadow entries derived from it, and its end). Each
// nested page the reverse map still records as derived from it is mapped
// to pa read-only, with the rights the guest gave it, where the shadow
// already has the last-level table that holds it (as kvm does for its
// own stage 2); elsewhere the call is ignored, which the protocol allows
// (the next access faults).
func (p *shadowPool[X]) changedPTE(gpa mem.IPA, pa mem.PA, pg uint64) error {
	var err error
	p.rmap.forL1(gpa, gpa+mem.IPA(pg), func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		sh := p.shadows[n.sh]
		if size != pg {
			return // a page in pieces (a smaller shadow granule): not one leaf
		}
		e := sh.s2.Map(nil, in(l2), pa, pg, n.prot&^s2pt.ProtW, s2pt.MapInPlace|s2pt.MapSW(n.sw))
		if errors.Is(e, s2pt.ErrNeedsTables) {
			return
		}
		err = errors.Join(err, e)
		if e == nil {
			p.rmap.st.changedPTE++
		}
	})
	return err
}

// rmapStats is the reverse map's accounting.
func (p *shadowPool[X]) rmapStats() RmapStats {
	r := &p.rmap
	c := &r.st
	st := RmapStats{Enabled: r.on, Extents: r.used, Capacity: len(r.nodes), Bytes: r.bytes(),
		Inserts: c.inserts, Merges: c.merges, Overflows: c.overflows,
		CoarseFlushes: c.coarseFlushes, CoarseProtects: c.coarseProtects, AgeSkipped: c.ageSkipped,
		Unmapped: c.unmapped, WriteProtected: c.protected, Aged: c.aged, Young: c.young, ChangedPTEs: c.changedPTE}
	for i := range r.sh {
		if r.sh[i].untracked {
			st.Untracked++
		}
	}
	return st
}

// The VM's kvm.NestedHooks: the pool's operations, under the MMU lock kvm
// holds, with errors kept for Err (hooks return none).

// CanonicalUnmapped implements kvm.NestedHooks: the shadow leaves derived
// from [gpa, gpa+size) are removed (with their TLB entries).
func (vm *VM) CanonicalUnmapped(gpa mem.IPA, size uint64) { vm.setErr(vm.pool.unmapped(gpa, size)) }

// CanonicalWriteProtected implements kvm.NestedHooks: the shadow leaves
// derived from [gpa, gpa+size) lose write permission (dirty logging, a
// read-only slot).
func (vm *VM) CanonicalWriteProtected(gpa mem.IPA, size uint64) {
	vm.setErr(vm.pool.writeProtected(gpa, size))
}

// CanonicalAge implements kvm.NestedHooks: the Access flags of the shadow
// leaves derived from [gpa, gpa+size) are cleared (with their TLB entries
// when flush), and it reports whether any was set, so that a page L2 uses
// looks young to the host (mainline KVM ignores the shadows when aging).
func (vm *VM) CanonicalAge(gpa mem.IPA, size uint64, flush bool) bool {
	y, err := vm.pool.age(gpa, size, true, flush)
	vm.setErr(err)
	return y
}

// CanonicalTestYoung implements kvm.NestedHooks: whether a shadow leaf
// derived from [gpa, gpa+size) has its Access flag set.
func (vm *VM) CanonicalTestYoung(gpa mem.IPA, size uint64) bool {
	y, err := vm.pool.age(gpa, size, false, false)
	vm.setErr(err)
	return y
}

// CanonicalChangedPTE implements kvm.NestedHooks: the host page behind L1
// IPA gpa now maps pa read-only (see shadowPool.changedPTE).
func (vm *VM) CanonicalChangedPTE(gpa mem.IPA, pa mem.PA) {
	vm.setErr(vm.pool.changedPTE(gpa, pa, vm.k.Host().PageSize()))
}

// RmapStats returns the reverse map's accounting.
func (vm *VM) RmapStats() RmapStats {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	return vm.pool.rmapStats()
}
