package hostmm

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// env is one test's host: an address space with one 4 MiB region at base
// and a recorder registered on it.
type env struct {
	k    *Kernel
	as   *AddressSpace
	base HVA
	rec  *recorder
	pg   HVA
}

func newEnv(t *testing.T, flags MapFlags) *env {
	k := newKernel(t, 32<<20, 4096)
	as := k.NewAddressSpace()
	base, err := as.Mmap(4<<20, flags)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := as.RegisterNotifier(rec); err != nil {
		t.Fatal(err)
	}
	return &env{k: k, as: as, base: base, rec: rec, pg: 4096}
}

func (e *env) p(i int) HVA { return e.base + HVA(i)*e.pg }

func (e *env) write(t *testing.T, hva HVA, v uint64) {
	t.Helper()
	if err := e.as.Write(hva, 8, v); err != nil {
		t.Fatal(err)
	}
}

func (e *env) read(t *testing.T, hva HVA) uint64 {
	t.Helper()
	v, err := e.as.Read(hva, 8)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) pa(t *testing.T, hva HVA) mem.PA {
	t.Helper()
	m, ok := e.as.Translate(hva)
	if !ok {
		t.Fatalf("hva %#x not present", uint64(hva))
	}
	return m.PA
}

// expect compares the recorded calls with want.
func (e *env) expect(t *testing.T, what string, want ...call) {
	t.Helper()
	got := e.rec.take()
	if !slices.Equal(got, want) {
		t.Errorf("%s: notifier calls\n got  %v\n want %v", what, got, want)
	}
}

func inv(ev Event, s, e HVA) []call {
	return []call{{Op: "start", Start: s, End: e, Event: ev}, {Op: "end", Start: s, End: e, Event: ev}}
}

// invChange is Start, ChangePTE(s, pa), End on one page.
func invChange(s, e HVA, pa mem.PA) []call {
	return []call{{Op: "start", Start: s, End: e, Event: EventClear}, {Op: "change", Start: s, PA: pa},
		{Op: "end", Start: s, End: e, Event: EventClear}}
}

