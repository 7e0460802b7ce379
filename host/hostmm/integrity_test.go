package hostmm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slot is one 8-byte word a vCPU owns, reached through a secondary MMU
// (guest access) or the address space directly (VMM access).
type slot struct {
	as   *AddressSpace
	mmu  *softMMU
	hva  HVA
	want uint64
}

// TestDataIntegrityUnderPressure: vCPU goroutines write known patterns to
// private pages, to pages shared by the vCPUs of one VM and to a shared
// memory object mapped by two VMMs, through the secondary MMU (with the
// Invalidation protocol) and through host accesses, and read them back
// while the pressure driver swaps, merges, migrates, splits and ages at
// random. Every read must return the last value written. The access count
// is at least 10^6 by default (HOSTMM_ACCESSES overrides it), 10^5 under
// -race, and the run goes on until the drivers applied 50000 events (2000).
func TestDataIntegrityUnderPressure(t *testing.T) {
	total, minSteps := 1_000_000, uint64(50_000)
	if raceEnabled {
		total, minSteps = 100_000, 2_000
	}
	if s := os.Getenv("HOSTMM_ACCESSES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("HOSTMM_ACCESSES=%q: %v", s, err)
		}
		total = n
	}
	k := newKernel(t, 256<<20, 4096)
	sm, err := k.NewSharedMemory(256 << 10)
	if err != nil {
		t.Fatal(err)
	}
	const vcpusPerVM, privPages, sharedPages, smWords = 2, 120, 8, 32
	var slots [][]*slot // per vCPU
	var mmus []*softMMU
	var protos []*protocol
	var spaces []*AddressSpace
	for vm := 0; vm < 2; vm++ {
		as := k.NewAddressSpace()
		spaces = append(spaces, as)
		reg, err := as.Mmap(HugeSize, MapHuge|MapMergeable)
		if err != nil {
			t.Fatal(err)
		}
		smh, err := as.MmapShared(sm, 0, sm.Size())
		if err != nil {
			t.Fatal(err)
		}
		mmu := newSoftMMU(t, as)
		mmus = append(mmus, mmu)
		pc := newProtocol()
		as.RegisterNotifier(pc)
		protos = append(protos, pc)
		for c := 0; c < vcpusPerVM; c++ {
			v := vm*vcpusPerVM + c
			var mine []*slot
			for p := 0; p < privPages; p++ { // private: 4 words per page at the same offsets
				for w := 0; w < 4; w++ {
					mine = append(mine, &slot{as: as, mmu: mmu, hva: reg + HVA((c*privPages+p)*4096+w*64)})
				}
			}
			for p := 0; p < sharedPages; p++ { // shared by this VM's vCPUs
				for w := 0; w < 4; w++ {
					mine = append(mine, &slot{as: as, mmu: mmu,
						hva: reg + HVA((vcpusPerVM*privPages+p)*4096+(c*4+w)*8)})
				}
			}
			for w := 0; w < smWords; w++ { // shared by both VMMs
				mine = append(mine, &slot{as: as, mmu: mmu, hva: smh + HVA((w*4+v)*8*17%int(sm.Size()))&^7})
			}
			slots = append(slots, mine)
		}
	}
	// Two drivers, so events also race with each other.
	p1 := k.StartPressure(PressureConfig{Seed: 1, KSMPages: 32})
	p2 := k.StartPressure(PressureConfig{Seed: 2, KSMPages: 32})
	var mismatches, accesses atomic.Int64
	var wg sync.WaitGroup
	var first sync.Once
	var firstMsg string
	start := time.Now()
	per := total / len(slots)
	for v := range slots {
		wg.Add(1)
		go func(v int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(v), 99))
			mine := slots[v]
			// At least per accesses, and on until the drivers applied minSteps events.
			n := 0
			for i := 0; i < per || p1.Steps()+p2.Steps() < minSteps; i++ {
				n++
				if i%32 == 0 {
					runtime.Gosched() // share the CPUs with the pressure drivers
				}
				s := mine[r.IntN(len(mine))]
				guest := r.IntN(10) < 6
				if r.IntN(2) == 0 {
					var got uint64
					var err error
					if guest {
						got, err = s.mmu.access(s.hva, false, 8, 0)
					} else {
						got, err = s.as.Read(s.hva, 8)
					}
					if err != nil || got != s.want {
						mismatches.Add(1)
						first.Do(func() {
							firstMsg = fmt.Sprintf("vCPU %d hva %#x: read %#x, want %#x (%v)", v, uint64(s.hva), got, s.want, err)
						})
					}
					continue
				}
				size, hva, val := 8, s.hva, uint64(0xC0FFEE)<<8|uint64(s.hva&0xff) // common: pages converge
				if r.IntN(2) == 0 {
					val = uint64(v+1)<<48 | uint64(i)
				}
				next := val
				if r.IntN(10) == 0 { // a byte store
					b := r.IntN(8)
					size, hva, val = 1, s.hva+HVA(b), uint64(r.IntN(256))
					next = s.want&^(0xff<<(8*b)) | val<<(8*b)
				}
				var err error
				if guest {
					_, err = s.mmu.access(hva, true, size, val)
				} else {
					err = s.as.Write(hva, size, val)
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
				s.want = next
			}
			accesses.Add(int64(n))
		}(v)
	}
	wg.Wait()
	ps, ps2 := p1.Stop(), p2.Stop()
	ps.Steps += ps2.Steps
	ps.SwapOuts += ps2.SwapOuts
	ps.Migrations += ps2.Migrations
	ps.Splits += ps2.Splits
	ps.KSMScans += ps2.KSMScans
	ps.KSMMerged += ps2.KSMMerged
	ps.Aged += ps2.Aged
	ps.Skipped += ps2.Skipped
	elapsed := time.Since(start)
	for v := range slots { // final read-back of every slot, both paths
		for _, s := range slots[v] {
			g1, _ := s.mmu.access(s.hva, false, 8, 0)
			g2, _ := s.as.Read(s.hva, 8)
			if g1 != s.want || g2 != s.want {
				mismatches.Add(1)
			}
		}
	}
	st := k.Stats()
	if accesses.Load() < int64(total) {
		t.Errorf("only %d accesses", accesses.Load())
	}
	t.Logf("%d accesses in %v; pressure %+v; kernel %+v", accesses.Load(), elapsed, ps, st)
	if n := mismatches.Load(); n != 0 {
		t.Errorf("%d mismatches; first: %s", n, firstMsg)
	}
	for i, m := range mmus {
		if s := m.stale.Load(); s != 0 {
			t.Errorf("VM %d: %d stale frames installed", i, s)
		}
		protos[i].check(t)
	}
	if err := k.Check(); err != nil {
		t.Error(err)
	}
	if ps.SwapOuts == 0 || ps.Migrations == 0 || st.KSMMerged == 0 || st.COWBreaks == 0 || st.Splits == 0 || st.SwapIns == 0 {
		t.Errorf("pressure did not exercise every event: %+v %+v", ps, st)
	}
	// Tear down: every frame and swap slot must come back.
	for _, as := range spaces {
		if err := as.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := sm.Close(); err != nil {
		t.Error(err)
	}
	k.KSMScan(0) // prunes the stable tree
	if a := k.arena.Stats(); a.InUse != 0 || k.Stats().SwapUsed != 0 {
		t.Errorf("after teardown: arena %+v, swap used %d", a, k.Stats().SwapUsed)
	}
}
