package hostmem

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/mem"
)

var _ mem.Memory = (*Arena)(nil)

func newArena(t testing.TB, size, page uint64) *Arena {
	t.Helper()
	a, err := New(Config{Size: size, PageSize: page})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"zero size", Config{}},
		{"size not 2M multiple", Config{Size: BlockSize + 4096}},
		{"page 8K", Config{Size: BlockSize, PageSize: 8192}},
		{"base misaligned", Config{Base: 0x4000_1000, Size: BlockSize}},
		{"wraps", Config{Base: mem.PA(^uint64(0) - BlockSize + 1), Size: 2 * BlockSize}},
	} {
		if a, err := New(c.cfg); err == nil {
			a.Close()
			t.Errorf("%s: New(%+v) succeeded", c.name, c.cfg)
		}
	}
}

func TestSparseHugeArenaIsCheap(t *testing.T) {
	// 64 GiB NORESERVE: must map without committing memory.
	a := newArena(t, 64<<30, 65536)
	pa, err := a.Alloc(0)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Write64(pa+8, 0x1122) {
		t.Fatal("write failed")
	}
	if v, _ := a.Read64(pa + 8); v != 0x1122 {
		t.Fatalf("read %#x", v)
	}
}

func TestAccessors(t *testing.T) {
	a := newArena(t, BlockSize, 4096)
	b := a.Base()
	// Store bytes 00 11 22 .. ff at b..b+15, then read with every size.
	for i := 0; i < 16; i++ {
		if !a.Write(b+mem.PA(i), 1, uint64(i*0x11)) {
			t.Fatalf("byte write %d failed", i)
		}
	}
	for _, c := range []struct {
		off  mem.PA
		size int
		want uint64
	}{
		{0, 1, 0x00}, {5, 1, 0x55}, {2, 2, 0x3322}, {3, 2, 0x4433}, // misaligned
		{4, 4, 0x77665544}, {6, 4, 0x99887766}, {8, 8, 0xffeeddccbbaa9988},
		{1, 8, 0x8877665544332211},
	} {
		v, ok := a.Read(b+c.off, c.size)
		if !ok || v != c.want {
			t.Errorf("Read(+%d, %d) = %#x, %v; want %#x", c.off, c.size, v, ok, c.want)
		}
	}
	w, _ := a.Read64(b + 8)
	if w != 0xffeeddccbbaa9988 {
		t.Errorf("Read64 = %#x", w)
	}
	// Sub-word writes leave the neighbours alone.
	a.Write(b+9, 2, 0xabcd)
	if v, _ := a.Read64(b + 8); v != 0xffeeddccbbabcd88 {
		t.Errorf("after misaligned 2-byte write: %#x", v)
	}
	a.Write(b+12, 4, 0x01020304)
	if v, _ := a.Read64(b + 8); v != 0x01020304bbabcd88 {
		t.Errorf("after 4-byte write: %#x", v)
	}
	// Outside, misaligned words, bad sizes.
	end := b + mem.PA(a.Size())
	for _, c := range []struct {
		pa   mem.PA
		size int
	}{{end, 1}, {end - 1, 2}, {end - 4, 8}, {b - 1, 1}, {b, 3}, {b, 16}, {0, 8}} {
		if _, ok := a.Read(c.pa, c.size); ok {
			t.Errorf("Read(%#x, %d) ok", uint64(c.pa), c.size)
		}
		if a.Write(c.pa, c.size, 1) {
			t.Errorf("Write(%#x, %d) ok", uint64(c.pa), c.size)
		}
	}
	for _, pa := range []mem.PA{b + 4, end, b - 8} {
		if _, ok := a.Read64(pa); ok {
			t.Errorf("Read64(%#x) ok", uint64(pa))
		}
		if _, ok := a.CompareAndSwap64(pa, 0, 1); ok {
			t.Errorf("CompareAndSwap64(%#x) ok", uint64(pa))
		}
		if a.Write64(pa, 1) {
			t.Errorf("Write64(%#x) ok", uint64(pa))
		}
	}
	if sw, ok := a.CompareAndSwap64(b+8, 1, 2); sw || !ok {
		t.Errorf("CAS with wrong old = %v, %v", sw, ok)
	}
	if sw, ok := a.CompareAndSwap64(b+8, 0x01020304bbabcd88, 2); !sw || !ok {
		t.Errorf("CAS with right old = %v, %v", sw, ok)
	}
	if fr, ok := a.Frame(b + 0x1234); !ok || len(fr) != 4096 || &fr[0] != &a.data[0x1000] {
		t.Errorf("Frame(+0x1234) wrong")
	}
}

