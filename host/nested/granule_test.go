package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestGuestGranuleSmallerThanHost: L0 uses 64K pages (its stage 2 and its
// memory) and L1 a 4K stage 2 (mainline KVM does not support a guest
// granule smaller than the host page). The shadow uses the smaller
// granule, so each L1 page is shadowed exactly: two L2 pages in one 64K
// L2 region that L1 maps to unrelated 4K pieces of two different host
// pages each read their own data, each shadow leaf is 4K inside its host
// page, and L1's TLBI IPAS2E1IS of one 4K page removes that shadow leaf
// and not its neighbour's; the host's migration of one 64K page removes the
// shadow leaves derived from it.
func TestGuestGranuleSmallerThanHost(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0, func(c *rigConfig) { c.pageSize = 64 << 10 })
			if g := r.kvm.Layout().Format.Granule; g.Bits() != 16 {
				t.Fatalf("L0's stage 2 granule is %v, want 64K", g)
			}
			pages := []struct {
				l2 nested.NestedIPA
				l1 mem.IPA
			}{{l2RAM, l1VMA + 0x3000}, {l2RAM + 0x1000, l1VMB + 0x5_7000}}
			for i, p := range pages {
				if err := r.v.Store(mem.VA(p.l1+8), 8, uint64(0x64400+i)); err != nil {
					t.Fatal(err)
				}
				if err := r.a.Map(p.l2, p.l1, 4096); err != nil {
					t.Fatal(err)
				}
			}
			r.run(t, r.a)
			for i, p := range pages {
				if got := r.load(t, mem.VA(p.l2+8)); got != uint64(0x64400+i) {
					t.Errorf("L2 reads %#x at L2 IPA %#x, want %#x from L1 IPA %#x", got, uint64(p.l2+8), 0x64400+i, uint64(p.l1+8))
				}
			}
			sh := r.nvm.Shadows()
			if len(sh) != 1 || sh[0].Stage2.Layout().Format.Granule.Bits() != 12 {
				t.Fatalf("shadows %+v: want one with the 4K granule", sh)
			}
			s2 := sh[0].Stage2
			for _, p := range pages {
				d, level, err := s2.Lookup(mem.IPA(p.l2))
				if err != nil || level != 3 || desc.KindAt(d, level) != desc.Page {
					t.Errorf("shadow at L2 IPA %#x: %#x level %d %v, want a 4K page", uint64(p.l2), d, level, err)
				}
			}
			if err := r.nvm.Check(); err != nil {
				t.Fatal(err)
			}
			// L1 removes its first page (Unmap: TLBI IPAS2E1IS with TTL
			// level 3, then VMALLE1IS).
			r.toL1(t)
			if err := r.a.Unmap(pages[0].l2, 4096); err != nil {
				t.Fatal(err)
			}
			if d, _, _ := s2.Lookup(mem.IPA(pages[0].l2)); d&1 != 0 {
				t.Errorf("the unmapped page's shadow leaf %#x survives", d)
			}
			if d, _, _ := s2.Lookup(mem.IPA(pages[1].l2)); d&1 == 0 {
				t.Errorf("its neighbour's shadow leaf went too (TTL level 3 names one 4K page)")
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
			// The host migrates the 64K page behind L1's second page: the
			// shadow leaf derived from it goes, and L2 reads the same data
			// from the new frame.
			s := r.kvm.Lookup(pages[1].l1)
			if err := r.kvm.AddressSpace().Migrate(s.HVAOf(pages[1].l1)); err != nil {
				t.Fatal(err)
			}
			if d, _, _ := s2.Lookup(mem.IPA(pages[1].l2)); d&1 != 0 {
				t.Errorf("the shadow leaf over the migrated host page survives: %#x", d)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
			r.run(t, r.a)
			if got := r.load(t, mem.VA(pages[1].l2+8)); got != 0x64401 {
				t.Errorf("after the migration L2 reads %#x", got)
			}
		})
	}
}
