package tlb_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/mem"
)

// TestAppendIPARange: the operations decode (ScopeOf, written from the
// instruction descriptions) to stage-2 scopes whose union is exactly the
// granules of the range, with the leaf-level TTL where it is encodable, in
// few operations; longer ranges are refused.
func TestAppendIPARange(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		gb := []uint{12, 14, 16}[rng.IntN(3)]
		g := uint64(1) << gb
		ds := gb != 16 && rng.IntN(4) == 0
		pages := 1 + rng.Uint64N(1<<uint(rng.IntN(22)))
		start := mem.IPA(rng.Uint64N(1<<40) &^ (g - 1))
		level := rng.IntN(5) - 1
		last := rng.IntN(2) == 0
		ops, ok := tlb.AppendIPARange(nil, start, pages*g, gb, level, last, ds, true, tlb.Op.IS)
		if pages > tlb.MaxRangePages {
			if ok || len(ops) != 0 {
				t.Fatalf("%d pages: accepted", pages)
			}
			continue
		}
		if !ok {
			t.Fatalf("%d pages refused", pages)
		}
		ctx := tlb.Context{EL: 2, VMID: 7, VDS: ds, LPA2: true}
		next := uint64(start)
		for _, o := range ops {
			if !o.Op.InnerShareable() {
				t.Fatalf("%v is not an IS form", o.Op)
			}
			if b := o.Op.Base(); b != map[bool]tlb.Op{true: tlb.OpIPAS2LE1, false: tlb.OpIPAS2E1}[last] && b != map[bool]tlb.Op{true: tlb.OpRIPAS2LE1, false: tlb.OpRIPAS2E1}[last] {
				t.Fatalf("op %v for lastLevel=%v", o.Op, last)
			}
			s, err := tlb.ScopeOf(o.Op, o.Xt, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !s.S2 || s.VMID != 7 || !s.Addressed || s.ReservedTG {
				t.Fatalf("%v %#x: scope %+v", o.Op, o.Xt, s)
			}
			// Consecutive, granule by granule.
			if s.Lo != next {
				t.Fatalf("gb %d ds %v start %#x pages %d: %v %#x covers from %#x, want %#x", gb, ds, start, pages, o.Op, o.Xt, s.Lo, next)
			}
			next = (s.Hi | (g - 1)) + 1
			if s.Hint.GranuleBits != 0 && (s.Hint.GranuleBits != uint8(gb) || int(s.Hint.Level) != level) {
				t.Fatalf("%v %#x: hint %+v for level %d granule %d", o.Op, o.Xt, s.Hint, level, gb)
			}
		}
		if want := uint64(start) + pages*g; next != want {
			t.Fatalf("gb %d start %#x pages %d: covered to %#x, want %#x", gb, start, pages, next, want)
		}
		if len(ops) > 64 {
			t.Fatalf("%d pages: %d operations", pages, len(ops))
		}
	}
}

func TestTTL(t *testing.T) {
	for _, c := range []struct {
		gb    uint
		level int
		lpa2  bool
		want  uint64
	}{
		{12, 3, false, 0b0111}, {12, 2, false, 0b0110}, {12, 1, false, 0b0101},
		{12, 0, false, 0}, {12, 0, true, 0b0100}, // 4K level 0 needs FEAT_LPA2
		{14, 1, false, 0}, {14, 1, true, 0b1001}, {14, 3, false, 0b1011},
		{16, 0, true, 0}, {16, 2, false, 0b1110},
		{12, -2, false, 0}, {13, 3, false, 0},
	} {
		if got := tlb.TTL(c.gb, c.level, c.lpa2); got != c.want {
			t.Errorf("TTL(%d, %d, %v) = %#b, want %#b", c.gb, c.level, c.lpa2, got, c.want)
		}
	}
}
