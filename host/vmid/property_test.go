package vmid

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestPropertyRandomSequences runs random create/destroy/schedule/put
// sequences on several CPUs against the TLB model, checking after every
// operation that two loaded VMs never share a VMID, that no VM runs with a
// VMID whose cached entries belong to another VM on that CPU, that a VM's
// VMID only changes across a full flush, and that no two VMs of the
// current generation share a VMID.
func TestPropertyRandomSequences(t *testing.T) {
	seeds, ops := 20, 10000
	if testing.Short() {
		seeds = 8
	}
	for seed := uint64(0); seed < uint64(seeds); seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		ncpu := 1 + r.IntN(8)
		m := newTLBModel(ncpu)
		a, err := New(8, ncpu, m)
		if err != nil {
			t.Fatal(err)
		}
		var live []*VM
		loaded := make([]*VM, ncpu) // VM loaded on each CPU, nil after Put
		isLoaded := func(vm *VM) bool {
			for _, l := range loaded {
				if l == vm {
					return true
				}
			}
			return false
		}
		for op := 0; op < ops; op++ {
			// More VMs than 8-bit VMIDs, so that rollovers happen.
			switch k := r.IntN(20); {
			case (k < 4 && len(live) < 400) || len(live) == 0: // create
				live = append(live, new(VM))
			case k < 6: // destroy a VM not loaded anywhere
				i := r.IntN(len(live))
				vm := live[i]
				if isLoaded(vm) {
					continue
				}
				if err := a.Free(vm); err != nil {
					t.Fatal(err)
				}
				m.forget(vm)
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			case k < 8: // put
				cpu := r.IntN(ncpu)
				m.stop(cpu)
				loaded[cpu] = nil
				if err := a.Put(cpu); err != nil {
					t.Fatal(err)
				}
			default: // schedule
				cpu := r.IntN(ncpu)
				vm := live[r.IntN(len(live))]
				v, err := a.Load(cpu, vm)
				if err != nil {
					t.Fatal(err)
				}
				loaded[cpu] = vm
				m.run(cpu, vm, v)
			}
			if m.err != nil {
				t.Fatalf("seed %d op %d: %v", seed, op, m.err)
			}
			if err := checkUnique(a, live); err != nil {
				t.Fatalf("seed %d op %d: %v", seed, op, err)
			}
		}
		if a.Rollovers() == 0 {
			t.Errorf("seed %d: no rollover; the sequence does not exercise it", seed)
		}
		if seed == 0 {
			t.Logf("seed 0: %d CPUs, %d live VMs, %d rollovers", ncpu, len(live), a.Rollovers())
		}
	}
}

// TestConcurrentCPUs runs one goroutine per CPU loading random VMs while
// VMs are created and destroyed, with few enough VMIDs (8 bits) that
// rollovers happen during loads on other CPUs. Run with -race.
func TestConcurrentCPUs(t *testing.T) {
	const ncpu = 4
	iters := 20000
	if testing.Short() {
		iters = 4000
	}
	m := newTLBModel(ncpu)
	a, err := New(8, ncpu, m)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		vm   *VM
		refs int
	}
	var (
		poolMu sync.Mutex
		pool   []*entry
	)
	for i := 0; i < 300; i++ {
		pool = append(pool, &entry{vm: new(VM)})
	}
	var wg sync.WaitGroup
	var destroyed atomic.Int64
	for cpu := 0; cpu < ncpu; cpu++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cpu), 7))
			for i := 0; i < iters && m.failed() == nil; i++ {
				poolMu.Lock()
				if r.IntN(50) == 0 {
					// Destroy an idle VM and create a new one.
					j := r.IntN(len(pool))
					if e := pool[j]; e.refs == 0 {
						pool[j] = &entry{vm: new(VM)}
						poolMu.Unlock()
						if err := a.Free(e.vm); err != nil {
							t.Error(err)
							return
						}
						m.forget(e.vm)
						destroyed.Add(1)
						continue
					}
				}
				e := pool[r.IntN(len(pool))]
				e.refs++
				poolMu.Unlock()

				v, err := a.Load(cpu, e.vm)
				if err != nil {
					t.Error(err)
					return
				}
				m.run(cpu, e.vm, v)
				if r.IntN(4) == 0 {
					runtime.Gosched() // stay "in the guest" a while
				}
				m.stop(cpu)
				if r.IntN(3) == 0 {
					if err := a.Put(cpu); err != nil {
						t.Error(err)
						return
					}
				}
				poolMu.Lock()
				e.refs--
				poolMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := m.failed(); err != nil {
		t.Fatal(err)
	}
	all, _ := m.counts()
	if all == 0 {
		t.Errorf("no rollover happened; the test does not exercise it")
	}
	t.Logf("%d rollovers, %d VMs destroyed", all, destroyed.Load())
}

