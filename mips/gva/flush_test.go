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

// TestFlushBoundsOverTime: fills and flushes alternate on the same two
// tables (PTE pages freed and taken again from the free list, partial
// flushes inside a page, cleaning walks); the inline flush, which reads
// only the PTEs a page can hold non-empty, keeps clearing, counting and
// freeing exactly what the Leaf calls do, and every PTE outside a page's
// bounds stays empty.
func TestFlushBoundsOverTime(t *testing.T) {
	r := uint64(7)
	rnd := func(n uint64) uint64 {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		return r % n
	}
	for _, ps := range []uint32{4096, 16384, 65536} {
		a, _ := New(ps)
		b, _ := New(ps)
		for round := 0; round < 300; round++ {
			for k := uint64(0); k < rnd(12); k++ {
				va := 0x00400000 + uint32(rnd(3*1024))*ps
				if rnd(3) == 0 {
					va = uint32(rnd(1<<32)) &^ (ps - 1)
				}
				p := Make(uint64(rnd(1<<20))<<12) | D | Modified
				*a.Slot(va), *b.Slot(va) = p, p
			}
			start := 0x00400000 + rnd(4<<20)*uint64(ps)/4096
			end := start + rnd(uint64(ps)<<uint(rnd(12))) + 1
			switch rnd(8) {
			case 0:
				start, end = 0, 0x40000000
			case 1:
				var c, d Cleaner
				a.Walk(0, 1<<32, &c)
				b.Walk(0, 1<<32, &d)
				if c != d {
					t.Fatalf("page %d round %d: cleaners differ: %+v %+v", ps, round, c, d)
				}
			}
			var f Flusher
			var g leafFlusher
			a.Walk(start, end, &f)
			b.Walk(start, end, &g)
			if f != g.Flusher || a.Live != b.Live || a.Freed != b.Freed {
				t.Fatalf("page %d round %d, [%#x, %#x): inline %+v live %d, leaves %+v live %d", ps, round, start, end, f, a.Live, g.Flusher, b.Live)
			}
			for gi := range a.pgd {
				if (a.pgd[gi] == nil) != (b.pgd[gi] == nil) {
					t.Fatalf("page %d round %d: PTE page %d present differs", ps, round, gi)
				}
				for i := range a.pgd[gi] {
					if a.pgd[gi][i] != b.pgd[gi][i] {
						t.Fatalf("page %d round %d: PTE %d/%d differs", ps, round, gi, i)
					}
					if u := a.used[gi]; a.pgd[gi][i] != 0 && (i < int(u.lo) || i >= int(u.hi)) {
						t.Fatalf("page %d round %d: PTE %d/%d non-empty outside bounds [%d, %d)", ps, round, gi, i, u.lo, u.hi)
					}
				}
			}
			for _, pt := range a.free {
				for i, p := range pt {
					if p != 0 {
						t.Fatalf("page %d round %d: free PTE page holds PTE %d = %#x", ps, round, i, p)
					}
				}
			}
		}
	}
}

// postRecorder records the Post calls of a walk.
type postRecorder struct{ posts []uint64 }

func (r *postRecorder) Leaf(uint32, *PTE) {}
func (r *postRecorder) Post(va uint32, covered bool) bool {
	c := uint64(0)
	if covered {
		c = 1
	}
	r.posts = append(r.posts, uint64(va)<<1|c)
	return false
}

// TestWalkVisitsPresentPages: Walk visits exactly the present PTE pages
// whose span starts in [start rounded down to a span, end), in address
// order, with the coverage a page-by-page pass over the pgd computes (empty
// and reversed ranges, end 0 and ends beyond 4 GiB included).
func TestWalkVisitsPresentPages(t *testing.T) {
	r := uint64(3)
	rnd := func(n uint64) uint64 {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		return r % n
	}
	for _, ps := range []uint32{4096, 16384, 65536} {
		tb, _ := New(ps)
		span := tb.span()
		for k := 0; k < 30; k++ {
			*tb.Slot(uint32(rnd(1 << 32))) = Make(0x10000000)
		}
		for round := 0; round < 2000; round++ {
			start := rnd(1<<32 + 1<<20)
			end := start + rnd(1<<uint(rnd(34)))
			switch rnd(6) {
			case 0:
				end = start - rnd(start+1) // reversed or empty
			case 1:
				start, end = 0, 0
			}
			var got postRecorder
			tb.Walk(start, end, &got)
			var want []uint64
			for base, e := start&^(span-1), min(end, 1<<32); base < e; base += span {
				if tb.pgd[base/span] != nil {
					lo, hi := max(start, base), min(e, base+span)
					c := uint64(0)
					if lo == base && hi == base+span {
						c = 1
					}
					want = append(want, base<<1|c)
				}
			}
			if len(got.posts) != len(want) {
				t.Fatalf("page %d, [%#x, %#x): %d pages visited, want %d", ps, start, end, len(got.posts), len(want))
			}
			for i := range want {
				if got.posts[i] != want[i] {
					t.Fatalf("page %d, [%#x, %#x): visit %d = %#x, want %#x", ps, start, end, i, got.posts[i], want[i])
				}
			}
		}
	}
}
