package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/nested"
)

// TestRecursionLPA2Stage2Switch: L1's VM A (which runs the guest
// hypervisor L2) has a 52-bit stage 2 (VTCR_EL2.DS=1), L1's shadows for L3
// are 40-bit (DS=0). A range TLBI's BaseADDR is in 64KB units when the
// VTCR_EL2.DS in effect at the TLBI is 1 and in granules when it is 0
// (TLBI RIPAS2E1), so L1 must load the stage 2 whose entries it
// invalidates into VTCR_EL2 as well as VTTBR_EL2, as KVM's __load_stage2
// does. Here L1, interrupted out of L3 (VTCR_EL2 the shadow's), moves a
// block of L2's memory that L2 has used and L3 reads: L0 must drop what it
// derived from the old mapping, and L3 must read the new memory.
func TestRecursionLPA2Stage2Switch(t *testing.T) {
	for _, m := range recModes[:4] {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			const l3Block, l2Block = l3RAM + 0x20_0000, l2ForL3 + 0x20_0000
			r := newRecRigConfig(t, m.m01, m.e2h, nested.EL2Config{Mode: m.m12, VNCR: l1VNCR}, func(r *recRig) {
				must(r.l3.Map(l3Block, l2Block, 2<<20))
				// L2 at its virtual EL2 writes the block: L0's shadow of VM A
				// holds it too.
				must(r.v.L2().Store(l2Block+8, 8, 0x22))
			}, func(o *recOpts) {
				o.l1 = append(o.l1, func(rc *rigConfig) { rc.ipaBits, rc.guestIPABits = 52, 52 })
			})
			if !r.a.Stage2().VTCR().DS() {
				t.Fatalf("VM A's VTCR_EL2 %#x has DS=0", uint64(r.a.Stage2().VTCR()))
			}
			if got := r.load(t, l3Block+8); got != 0x22 {
				t.Fatalf("L3 reads %#x, want 0x22", got)
			}
			r.toL1(t)
			must(r.v.Store(l1VMB+8, 8, 0x33))
			must(r.a.Unmap(l2Block, 2<<20))
			must(r.a.Map(l2Block, l1VMB, 2<<20))
			if err := r.nvm.Check(); err != nil {
				t.Errorf("L0 after L1's move: %v", err)
			}
			r.run(t, r.a)
			if !r.e.InGuest() {
				t.Fatal("L1's Run did not resume L3")
			}
			if got := r.load(t, l3Block+8); got != 0x33 {
				t.Errorf("L3 reads %#x after L1 moved the block, want the new memory's 0x33", got)
			}
			r.check(t)
		})
	}
}
