package gva

import "testing"

// leafFlusher is Flusher behind another type, so Walk takes its general
// path (a Leaf call per PTE) for it.
type leafFlusher struct{ Flusher }

// TestFlusherInlineMatchesLeaves: Walk's inline flush of a *Flusher
// clears, counts and frees exactly what the Leaf calls of the same
// visitor do, over random ranges of random tables.
func TestFlusherInlineMatchesLeaves(t *testing.T) {
	r := uint64(99)
	rnd := func(n uint64) uint64 {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		return r % n
	}
	for _, ps := range []uint32{4096, 16384, 65536} {
		for round := 0; round < 60; round++ {
			a, _ := New(ps)
			b, _ := New(ps)
			for k := 0; k < 40; k++ {
				va := uint32(rnd(1<<32)) &^ (ps - 1)
				if k%2 == 1 {
					va = 0x00400000 + uint32(rnd(64))*ps // clustered
				}
				p := Make(uint64(rnd(1<<20)) << 12)
				*a.Slot(va), *b.Slot(va) = p, p
			}
			start := rnd(1 << 32)
			end := start + rnd(1<<(10+rnd(23))) + 1
			if rnd(4) == 0 {
				start, end = 0, 0x40000000 // an ASID change's useg flush
			}
			var f Flusher
			var g leafFlusher
			a.Walk(start, end, &f)
			b.Walk(start, end, &g)
			if f != g.Flusher || a.Live != b.Live || a.Freed != b.Freed {
				t.Fatalf("page %d, [%#x, %#x): inline %+v live %d, leaves %+v live %d", ps, start, end, f, a.Live, g.Flusher, b.Live)
			}
			for gi := range a.pgd {
				if (a.pgd[gi] == nil) != (b.pgd[gi] == nil) {
					t.Fatalf("page %d, [%#x, %#x): PTE page %d present differs", ps, start, end, gi)
				}
				for i := range a.pgd[gi] {
					if a.pgd[gi][i] != b.pgd[gi][i] {
						t.Fatalf("page %d, [%#x, %#x): PTE %d/%d differs", ps, start, end, gi, i)
					}
				}
			}
		}
	}
}
