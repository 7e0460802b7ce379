package nested_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// randomOps is the number of operations of each randomized run:
// NESTMMU_NESTED_OPS overrides it (e.g. 1000000 for a long run).
func randomOps(t *testing.T) int { return envOps(t, "NESTMMU_NESTED_OPS", 300, 1500) }

// envOps is the number of operations of a randomized test: the variable
// env when set, else short under -short, else long.
func envOps(t *testing.T, env string, short, long int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q is not a positive number", env, s)
		}
		return n
	}
	if testing.Short() {
		return short
	}
	return long
}

// spare are 2 MiB regions of L1 memory L1 remaps its VMs' blocks to.
var spare = []mem.IPA{0x4340_0000, 0x4360_0000, 0x4380_0000, 0x43a0_0000, 0x43c0_0000, 0x43e0_0000}

// model is what the guest memory must hold: L1 memory by word, and each
// VM's 2 MiB blocks remapped away from their slot.
type model struct {
	l1    map[mem.IPA]uint64
	remap [2]map[nested.NestedIPA]mem.IPA
}

func (m *model) target(vm int, va nested.NestedIPA) mem.IPA {
	blk := va &^ (2<<20 - 1)
	if b, ok := m.remap[vm][blk]; ok {
		return b + mem.IPA(va-blk)
	}
	return []mem.IPA{l1VMA, l1VMB}[vm] + mem.IPA(va-l2RAM)
}

// TestRandomized drives L1 (remaps and unmaps with break-before-make and
// TLBIs, switches between its two VMs), L2 (loads and stores) and the host
// (swap-out and migration of L1's pages) at random, and after every step
// checks the shadow invariants (Check) and that every L2 load returns the
// last value written to the L1 memory its address maps to (by L2 or by L1
// when it remapped), and every L1 load likewise.
func TestRandomized(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/E2H=%v", mode, e2h), func(t *testing.T) {
				runRandom(t, mode, e2h, 1+uint64(mode)*2+map[bool]uint64{true: 1}[e2h], randomOps(t))
			})
		}
	}
}

func runRandom(t *testing.T, mode nested.Mode, e2h bool, seed uint64, steps int) {
	r := newRig(t, mode, e2h, 0)
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	m := &model{l1: map[mem.IPA]uint64{}, remap: [2]map[nested.NestedIPA]mem.IPA{{}, {}}}
	vms := []*guesthyp.VM{r.a, r.b}
	cur := 0
	r.run(t, vms[cur])
	inL2 := true
	atL1 := func() {
		if inL2 {
			r.toL1(t)
			inL2 = false
		}
	}
	inVM := func() {
		if !inL2 {
			r.run(t, vms[cur])
			inL2 = true
		}
	}
	// Addresses: 4 blocks of each VM, 3 words in each of a few pages.
	addr := func() nested.NestedIPA {
		return l2RAM + nested.NestedIPA(rng.IntN(4))<<21 + nested.NestedIPA(rng.IntN(6))<<12 + nested.NestedIPA(rng.IntN(3))*8
	}
	for step := 0; step < steps; step++ {
		op := rng.IntN(12)
		switch op {
		case 0, 1, 2, 3: // L2 store
			inVM()
			va, val := addr(), rng.Uint64()
			r.store(t, mem.VA(va), val)
			m.l1[m.target(cur, va)] = val
		case 4, 5: // L2 load
			inVM()
			va := addr()
			if got, want := r.load(t, mem.VA(va)), m.l1[m.target(cur, va)]; got != want {
				t.Fatalf("step %d: VM %d reads %#x at %#x (L1 %#x), want %#x", step, cur, got, uint64(va), uint64(m.target(cur, va)), want)
			}
		case 6: // L1 switches VMs
			atL1()
			cur = 1 - cur
		case 7: // L1 remaps a block of a VM to a spare region it first writes
			atL1()
			vm := rng.IntN(2)
			blk := l2RAM + nested.NestedIPA(rng.IntN(4))<<21
			to := spare[rng.IntN(len(spare))]
			w, val := to+mem.IPA(rng.IntN(6))<<12, rng.Uint64()
			if err := r.v.Store(mem.VA(w), 8, val); err != nil {
				t.Fatal(err)
			}
			m.l1[w] = val
			if err := vms[vm].Map(blk, to, 2<<20); err != nil {
				t.Fatal(err)
			}
			m.remap[vm][blk] = to
		case 8: // L1 unmaps a block: it faults back in from the slot
			atL1()
			vm := rng.IntN(2)
			blk := l2RAM + nested.NestedIPA(rng.IntN(4))<<21
			if err := vms[vm].Unmap(blk, 2<<20); err != nil {
				t.Fatal(err)
			}
			delete(m.remap[vm], blk)
		case 9, 10: // the host swaps out or migrates an L1 page
			l1 := mem.IPA(l1RAM + rng.IntN(l1Size>>12)<<12)
			if rng.IntN(3) > 0 {
				// mostly pages that matter
				l1 = m.target(rng.IntN(2), addr()) &^ 0xfff
			}
			s := r.kvm.Lookup(l1)
			as := r.kvm.AddressSpace()
			var err error
			if op == 9 {
				err = as.SwapOut(s.HVAOf(l1))
			} else {
				err = as.Migrate(s.HVAOf(l1))
			}
			if err != nil && !isBenign(err) {
				t.Fatalf("step %d: host event on L1 IPA %#x: %v", step, uint64(l1), err)
			}
		case 11: // L1 reads what its VM wrote
			atL1()
			vm := rng.IntN(2)
			l1 := m.target(vm, addr())
			got, err := r.v.Load(mem.VA(l1), 8)
			if err != nil || got != m.l1[l1] {
				t.Fatalf("step %d: L1 reads %#x at %#x (%v), want %#x", step, got, uint64(l1), err, m.l1[l1])
			}
		}
		if err := r.nvm.Check(); err != nil {
			t.Fatalf("step %d (op %d): %v", step, op, err)
		}
		if err := r.nvm.Err(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	st := r.v.Stats()
	t.Logf("%d steps: %+v; L1 %+v; %d shadow flushes", steps, st, r.hyp.Stats(), r.nvm.Flushes())
}

// isBenign: a host event on a page that is not present (never touched,
// already swapped out) is not an error of the system under test.
func isBenign(err error) bool {
	return errors.Is(err, hostmm.ErrNotPresent)
}
