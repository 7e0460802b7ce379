package hostmm

import (
	"testing"

	"github.com/nestmmu/nestmmu/mem"
)

// nopNotifier is a registered secondary MMU that does nothing, so the
// benchmarks include the notifier fan-out.
type nopNotifier struct{}

func (nopNotifier) InvalidateRangeStart(Range)    {}
func (nopNotifier) InvalidateRangeEnd(Range)      {}
func (nopNotifier) ChangePTE(HVA, mem.PA)         {}
func (nopNotifier) ClearYoung(HVA, HVA) bool      { return false }
func (nopNotifier) ClearFlushYoung(HVA, HVA) bool { return false }
func (nopNotifier) TestYoung(HVA, HVA) bool       { return false }
func (nopNotifier) Release()                      {}
func benchSpace(b *testing.B, arena uint64) (*Kernel, *AddressSpace) {
	k := newKernel(b, arena, 4096)
	as := k.NewAddressSpace()
	as.RegisterNotifier(nopNotifier{})
	return k, as
}

func TestFaultInHitAllocationFree(t *testing.T) {
	k := newKernel(t, 8<<20, 4096)
	as := k.NewAddressSpace()
	for _, fl := range []MapFlags{0, MapHuge} {
		h, _ := as.Mmap(HugeSize, fl)
		as.Write(h+8, 8, 1)
		n := testing.AllocsPerRun(1000, func() {
			as.FaultIn(h+8, false)
			as.FaultIn(h+16, true)
			as.Translate(h)
		})
		if n != 0 {
			t.Errorf("flags %d: FaultIn hit path: %v allocations", fl, n)
		}
	}
}

func BenchmarkFaultInHit(b *testing.B) {
	_, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(1<<20, 0)
	as.Write(h, 8, 1)
	b.ReportAllocs()
	for b.Loop() {
		as.FaultIn(h+64, true)
	}
}

func BenchmarkFaultInHitParallel(b *testing.B) {
	_, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(1<<20, 0)
	for i := HVA(0); i < 1<<20; i += 4096 {
		as.Write(h+i, 8, 1)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := HVA(0)
		for pb.Next() {
			as.FaultIn(h+i%(1<<20), false)
			i += 4096
		}
	})
}

func BenchmarkHostRead(b *testing.B) {
	_, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(1<<20, 0)
	as.Write(h, 8, 1)
	b.ReportAllocs()
	for b.Loop() {
		as.Read(h+64, 8)
	}
}

func BenchmarkFirstTouchFault(b *testing.B) {
	const npages = 8192
	_, as := benchSpace(b, 64<<20)
	h, _ := as.Mmap(npages*4096, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == npages {
			b.StopTimer()
			as.Munmap(h)
			h, _ = as.Mmap(npages*4096, 0)
			i = 0
			b.StartTimer()
		}
		if _, err := as.FaultIn(h+HVA(i)*4096, true); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkFirstTouchHuge(b *testing.B) {
	_, as := benchSpace(b, 64<<20)
	h, _ := as.Mmap(16*HugeSize, MapHuge)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == 16 {
			b.StopTimer()
			as.Munmap(h)
			h, _ = as.Mmap(16*HugeSize, MapHuge)
			i = 0
			b.StartTimer()
		}
		if m, err := as.FaultIn(h+HVA(i)*HugeSize, true); err != nil || !m.Huge {
			b.Fatal(m, err)
		}
		i++
	}
}

// BenchmarkSwapOutIn: one swap-out (invalidate, copy to swap, free) and
// one swap-in on touch (allocate, copy back) per op.
func BenchmarkSwapOutIn(b *testing.B) {
	_, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(1<<20, 0)
	as.Write(h, 8, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := as.SwapOut(h); err != nil {
			b.Fatal(err)
		}
		if _, err := as.FaultIn(h, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMigrate(b *testing.B) {
	_, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(1<<20, 0)
	as.Write(h, 8, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := as.Migrate(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKSMMerge: one KSM pass that finds two identical pages, promotes
// one and merges the other (three write-protect or replace invalidations,
// two hashes, one compare) per op; the copy-on-write breaks that make the
// pages private again run with the timer stopped.
func BenchmarkKSMMerge(b *testing.B) {
	k, as := benchSpace(b, 8<<20)
	h, _ := as.Mmap(2*4096, MapMergeable)
	b.ReportAllocs()
	v := uint64(0)
	for b.Loop() {
		b.StopTimer()
		v++
		as.Write(h, 8, v)
		as.Write(h+4096, 8, v)
		b.StartTimer()
		if n := k.KSMScan(0); n != 1 {
			b.Fatalf("merged %d", n)
		}
	}
}
