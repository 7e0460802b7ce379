package nested

import (
	"errors"

	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Changes of L0's stage 2 for the guest hypervisor (the canonical stage
// 2), which the shadows derived from it must follow: kvm calls these with
// the MMU lock held, before the host can reuse a frame. With the reverse
// map each acts on exactly the shadow entries derived from the range;
// untracked shadows (and every shadow with Config.NoReverseMap) get the
// coarse treatment mainline KVM gives every shadow.

// coarse reports whether shadow sh must be treated whole for a change of
// L1 [lo, hi): the map is off (every shadow, as mainline), or sh is
// untracked and its entries may derive from the range.
func (vm *VM) coarse(sh *shadowMMU, lo, hi mem.IPA) bool {
	r := &vm.rmap
	if !r.on {
		return true
	}
	return r.sh[sh.idx].untracked && r.mayDerive(sh.idx, lo, hi)
}

// CanonicalUnmapped implements kvm.NestedHooks: the shadow leaves derived
// from [gpa, gpa+size) are removed (whole leaves, with their TLB entries);
// an untracked shadow whose entries may derive from the range is emptied,
// as is every shadow without the reverse map (mainline KVM).
func (vm *VM) CanonicalUnmapped(gpa mem.IPA, size uint64) {
	hi := gpa + mem.IPA(size)
	for _, sh := range vm.shadows {
		if sh.s2 != nil && vm.coarse(sh, gpa, hi) {
			vm.rmap.st.coarseFlushes++
			vm.setErr(sh.flush())
		}
	}
	vm.rmap.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		sh := vm.shadows[n.sh]
		vm.rmap.st.unmapped++
		vm.setErr(sh.s2.Unmap(in(l2), size))
	})
}

// CanonicalWriteProtected implements kvm.NestedHooks: the shadow leaves
// derived from [gpa, gpa+size) lose write permission (dirty logging, a
// read-only slot); untracked shadows that may hold such entries, and every
// shadow without the reverse map, are write-protected whole.
func (vm *VM) CanonicalWriteProtected(gpa mem.IPA, size uint64) {
	hi := gpa + mem.IPA(size)
	for _, sh := range vm.shadows {
		if sh.s2 != nil && vm.coarse(sh, gpa, hi) {
			vm.rmap.st.coarseProtects++
			vm.setErr(sh.s2.WriteProtect(0, uint64(1)<<sh.ipaBits))
		}
	}
	vm.rmap.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		vm.rmap.st.protected++
		vm.setErr(vm.shadows[n.sh].s2.WriteProtect(in(l2), size))
	})
}

// CanonicalAge implements kvm.NestedHooks: the Access flags of the shadow
// leaves derived from [gpa, gpa+size) are cleared (with their TLB entries
// when flush), and it reports whether any was set, so that a page L2 uses
// looks young to the host (mainline KVM ignores the shadows when aging).
// Untracked shadows are skipped (counted).
func (vm *VM) CanonicalAge(gpa mem.IPA, size uint64, flush bool) bool {
	return vm.age(gpa, size, true, flush)
}

// CanonicalTestYoung implements kvm.NestedHooks: whether a shadow leaf
// derived from [gpa, gpa+size) has its Access flag set.
func (vm *VM) CanonicalTestYoung(gpa mem.IPA, size uint64) bool {
	return vm.age(gpa, size, false, false)
}

func (vm *VM) age(gpa mem.IPA, size uint64, clear, flush bool) bool {
	r := &vm.rmap
	hi := gpa + mem.IPA(size)
	for _, sh := range vm.shadows {
		if sh.s2 != nil && r.on && r.sh[sh.idx].untracked && r.mayDerive(sh.idx, gpa, hi) {
			r.st.ageSkipped++
		}
	}
	young := false
	r.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		sh := vm.shadows[n.sh]
		var y bool
		var err error
		if clear {
			r.st.aged++
			y, err = sh.s2.MkOld(in(l2), size)
			if y && flush {
				sh.invalidate(l2, size)
			}
		} else {
			y, err = sh.s2.TestYoung(in(l2), size)
		}
		vm.setErr(err)
		if y {
			r.st.young++
		}
		young = young || y
	})
	return young
}

// invalidate removes the TLB entries of shadow L2 [l2, l2+size): TLBI
// IPAS2E1IS per page and VMALLE1IS, or VMALLS12E1IS for a long range.
func (sh *shadowMMU) invalidate(l2 NestedIPA, size uint64) {
	inv := shadowInv{sh}
	g := sh.s2.Layout().TableBytes
	if size/g > 64 {
		inv.InvalidateVMID()
		return
	}
	for a := uint64(0); a < size; a += g {
		inv.InvalidateIPA(in(l2)+mem.IPA(a), s2pt.NoLevelHint)
	}
}

// CanonicalChangedPTE implements kvm.NestedHooks: the host page behind
// L1 IPA gpa now maps pa read-only (KSM, copy-on-write; between the
// invalidation's start, which unmapped the shadow entries derived from
// it, and its end). Each L2 page the reverse map still records as derived
// from it is mapped to pa read-only, with the rights the guest gave it,
// where the shadow already has the last-level table that holds it (as
// kvm does for its own stage 2); elsewhere the call is ignored, which
// the protocol allows (the next access faults).
func (vm *VM) CanonicalChangedPTE(gpa mem.IPA, pa mem.PA) {
	pg := vm.k.Host().PageSize()
	vm.rmap.forL1(gpa, gpa+mem.IPA(pg), func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		sh := vm.shadows[n.sh]
		if size != pg {
			return // a host page in pieces (a smaller shadow granule): not one leaf
		}
		err := sh.s2.Map(nil, in(l2), pa, pg, n.prot&^s2pt.ProtW, s2pt.MapInPlace|s2pt.MapSW(n.sw))
		if errors.Is(err, s2pt.ErrNeedsTables) {
			return
		}
		vm.setErr(err)
		if err == nil {
			vm.rmap.st.changedPTE++
		}
	})
}

// RmapStats returns the reverse map's accounting.
func (vm *VM) RmapStats() RmapStats {
	vm.k.LockMMU()
	defer vm.k.UnlockMMU()
	r := &vm.rmap
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