func TestEvents(t *testing.T) {
	const mb2 = HugeSize
	for _, c := range []struct {
		name  string
		flags MapFlags
		run   func(t *testing.T, e *env)
	}{
		{"first touch raises nothing", 0, func(t *testing.T, e *env) {
			if v := e.read(t, e.p(0)); v != 0 {
				t.Errorf("fresh page reads %#x", v)
			}
			e.write(t, e.p(1)+8, 7)
			e.expect(t, "first touch")
			if m, _ := e.as.Translate(e.p(0)); !m.Writable || m.Huge {
				t.Errorf("first touch mapping %+v", m)
			}
			if s := e.k.Stats(); s.Faults != 2 || s.HugeFaults != 0 {
				t.Errorf("stats %+v", s)
			}
		}},
		{"swap out and in", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(3)+16, 0xab)
			old := e.pa(t, e.p(3))
			e.rec.take()
			if err := e.as.SwapOut(e.p(3) + 100); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "swap out", inv(EventClear, e.p(3), e.p(4))...)
			if _, ok := e.as.Translate(e.p(3)); ok {
				t.Error("swapped page still present")
			}
			if r := e.k.arena.Ref(old); r != 0 {
				t.Errorf("old frame ref %d after swap-out", r)
			}
			if v := e.read(t, e.p(3)+16); v != 0xab {
				t.Errorf("after swap-in read %#x", v)
			}
			e.expect(t, "swap in")
			if s := e.k.Stats(); s.SwapOuts != 1 || s.SwapIns != 1 || s.SwapUsed != 0 {
				t.Errorf("stats %+v", s)
			}
		}},
		{"swap out a range page by page", 0, func(t *testing.T, e *env) {
			for _, i := range []int{0, 1, 3} {
				e.write(t, e.p(i), uint64(i+1))
			}
			e.rec.take()
			n, err := e.as.SwapOutRange(e.p(0)+8, 4*4096-8) // pages 0..3
			if err != nil || n != 3 {
				t.Fatalf("SwapOutRange = %d, %v", n, err)
			}
			e.expect(t, "range", slices.Concat(inv(EventClear, e.p(0), e.p(1)),
				inv(EventClear, e.p(1), e.p(2)), inv(EventClear, e.p(3), e.p(4)))...)
			for _, i := range []int{0, 1, 3} {
				if v := e.read(t, e.p(i)); v != uint64(i+1) {
					t.Errorf("page %d reads %d", i, v)
				}
			}
			if r := e.as.Regions(); len(r) != 1 || r[0].Start != e.base || r[0].End != e.base+4<<20 || r[0].Shared {
				t.Errorf("regions %+v", r)
			}
		}},
		{"swap out of a page not present", 0, func(t *testing.T, e *env) {
			if err := e.as.SwapOut(e.p(9)); !errors.Is(err, ErrNotPresent) {
				t.Errorf("err %v", err)
			}
			if err := e.as.SwapOut(e.base - 1); !errors.Is(err, ErrFault) {
				t.Errorf("unmapped: err %v", err)
			}
			e.expect(t, "nothing to swap")
		}},
		{"swap out of a huge page splits it first", MapHuge, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			if m, _ := e.as.Translate(e.p(3)); !m.Huge {
				t.Fatalf("THP region not huge: %+v", m)
			}
			e.rec.take()
			if err := e.as.SwapOut(e.p(3)); err != nil {
				t.Fatal(err)
			}
			want := append(inv(EventClear, e.base, e.base+mb2), inv(EventClear, e.p(3), e.p(4))...)
			e.expect(t, "huge swap out", want...)
			if m, _ := e.as.Translate(e.p(0)); m.Huge {
				t.Error("still huge")
			}
			if e.read(t, e.p(0)) != 1 || e.read(t, e.p(3)) != 0 {
				t.Error("contents lost")
			}
		}},
		{"migrate a small page", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(2)+8, 0x55)
			old := e.pa(t, e.p(2))
			e.rec.take()
			if err := e.as.Migrate(e.p(2)); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "migrate", inv(EventMigrate, e.p(2), e.p(3))...)
			m, _ := e.as.Translate(e.p(2))
			if m.PA == old || !m.Writable || e.k.arena.Ref(old) != 0 {
				t.Errorf("after migrate %+v, old ref %d", m, e.k.arena.Ref(old))
			}
			if e.read(t, e.p(2)+8) != 0x55 {
				t.Error("contents lost")
			}
			if err := e.as.Migrate(e.p(7)); !errors.Is(err, ErrNotPresent) {
				t.Errorf("migrate absent page: %v", err)
			}
		}},
		{"migrate a huge page moves the block", MapHuge, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			e.write(t, e.p(511)+4088, 2)
			old := e.pa(t, e.p(0))
			e.rec.take()
			if err := e.as.Migrate(e.p(7)); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "huge migrate", inv(EventMigrate, e.base, e.base+mb2)...)
			m, _ := e.as.Translate(e.p(0))
			if !m.Huge || m.PA == old || uint64(m.PA)%HugeSize != 0 {
				t.Errorf("after migrate %+v (old %#x)", m, uint64(old))
			}
			if e.read(t, e.p(0)) != 1 || e.read(t, e.p(511)+4088) != 2 {
				t.Error("contents lost")
			}
		}},
		{"split a huge page", MapHuge, func(t *testing.T, e *env) {
			e.write(t, e.p(600), 3) // second chunk
			old := e.pa(t, e.p(600))
			e.rec.take()
			if err := e.as.SplitHuge(e.p(700)); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "split", inv(EventClear, e.base+mb2, e.base+2*mb2)...)
			m, _ := e.as.Translate(e.p(600))
			if m.Huge || m.PA != old {
				t.Errorf("after split %+v", m)
			}
			if err := e.as.SplitHuge(e.p(600)); !errors.Is(err, ErrNotHuge) {
				t.Errorf("second split: %v", err)
			}
			e.expect(t, "second split")
		}},
		{"collapse small pages into a huge page", MapHuge, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			e.as.SplitHuge(e.p(0))
			e.as.Migrate(e.p(5)) // a frame outside the old block
			e.write(t, e.p(5)+8, 2)
			e.as.SwapOut(e.p(7)) // a swapped page blocks the collapse
			moved := e.pa(t, e.p(5))
			e.rec.take()
			if err := e.as.Collapse(e.p(3)); !errors.Is(err, ErrNotPresent) {
				t.Fatalf("collapse over a swapped page: %v", err)
			}
			e.expect(t, "refused collapse")
			e.read(t, e.p(7)) // swap it back in
			e.rec.take()
			if err := e.as.Collapse(e.p(3)); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "collapse", inv(EventClear, e.base, e.base+mb2)...)
			m, _ := e.as.Translate(e.p(5))
			if !m.Huge || uint64(m.PA-5*4096)%HugeSize != 0 || e.k.arena.Ref(moved) != 0 {
				t.Errorf("after collapse %+v, old frame ref %d", m, e.k.arena.Ref(moved))
			}
			if e.read(t, e.p(0)) != 1 || e.read(t, e.p(5)+8) != 2 || e.read(t, e.p(9)) != 0 {
				t.Error("contents lost")
			}
			if err := e.as.Collapse(e.p(3)); err == nil {
				t.Error("collapse of a huge page succeeded")
			}
			if err := e.as.Collapse(e.p(600)); !errors.Is(err, ErrNotPresent) { // untouched chunk
				t.Errorf("collapse of an untouched chunk: %v", err)
			}
		}},
		{"collapse needs a MapHuge region", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			if err := e.as.Collapse(e.p(0)); !errors.Is(err, ErrNotHuge) {
				t.Errorf("err %v", err)
			}
			e.expect(t, "no collapse")
		}},
		{"KSM merges identical pages", MapMergeable, func(t *testing.T, e *env) {
			e.write(t, e.p(0)+64, 0x1234)
			e.write(t, e.p(1)+64, 0x1234)
			e.write(t, e.p(2)+64, 0x9999)
			pa0, pa1 := e.pa(t, e.p(0)), e.pa(t, e.p(1))
			e.rec.take()
			if n := e.k.KSMScan(0); n != 1 {
				t.Fatalf("merged %d, want 1", n)
			}
			// Promote page 0 (write-protect it), then write-protect page 1,
			// compare, and replace it by page 0's frame.
			want := slices.Concat(invChange(e.p(0), e.p(1), pa0), invChange(e.p(1), e.p(2), pa1),
				invChange(e.p(1), e.p(2), pa0))
			e.expect(t, "ksm", want...)
			m0, _ := e.as.Translate(e.p(0))
			m1, _ := e.as.Translate(e.p(1))
			if m0.PA != pa0 || m1.PA != pa0 || m0.Writable || m1.Writable {
				t.Errorf("after merge %+v %+v", m0, m1)
			}
			if e.k.arena.Ref(pa1) != 0 || e.k.arena.Ref(pa0) != 3 {
				t.Errorf("refs pa0 %d pa1 %d", e.k.arena.Ref(pa0), e.k.arena.Ref(pa1))
			}
			if got, _ := e.as.FaultIn(e.p(1)+64, false); got.Writable || got.PA != pa0+64 {
				t.Errorf("read fault on KSM page %+v", got)
			}
			e.expect(t, "read of a KSM page")
			if e.k.KSMScan(0) != 0 {
				t.Error("second scan merged again")
			}
			e.expect(t, "second scan")
			// Copy-on-write on the next write.
			e.write(t, e.p(1)+8, 5)
			pn := e.pa(t, e.p(1))
			e.expect(t, "cow", invChange(e.p(1), e.p(2), pn)...)
			if pn == pa0 || e.read(t, e.p(1)+64) != 0x1234 || e.read(t, e.p(1)+8) != 5 ||
				e.read(t, e.p(0)+8) != 0 || e.k.arena.Ref(pa0) != 2 {
				t.Errorf("after cow: pa %#x ref %d", uint64(pn), e.k.arena.Ref(pa0))
			}
			// The last mapping breaks too; the next scan frees the KSM page.
			if got, _ := e.as.FaultIn(e.p(0), true); !got.Writable || got.PA == pa0 {
				t.Errorf("write fault on KSM page %+v", got)
			}
			e.k.KSMScan(0)
			if r := e.k.arena.Ref(pa0); r != 0 {
				t.Errorf("KSM page ref %d after all mappings broke", r)
			}
			if err := e.k.Check(); err != nil {
				t.Error(err)
			}
		}},
		{"KSM leaves distinct pages alone", MapMergeable, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			e.write(t, e.p(1), 2)
			if n := e.k.KSMScan(0); n != 0 {
				t.Errorf("merged %d", n)
			}
			e.expect(t, "no merge")
		}},
		{"KSM ignores regions not mergeable", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			e.write(t, e.p(1), 1)
			if n := e.k.KSMScan(0); n != 0 {
				t.Errorf("merged %d", n)
			}
			e.expect(t, "no merge")
		}},
		{"aging combines host and secondary young", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			y, _ := e.as.Age(e.p(0), true)
			e.expect(t, "age", call{Op: "clear-flush-young", Start: e.p(0), End: e.p(1)})
			if !y {
				t.Error("touched page not young")
			}
			if y, _ := e.as.Age(e.p(0), true); y {
				t.Error("young twice without access")
			}
			e.rec.take()
			e.rec.young = true
			if y, _ := e.as.Age(e.p(0), false); !y {
				t.Error("secondary young ignored")
			}
			e.expect(t, "age no flush", call{Op: "clear-young", Start: e.p(0), End: e.p(1)})
			if y, _ := e.as.TestYoung(e.p(0)); !y {
				t.Error("TestYoung")
			}
			e.expect(t, "test young", call{Op: "test-young", Start: e.p(0), End: e.p(1)})
			if y, _ := e.as.Age(e.p(5), true); y {
				t.Error("absent page young")
			}
			e.expect(t, "absent page")
		}},
		{"aging a huge page covers the block", MapHuge, func(t *testing.T, e *env) {
			e.write(t, e.p(4), 1)
			e.rec.take()
			if y, _ := e.as.Age(e.p(9), true); !y {
				t.Error("block not young")
			}
			e.expect(t, "age huge", call{Op: "clear-flush-young", Start: e.base, End: e.base + mb2})
		}},
		{"munmap invalidates and frees", MapHuge, func(t *testing.T, e *env) {
			before := e.k.arena.Stats().InUse
			e.write(t, e.p(0), 1)
			e.write(t, e.p(1000), 1)
			e.as.SwapOut(e.p(1000))
			e.rec.take()
			if err := e.as.Munmap(e.base); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "munmap", inv(EventUnmap, e.base, e.base+4<<20)...)
			if got := e.k.arena.Stats().InUse; got != before {
				t.Errorf("frames in use %d, before %d", got, before)
			}
			if s := e.k.Stats(); s.SwapUsed != 0 {
				t.Errorf("swap used %d", s.SwapUsed)
			}
			if _, err := e.as.FaultIn(e.p(0), false); !errors.Is(err, ErrFault) {
				t.Errorf("fault after munmap: %v", err)
			}
			if err := e.as.Munmap(e.base); err == nil {
				t.Error("second munmap succeeded")
			}
		}},
		{"close releases without invalidating", 0, func(t *testing.T, e *env) {
			e.write(t, e.p(0), 1)
			e.rec.take()
			if err := e.as.Close(); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "close", call{Op: "release"})
			if e.k.arena.Stats().InUse != 0 {
				t.Errorf("frames in use after close: %+v", e.k.arena.Stats())
			}
			if _, err := e.as.Mmap(4096, 0); !errors.Is(err, ErrClosed) {
				t.Errorf("mmap after close: %v", err)
			}
			if err := e.as.Close(); err == nil {
				t.Error("second close succeeded")
			}
		}},
		{"unregister releases and stops calls", 0, func(t *testing.T, e *env) {
			rec2 := &recorder{}
			reg, _ := e.as.RegisterNotifier(rec2)
			e.write(t, e.p(0), 1)
			reg.Unregister()
			reg.Unregister()
			e.as.SwapOut(e.p(0))
			if got := rec2.take(); !slices.Equal(got, []call{{Op: "release"}}) {
				t.Errorf("unregistered notifier saw %v", got)
			}
			e.expect(t, "other notifier", inv(EventClear, e.p(0), e.p(1))...)
		}},
		{"shared memory notifies every mapping", 0, func(t *testing.T, e *env) {
			sm, err := e.k.NewSharedMemory(64 << 10)
			if err != nil {
				t.Fatal(err)
			}
			as2 := e.k.NewAddressSpace()
			rec2 := &recorder{}
			as2.RegisterNotifier(rec2)
			h1, _ := e.as.MmapShared(sm, 0, 64<<10)
			h2, err := as2.MmapShared(sm, 16<<10, 32<<10) // object pages 4..11
			if err != nil {
				t.Fatal(err)
			}
			e.write(t, h1+5*e.pg, 0x77)
			if v, _ := as2.Read(h2+1*e.pg, 8); v != 0x77 {
				t.Fatalf("shared page reads %#x through the second mapping", v)
			}
			e.write(t, h1, 1)
			e.rec.take()
			if err := e.as.SwapOut(h1 + 5*e.pg); err != nil {
				t.Fatal(err)
			}
			e.expect(t, "mapping 1", inv(EventClear, h1+5*e.pg, h1+6*e.pg)...)
			if got, want := rec2.take(), inv(EventClear, h2+e.pg, h2+2*e.pg); !slices.Equal(got, want) {
				t.Errorf("mapping 2: got %v want %v", got, want)
			}
			if v, _ := as2.Read(h2+e.pg, 8); v != 0x77 {
				t.Errorf("after swap-in via mapping 2: %#x", v)
			}
			if err := e.as.Migrate(h1); err != nil { // page 0: not in mapping 2
				t.Fatal(err)
			}
			e.expect(t, "migrate mapping 1", inv(EventMigrate, h1, h1+e.pg)...)
			if got := rec2.take(); len(got) != 0 {
				t.Errorf("mapping 2 notified for a page it does not map: %v", got)
			}
			if err := sm.Close(); err == nil {
				t.Error("closing a mapped object succeeded")
			}
			e.as.Munmap(h1)
			as2.Munmap(h2)
			e.rec.take()
			if err := sm.Close(); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.flags)
			c.run(t, e)
			if err := e.k.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMapErrors(t *testing.T) {
	k := newKernel(t, 4<<20, 4096)
	as := k.NewAddressSpace()
	if _, err := as.Mmap(0, 0); err == nil {
		t.Error("Mmap(0) succeeded")
	}
	if _, err := as.Mmap(4096, 0x80); err == nil {
		t.Error("unknown flag accepted")
	}
	sm, _ := k.NewSharedMemory(8192)
	if _, err := as.MmapShared(sm, 4096, 8192); err == nil {
		t.Error("mapping past the object succeeded")
	}
	if _, err := as.MmapShared(sm, 100, 10); err == nil {
		t.Error("misaligned offset accepted")
	}
	h, _ := as.Mmap(4096, 0)
	for _, sz := range []int{0, 3, 16} {
		if _, err := as.Read(h, sz); err == nil {
			t.Errorf("Read size %d accepted", sz)
		}
		if err := as.Write(h, sz, 0); err == nil {
			t.Errorf("Write size %d accepted", sz)
		}
	}
	if _, err := as.Read(h+4096, 1); !errors.Is(err, ErrFault) {
		t.Errorf("read past region: %v", err)
	}
	// An access crossing into the guard gap faults after the first bytes.
	if err := as.Write(h+4092, 8, 0); !errors.Is(err, ErrFault) {
		t.Errorf("write across region end: %v", err)
	}
}

func TestPageCrossingAccess(t *testing.T) {
	k := newKernel(t, 4<<20, 4096)
	as := k.NewAddressSpace()
	h, _ := as.Mmap(8192, 0)
	if err := as.Write(h+4093, 8, 0x0807060504030201); err != nil {
		t.Fatal(err)
	}
	if v, _ := as.Read(h+4093, 8); v != 0x0807060504030201 {
		t.Errorf("read %#x", v)
	}
	if v, _ := as.Read(h+4096, 4); v != 0x07060504 {
		t.Errorf("second page word %#x", v)
	}
}

func TestHugeFallsBackToSmallPages(t *testing.T) {
	// An arena of exactly one 2 MiB block: the first huge fault takes it,
	// the next region's faults must fall back to small pages and fail
	// cleanly when nothing is left.
	k := newKernel(t, HugeSize, 4096)
	as := k.NewAddressSpace()
	h1, _ := as.Mmap(HugeSize, MapHuge)
	h2, _ := as.Mmap(HugeSize, MapHuge)
	if m, err := as.FaultIn(h1, true); err != nil || !m.Huge {
		t.Fatalf("first huge fault %+v %v", m, err)
	}
	if _, err := as.FaultIn(h2, true); err == nil {
		t.Fatal("fault with no memory succeeded")
	}
	as.SplitHuge(h1)
	as.SwapOut(h1 + 4096)
	if m, err := as.FaultIn(h2, true); err != nil || m.Huge {
		t.Fatalf("fallback fault %+v %v", m, err)
	}
	if err := k.Check(); err != nil {
		t.Error(err)
	}
}

func TestPageSizes(t *testing.T) {
	for _, ps := range []uint64{16384, 65536} {
		k := newKernel(t, 8<<20, ps)
		as := k.NewAddressSpace()
		h, _ := as.Mmap(4<<20, MapHuge|MapMergeable)
		as.Write(h+HVA(ps)+8, 8, 42)
		if m, _ := as.Translate(h); !m.Huge || uint64(m.PA)%HugeSize != 0 {
			t.Errorf("page %#x: huge mapping %+v", ps, m)
		}
		as.SplitHuge(h)
		as.SwapOut(h + HVA(ps))
		as.Migrate(h)
		if v, _ := as.Read(h+HVA(ps)+8, 8); v != 42 {
			t.Errorf("page %#x: read %d", ps, v)
		}
		if err := k.Check(); err != nil {
			t.Error(err)
		}
	}
}

// lastWriter is a secondary MMU that still maps one page writable and
// stores to it from inside InvalidateRangeStart, before dropping it: the
// last guest store that can race with an event. The host must copy or
// compare the page only after Start returns, so the store must survive.
type lastWriter struct {
	protocol
	ar     interface{ Write64(mem.PA, uint64) bool }
	hva    HVA
	pa     mem.PA
	val    uint64
	fired  int
	mapped bool
}

func (w *lastWriter) InvalidateRangeStart(r Range) {
	if w.mapped && w.hva >= r.Start && w.hva < r.End {
		w.ar.Write64(w.pa, w.val)
		w.fired++
		w.mapped = false
	}
}
func (w *lastWriter) InvalidateRangeEnd(Range) {}

func TestStoresBeforeStartSurvive(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags MapFlags
		prep  func(e *env)
		event func(e *env) error
	}{
		{"swap out", 0, nil, func(e *env) error { return e.as.SwapOut(e.p(1)) }},
		{"migrate", 0, nil, func(e *env) error { return e.as.Migrate(e.p(1)) }},
		{"migrate huge", MapHuge, nil, func(e *env) error { return e.as.Migrate(e.p(1)) }},
		{"swap out huge", MapHuge, nil, func(e *env) error { return e.as.SwapOut(e.p(1)) }},
		{"collapse", MapHuge, func(e *env) { e.as.SplitHuge(e.p(0)) }, func(e *env) error { return e.as.Collapse(e.p(1)) }},
		{"KSM write-protect then compare", MapMergeable,
			func(e *env) { e.as.Write(e.p(0)+64, 8, 0x11) }, // page 0 equals page 1 before the store
			func(e *env) error { e.k.KSMScan(0); return nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.flags)
			e.write(t, e.p(1)+64, 0x11)
			if c.prep != nil {
				c.prep(e)
			}
			m, _ := e.as.FaultIn(e.p(1)+64, true)
			w := &lastWriter{ar: e.k.arena, hva: e.p(1), pa: m.PA, val: 0x22, mapped: true}
			e.as.RegisterNotifier(w)
			if err := c.event(e); err != nil {
				t.Fatal(err)
			}
			if w.fired != 1 {
				t.Fatalf("the store fired %d times", w.fired)
			}
			if v := e.read(t, e.p(1)+64); v != 0x22 {
				t.Errorf("the store made before Start returned was lost: read %#x", v)
			}
			if v := e.read(t, e.p(0)+64); c.flags == MapMergeable && v != 0x11 {
				t.Errorf("the other page changed: %#x", v)
			}
			if err := e.k.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestWriteProtectedPageIsReused: a page KSM write-protected but did not
// merge (its contents changed before the compare) is made writable again
// in place on the next write, with no notifier call (wp_page_reuse).
func TestWriteProtectedPageIsReused(t *testing.T) {
	e := newEnv(t, MapMergeable)
	e.write(t, e.p(0)+64, 0x11)
	e.write(t, e.p(1)+64, 0x11)
	m, _ := e.as.FaultIn(e.p(1)+64, true)
	e.as.RegisterNotifier(&lastWriter{ar: e.k.arena, hva: e.p(1), pa: m.PA, val: 0x22, mapped: true})
	if n := e.k.KSMScan(0); n != 0 {
		t.Fatalf("merged %d pages that differ", n)
	}
	got, _ := e.as.Translate(e.p(1))
	if got.Writable || got.PA != m.PA-64 {
		t.Fatalf("after the failed merge: %+v", got)
	}
	e.rec.take()
	e.write(t, e.p(1), 3)
	e.expect(t, "reuse")
	got, _ = e.as.Translate(e.p(1))
	if !got.Writable || got.PA != m.PA-64 || e.k.Stats().Reuses != 1 {
		t.Errorf("after the write: %+v, stats %+v", got, e.k.Stats())
	}
}

func TestPressureStartStop(t *testing.T) {
	e := newEnv(t, MapHuge|MapMergeable)
	for i := 0; i < 64; i++ {
		e.write(t, e.p(i), uint64(i%4))
	}
	p := e.k.StartPressure(PressureConfig{Seed: 5, Interval: 100 * time.Microsecond})
	for p.Steps() < 50 {
		time.Sleep(time.Millisecond)
	}
	st := p.Stop()
	if st2 := p.Stop(); st2 != st || st.Steps < 50 {
		t.Errorf("stats %+v then %+v", st, st2)
	}
	for i := 0; i < 64; i++ {
		if v := e.read(t, e.p(i)); v != uint64(i%4) {
			t.Errorf("page %d reads %d", i, v)
		}
	}
	// A kernel with no address space: every step is skipped.
	k := newKernel(t, HugeSize, 4096)
	var s PressureStats
	k.PressureStep(rand.New(rand.NewPCG(1, 1)), 0, &s)
	if s.Steps != 1 || s.Skipped != 1 {
		t.Errorf("empty kernel: %+v", s)
	}
}

func TestKernelConfigAndSwapLimit(t *testing.T) {
	if _, err := NewKernel(nil, Config{}); err == nil {
		t.Error("nil arena accepted")
	}
	a, _ := hostmem.New(hostmem.Config{Size: HugeSize})
	defer a.Close()
	if _, err := NewKernel(a, Config{SwapPages: -1}); err == nil {
		t.Error("negative swap accepted")
	}
	k, _ := NewKernel(a, Config{SwapPages: 1})
	if k.Arena() != a || k.PageSize() != 4096 {
		t.Error("accessors")
	}
	as := k.NewAddressSpace()
	h, _ := as.Mmap(8192, 0)
	as.Write(h, 8, 1)
	as.Write(h+4096, 8, 2)
	if err := as.SwapOut(h); err != nil {
		t.Fatal(err)
	}
	if err := as.SwapOut(h + 4096); !errors.Is(err, ErrSwapFull) {
		t.Errorf("second swap-out with one slot: %v", err)
	}
	if v, _ := as.Read(h+4096, 8); v != 2 {
		t.Errorf("page kept after failed swap-out reads %d", v)
	}
	if sp := k.Spaces(); len(sp) != 1 || sp[0].ID() != as.ID() || sp[0].Kernel() != k {
		t.Errorf("spaces %v", sp)
	}
	if got := (Range{Start: 0x1000, End: 0x2000, Event: EventMigrate}).String(); got != "migrate[0x1000,0x2000)" {
		t.Errorf("Range.String() = %q", got)
	}
	if err := k.Check(); err != nil {
		t.Error(err)
	}
}
