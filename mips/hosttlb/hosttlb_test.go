package hosttlb

import "testing"

func newTLB(t testing.TB, n int) *TLB {
	t.Helper()
	tl, err := New(n, 4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func TestLookupPairAndASID(t *testing.T) {
	tl := newTLB(t, 16)
	tl.WriteRandom(Entry{Hi: 0x00402000 | 7, Lo0: 0x100<<6 | LoV, Lo1: 0x200<<6 | LoV | LoD})
	cases := []struct {
		va   uint32
		asid uint8
		hit  bool
		lo   uint32
	}{
		{0x00402000, 7, true, 0x100<<6 | LoV},
		{0x00403ffc, 7, true, 0x200<<6 | LoV | LoD}, // odd page
		{0x00402000, 8, false, 0},                   // other ASID
		{0x00404000, 7, false, 0},                   // next pair
	}
	for _, c := range cases {
		lo, hit := tl.Lookup(c.va, c.asid)
		if hit != c.hit || lo != c.lo {
			t.Errorf("Lookup(%#x, %d) = %#x, %v; want %#x, %v", c.va, c.asid, lo, hit, c.lo, c.hit)
		}
	}
	// Global when G is set in both halves.
	tl.WriteRandom(Entry{Hi: 0x00800000 | 1, Lo0: LoG | LoV, Lo1: LoG})
	if _, hit := tl.Lookup(0x00800000, 99); !hit {
		t.Error("global entry did not match another ASID")
	}
}

func TestInvalidate(t *testing.T) {
	tl := newTLB(t, 8)
	for i := uint32(0); i < 4; i++ {
		tl.WriteIndexed(int(i), Entry{Hi: 0x00400000 + i*0x2000 | 3, Lo0: LoV, Lo1: LoV})
	}
	if !tl.InvalidateVA(0x00401000, 3) || tl.InvalidateVA(0x00401000, 3) {
		t.Error("InvalidateVA did not remove exactly once")
	}
	if n := tl.InvalidateRange(0x00402000, 0x00406000, 3); n != 2 {
		t.Errorf("InvalidateRange removed %d, want 2", n)
	}
	if _, hit := tl.Lookup(0x00406000, 3); !hit {
		t.Error("entry outside the range was removed")
	}
	tl.FlushAll()
	if _, hit := tl.Lookup(0x00406000, 3); hit {
		t.Error("FlushAll left an entry")
	}
	if d := tl.Duplicates(); d != "" {
		t.Error(d)
	}
}

func TestWriteRandomCoversAllEntries(t *testing.T) {
	tl := newTLB(t, 16)
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		seen[tl.WriteRandom(Entry{Hi: uint32(i) << 13})] = true
	}
	if len(seen) != 16 {
		t.Errorf("random replacement used %d of 16 entries", len(seen))
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(0, 4096, 0); err == nil {
		t.Error("0 entries accepted")
	}
	if _, err := New(64, 3000, 0); err == nil {
		t.Error("page size 3000 accepted")
	}
}

func TestLookupAllocFree(t *testing.T) {
	tl := newTLB(t, 64)
	n := testing.AllocsPerRun(100, func() {
		tl.WriteRandom(Entry{Hi: 0x00400000 | 1, Lo0: LoV})
		tl.Lookup(0x00400000, 1)
		tl.InvalidateVA(0x00400000, 1)
	})
	if n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}

func BenchmarkLookup64(b *testing.B) {
	tl := newTLB(b, 64)
	for i := 0; i < 64; i++ {
		tl.WriteIndexed(i, Entry{Hi: uint32(i)<<13 | 1, Lo0: LoV, Lo1: LoV})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tl.Lookup(uint32(i&63)<<13, 1)
	}
}

// TestDuplicatesAgreesWithPairwise compares the hashed duplicate check
// with a direct comparison of every pair of entries over random TLB
// contents that often hold duplicates (few VPN2s, few ASIDs, some global).
func TestDuplicatesAgreesWithPairwise(t *testing.T) {
	pairwise := func(tl *TLB) bool {
		for i := 0; i < tl.Len(); i++ {
			for j := i + 1; j < tl.Len(); j++ {
				a, b := tl.Entry(i), tl.Entry(j)
				ga, gb := a.Lo0&a.Lo1&LoG != 0, b.Lo0&b.Lo1&LoG != 0
				if a.Hi>>13 == b.Hi>>13 && (ga || gb || uint8(a.Hi) == uint8(b.Hi)) {
					return true
				}
			}
		}
		return false
	}
	x := uint64(12345)
	next := func() uint32 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return uint32(x >> 16)
	}
	found := 0
	for _, n := range []int{1, 8, 64, 1024} {
		tl := newTLB(t, n)
		for round := 0; round < 300; round++ {
			tl.FlushAll()
			for k := 0; k < n/2+1; k++ {
				var g uint32
				if next()%16 == 0 {
					g = LoG
				}
				hi := (next()%uint32(n+8))<<13 | next()%3
				tl.WriteIndexed(int(next()%uint32(n)), Entry{Hi: hi, Lo0: LoV | g, Lo1: g})
			}
			want := pairwise(tl)
			if got := tl.Duplicates() != ""; got != want {
				t.Fatalf("%d entries, round %d: Duplicates %v, pairwise %v", n, round, got, want)
			}
			if want {
				found++
			}
		}
	}
	if found < 100 {
		t.Errorf("only %d states with duplicates: the test does not exercise the check", found)
	}
}
