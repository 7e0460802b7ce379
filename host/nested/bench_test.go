package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// Benchmarks of the nested paths; docs/PERFORMANCE.md gives the figures
// and the command.

// benchLoad is rig.load without the testing helper's bookkeeping.
func benchLoad(b *testing.B, r *rig, va mem.VA) {
	if exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Rt: 2}); err != nil || exit.Reason != nested.ExitNone {
		b.Fatalf("L2 load from %#x: %v %v", uint64(va), exit.Reason, err)
	}
}

// BenchmarkShadowFault: one shadow fault, end to end: an L2 load misses
// the shadow, L0 walks L1's stage 2 (a 2 MiB block) in L1 memory, runs
// its fault path for the L1 page (resident) and installs a 4K shadow
// leaf (with the reverse map, records it), and the load completes. When
// all 4096 pages are in the shadow, L1 empties it (TLBI VMALLS12E1IS,
// not timed).
func BenchmarkShadowFault(b *testing.B) {
	for _, on := range []bool{true, false} {
		name := "reverse map"
		if !on {
			name = "no reverse map"
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b, nested.ModeNV2, true, 0, withMap(on))
			if err := r.a.Map(l2RAM, l1VMA, l2Size); err != nil {
				b.Fatal(err)
			}
			r.run(b, r.a)
			const pages = l2Size >> 12
			empty := func() {
				r.toL1(b)
				if err := r.v.TLBI(tlb.OpVMALLS12E1.IS(), 0); err != nil {
					b.Fatal(err)
				}
				r.run(b, r.a)
			}
			for p := 0; p < pages; p++ { // host pages resident
				r.load(b, mem.VA(l2RAM+p<<12))
			}
			empty()
			before := r.v.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := i % pages
				if p == 0 && i > 0 {
					b.StopTimer()
					empty()
					b.StartTimer()
				}
				benchLoad(b, r, mem.VA(l2RAM+p<<12))
			}
			b.StopTimer()
			if got := r.v.Stats().Installed - before.Installed; got != uint64(b.N) {
				b.Fatalf("%d shadow entries installed for %d loads", got, b.N)
			}
		})
	}
}

// BenchmarkL2Access: an L2 load through the PE with four-level stage 1
// and shadow (everything populated): TLB hit (the same address) and TLB
// miss (2048 pages in turn, twice the TLB's entries), with the walk's
// descriptor reads per access.
func BenchmarkL2Access(b *testing.B) {
	for _, c := range []struct {
		name  string
		pages int
	}{{"TLB hit", 1}, {"TLB miss", l2Mapped >> 12}} {
		b.Run(c.name, func(b *testing.B) {
			r := fourLevelRig(b)
			for p := 0; p < c.pages; p++ {
				r.load(b, mem.VA(l2RAM+p<<12))
			}
			pe := r.v.PE()
			reads, walks := pe.Walker.Stats.DescReads, pe.Stats.Walks
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchLoad(b, r, mem.VA(l2RAM+(i%c.pages)<<12))
			}
			b.StopTimer()
			b.ReportMetric(float64(pe.Walker.Stats.DescReads-reads)/float64(b.N), "descreads/op")
			b.ReportMetric(float64(pe.Stats.Walks-walks)/float64(b.N), "walks/op")
		})
	}
}

// BenchmarkL2Walk: one translation of an L2 VA with no TLB, four levels
// at every stage: the two-dimensional walk of L2's stage 1 over the
// shadow (what the PE does on a TLB miss) against the software
// three-stage walk (L2's stage 1 over L1's stage 2 over L0's).
func BenchmarkL2Walk(b *testing.B) {
	r := fourLevelRig(b)
	const pages = 64
	for p := 0; p < pages; p++ {
		r.load(b, mem.VA(l2RAM+p<<12))
	}
	b.Run("shadow (2D)", func(b *testing.B) {
		host := &countingMem{m: r.host.Arena()}
		w := vmsa.Walker{Mem: host}
		regs := r.v.PE().Regs
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tr := w.Translate(&regs, vmsa.RegimeEL10, mem.VA(l2RAM+(i%pages)<<12), vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
			if tr.Fault.IsFault() {
				b.Fatal(tr.Fault)
			}
		}
		b.ReportMetric(float64(host.reads)/float64(b.N), "descreads/op")
	})
	b.Run("software 3-stage", func(b *testing.B) {
		ref := newThreeStage(r, l2S1Regs)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, _, ok := ref.translate(mem.VA(l2RAM + (i%pages)<<12)); !ok {
				b.Fatal("the reference walk faults")
			}
		}
		b.ReportMetric(float64(ref.host.reads)/float64(b.N), "descreads/op")
	})
}

// TestShadowFaultAllocations: a shadow fault in steady state (L1's
// mapping present, the host page resident, the shadow's tables there)
// allocates nothing, reverse map included.
func TestShadowFaultAllocations(t *testing.T) {
	r := newRig(t, nested.ModeNV2, true, 0)
	mustOK(t, r.a.Map(l2RAM, l1VMA, l2Size))
	r.run(t, r.a)
	const pages = 256
	for p := 0; p < pages; p++ {
		r.load(t, mem.VA(l2RAM+p<<12))
	}
	// Host events remove the shadow leaves (and nothing else): the
	// shadow's tables stay, as in steady state.
	as := r.kvm.AddressSpace()
	for p := 0; p < pages; p++ {
		mustOK(t, as.Migrate(hvaOf(r, l1VMA+mem.IPA(p<<12))))
	}
	before := r.v.Stats().Installed
	p := 0
	allocs := testing.AllocsPerRun(pages-1, func() {
		if _, err := r.v.RunL2(kvm.Access{VA: mem.VA(l2RAM + p<<12), Size: 8, Rt: 2}); err != nil {
			t.Fatal(err)
		}
		p++
	})
	if got := r.v.Stats().Installed - before; got != pages {
		t.Fatalf("%d shadow faults, want %d", got, pages)
	}
	if allocs != 0 {
		t.Errorf("a shadow fault allocates %v times", allocs)
	}
}
