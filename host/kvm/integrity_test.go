package kvm

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// The integrity guest: slot 0 is 4 MiB of huge-page-backed memory whose
// first 2 MiB are private pages (vCPU i owns pages [i*privPages,
// (i+1)*privPages)) and whose second 2 MiB are shared pages (vCPU i owns the
// words w with w%nvcpu == i of every page); slot 1 is 1 MiB of mergeable
// memory that starts with every page identical, so KSM merges it, and that
// the guest mostly reads (vCPU i owns pages p with p%nvcpu == i).
const (
	igGPA0     = 0x4000_0000
	igSize0    = 4 * mib
	igGPA1     = 0x8000_0000
	igSize1    = 1 * mib
	nvcpu      = 2
	privPages  = 256
	wordsPP    = pg / 8
	slot0Words = igSize0 / 8
	ksmBase    = 0x5a5a_0000_0000_0000
)

// ksmWord is the initial value of word w of every page of slot 1.
func ksmWord(w uint64) uint64 { return ksmBase | w }

// wordGPA returns the GPA of global word index i (slot 0 words, then slot 1).
func wordGPA(i uint64) uint64 {
	if i < slot0Words {
		return igGPA0 + i*8
	}
	return igGPA1 + (i-slot0Words)*8
}

type integrityResult struct {
	accesses, mismatches uint64
	written              [nvcpu][]bool // pages (global page index) written while logging
}

// runGuest runs n accesses of vCPU i against exp (the expected value of
// every word; vCPU i only touches the words it owns).
func runGuest(t *testing.T, v *VCPU, i int, n int, more func() bool, exp []uint64, res *integrityResult, mismatches *atomic.Uint64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	written := make([]bool, (igSize0+igSize1)/pg)
	ctx := v.Ctx()
	for k := 0; k < n || (k%1024 != 0 || more()); k++ {
		var idx uint64
		write := false
		switch c := r.IntN(100); {
		case c < 40: // private
			idx = (uint64(i)*privPages+uint64(r.IntN(privPages)))*wordsPP + uint64(r.IntN(wordsPP))
			write = r.IntN(2) == 0
		case c < 85: // shared
			page := uint64(privPages*nvcpu) + uint64(r.IntN(privPages*nvcpu))
			idx = page*wordsPP + uint64(r.IntN(wordsPP/nvcpu)*nvcpu+i)
			write = r.IntN(2) == 0
		default: // KSM pages: mostly reads; writes break COW, restoring writes let KSM merge again
			page := uint64(r.IntN(igSize1/pg/nvcpu)*nvcpu + i)
			w := uint64(r.IntN(wordsPP))
			idx = slot0Words + page*wordsPP + w
			write = r.IntN(20) == 0
		}
		gpa := wordGPA(idx)
		if write {
			val := r.Uint64()
			if idx >= slot0Words && r.IntN(2) == 0 {
				val = ksmWord((idx - slot0Words) % wordsPP)
			}
			ctx.X[1] = val
			ex, err := v.Str(1, mem.VA(gpa), 8)
			if err != nil || ex.Reason != ExitNone {
				t.Errorf("vCPU %d: STR [%#x]: %v %v", i, gpa, ex.Reason, err)
				return
			}
			exp[idx] = val
			written[pageIndex(gpa)] = true
		} else {
			ex, err := v.Ldr(2, mem.VA(gpa), 8)
			if err != nil || ex.Reason != ExitNone {
				t.Errorf("vCPU %d: LDR [%#x]: %v %v", i, gpa, ex.Reason, err)
				return
			}
			if ctx.X[2] != exp[idx] {
				if mismatches.Add(1) <= 5 {
					t.Errorf("vCPU %d: [%#x] reads %#x, wrote %#x", i, gpa, ctx.X[2], exp[idx])
				}
			}
		}
	}
	res.written[i] = written
}

// pageIndex numbers the pages of both slots: slot 0's, then slot 1's.
func pageIndex(gpa uint64) uint64 {
	if gpa >= igGPA1 {
		return igSize0/pg + (gpa-igGPA1)/pg
	}
	return (gpa - igGPA0) / pg
}

