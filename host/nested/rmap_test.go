package nested_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// withMap sets the reverse map on or off (mainline's full unmap).
func withMap(on bool) func(*rigConfig) {
	return func(c *rigConfig) { c.nested.NoReverseMap = !on }
}

// shadowLeaf returns the descriptor of the shadow of guest VMID vmid that
// maps ipa (0 if none).
func shadowLeaf(t *testing.T, r *rig, vmid uint16, ipa nested.NestedIPA) desc.S2 {
	t.Helper()
	for _, s := range r.nvm.Shadows() {
		if s.GuestVMID != vmid || !s.GuestVM {
			continue
		}
		d, _, err := s.Stage2.Lookup(mem.IPA(ipa))
		if err == nil && d&1 == 1 {
			return desc.S2(d)
		}
	}
	return 0
}

func writable(d desc.S2) bool { return d&1 == 1 && d.S2AP()&2 != 0 }

// hvaOf is the host virtual address of L1 IPA l1.
func hvaOf(r *rig, l1 mem.IPA) hostmm.HVA { return r.kvm.Lookup(l1).HVAOf(l1) }

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkAll(t *testing.T, r *rig) {
	t.Helper()
	if err := r.nvm.Check(); err != nil {
		t.Fatal(err)
	}
	if err := r.nvm.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestReverseMapHostUnmap: the host swaps out one L1 page that VM A uses
// through its shadow. With the reverse map exactly the shadow leaf derived
// from it goes (the other pages of A and VM B's page stay mapped); without
// it (mainline) every shadow is emptied. Either way L2 then reads what it
// wrote (the page is swapped back in) and the invariants hold.
func TestReverseMapHostUnmap(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse map %v", on), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0, withMap(on))
			r.run(t, r.b)
			r.store(t, l2RAM+0x1000, 0xb)
			r.toL1(t)
			r.run(t, r.a)
			pages := []nested.NestedIPA{l2RAM + 0x1000, l2RAM + 0x5000, l2RAM + 0x20_0000}
			for _, p := range pages {
				r.store(t, mem.VA(p), uint64(p))
			}
			mustOK(t, r.kvm.AddressSpace().SwapOut(hvaOf(r, l1VMA+0x1000)))
			checkAll(t, r)
			for i, p := range pages {
				if kept := shadowLeaf(t, r, 1, p) != 0; kept != (on && i > 0) {
					t.Errorf("VM A's shadow leaf at %#x kept: %v", uint64(p), kept)
				}
			}
			if kept := shadowLeaf(t, r, 2, l2RAM+0x1000) != 0; kept != on {
				t.Errorf("VM B's shadow leaf kept: %v", kept)
			}
			st := r.nvm.RmapStats()
			if on && (st.Unmapped != 1 || st.CoarseFlushes != 0) || !on && st.CoarseFlushes < 2 {
				t.Errorf("stats %+v", st)
			}
			for _, p := range pages {
				if got := r.load(t, mem.VA(p)); got != uint64(p) {
					t.Errorf("L2 reads %#x at %#x", got, uint64(p))
				}
			}
			checkAll(t, r)
		})
	}
}

// TestReverseMapDirtyLog: L0 logs the dirty pages of the memslot that
// backs VM A (L1's memory is two memslots here). Starting the log
// write-protects A's shadow leaves; VM B's, derived from the other slot,
// stay writable with the reverse map (mainline write-protects every
// shadow). L2's writes through the shadow are logged, and after
// GetDirtyLog the next write is logged again.
func TestReverseMapDirtyLog(t *testing.T) {
	split := func(c *rigConfig) { c.split = true }
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse map %v", on), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0, withMap(on), split)
			r.run(t, r.b)
			r.store(t, l2RAM+0x3000, 0xb)
			r.toL1(t)
			r.run(t, r.a)
			r.store(t, l2RAM+0x1000, 0xa)
			if !writable(shadowLeaf(t, r, 1, l2RAM+0x1000)) || !writable(shadowLeaf(t, r, 2, l2RAM+0x3000)) {
				t.Fatal("the shadow leaves L2 wrote through are not writable")
			}
			mustOK(t, r.kvm.EnableDirtyLog(0, true))
			checkAll(t, r)
			if writable(shadowLeaf(t, r, 1, l2RAM+0x1000)) {
				t.Error("VM A's shadow leaf stays writable while its memory is logged")
			}
			if w := writable(shadowLeaf(t, r, 2, l2RAM+0x3000)); w != on {
				t.Errorf("VM B's shadow leaf (another memslot) writable: %v", w)
			}
			page := uint64(l1VMA+0x1000-l1RAM) / 4096
			for round := 0; round < 2; round++ {
				r.store(t, l2RAM+0x1000, uint64(round))
				got, err := r.kvm.GetDirtyLog(0)
				mustOK(t, err)
				if !slices.Contains(got, page) {
					t.Errorf("round %d: the dirty log %v lacks page %d, which L2 wrote", round, got, page)
				}
				if writable(shadowLeaf(t, r, 1, l2RAM+0x1000)) {
					t.Errorf("round %d: the shadow leaf is writable after GetDirtyLog", round)
				}
				checkAll(t, r)
			}
			st := r.nvm.RmapStats()
			if on && (st.CoarseProtects != 0 || st.WriteProtected == 0) || !on && st.CoarseProtects == 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestReverseMapAging: the host ages the L1 page behind an L2 page. With
// the reverse map the shadow leaf's Access flag counts (mainline ignores
// shadows): the page is young after L2 used it, old after aging, and young
// again once L2 touches it (an Access flag fault on the shadow, resolved
// without the host's fault path).
func TestReverseMapAging(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse map %v", on), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0, withMap(on))
			r.run(t, r.a)
			r.store(t, l2RAM+0x1000, 7)
			as := r.kvm.AddressSpace()
			hva := hvaOf(r, l1VMA+0x1000)
			// The first aging clears the host entry's own accessed state
			// (L0 faulted the page in for the shadow).
			y, err := as.Age(hva, true)
			mustOK(t, err)
			if !y {
				t.Error("the page L2 just wrote is old")
			}
			y, err = as.Age(hva, true)
			mustOK(t, err)
			if y {
				t.Error("the page is young right after aging")
			}
			if got := r.load(t, l2RAM+0x1000); got != 7 {
				t.Fatalf("L2 reads %#x", got)
			}
			y, err = as.Age(hva, true)
			mustOK(t, err)
			if y != on {
				t.Errorf("after L2 read it again the page is young: %v", y)
			}
			st := r.v.Stats()
			if on && st.AccessFlagFaults != 1 || !on && st.AccessFlagFaults != 0 {
				t.Errorf("%d Access flag faults on the shadow", st.AccessFlagFaults)
			}
			checkAll(t, r)
		})
	}
}