func TestFastPathAllocs(t *testing.T) {
	a, err := New(16, 2, newTLBModel(2))
	if err != nil {
		t.Fatal(err)
	}
	var vm VM
	if _, err := a.Load(1, &vm); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(1000, func() {
		if _, err := a.Load(1, &vm); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Load fast path: %v allocs/op, want 0", n)
	}
}

func BenchmarkLoadFastPath(b *testing.B) {
	a, err := New(16, 1, newTLBModel(1))
	if err != nil {
		b.Fatal(err)
	}
	var vm VM
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Load(0, &vm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadFastPathParallel loads a VM on every CPU at once, each
// goroutine standing for one CPU.
func BenchmarkLoadFastPathParallel(b *testing.B) {
	ncpu := runtime.GOMAXPROCS(0)
	a, err := New(16, ncpu, newTLBModel(ncpu))
	if err != nil {
		b.Fatal(err)
	}
	var vm VM
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cpu := int(next.Add(1)-1) % ncpu
		for pb.Next() {
			if _, err := a.Load(cpu, &vm); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoadSlowPath measures allocation with frequent rollovers: 8-bit
// VMIDs shared by more VMs than fit.
func BenchmarkLoadSlowPath(b *testing.B) {
	a, err := New(8, 1, nopFlusher{})
	if err != nil {
		b.Fatal(err)
	}
	vms := make([]VM, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := a.Load(0, &vms[i%len(vms)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

type nopFlusher struct{}

func (nopFlusher) FlushAll()        {}
func (nopFlusher) FlushVMID(uint16) {}

// TestRolloverBetweenCheckAndClaim replays the interleaving the fast path's
// compare-and-swap exists for: CPU 0 has read its active entry and found VM
// A's generation current, then CPU 1 rolls over (A is not pinned, so its
// VMID goes to another VM), then CPU 0 claims. The claim must fail so that
// CPU 0 takes the lock and gives A a fresh VMID.
func TestRolloverBetweenCheckAndClaim(t *testing.T) {
	m := newTLBModel(2)
	a, err := New(8, 2, m)
	if err != nil {
		t.Fatal(err)
	}
	var vmA, vmB VM
	mustLoad := func(cpu int, vm *VM) uint16 {
		v, err := a.Load(cpu, vm)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mustLoad(0, &vmA) // 1
	mustLoad(0, &vmB) // 2: A is no longer active anywhere
	act := &a.active[0].Uint64
	old, id := act.Load(), vmA.id.Load()
	if !(old != 0 && a.genMatch(id)) {
		t.Fatal("fast path precondition does not hold")
	}
	others := make([]VM, 254)
	for i := range others {
		mustLoad(1, &others[i]) // 3..255, then a rollover: VMID 1 is free
	}
	if a.Rollovers() != 1 || others[253].id.Load()&a.mask != 1 {
		t.Fatalf("setup: %d rollovers, last VM got %d", a.Rollovers(), others[253].id.Load()&a.mask)
	}
	if claim(act, old, id) {
		t.Fatal("claim succeeded after a rollover swapped the active entry")
	}
	if v := mustLoad(0, &vmA); v == 1 {
		t.Errorf("VM A kept VMID 1, which the rollover gave to another VM")
	}
}

// TestFreePinnedAfterRunning replays the interleaving CI found: VM Y is
// running on CPU 0 when a rollover on CPU 1 pins its VMID and flushes; Y
// keeps running after the flush (creating entries with its VMID), stops
// and is destroyed without having loaded again. Its VMID must be flushed
// before another VM gets it: the rollover's flush came before Y's last
// entries.
func TestFreePinnedAfterRunning(t *testing.T) {
	m := newTLBModel(2)
	a, err := New(8, 2, m)
	if err != nil {
		t.Fatal(err)
	}
	mustLoad := func(cpu int, vm *VM) uint16 {
		t.Helper()
		v, err := a.Load(cpu, vm)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var y VM
	vy := mustLoad(0, &y) // Y enters the guest on CPU 0
	others := make([]VM, 255)
	for i := range others {
		mustLoad(1, &others[i]) // the last one rolls over, pinning Y's VMID
	}
	if a.Rollovers() != 1 {
		t.Fatalf("setup: %d rollovers, want 1", a.Rollovers())
	}
	m.run(0, &y, vy) // Y runs after the flush: entries tagged vy on CPU 0
	m.stop(0)
	if err := a.Put(0); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(&y); err != nil {
		t.Fatal(err)
	}
	m.forget(&y)
	// Hand out VMIDs on CPU 0 until vy comes back.
	for i := 0; i < 300; i++ {
		x := new(VM)
		v := mustLoad(0, x)
		m.run(0, x, v)
		m.stop(0)
		if v == vy {
			break
		}
	}
	if err := m.failed(); err != nil {
		t.Fatal(err)
	}
}