// runIntegrity runs nvcpu guests on their own CPUs and goroutines for
// integrityAccesses accesses in all while two memory-pressure drivers swap,
// migrate, split, collapse, merge and age the host pages behind the slots,
// and (with logging) a collector takes the dirty logs. It returns the union
// of the collected logs (page indices as pageIndex numbers them).
func runIntegrity(t *testing.T, logging bool, ipaBits uint) {
	h := newHost(t, Config{CPUs: nvcpu, MemBytes: 128 * mib, PoisonFreed: true})
	vm := newVM(t, h, ipaBits)
	addMem(t, vm, 0, igGPA0, igSize0, 0, hostmm.MapHuge)
	hva1 := addMem(t, vm, 1, igGPA1, igSize1, 0, hostmm.MapMergeable)
	as := vm.AddressSpace()
	exp := make([]uint64, slot0Words+igSize1/8)
	for w := uint64(0); w < igSize1/8; w++ {
		v := ksmWord(w % wordsPP)
		exp[slot0Words+w] = v
		if err := as.Write(hva1+hostmm.HVA(w*8), 8, v); err != nil {
			t.Fatal(err)
		}
	}
	vcpus := make([]*VCPU, nvcpu)
	for i := range vcpus {
		vcpus[i] = loadedVCPU(t, vm, i, i)
	}
	// Stage 1 on, so that accesses hit combined entries in the TLBs and a
	// missed invalidation would show as a stale read.
	guestMMUOn(t, vm, vcpus...)
	if logging {
		for id := 0; id < 2; id++ {
			if err := vm.EnableDirtyLog(id, id == 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	k := h.Kernel()
	p1 := k.StartPressure(hostmm.PressureConfig{Seed: 1})
	p2 := k.StartPressure(hostmm.PressureConfig{Seed: 2, KSMPages: 256})

	union := make([]bool, (igSize0+igSize1)/pg)
	collect := func() {
		for id, base := range []uint64{0, igSize0 / pg} {
			pages, err := vm.GetDirtyLog(id)
			if err != nil {
				t.Errorf("GetDirtyLog(%d): %v", id, err)
				return
			}
			for _, p := range pages {
				union[base+p] = true
			}
		}
	}
	stop := make(chan struct{})
	var cwg sync.WaitGroup
	collections := 0
	if logging {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Microsecond):
					collect()
					collections++
				}
			}
		}()
	}

	// Run at least integrityAccesses, and on until the drivers have applied
	// minPressureSteps events including a huge page split or collapse (so a
	// slow machine still sees every kind of event), for at most a minute.
	const minPressureSteps = 2000
	deadline := time.Now().Add(time.Minute)
	more := func() bool {
		if time.Now().After(deadline) {
			return false
		}
		ks := k.Stats()
		return p1.Steps()+p2.Steps() < minPressureSteps || ks.Splits+ks.Collapses == 0 || ks.KSMMerged == 0
	}
	var res integrityResult
	var mismatches atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for i, v := range vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runGuest(t, v, i, integrityAccesses/nvcpu, more, exp, &res, &mismatches, 42)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	cwg.Wait()
	s1, s2 := p1.Stop(), p2.Stop()
	if logging {
		collect()
		missed := 0
		for i := range res.written {
			for p, w := range res.written[i] {
				if w && !union[p] {
					if missed++; missed <= 5 {
						t.Errorf("page %d written by vCPU %d is in no dirty log", p, i)
					}
				}
			}
		}
		t.Logf("%d collections, %d pages missed", collections, missed)
	}
	// Every word, read by the host after the run, holds the last value written.
	for idx := range exp {
		gpa := wordGPA(uint64(idx))
		s := vm.slots.Lookup(mem.IPA(gpa))
		got, err := as.Read(hostmm.HVA(s.HVAOf(mem.IPA(gpa))), 8)
		if err != nil || got != exp[idx] {
			if mismatches.Add(1) <= 10 {
				t.Errorf("after the run, host reads %#x at GPA %#x, want %#x (%v)", got, gpa, exp[idx], err)
			}
		}
	}
	st := vm.Stats()
	t.Logf("%d+ accesses in %v, %d mismatches; pressure %+v / %+v", integrityAccesses, elapsed, mismatches.Load(), s1, s2)
	t.Logf("VM: %+v", st)
	for _, v := range vcpus {
		t.Logf("vCPU %d PE: %+v", v.ID(), v.PE().Stats)
	}
	t.Logf("host: %+v, kernel: %+v", h.Stats(), k.Stats())
	if m := mismatches.Load(); m != 0 {
		t.Errorf("%d mismatches", m)
	}
	if n, first, ok := h.Arena().StaleAccesses(); ok {
		t.Errorf("%d accesses reached a freed frame, the first at PA %#x", n, uint64(first))
	}
	ev := s1.SwapOuts + s2.SwapOuts + s1.Migrations + s2.Migrations
	ks := k.Stats()
	if ev == 0 || ks.Splits+ks.Collapses == 0 || ks.KSMMerged == 0 || st.Retries+st.Maps == 0 {
		t.Errorf("the run did not exercise the host: %+v %+v kernel %+v", s1, s2, k.Stats())
	}
	destroy(t, vm, vcpus...)
	if err := k.Check(); err != nil {
		t.Errorf("kernel invariants: %v", err)
	}
}

func TestDataIntegrityUnderPressure(t *testing.T) { runIntegrity(t, false, 40) }

func TestDataIntegrityDirtyLogging(t *testing.T) { runIntegrity(t, true, 40) }

// TestDataIntegrity48BitIPA is the same with a 48-bit IPA space: stage 2
// starts at level 0, one level deeper than at 40 bits, which changes every
// cache top-up and table walk the hypervisor makes.
func TestDataIntegrity48BitIPA(t *testing.T) { runIntegrity(t, true, 48) }
