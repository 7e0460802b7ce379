package s2pt

import (
	"github.com/nestmmu/nestmmu/mem"
)

// NoLevelHint is the level of an invalidation whose leaf level is not one
// known level (a table was removed, or the range holds leaves of several
// levels): TTL = 0.
const NoLevelHint = -2

// Invalidator is the TLB maintenance stage-2 changes need, for one VM; the
// hypervisor implements it with the VM's current VMID (which it owns: a
// VMID can change across an allocator rollover, the tables do not). Each
// call is broadcast (inner shareable) maintenance that has completed when
// it returns (TLBI; DSB ISH).
type Invalidator interface {
	// InvalidateIPA removes the TLB entries that translate ipa through
	// the VM's stage 2: TLBI IPAS2E1IS for ipa with the leaf's level as
	// the TTL hint (NoLevelHint when unknown), which removes the
	// stage-2-only and walk-cache entries; IPAS2E1IS does not remove the
	// combined stage-1+2 entries made through the IPA (docs/TLB.md), so
	// implementations follow it with TLBI VMALLE1IS, as KVM's
	// __kvm_tlb_flush_vmid_ipa does.
	InvalidateIPA(ipa mem.IPA, level int)
	// InvalidateVMID is TLBI VMALLS12E1IS: every entry of the VM's VMID.
	InvalidateVMID()
}

// RangeInvalidator is an Invalidator that also takes a batch of ranges,
// as modern KVM invalidates (kvm_tlb_flush_vmid_range): the manager then
// issues one call per operation instead of one per entry.
type RangeInvalidator interface {
	Invalidator
	// InvalidateRanges removes the entries of every range (TLBI
	// RIPAS2E1IS, or RIPAS2LE1IS for a LeafOnly range, with the level as
	// the TTL hint; IPAS2E1IS/IPAS2LE1IS for a single entry), then the
	// combined entries (TLBI VMALLE1IS once), complete on return.
	InvalidateRanges(rs []Range)
}

// Range is one stage-2 invalidation of a batch: every TLB entry that
// translates an IPA in [Start, End).
type Range struct {
	Start, End mem.IPA
	// Level is the level of every leaf the range invalidates (the TTL
	// hint), or NoLevelHint.
	Level int
	// LeafOnly reports that only leaf entries changed: the last-level
	// forms, which leave walk-cache entries, are enough. A range over a
	// removed table is not LeafOnly: the walk caches must forget the
	// table too.
	LeafOnly bool
	// Stride is the size of the smallest entry in the range: an
	// invalidation by IPA every Stride bytes covers it.
	Stride uint64
}

type noInvalidator struct{}

func (noInvalidator) InvalidateIPA(mem.IPA, int)  {}
func (noInvalidator) InvalidateVMID()             {}
func (noInvalidator) InvalidateRanges(rs []Range) {}

// maxPending is how many separate ranges an operation queues before it
// merges them into one.
const maxPending = 32

// maxPerEntry is the most invalidations by IPA a batch is turned into for
// an Invalidator without ranges; above it the whole VMID is invalidated
// (KVM's MAX_TLBI_OPS reasoning: each by-IPA operation probes every TLB).
const maxPerEntry = 64

// queue records an invalidation of [start, end) to issue before the
// operation returns. Adjacent ranges of the same kind merge, and a
// table's range absorbs the ranges of the leaves that were below it.
func (vm *VM) queue(start, end mem.IPA, level int, leafOnly bool, stride uint64) {
	if vm.npend == 0 {
		vm.pend[0] = Range{Start: start, End: end, Level: level, LeafOnly: leafOnly, Stride: stride}
		vm.npend = 1
		return
	}
	// The common case next: the next leaf of a walk.
	if last := &vm.pend[vm.npend-1]; last.End == start && last.Level == level && last.LeafOnly == leafOnly && leafOnly {
		last.End = end
		last.Stride = min(last.Stride, stride)
		return
	}
	r := Range{Start: start, End: end, Level: level, LeafOnly: leafOnly, Stride: stride}
	// A table's range covers the leaves queued below it: drop them.
	for vm.npend > 0 {
		last := &vm.pend[vm.npend-1]
		if last.Start < start || last.End > end {
			break
		}
		if !r.LeafOnly || last.Level != r.Level {
			r.Level = NoLevelHint
		}
		r.LeafOnly = r.LeafOnly && last.LeafOnly
		r.Stride = min(r.Stride, last.Stride)
		vm.npend--
	}
	if vm.npend > 0 {
		last := &vm.pend[vm.npend-1]
		if last.End == start && last.Level == r.Level && last.LeafOnly == r.LeafOnly {
			last.End = end
			last.Stride = min(last.Stride, r.Stride)
			return
		}
	}
	if vm.npend == maxPending {
		// Full: one range over all of it (the leaves of one walk come in
		// address order), as KVM invalidates a whole unmapped range;
		// invalidating the entries in the gaps too is allowed.
		all := &vm.pend[0]
		for _, p := range vm.pend[1:vm.npend] {
			all.Start, all.End = min(all.Start, p.Start), max(all.End, p.End)
			all.LeafOnly = all.LeafOnly && p.LeafOnly
			all.Stride = min(all.Stride, p.Stride)
			if p.Level != all.Level {
				all.Level = NoLevelHint
			}
		}
		vm.npend = 1
		vm.queue(start, end, level, leafOnly, stride)
		return
	}
	vm.pend[vm.npend] = r
	vm.npend++
}

// pendingOverlaps reports whether a queued invalidation covers part of
// [start, end).
func (vm *VM) pendingOverlaps(start, end mem.IPA) bool {
	for i := 0; i < vm.npend; i++ {
		if vm.pend[i].Start < end && start < vm.pend[i].End {
			return true
		}
	}
	return false
}

// flush issues the queued invalidations.
func (vm *VM) flush() {
	switch {
	case vm.npend == 0:
		return
	case vm.noInv: // as noInvalidator.InvalidateRanges, without the call
		vm.stats.TLBIs += uint64(vm.npend)
	case vm.rinv != nil:
		vm.rinv.InvalidateRanges(vm.pend[:vm.npend])
		vm.stats.TLBIs += uint64(vm.npend)
	default:
		n := uint64(0)
		for _, r := range vm.pend[:vm.npend] {
			n += (uint64(r.End-r.Start) + r.Stride - 1) / r.Stride
		}
		if n > maxPerEntry {
			vm.inv.InvalidateVMID()
			vm.stats.TLBIs++
			break
		}
		for _, r := range vm.pend[:vm.npend] {
			for a := r.Start; a < r.End; a += mem.IPA(r.Stride) {
				vm.inv.InvalidateIPA(a, r.Level)
				vm.stats.TLBIs++
			}
		}
	}
	vm.stats.Flushes++
	vm.npend = 0
}
