package workload

import (
	"math"
	"testing"
)

// drain runs a stream for n accesses, collecting accesses and events (the
// region-0 mapping first).
func drain(t *testing.T, s Stream, n int) ([]Access, []Event) {
	t.Helper()
	var acc []Access
	var evs []Event
	b := make([]Access, 100)
	for len(acc) < n {
		k := s.Fill(b)
		acc = append(acc, b[:k]...)
		if k < len(b) {
			e := s.Event()
			if e.Kind == EventNone {
				t.Fatalf("Fill returned %d of %d with no event", k, len(b))
			}
			evs = append(evs, e)
		}
	}
	return acc, evs
}

func TestPatternsStayInWorkingSet(t *testing.T) {
	const ws = 1 << 20
	for _, k := range Kinds {
		s, err := New(Spec{Kind: k, WorkingSet: ws, Writes: 0.25, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		acc, evs := drain(t, s, 50000)
		if len(evs) == 0 || evs[0].Kind != EventMmap || evs[0].Size != ws || evs[0].Region != 0 {
			t.Fatalf("%s: first event %+v, want mapping the working set", k, evs)
		}
		stores := 0
		for _, a := range acc {
			if a.Region == 0 && a.Off >= ws || a.Off%8 != 0 || a.Size != 8 {
				t.Fatalf("%s: access %+v outside the working set or unaligned", k, a)
			}
			if a.Kind == Store {
				stores++
			}
		}
		frac := float64(stores) / float64(len(acc))
		switch k {
		case GUPS:
			if math.Abs(frac-0.5) > 0.01 {
				t.Errorf("%s: %.3f stores, want 0.5 (load+store pairs)", k, frac)
			}
		case PointerChase:
		default:
			if math.Abs(frac-0.25) > 0.03 {
				t.Errorf("%s: %.3f stores, want 0.25", k, frac)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, k := range Kinds {
		a, _ := New(Spec{Kind: k, WorkingSet: 1 << 20, Writes: 0.3, Seed: 7})
		b, _ := New(Spec{Kind: k, WorkingSet: 1 << 20, Writes: 0.3, Seed: 7})
		x, ex := drain(t, a, 30000)
		y, ey := drain(t, b, 30000)
		if len(x) != len(y) || len(ex) != len(ey) {
			t.Fatalf("%s: different lengths", k)
		}
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s: access %d differs: %+v %+v", k, i, x[i], y[i])
			}
		}
	}
}

// The sequential pattern steps by the stride and wraps.
func TestSequential(t *testing.T) {
	s, _ := New(Spec{Kind: Sequential, WorkingSet: 4096, Stride: 64})
	acc, _ := drain(t, s, 130)
	for i, a := range acc {
		if want := uint64(i*64) % 4096; a.Off != want {
			t.Fatalf("access %d at %d, want %d", i, a.Off, want)
		}
	}
}

// The Zipf sampler's page frequencies follow 1/(i+1)^s normalised (to
// within a few standard deviations).
func TestZipfDistribution(t *testing.T) {
	const pages, n = 64, 400000
	r := newRNG(3)
	a := newAlias(pages, 1.0)
	var count [pages]int
	for i := 0; i < n; i++ {
		count[a.sample(&r)]++
	}
	var h float64
	for i := 1; i <= pages; i++ {
		h += 1 / float64(i)
	}
	for i, c := range count {
		p := 1 / float64(i+1) / h
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(c)-n*p) > 5*sd {
			t.Errorf("page %d: %d samples, want %.0f ± %.0f", i, c, n*p, sd)
		}
	}
}

// The pointer chase stores every line's pointer, then follows one cycle
// through every line: each load's address is the value stored at the
// previous one.
func TestPointerChase(t *testing.T) {
	const ws = 64 * 1024
	s, _ := New(Spec{Kind: PointerChase, WorkingSet: ws, Seed: 5})
	lines := ws / 64
	acc, _ := drain(t, s, lines+lines)
	mem := map[uint64]uint64{}
	for _, a := range acc[:lines] {
		if a.Kind != Store {
			t.Fatal("initialisation is not all stores")
		}
		mem[a.Off] = a.Val
	}
	seen := map[uint64]bool{}
	prev := acc[lines]
	for _, a := range acc[lines+1:] {
		if a.Kind != Load || a.Off != mem[prev.Off] {
			t.Fatalf("load at %#x, the previous one (%#x) holds %#x", a.Off, prev.Off, mem[prev.Off])
		}
		seen[a.Off] = true
		prev = a
	}
	if len(seen) != lines {
		t.Errorf("the chase visits %d of %d lines", len(seen), lines)
	}
}

// Fork churn forks every ChurnEvery accesses; the child touches inherited
// pages, execs, maps and touches new pages, and exits.
func TestForkChurn(t *testing.T) {
	s, _ := New(Spec{Kind: ForkChurn, WorkingSet: 1 << 20, ChurnEvery: 1000, ChurnPages: 4, Seed: 2})
	_, evs := drain(t, s, 3500)
	forks := 0
	for _, e := range evs[1:] {
		if e.Kind != EventFork || e.Child == nil {
			t.Fatalf("event %+v, want forks only", e)
		}
		forks++
		acc, cevs := drainChild(t, e.Child)
		want := []EventKind{EventExec, EventMmap, EventExit}
		if len(cevs) != 3 || len(acc) != 16 {
			t.Fatalf("child: %d accesses, events %+v; want 16 and %v", len(acc), cevs, want)
		}
		for i, k := range want {
			if cevs[i].Kind != k {
				t.Fatalf("child event %d: %v, want %v", i, cevs[i].Kind, k)
			}
		}
	}
	if forks != 3 {
		t.Errorf("%d forks in 3500 accesses, want 3", forks)
	}
}

func drainChild(t *testing.T, s Stream) ([]Access, []Event) {
	var acc []Access
	var evs []Event
	b := make([]Access, 7)
	for i := 0; i < 100; i++ {
		k := s.Fill(b)
		acc = append(acc, b[:k]...)
		if k < len(b) {
			e := s.Event()
			evs = append(evs, e)
			if e.Kind == EventExit {
				return acc, evs
			}
		}
	}
	t.Fatal("the child never exits")
	return nil, nil
}

func TestMmapChurn(t *testing.T) {
	s, _ := New(Spec{Kind: MmapChurn, WorkingSet: 1 << 20, ChurnEvery: 500, ChurnPages: 3, Seed: 2})
	acc, evs := drain(t, s, 2000)
	var kinds []EventKind
	for _, e := range evs[1:] {
		kinds = append(kinds, e.Kind)
		if e.Region != 1 {
			t.Fatalf("churn event %+v not on region 1", e)
		}
	}
	for i, k := range kinds {
		if want := []EventKind{EventMmap, EventMunmap}[i%2]; k != want {
			t.Fatalf("events %v", kinds)
		}
	}
	r1 := 0
	for _, a := range acc {
		if a.Region == 1 {
			r1++
		}
	}
	if r1 != 6*len(kinds)/2 && r1 != 6*(len(kinds)/2)+6 {
		t.Errorf("%d accesses to the churn region for %d events", r1, len(kinds))
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []Spec{
		{Kind: "nope", WorkingSet: 1 << 20},
		{Kind: Random, WorkingSet: 100},
		{Kind: Random, WorkingSet: 1 << 20, Writes: 1.5},
		{Kind: Sequential, WorkingSet: 1 << 20, Stride: 12},
		{Kind: Zipf, WorkingSet: 1 << 20, ZipfS: -1},
	} {
		if _, err := New(s); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	for _, k := range []Kind{Sequential, Random, Zipf, GUPS} {
		b.Run(string(k), func(b *testing.B) {
			s, _ := New(Spec{Kind: k, WorkingSet: 64 << 20, Writes: 0.3})
			buf := make([]Access, 256)
			s.Fill(buf)
			s.Event()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(buf) {
				s.Fill(buf)
			}
		})
	}
}
