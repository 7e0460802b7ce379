package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// shadowTLBEntries counts CPU 0's TLB entries of the shadows' VMIDs whose
// IPA is in [lo, hi).
func shadowTLBEntries(r *rig, lo, hi uint64) int {
	ids := map[uint16]bool{}
	for _, s := range r.nvm.Shadows() {
		ids[s.VMID] = true
	}
	n := 0
	for _, e := range r.host.TLBEntries(0) {
		if ids[e.VMID] && e.Regime == vmsa.RegimeEL10 && uint64(e.IPA) >= lo && uint64(e.IPA) < hi {
			n++
		}
	}
	return n
}

// TestShadowRangeInvalidation: L1 write-protects a 2 MiB block of L2 that
// the shadow holds as 100 4K leaves (the host backs L1 with 4K pages).
// L0's shadow invalidates them with range TLBIs (s2pt.RangeInvalidator,
// TLBI RIPAS2E1IS), as it does for its own stage 2; before, more than 64
// entries fell back to TLBI VMALLS12E1IS, which also removed the TLB
// entries of the neighbouring block that nothing changed. The
// write-protected block's entries go, the neighbour's stay, and L2's next
// write there faults to L1.
func TestShadowRangeInvalidation(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			r.run(t, r.a)
			for i := uint64(0); i < 100; i++ {
				r.store(t, mem.VA(l2RAM+i*0x1000), i)
			}
			r.store(t, l2RAM+0x20_0000, 7)
			if n := shadowTLBEntries(r, l2RAM+0x20_0000, l2RAM+0x40_0000); n == 0 {
				t.Fatal("no TLB entry for the second block")
			}
			before := r.host.Stats()
			r.toL1(t)
			if err := r.a.WriteProtect(l2RAM, 2<<20); err != nil {
				t.Fatal(err)
			}
			after := r.host.Stats()
			if after.VMALLS12E1IS != before.VMALLS12E1IS {
				t.Errorf("%d TLBI VMALLS12E1IS for a 2 MiB change", after.VMALLS12E1IS-before.VMALLS12E1IS)
			}
			if n := shadowTLBEntries(r, l2RAM, l2RAM+0x20_0000); n != 0 {
				t.Errorf("%d TLB entries of the write-protected block survive", n)
			}
			if n := shadowTLBEntries(r, l2RAM+0x20_0000, l2RAM+0x40_0000); n == 0 {
				t.Error("the second block's TLB entries were invalidated too")
			}
			if err := r.nvm.Check(); err != nil {
				t.Fatal(err)
			}
			r.run(t, r.a)
			w := r.hyp.Stats().WriteFaults
			r.store(t, l2RAM+0x1000, 9)
			if r.hyp.Stats().WriteFaults != w+1 {
				t.Error("L2's write to the write-protected block did not fault to L1")
			}
			if got := r.load(t, l2RAM+0x20_0000); got != 7 {
				t.Errorf("L2 reads %#x in the second block, want 7", got)
			}
		})
	}
}

// TestRecursionReverseMap: L1 (whose engine runs L2, which runs L3)
// unmaps 2 MiB of L2's memory from its stage 2 for L2 while L3 is
// suspended. With the reverse map at L1's level only the shadow leaf
// derived from that range goes: L3's access to its other block takes no
// exception at L1 (or at L0); the one to the unmapped block faults to L1,
// which maps L2's memory again and the data is still there. Without it
// (NoReverseMap, mainline's behaviour and this engine's before) every
// shadow of L1's is emptied and L3's next access to any page faults at L1.
// The exits to L0 of the whole sequence are logged for docs/NESTED.md.
func TestRecursionReverseMap(t *testing.T) {
	for _, on := range []bool{true, false} {
		for _, m := range recModes[:2] {
			name := fmt.Sprintf("%s/rmap=%v", recName(m.m01, m.e2h, m.m12), on)
			t.Run(name, func(t *testing.T) {
				r := newRecRigConfig(t, m.m01, m.e2h, nested.EL2Config{Mode: m.m12, VNCR: l1VNCR, NoReverseMap: !on}, nil)
				r.store(t, l3RAM+0x1008, 0x11)
				r.store(t, l3RAM+0x20_1008, 0x22)
				a0, a1 := r.v.Stats(), r.e.Stats()
				r.toL1(t)
				// L3's block 1 is L2 IPA l2ForL3+2 MiB.
				if err := r.a.Unmap(l2ForL3+0x20_0000, 2<<20); err != nil {
					t.Fatal(err)
				}
				r.run(t, r.a)
				if !r.e.InGuest() {
					t.Fatal("L1's Run did not resume L3")
				}
				b1 := r.e.Stats()
				if got := r.load(t, l3RAM+0x1008); got != 0x11 {
					t.Errorf("L3 reads %#x, want 0x11", got)
				}
				c1 := r.e.Stats()
				if got := r.load(t, l3RAM+0x20_1008); got != 0x22 {
					t.Errorf("L3 reads %#x after L1's remap, want 0x22", got)
				}
				d0, d1 := r.v.Stats(), r.e.Stats()
				other := c1.ShadowFaults - b1.ShadowFaults
				if on && other != 0 || !on && other == 0 {
					t.Errorf("L3's access to the untouched block took %d shadow faults at L1", other)
				}
				if d1.ShadowFaults == c1.ShadowFaults {
					t.Error("L3's access to the unmapped block took no shadow fault at L1")
				}
				st := r.e.RmapStats()
				if on && (st.Unmapped == 0 || st.CoarseFlushes != 0) || !on && st.CoarseFlushes == 0 {
					t.Errorf("L1's reverse map: %+v", st)
				}
				t.Logf("%s: exits to L0 %d, exceptions at L1 %d (unmap, resume, two L3 loads)", name,
					d0.Exits()+d0.GuestExits()-a0.Exits()-a0.GuestExits(), d1.Exceptions()-a1.Exceptions())
				r.check(t)
			})
		}
	}
}

// TestRecursionInterrupted: an interrupt takes L1 out of L3 (or out of L2
// at its virtual EL2); L1 saves that world (guesthyp.Interrupted, the
// engine's Suspend), runs its other VM, and its Run of VM A enters the
// saved world again — L3 where it was, on its shadow, with its data —
// rather than starting L2 afresh.
func TestRecursionInterrupted(t *testing.T) {
	for _, m := range recModes {
		for _, atL2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/L2=%v", recName(m.m01, m.e2h, m.m12), atL2), func(t *testing.T) {
				r := newRecRig(t, m.m01, m.e2h, m.m12, nil)
				r.store(t, l3RAM+0x2008, 0x5a)
				if atL2 {
					r.toL2(t)
				}
				pc := r.v.PE().PC
				r.toL1(t)
				r.run(t, r.b)
				r.store(t, l2RAM+8, 0x77) // L1's VM B
				r.toL1(t)
				r.run(t, r.a)
				if r.e.InGuest() == atL2 || r.v.PE().PC != pc {
					t.Fatalf("L1 resumed L3=%v at %#x, want L3=%v at %#x", r.e.InGuest(), uint64(r.v.PE().PC), !atL2, uint64(pc))
				}
				if atL2 {
					r.runL3(t)
				}
				if got := r.load(t, l3RAM+0x2008); got != 0x5a {
					t.Errorf("L3 reads %#x, want 0x5a", got)
				}
				r.check(t)
			})
		}
	}
}