// TestReverseMapChangePTE: KSM merges L1 pages while L2 maps one of them.
// With the reverse map, change_pte maps the L2 page read-only to the KSM
// page in the shadow, so L2 reads it without a shadow fault; its write
// then breaks copy-on-write and only that page changes.
func TestReverseMapChangePTE(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse map %v", on), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, hostmm.MapMergeable, withMap(on))
			r.run(t, r.a)
			r.store(t, l2RAM+0x1000, 0x5a5a)
			r.store(t, l2RAM+0x2000, 0x5a5a)
			if n := r.kvm.AddressSpace().Kernel().KSMScan(0); n == 0 {
				t.Fatal("KSM merged nothing")
			}
			checkAll(t, r)
			d := shadowLeaf(t, r, 1, l2RAM+0x1000)
			if mapped := d != 0; mapped != on {
				t.Errorf("shadow leaf after KSM mapped: %v", mapped)
			}
			if writable(d) {
				t.Error("the shadow maps the KSM page writable")
			}
			before := r.v.Stats().ShadowFaults
			if got := r.load(t, l2RAM+0x1000); got != 0x5a5a {
				t.Errorf("L2 reads %#x", got)
			}
			if faulted := r.v.Stats().ShadowFaults != before; faulted == on {
				t.Errorf("the read after KSM took a shadow fault: %v", faulted)
			}
			if on && r.nvm.RmapStats().ChangedPTEs == 0 {
				t.Error("no change_pte reached the shadow")
			}
			r.store(t, l2RAM+0x1000, 1)
			if a, b := r.load(t, l2RAM+0x1000), r.load(t, l2RAM+0x2000); a != 1 || b != 0x5a5a {
				t.Errorf("after copy-on-write L2 reads %#x and %#x", a, b)
			}
			checkAll(t, r)
		})
	}
}

// TestReverseMapBound: with a pool of 16 extents, VM A's shadow holds more
// scattered pages than fit: it becomes untracked. A host change of an L1
// page its entries cannot derive from leaves it alone; one inside its L1
// range empties it whole (counted), after which it is tracked again.
func TestReverseMapBound(t *testing.T) {
	r := newRig(t, nested.ModeNV2, true, 0, func(c *rigConfig) { c.nested.ReverseMapExtents = 16 })
	mustOK(t, r.v.Store(l1RAM+0x1000, 8, 1)) // an L1 page of its own
	r.run(t, r.a)
	for p := 0; p < 40; p++ {
		r.store(t, mem.VA(l2RAM+p*0x2000), uint64(p)) // every other page: no merging
	}
	st := r.nvm.RmapStats()
	if st.Overflows == 0 || st.Untracked != 1 || st.Capacity != 16 {
		t.Fatalf("stats %+v, want an overflow and one untracked shadow", st)
	}
	checkAll(t, r)
	as := r.kvm.AddressSpace()
	mustOK(t, as.SwapOut(hvaOf(r, l1RAM+0x1000)))
	if shadowLeaf(t, r, 1, l2RAM) == 0 || r.nvm.RmapStats().CoarseFlushes != 0 {
		t.Error("a host change outside the untracked shadow's L1 range emptied it")
	}
	mustOK(t, as.SwapOut(hvaOf(r, l1VMA+0x2000)))
	st = r.nvm.RmapStats()
	if shadowLeaf(t, r, 1, l2RAM) != 0 || st.CoarseFlushes != 1 || st.Untracked != 0 {
		t.Errorf("after a host change inside its range: stats %+v", st)
	}
	for p := 0; p < 40; p++ {
		if got := r.load(t, mem.VA(l2RAM+p*0x2000)); got != uint64(p) {
			t.Fatalf("L2 reads %#x at page %d", got, p)
		}
	}
	checkAll(t, r)
}
