package tlb_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// A probe that misses leaves the counters alone, so that the Lookup the
// caller makes next counts the miss once; a probe that hits counts as a
// LookupPA hit and returns the same output address.
func TestProbeCountsOnlyHits(t *testing.T) {
	tl := tlb.MustNew(tlb.Config{})
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	const va, pa = 0x12345000, 0x8765_4000
	if _, ok := tl.Probe(vmsa.RegimeEL10, 1, 2, va+8, acc); ok {
		t.Fatal("probe of an empty TLB hit")
	}
	if tl.Stats != (tlb.Stats{}) {
		t.Fatalf("miss changed the counters: %+v", tl.Stats)
	}
	tr := vmsa.Translation{OA: pa, Level: 3, BlockBits: 12, NG: true, ASID: 2, Perms: vmsa.Perms{R1: true}}
	if !tl.Fill(vmsa.RegimeEL10, 1, va, &tr) {
		t.Fatal("fill refused")
	}
	for _, c := range []struct {
		name string
		acc  vmsa.Access
		asid uint16
		hit  bool
	}{
		{"read", acc, 2, true},
		{"write without permission", vmsa.Access{Kind: vmsa.Write, EL: 1}, 2, false},
		{"other ASID", acc, 3, false},
	} {
		before := tl.Stats
		got, ok := tl.Probe(vmsa.RegimeEL10, 1, c.asid, va+8, c.acc)
		if ok != c.hit {
			t.Errorf("%s: hit %v, want %v", c.name, ok, c.hit)
			continue
		}
		if !ok {
			if tl.Stats != before {
				t.Errorf("%s: counters changed from %+v to %+v", c.name, before, tl.Stats)
			}
			continue
		}
		if got != pa+8 || tl.Stats.Hits != before.Hits+1 {
			t.Errorf("%s: PA %#x hits %d, want %#x and one more hit", c.name, got, tl.Stats.Hits, pa+8)
		}
	}
}
