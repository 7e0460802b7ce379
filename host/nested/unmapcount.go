package nested

import (
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// UnmapCounter counts the shadow leaves that host changes unmapped (the
// cost the reverse map saves: with it a host unmap removes only the leaves
// derived from the range, without it every shadow is emptied). It sits
// between the VM's kvm.VM and its hooks (VM.CountShadowUnmaps), counting
// before each CanonicalUnmapped what it is about to remove: the leaves of
// every shadow treated whole, and those the reverse map sends the change
// to. Counting walks those tables once more, so it is for measurements.
type UnmapCounter struct {
	*VM
	leaves, bytes uint64
}

// CountShadowUnmaps starts counting the shadow leaves host changes unmap.
func (vm *VM) CountShadowUnmaps() *UnmapCounter {
	c := &UnmapCounter{VM: vm}
	vm.k.SetNestedHooks(c)
	return c
}

// Unmapped returns the shadow leaves (and the bytes they mapped) that host
// changes removed so far.
func (c *UnmapCounter) Unmapped() (leaves, bytes uint64) {
	c.k.LockMMU()
	defer c.k.UnlockMMU()
	return c.leaves, c.bytes
}

// CanonicalUnmapped implements kvm.NestedHooks: count, then unmap.
func (c *UnmapCounter) CanonicalUnmapped(gpa mem.IPA, size uint64) {
	vm, p := c.VM, &c.VM.pool
	hi := gpa + mem.IPA(size)
	for _, sh := range p.shadows {
		if sh.s2 != nil && p.coarse(sh, gpa, hi) {
			c.count(sh.s2, 0, mem.IPA(1)<<sh.ipaBits)
		}
	}
	p.rmap.forL1(gpa, hi, func(n *rnode, _ mem.IPA, l2 NestedIPA, size uint64) {
		if s2 := p.shadows[n.sh].s2; s2 != nil {
			c.count(s2, in(l2), in(l2)+mem.IPA(size))
		}
	})
	vm.CanonicalUnmapped(gpa, size)
}

// count adds the valid leaves of s2 in [lo, hi).
func (c *UnmapCounter) count(s2 *s2pt.VM, lo, hi mem.IPA) {
	err := s2.Walk(lo, hi, s2pt.VisitorFunc(func(x *s2pt.Ctx, _ s2pt.WalkFlags) error {
		if k := x.Kind(); x.Old&1 != 0 && (k == desc.Block || k == desc.Page) {
			c.leaves++
			c.bytes += x.Size()
		}
		return nil
	}), s2pt.VisitLeaf)
	c.setErr(err)
}
