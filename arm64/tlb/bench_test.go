package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// benchTLB returns a default TLB holding n 4K EL1&0 pages of VMID 1,
// ASID 5 from VA 0x40_0000, plus (several) one 2MB block and one 64KB
// contiguous run so that three size classes are present.
func benchTLB(n int, several bool) *TLB {
	tl := MustNew(Config{})
	for i := 0; i < n; i++ {
		tl.FillEntry(e4k(vmsa.RegimeEL10, 1, 5, false, vaA+uint64(i)<<12))
	}
	if several {
		b := e4k(vmsa.RegimeEL10, 1, 5, false, vaC)
		b.SizeBits, b.Level = 21, 2
		tl.FillEntry(b)
		c := e4k(vmsa.RegimeEL10, 1, 0, true, vaD)
		c.SizeBits = 16
		tl.FillEntry(c)
	}
	return tl
}

// BenchmarkHit: a hit in the micro-TLB, one size class present.
func BenchmarkHit(b *testing.B) {
	tl := benchTLB(1, false)
	b.ReportAllocs()
	var pa mem.PA
	for b.Loop() {
		e, r := tl.Lookup(vmsa.RegimeEL10, 1, 5, vaA|0x123, rd1)
		if r != Hit {
			b.Fatal(r)
		}
		pa += e.OA
	}
	_ = pa
}

// BenchmarkHitPA: BenchmarkHit through LookupPA (no entry copy).
func BenchmarkHitPA(b *testing.B) {
	tl := benchTLB(1, false)
	b.ReportAllocs()
	var sum mem.PA
	for b.Loop() {
		pa, r := tl.LookupPA(vmsa.RegimeEL10, 1, 5, vaA|0x123, rd1)
		if r != Hit {
			b.Fatal(r)
		}
		sum += pa
	}
	_ = sum
}

// BenchmarkHitL2: hits that miss the micro-TLB (64 pages in turn through
// a 16-entry micro-TLB), one size class.
func BenchmarkHitL2(b *testing.B) {
	tl := benchTLB(64, false)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		va := vaA + (i*17&63)<<12
		if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(va), rd1); r != Hit {
			b.Fatal(r)
		}
		i++
	}
}

// BenchmarkHitSeveralSizes: the 2MB block looked up through the
// unified TLB with 4K, 64K and 2M classes present (micro-TLB off), so
// the 4K and 64K classes are probed first.
func BenchmarkHitSeveralSizes(b *testing.B) {
	tl := benchTLB(64, true)
	tl2 := MustNew(Config{Micro: -1})
	for _, e := range tl.Entries(nil) {
		tl2.FillEntry(e)
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		if _, r := tl2.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(vaC+(i&511)<<12), rd1); r != Hit {
			b.Fatal(r)
		}
		i++
	}
}

// BenchmarkMissFill: a miss followed by the fill of a prepared
// translation, cycling over 4096 pages (4x the capacity: evictions).
func BenchmarkMissFill(b *testing.B) {
	tl := MustNew(Config{})
	tr := vmsa.Translation{Level: 3, BlockBits: 12, NG: true, ASID: 5, Perms: allPerms}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		va := vaA + (i&4095)<<12
		if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(va), rd1); r == Miss {
			tr.OA = mem.PA(va)
			tl.Fill(vmsa.RegimeEL10, 1, mem.VA(va), &tr)
		}
		i++
	}
}

// BenchmarkTLBIVAE1: TLBI VAE1 of one page on a full TLB, refilled.
func BenchmarkTLBIVAE1(b *testing.B) {
	tl := benchTLB(1024, true)
	e := e4k(vmsa.RegimeEL10, 1, 5, false, vaA)
	xt := xtVA(5, 0, vaA)
	tl.FillEntry(e)
	b.ReportAllocs()
	for b.Loop() {
		if n, _ := tl.Invalidate(OpVAE1, xt, ctxEL1); n != 1 {
			b.Fatal(n)
		}
		tl.FillEntry(e)
	}
}

// BenchmarkTLBIVMALLE1: TLBI VMALLE1 on a full 1024-entry TLB holding
// 64 entries of the current VMID among 960 of other VMIDs (the refill of
// the 64 is outside the timing).
func BenchmarkTLBIVMALLE1(b *testing.B) {
	tl := MustNew(Config{})
	for i := 0; i < 960; i++ {
		tl.FillEntry(e4k(vmsa.RegimeEL10, 2+uint16(i%7), 5, false, vaA+uint64(i)<<12))
	}
	mine := make([]Entry, 64)
	for i := range mine {
		mine[i] = e4k(vmsa.RegimeEL10, 1, 5, false, vaB+uint64(i)<<12)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range mine {
			tl.FillEntry(mine[i])
		}
		b.StartTimer()
		tl.Invalidate(OpVMALLE1, 0, ctxEL1)
	}
}

