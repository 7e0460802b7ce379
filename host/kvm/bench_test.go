package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// TestHitPathAllocFree: a guest access that hits the TLB, and one that hits
// in memory after a stage-2 fault, allocate nothing.
func TestHitPathAllocFree(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, 0x4000_0000, 4*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	guestMMUOn(t, vm, v)
	str(t, v, 0x4000_0000, 1)
	if n := testing.AllocsPerRun(1000, func() {
		if ex, err := v.Ldr(1, 0x4000_0000, 8); err != nil || ex.Reason != ExitNone {
			t.Fatal(ex.Reason, err)
		}
		v.Ctx().X[1] = 3
		if ex, err := v.Str(1, 0x4000_0008, 8); err != nil || ex.Reason != ExitNone {
			t.Fatal(ex.Reason, err)
		}
	}); n != 0 {
		t.Errorf("TLB-hit accesses allocate %v times", n)
	}
}

// BenchmarkTLBHitAccess: one guest LDR that hits the TLB (lock of the
// physical CPU, TLB lookup, arena load, register write).
func BenchmarkTLBHitAccess(b *testing.B) {
	h := newHost(b, Config{})
	vm := newVM(b, h, 40)
	addMem(b, vm, 0, 0x4000_0000, 4*mib, 0, 0)
	v := loadedVCPU(b, vm, 0, 0)
	defer destroy(b, vm, v)
	guestMMUOn(b, vm, v)
	ldr(b, v, 0x4000_0000)
	hits := v.PE().Stats.TLBHits
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Ldr(1, 0x4000_0000, 8); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if st := v.PE().Stats; st.TLBHits-hits != uint64(b.N) {
		b.Fatalf("%d of %d accesses hit the TLB", st.TLBHits-hits, b.N)
	}
}

// benchFault measures a guest access that takes a stage-2 translation
// fault on a page (or block) the host already has, and the handling that
// maps it: the fault, FaultIn's hit path, the cache top-up, the sequence
// check and Map, then the retried access. The slot is unmapped (outside the
// timer) whenever every unit of it has been mapped.
func benchFault(b *testing.B, unit uint64, mf hostmm.MapFlags) {
	const size = 64 * mib
	h := newHost(b, Config{MemBytes: 256 * mib})
	vm := newVM(b, h, 40)
	hva := addMem(b, vm, 0, 0x4000_0000, size, 0, mf)
	for off := uint64(0); off < size; off += pg {
		if _, err := vm.AddressSpace().FaultIn(hva+hostmm.HVA(off), true); err != nil {
			b.Fatal(err)
		}
	}
	v := loadedVCPU(b, vm, 0, 0)
	defer destroy(b, vm, v)
	guestMMUOn(b, vm, v)
	n := size / unit
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := uint64(i) % n
		if k == 0 && i > 0 {
			b.StopTimer()
			if err := s2of(vm).Unmap(0x4000_0000, size); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if _, err := v.Ldr(1, mem.VA(0x4000_0000+k*unit), 8); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := vm.Stats()
	if unit > pg && st.BlockMaps == 0 {
		b.Fatalf("no block mapped: %+v", st)
	}
}

func BenchmarkStage2Fault4K(b *testing.B) { benchFault(b, pg, 0) }

func BenchmarkStage2Fault2M(b *testing.B) { benchFault(b, 2*mib, hostmm.MapHuge) }

// BenchmarkGuestLoop: a guest streaming over 16 MiB of memory (4096 pages,
// beyond the 1024-entry TLB), half loads half stores, with the host aging
// and swapping a page every 1024 accesses: TLB hits, misses with two-stage
// walks, and the stage-2 faults the host events cause.
func BenchmarkGuestLoop(b *testing.B) {
	const size = 16 * mib
	h := newHost(b, Config{MemBytes: 128 * mib})
	vm := newVM(b, h, 40)
	hva := addMem(b, vm, 0, 0x4000_0000, size, 0, 0)
	v := loadedVCPU(b, vm, 0, 0)
	defer destroy(b, vm, v)
	guestMMUOn(b, vm, v)
	as := vm.AddressSpace()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := uint64(i) * 72 % size &^ 7
		var err error
		if i&1 == 0 {
			_, err = v.Ldr(1, mem.VA(0x4000_0000+off), 8)
		} else {
			v.Ctx().X[1] = uint64(i)
			_, err = v.Str(1, mem.VA(0x4000_0000+off), 8)
		}
		if err != nil {
			b.Fatal(err)
		}
		if i&1023 == 1023 {
			p := hostmm.HVA(uint64(i) * 7919 % (size / pg) * pg)
			_, _ = as.Age(hva+p, true)
			_ = as.SwapOut(hva + p + pg)
		}
	}
}
