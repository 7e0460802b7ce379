package nested_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestL2RunBatchSameAsSingle runs the same L2 accesses (stage 1 on) on
// two identical machines, one access to a batch and in batches of varying
// length (the hit groups of kvm.HitGroup): loads and stores of every size
// on 8 words of 2 pages (a store then a load of the same word within a
// group, partial stores into a word a later load reads whole) and, now and
// then, another page (a TLB miss, a shadow fault, in the middle of a run
// of hits); and instruction fetches among them, through L2Kernel.Fetch
// one at a time. Every value loaded or fetched, the PC, the PE's and
// TLB's counters and the words must agree.
func TestL2RunBatchSameAsSingle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 4000
	acc := make([]kvm.BatchAccess, n)
	for i := range acc {
		a := &acc[i]
		a.Size = uint8(1 << rng.IntN(4))
		a.Write = rng.IntN(2) == 0
		a.Val = rng.Uint64()
		a.VA = l2RAM + mem.VA(rng.IntN(2))*4096 + mem.VA(rng.IntN(4))*8 + mem.VA(rng.IntN(8))&^mem.VA(a.Size-1)
		if rng.IntN(50) == 0 {
			a.VA += 2 * 4096 * mem.VA(1+rng.IntN(200)) // another page, below the table at +2 MiB
		}
		if rng.IntN(8) == 0 {
			a.Fetch, a.VA = true, a.VA&^3 // an instruction fetch
		}
	}
	run := func(batch func(i int) int) ([]uint64, *rig) {
		r := newRig(t, nested.ModeNV, true, 0)
		l2MMUOn(t, r)
		r.run(t, r.a)
		k := r.v.Kernel()
		b := make([]kvm.BatchAccess, n)
		copy(b, acc)
		for i := 0; i < n; {
			end := min(n, i+batch(i))
			if end == i+1 && b[i].Fetch {
				// One at a time: the fetch alone, as L2Kernel.Fetch.
				k.PE().PC = b[i].VA
				w, x, err := k.Fetch()
				if err != nil || x.Reason != kvm.ExitNone {
					t.Fatalf("fetch at %d: %v %v", i, x.Reason, err)
				}
				b[i].Val = uint64(w)
				k.PE().PC += 4
				i = end
				continue
			}
			got, x, err := k.RunBatch(b[i:end])
			if err != nil || x.Reason != kvm.ExitNone || got != end-i {
				t.Fatalf("batch at %d: %d of %d, %v %v", i, got, end-i, x.Reason, err)
			}
			i = end
		}
		vals := make([]uint64, 0, n+16)
		for i := range b {
			if !b[i].Write {
				vals = append(vals, b[i].Val)
			}
		}
		// The words as the accesses left them.
		fin := make([]kvm.BatchAccess, 0, 16)
		for p := range 2 {
			for w := range 4 {
				fin = append(fin, kvm.BatchAccess{VA: l2RAM + mem.VA(p*4096+w*8), Size: 8})
			}
		}
		if got, x, err := k.RunBatch(fin); err != nil || x.Reason != kvm.ExitNone || got != len(fin) {
			t.Fatalf("final loads: %d, %v %v", got, x.Reason, err)
		}
		for _, f := range fin {
			vals = append(vals, f.Val)
		}
		return vals, r
	}
	want, ref := run(func(int) int { return 1 })
	got, bat := run(func(i int) int { return 1 + i%40 })
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("load %d: one at a time %#x, in batches %#x", i, want[i], got[i])
		}
	}
	a, b := ref.v.Kernel().PE(), bat.v.Kernel().PE()
	if a.PC != b.PC {
		t.Errorf("PC: one at a time %#x, in batches %#x", a.PC, b.PC)
	}
	if a.Stats != b.Stats {
		t.Errorf("PE counters: one at a time %+v, in batches %+v", a.Stats, b.Stats)
	}
	if a.TLB.Stats != b.TLB.Stats {
		t.Errorf("TLB counters: one at a time %+v, in batches %+v", a.TLB.Stats, b.TLB.Stats)
	}
	if a.Stats.TLBHits < n/2 {
		t.Errorf("%d TLB hits of %d accesses: the hit path was not taken", a.Stats.TLBHits, n)
	}
}