func TestHitAllocFree(t *testing.T) {
	tl := benchTLB(64, true)
	tr := vmsa.Translation{Level: 3, BlockBits: 12, NG: true, ASID: 5, Perms: allPerms}
	i := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		tl.Lookup(vmsa.RegimeEL10, 1, 5, vaA|0x10, rd1)                  // micro hit
		tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(vaA+(i&63)<<12), wr1)    // unified hit
		tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(vaC+(i&511)<<12), ex1)   // block
		tl.Lookup(vmsa.RegimeEL10, 1, 6, mem.VA(0x7000_0000+i<<12), rd1) // miss
		tl.Fill(vmsa.RegimeEL10, 1, mem.VA(0x7000_0000+i<<12), &tr)      // fill
		tl.Invalidate(OpVAE1, xtVA(5, 0, 0x7000_0000+i<<12), ctxEL1)     // TLBI by VA
		tl.Invalidate(OpRVAAE1, xtRange(0, 1, 0, 0, 0, 0x70000), ctxEL1) // range
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}

// TestReplacement checks capacity and the policies: a 1-set 4-way TLB
// holds 4 entries; PLRU evicts the least recently touched; Random with a
// seed is reproducible.
func TestReplacement(t *testing.T) {
	tl := MustNew(Config{Sets: 1, Ways: 4, Micro: -1})
	page := func(i int) Entry { return e4k(vmsa.RegimeEL10, 1, 5, false, uint64(i)<<12) }
	for i := 0; i < 4; i++ {
		tl.FillEntry(page(i))
	}
	// Touch 0, 2, 3: pseudo-LRU points at 1.
	for _, i := range []int{0, 2, 3} {
		if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(uint64(i)<<12), rd1); r != Hit {
			t.Fatalf("page %d missing", i)
		}
	}
	tl.FillEntry(page(4))
	if tl.Stats.Evictions != 1 {
		t.Errorf("evictions %d", tl.Stats.Evictions)
	}
	for i := 0; i < 5; i++ {
		_, r := tl.Lookup(vmsa.RegimeEL10, 1, 5, mem.VA(uint64(i)<<12), rd1)
		if (r == Hit) != (i != 1) {
			t.Errorf("after PLRU replacement, page %d: %v", i, r)
		}
	}
	// Refilling an entry with the same tag replaces it in place.
	tl.FillEntry(page(4))
	if tl.Stats.Evictions != 1 {
		t.Errorf("same-tag refill evicted")
	}
	// Random: same seed, same victims.
	run := func() []Entry {
		r := MustNew(Config{Sets: 1, Ways: 4, Micro: -1, Replacement: Random, Seed: 42})
		for i := 0; i < 40; i++ {
			r.FillEntry(page(i))
		}
		return r.Entries(nil)
	}
	a, b := run(), run()
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("capacity: %d, %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("seeded Random not reproducible")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{{Sets: 3}, {Ways: 128}, {Ways: 3}, {Micro: 5}, {Micro: -2}, {Replacement: 7}, {Sets: -4}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := NewDomain(0, Config{}); err == nil {
		t.Error("empty domain accepted")
	}
	d, _ := NewDomain(2, Config{})
	if _, err := d.Invalidate(5, OpVMALLE1, 0, ctxEL1); err == nil {
		t.Error("PE 5 accepted")
	}
	tl := MustNew(Config{})
	if tl.Capacity() != 1024 || tl.Config().Ways != 4 {
		t.Errorf("defaults: %d entries, %+v", tl.Capacity(), tl.Config())
	}
}

// BenchmarkHitPAL2: the PE's hit path (HitPA with a key) for hits that
// miss the micro-TLB, as BenchmarkHitL2, over 1024 pages in a random
// order (a 4096-entry TLB, so that the sets are spread as a workload's).
func BenchmarkHitPAL2(b *testing.B) {
	tl := MustNew(Config{Sets: 1024})
	const n = 1024
	for i := 0; i < n; i++ {
		tl.FillEntry(e4k(vmsa.RegimeEL10, 1, 5, false, vaA+uint64(i)<<12))
	}
	k := NewHitKey(vmsa.RegimeEL10, 1, 5, rd1)
	b.ReportAllocs()
	var sum mem.PA
	i := uint64(0)
	for b.Loop() {
		va := vaA + (i*617&(n-1))<<12
		pa, ok := tl.HitPA(&k, mem.VA(va))
		if !ok {
			b.Fatal("miss")
		}
		sum += pa
		i++
	}
	_ = sum
}

// BenchmarkHitPAMissingCache: BenchmarkHitPAL2 over a TLB too large for
// the host's caches (64K entries of 112 bytes, 7 MiB, in a random
// order), so that each probe loads its set from memory as the
// simulator's probes mostly do.
func BenchmarkHitPAMissingCache(b *testing.B) {
	tl := MustNew(Config{Sets: 16384})
	const n = 1 << 16
	for i := 0; i < n; i++ {
		tl.FillEntry(e4k(vmsa.RegimeEL10, 1, 5, false, vaA+uint64(i)<<12))
	}
	var pages []uint64 // those the TLB kept
	for _, e := range tl.Entries(nil) {
		pages = append(pages, uint64(e.VA))
	}
	k := NewHitKey(vmsa.RegimeEL10, 1, 5, rd1)
	b.ReportAllocs()
	var sum mem.PA
	x := uint64(1)
	for b.Loop() {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		pa, ok := tl.HitPA(&k, mem.VA(pages[x%uint64(len(pages))]))
		if !ok {
			b.Fatal("miss")
		}
		sum += pa
	}
	_ = sum
}