func TestConcurrentCASAndSubwordWrites(t *testing.T) {
	a := newArena(t, BlockSize, 4096)
	pa := a.Base()
	const g, n = 4, 2000
	var wg sync.WaitGroup
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				for {
					v, _ := a.Read64(pa)
					if sw, _ := a.CompareAndSwap64(pa, v, v+1); sw {
						break
					}
				}
				// Each goroutine owns one byte of the next word.
				a.Write(pa+8+mem.PA(i), 1, uint64(j))
			}
		}()
	}
	wg.Wait()
	if v, _ := a.Read64(pa); v != g*n {
		t.Errorf("counter = %d, want %d", v, g*n)
	}
	for i := 0; i < g; i++ {
		if v, _ := a.Read(pa+8+mem.PA(i), 1); v != (n-1)&0xff {
			t.Errorf("byte %d = %#x", i, v)
		}
	}
}

func TestAllocAlignmentAndCoalescing(t *testing.T) {
	for _, page := range []uint64{4096, 16384, 65536} {
		a := newArena(t, 4*BlockSize, page)
		n := int(a.Size() / page)
		// Every order is naturally aligned.
		var got []mem.PA
		var orders []int
		for o := 0; o <= a.MaxOrder(); o++ {
			pa, err := a.Alloc(o)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(pa-a.Base())%(page<<o) != 0 {
				t.Errorf("page %#x order %d at %#x is not aligned", page, o, uint64(pa))
			}
			got, orders = append(got, pa), append(orders, o)
		}
		for i := range got {
			if err := a.PutBlock(got[i], orders[i]); err != nil {
				t.Fatal(err)
			}
		}
		// Take all frames singly, free them: every max-order block must come back.
		var all []mem.PA
		for {
			pa, err := a.Alloc(0)
			if err != nil {
				if !errors.Is(err, ErrNoMemory) {
					t.Fatal(err)
				}
				break
			}
			all = append(all, pa)
		}
		if len(all) != n || a.Stats().Free != 0 {
			t.Fatalf("page %#x: allocated %d frames of %d, stats %+v", page, len(all), n, a.Stats())
		}
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, pa := range all {
			if err := a.Put(pa); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 4; i++ {
			if _, err := a.Alloc(a.MaxOrder()); err != nil {
				t.Fatalf("page %#x: block %d after coalescing: %v", page, i, err)
			}
		}
	}
}

func TestAllocTable(t *testing.T) {
	a := newArena(t, BlockSize, 4096)
	// Dirty the arena so zeroing is observable.
	pa, _ := a.Alloc(a.MaxOrder())
	b, _ := a.Bytes(pa, BlockSize)
	for i := range b {
		b[i] = 0xa5
	}
	a.PutBlock(pa, a.MaxOrder())
	for _, c := range []struct {
		size  uint64
		order int
	}{{4096, 0}, {16384, 2}, {65536, 4}, {512, 0}} {
		pa, err := a.AllocTable(c.size)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := a.TableOrder(c.size); o != c.order {
			t.Errorf("TableOrder(%#x) = %d, want %d", c.size, o, c.order)
		}
		if uint64(pa)%c.size != 0 {
			t.Errorf("table of %#x at %#x misaligned", c.size, uint64(pa))
		}
		fr, _ := a.Bytes(pa, 4096<<c.order)
		for i, x := range fr {
			if x != 0 {
				t.Fatalf("table of %#x: byte %d = %#x", c.size, i, x)
			}
		}
	}
	for _, s := range []uint64{0, 3 << 12, 4 << 20} {
		if _, err := a.AllocTable(s); err == nil {
			t.Errorf("AllocTable(%#x) succeeded", s)
		}
	}
}

func TestRefCounts(t *testing.T) {
	a := newArena(t, BlockSize, 4096)
	pa, _ := a.Alloc(0)
	if a.Ref(pa) != 1 {
		t.Fatalf("ref = %d", a.Ref(pa))
	}
	a.Get(pa)
	a.Put(pa)
	if a.Ref(pa) != 1 || a.Stats().InUse != 1 {
		t.Fatalf("ref %d, stats %+v", a.Ref(pa), a.Stats())
	}
	a.Put(pa)
	if a.Ref(pa) != 0 || a.Stats().InUse != 0 {
		t.Fatalf("after last put: ref %d, stats %+v", a.Ref(pa), a.Stats())
	}
	if a.TryGet(pa) {
		t.Error("TryGet of a free frame succeeded")
	}
	if err := a.Put(pa); err == nil {
		t.Error("double Put succeeded")
	}
	if err := a.Put(0x10); err == nil {
		t.Error("Put outside the arena succeeded")
	}
	if _, err := a.Alloc(-1); err == nil {
		t.Error("Alloc(-1) succeeded")
	}
	if _, err := a.Alloc(a.MaxOrder() + 1); err == nil {
		t.Error("Alloc(max+1) succeeded")
	}
}

// refModel is the simple reference: a set of allocated frame indexes.
type refModel struct{ used map[int]int } // index -> refs

// checkAllocOps runs ops (read as a byte program) against the arena and
// the reference model: allocations never overlap live frames, are aligned,
// and the counters agree.
func checkAllocOps(t *testing.T, a *Arena, ops []byte) {
	m := refModel{used: map[int]int{}}
	type blk struct {
		pa    mem.PA
		order int
	}
	var live []blk
	for len(ops) >= 2 {
		op, arg := ops[0], int(ops[1])
		ops = ops[2:]
		switch op % 3 {
		case 0: // alloc
			o := arg % (a.MaxOrder() + 1)
			pa, err := a.Alloc(o)
			if err != nil {
				free := a.nframes - len(m.used)
				if free >= 1<<o && a.Stats().Free != uint64(free) {
					t.Fatalf("Alloc(%d) failed with %d free: %v", o, free, err)
				}
				continue
			}
			i := a.frame(pa)
			if i%(1<<o) != 0 {
				t.Fatalf("order %d block at frame %d misaligned", o, i)
			}
			for j := i; j < i+1<<o; j++ {
				if m.used[j] != 0 {
					t.Fatalf("frame %d handed out twice", j)
				}
				m.used[j] = 1
			}
			live = append(live, blk{pa, o})
		case 1: // put one frame of a live block
			if len(live) == 0 {
				continue
			}
			k := arg % len(live)
			b := live[k]
			live = append(live[:k], live[k+1:]...)
			for j := 0; j < 1<<b.order; j++ {
				pa := b.pa + mem.PA(uint64(j)<<a.pageShift)
				i := a.frame(pa)
				for m.used[i] > 0 {
					if err := a.Put(pa); err != nil {
						t.Fatal(err)
					}
					m.used[i]--
				}
				delete(m.used, i)
			}
		case 2: // extra reference
			if len(live) == 0 {
				continue
			}
			b := live[arg%len(live)]
			if err := a.Get(b.pa); err != nil {
				t.Fatal(err)
			}
			m.used[a.frame(b.pa)]++
		}
		if got := a.Stats().InUse; got != uint64(len(m.used)) {
			t.Fatalf("InUse %d, model %d", got, len(m.used))
		}
		for i, r := range m.used {
			if got := a.ref[i].Load(); got != int32(r) {
				t.Fatalf("frame %d ref %d, model %d", i, got, r)
			}
		}
	}
}

func TestAllocDifferential(t *testing.T) {
	a := newArena(t, 2*BlockSize, 65536) // 64 frames: exhaustion is reached
	r := rand.New(rand.NewPCG(7, 9))
	ops := make([]byte, 20000)
	for i := range ops {
		ops[i] = byte(r.UintN(256))
	}
	checkAllocOps(t, a, ops)
}

func FuzzAllocOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 1, 0, 2, 0, 1, 1})
	f.Add([]byte{0, 5, 0, 5, 0, 5, 0, 5, 0, 5, 1, 3, 1, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a, err := New(Config{Size: BlockSize, PageSize: 65536})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		checkAllocOps(t, a, ops)
	})
}

