package gva

import "testing"

func TestPTEEntryLo(t *testing.T) {
	p := Make(0x12345000) | D | Write | Modified
	if got, want := p.EntryLo(), uint32(0x12345000>>6|0x18|0x4|0x2); got != want {
		t.Errorf("EntryLo = %#x, want %#x (software bits dropped)", got, want)
	}
	if p.HPA() != 0x12345000 {
		t.Errorf("HPA = %#x", p.HPA())
	}
	if PTE(0).EntryLo()&uint32(V) != 0 {
		t.Error("empty PTE is valid")
	}
}

func TestPairAndSlot(t *testing.T) {
	for _, ps := range []uint32{4096, 16384, 65536} {
		tb, err := New(ps)
		if err != nil {
			t.Fatal(err)
		}
		va := uint32(0x60000000) + 5*ps // odd page
		*tb.Slot(va) = Make(0x10000000)
		even, odd := tb.Pair(va)
		if even != 0 || odd != Make(0x10000000) {
			t.Errorf("page %d: pair %#x %#x", ps, even, odd)
		}
		if e2, o2 := tb.Pair(va - ps); e2 != even || o2 != odd {
			t.Errorf("page %d: pair differs from the even page", ps)
		}
		if e, o := tb.Pair(0x00400000); e|o != 0 {
			t.Error("missing PTE page read non-empty")
		}
		if tb.Live != 1 {
			t.Errorf("Live = %d", tb.Live)
		}
	}
}

func TestFlushFreesCoveredPages(t *testing.T) {
	tb, _ := New(4096) // one PTE page covers 4 MiB
	for va := uint32(0); va < 8<<20; va += 4096 * 7 {
		*tb.Slot(va) = Make(0x10000000)
	}
	*tb.Slot(0x40000000) = Make(0x10000000)
	// Flush [2 MiB, 0x40000000): page 0 partly covered, page 1 fully.
	var f Flusher
	tb.Walk(2<<20, 0x40000000, &f)
	if f.Freed != 1 || tb.Live != 2 {
		t.Errorf("freed %d, live %d; want 1 freed, 2 live", f.Freed, tb.Live)
	}
	var c Counter
	tb.Walk(0, 1<<32, &c)
	want := 0
	for va := uint32(0); va < 2<<20; va += 4096 * 7 {
		want++
	}
	if c.Present != want+1 {
		t.Errorf("%d present after flush, want %d", c.Present, want+1)
	}
	// A page taken from the free list comes back empty.
	*tb.Slot(4 << 20) = Make(0x20000000)
	var c2 Counter
	tb.Walk(4<<20, 8<<20, &c2)
	if c2.Present != 1 {
		t.Errorf("reused page holds %d PTEs", c2.Present)
	}
}

func TestCleanerKeepsCommpage(t *testing.T) {
	tb, _ := New(4096)
	*tb.Slot(0x1000) = Make(0x10000000) | D | Modified | Write
	*tb.Slot(0x7000) = Make(0x20000000) | D | Modified | Write | Commpage
	var c Cleaner
	tb.Walk(0, 1<<31, &c)
	if c.Cleaned != 1 || tb.Lookup(0x1000)&D != 0 || tb.Lookup(0x7000)&D == 0 {
		t.Errorf("cleaned %d; pte %#x commpage %#x", c.Cleaned, tb.Lookup(0x1000), tb.Lookup(0x7000))
	}
}

func TestPairAllocFree(t *testing.T) {
	tb, _ := New(4096)
	*tb.Slot(0x00400000) = Make(0x10000000)
	if n := testing.AllocsPerRun(100, func() { tb.Pair(0x00400000) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