func TestConcurrentAlloc(t *testing.T) {
	a := newArena(t, 8*BlockSize, 4096)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []mem.PA
			for i := 0; i < 3000; i++ {
				if len(mine) > 0 && r.IntN(2) == 0 {
					k := r.IntN(len(mine))
					a.Write64(mine[k], uint64(g)) // owner-only data
					if v, _ := a.Read64(mine[k]); v != uint64(g) {
						t.Errorf("frame %#x overwritten: %d", uint64(mine[k]), v)
					}
					a.Put(mine[k])
					mine = append(mine[:k], mine[k+1:]...)
					continue
				}
				pa, err := a.Alloc(r.IntN(3))
				if err == nil {
					a.Write64(pa, uint64(g))
					mine = append(mine, pa)
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestHotPathsAllocationFree(t *testing.T) {
	a := newArena(t, BlockSize, 4096)
	pa := a.Base() + 64
	n := testing.AllocsPerRun(100, func() {
		a.Read64(pa)
		a.CompareAndSwap64(pa, 0, 0)
		a.Write(pa+1, 2, 7)
		a.Read(pa+1, 2)
		p, _ := a.Alloc(0)
		a.Put(p)
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

func BenchmarkRead64(b *testing.B) {
	a := newArena(b, BlockSize, 4096)
	pa := a.Base() + 64
	b.ReportAllocs()
	for b.Loop() {
		a.Read64(pa)
	}
}

func BenchmarkAllocPut(b *testing.B) {
	a := newArena(b, BlockSize, 4096)
	b.ReportAllocs()
	for b.Loop() {
		p, _ := a.Alloc(0)
		a.Put(p)
	}
}

// TestPoisonFreed: with PoisonFreed a frame whose last reference goes is
// filled with PoisonWord, and every access through the Checked view that
// touches a free frame (never allocated, or freed) is counted; accesses to
// allocated frames, and the Arena's own accesses, are not. Without the
// option nothing is counted and freed frames keep their data.
func TestPoisonFreed(t *testing.T) {
	for _, page := range []uint64{4096, 65536} {
		a, err := New(Config{Size: BlockSize, PageSize: page, PoisonFreed: true})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		c := a.Checked()
		var _ mem.Memory = c
		p, _ := a.Alloc(1)
		q := p + mem.PA(page)
		c.Write(p+8, 8, 0x1234)
		c.Write(q, 8, 7)
		_ = a.Get(p)
		_ = a.Put(p) // one reference left: not freed
		if v, _ := c.Read(p+8, 8); v != 0x1234 {
			t.Fatalf("page %d: live frame reads %#x", page, v)
		}
		if n, _, ok := a.StaleAccesses(); n != 0 || ok {
			t.Fatalf("page %d: %d stale accesses to live frames", page, n)
		}
		if err := a.Put(p); err != nil {
			t.Fatal(err)
		}
		if v, _ := a.Read(p+8, 4); v != PoisonWord&0xffff_ffff {
			t.Errorf("page %d: freed frame reads %#x, want the poison", page, v)
		}
		if n, _, _ := a.StaleAccesses(); n != 0 {
			t.Errorf("page %d: the Arena's own read was counted", page)
		}
		if v, _ := c.Read(p+8, 8); v != PoisonWord {
			t.Errorf("page %d: checked read of the freed frame gives %#x", page, v)
		}
		c.Write(p+12, 2, 1)
		_, _ = c.CompareAndSwap64(p, 0, 1)
		_, _ = c.Read64(p + 16)
		if v, _ := c.Read64(q); v != 7 {
			t.Errorf("page %d: the neighbour, still allocated, reads %#x", page, v)
		}
		n, first, ok := a.StaleAccesses()
		if n != 4 || !ok || first != p+8 {
			t.Errorf("page %d: %d stale accesses, first %#x (%v); want 4, first %#x", page, n, uint64(first), ok, uint64(p+8))
		}
		// A misaligned access straddling into a free frame counts too.
		c.Write(q+mem.PA(page)-4, 8, 0)
		if n, _, _ := a.StaleAccesses(); n != 5 {
			t.Errorf("page %d: straddling access not counted (%d)", page, n)
		}
	}
	a := newArena(t, BlockSize, 4096)
	p, _ := a.Alloc(0)
	a.Write64(p, 5)
	_ = a.Put(p)
	if v, _ := a.Checked().Read64(p); v != 5 {
		t.Errorf("without PoisonFreed a freed frame reads %#x, want its old 5", v)
	}
	if n, _, ok := a.StaleAccesses(); n != 0 || ok {
		t.Errorf("without PoisonFreed %d accesses counted", n)
	}
}
