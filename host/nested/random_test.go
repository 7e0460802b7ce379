package nested_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// randomOps is the number of operations of each randomized run:
// NESTMMU_NESTED_OPS overrides it (e.g. 250000 for the four
// configurations of TestRandomized: 10^6 in all; see docs/NESTED.md).
func randomOps(t *testing.T) int { return envOps(t, "NESTMMU_NESTED_OPS", 400, 1500) }

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

// L1 memory of VM C (8 MiB; VMs A and B have l1VMA and l1VMB).
const l1VMC = 0x4080_0000

// spare are 2 MiB regions of L1 memory L1 remaps its VMs' blocks and
// pages to.
var spare = []mem.IPA{0x4340_0000, 0x4360_0000, 0x4380_0000, 0x43a0_0000, 0x43c0_0000, 0x43e0_0000}

const blk2M = 2 << 20

// model is what the guest memory must hold: L1 memory by word, and for
// each VM the 2 MiB blocks and 4K pages L1 mapped elsewhere than the slot,
// and the blocks its stage 2 maps whole (after a fault or a remap).
type model struct {
	l1     map[mem.IPA]uint64
	slot   []mem.IPA
	block  []map[nested.NestedIPA]mem.IPA
	page   []map[nested.NestedIPA]mem.IPA
	mapped []map[nested.NestedIPA]bool
	// dirty are the L1 pages written since the last GetDirtyLog while L0
	// logs them: each must be in the next log.
	logging bool
	dirty   map[uint64]bool
}

func newModel(slots ...mem.IPA) *model {
	m := &model{l1: map[mem.IPA]uint64{}, slot: slots, dirty: map[uint64]bool{}}
	for range slots {
		m.block = append(m.block, map[nested.NestedIPA]mem.IPA{})
		m.page = append(m.page, map[nested.NestedIPA]mem.IPA{})
		m.mapped = append(m.mapped, map[nested.NestedIPA]bool{})
	}
	return m
}

// target is the L1 IPA an L2 address of VM vm reaches.
func (m *model) target(vm int, va nested.NestedIPA) mem.IPA {
	pg := va &^ 0xfff
	if p, ok := m.page[vm][pg]; ok {
		return p + mem.IPA(va-pg)
	}
	b := va &^ (blk2M - 1)
	if t, ok := m.block[vm][b]; ok {
		return t + mem.IPA(va-b)
	}
	return m.slot[vm] + mem.IPA(va-l2RAM)
}

// forget drops the remaps of the block at b (L1 mapped or unmapped it whole).
func (m *model) forget(vm int, b nested.NestedIPA) {
	delete(m.block[vm], b)
	for p := range m.page[vm] {
		if p&^(blk2M-1) == b {
			delete(m.page[vm], p)
		}
	}
}

func (m *model) write(l1 mem.IPA, v uint64) {
	m.l1[l1] = v
	if m.logging {
		m.dirty[uint64(l1-l1RAM)>>12] = true
	}
}

// randomConfig is one configuration of TestRandomized.
type randomConfig struct {
	mode nested.Mode
	e2h  bool
	// rmap: "on", "off" (mainline's full unmap) or "tiny" (a pool of 16
	// extents: shadows overflow and are untracked).
	rmap string
}

func (c randomConfig) String() string { return fmt.Sprintf("%v/E2H=%v/rmap=%s", c.mode, c.e2h, c.rmap) }

var randomConfigs = []randomConfig{
	{nested.ModeNV, true, "on"}, {nested.ModeNV2, true, "tiny"},
	{nested.ModeNV, false, "off"}, {nested.ModeNV2, false, "on"},
}

// TestRandomized drives L1, L2 and L0 at random through the whole system
// and after every operation checks the invariants (Check, the reverse map
// included) and the data: every L2 load returns the last value written to
// the L1 memory its address maps to (by L2, or by L1 when it remapped),
// every L1 load likewise, and every L1 page written while L0 logs dirty
// pages is in the next dirty log. The operations:
//   - L2 (three VMs with VMIDs 1, 2, 3, one vCPU, two shadows per vCPU: the
//     shadows are recycled): loads and stores, half of them of 0 or 1 so
//     that KSM finds equal pages;
//   - L1: switches VMs; remaps a 2 MiB block or a 4K page to spare memory
//     (aliases included); unmaps a block; write-protects a block or page
//     (its writes then fault to L1, which gives write permission back);
//     all with break-before-make and TLBIs; reads its memory;
//   - L0, on L1's memory (transparent huge pages, mergeable): swap-out,
//     migration, huge page split, KSM scans, the memory-pressure driver's
//     random events (reclaim with aging, migration, split, collapse, KSM),
//     dirty logging on and off with GetDirtyLog.
func TestRandomized(t *testing.T) {
	for i, c := range randomConfigs {
		t.Run(c.String(), func(t *testing.T) {
			runRandom(t, c, uint64(i+1), randomOps(t))
		})
	}
}

func runRandom(t *testing.T, c randomConfig, seed uint64, steps int) {
	opts := []func(*rigConfig){}
	switch c.rmap {
	case "off":
		opts = append(opts, withMap(false))
	case "tiny":
		opts = append(opts, func(rc *rigConfig) { rc.nested.ReverseMapExtents = 16 })
	}
	r := newRig(t, c.mode, c.e2h, hostmm.MapHuge|hostmm.MapMergeable, opts...)
	vmc, err := r.hyp.NewVM(3)
	mustOK(t, err)
	mustOK(t, vmc.AddSlot(l2RAM, l1VMC, 8<<20))
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	m := newModel(l1VMA, l1VMB, l1VMC)
	vms := []*guesthyp.VM{r.a, r.b, vmc}
	as := r.kvm.AddressSpace()
	var pst hostmm.PressureStats
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
	// Addresses: 4 blocks of each VM, 3 words in each of 6 pages.
	blockOf := func() nested.NestedIPA { return l2RAM + nested.NestedIPA(rng.IntN(4))<<21 }
	addr := func() nested.NestedIPA {
		return blockOf() + nested.NestedIPA(rng.IntN(6))<<12 + nested.NestedIPA(rng.IntN(3))*8
	}
	l1Store := func(l1 mem.IPA, v uint64) {
		mustOK(t, r.v.Store(mem.VA(l1), 8, v))
		m.write(l1, v)
	}
	hostEvent := func(step int, what string, err error) {
		if err != nil && !isBenign(err) {
			t.Fatalf("step %d: %s: %v", step, what, err)
		}
	}
	start := time.Now()
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		var op string
		switch k := rng.IntN(100); {
		case k < 30:
			op = "L2 store"
			inVM()
			va, val := addr(), rng.Uint64()
			if rng.IntN(2) == 0 {
				val = uint64(rng.IntN(2))
			}
			r.store(t, mem.VA(va), val)
			m.write(m.target(cur, va), val)
			m.mapped[cur][va&^(blk2M-1)] = true
		case k < 48:
			op = "L2 load"
			inVM()
			va := addr()
			if got, want := r.load(t, mem.VA(va)), m.l1[m.target(cur, va)]; got != want {
				t.Fatalf("step %d: VM %d reads %#x at %#x (L1 %#x), want %#x", step, cur, got, uint64(va), uint64(m.target(cur, va)), want)
			}
			m.mapped[cur][va&^(blk2M-1)] = true
		case k < 52:
			op = "L1 switches VMs"
			atL1()
			cur = (cur + 1 + rng.IntN(2)) % 3
		case k < 56:
			op = "L1 remaps a block"
			atL1()
			vm, b := rng.IntN(3), blockOf()
			to := spare[rng.IntN(len(spare))]
			l1Store(to+mem.IPA(rng.IntN(6))<<12, rng.Uint64())
			mustOK(t, vms[vm].Map(b, to, blk2M))
			m.forget(vm, b)
			m.block[vm][b], m.mapped[vm][b] = to, true
		case k < 60:
			op = "L1 remaps a page"
			atL1()
			vm, b := rng.IntN(3), blockOf()
			if !m.mapped[vm][b] { // map the block first, or a later fault would map it over the page
				mustOK(t, vms[vm].Map(b, m.target(vm, b), blk2M))
				m.mapped[vm][b] = true
			}
			pg := b + nested.NestedIPA(rng.IntN(6))<<12
			to := spare[rng.IntN(len(spare))] + mem.IPA(rng.IntN(512))<<12
			l1Store(to+mem.IPA(rng.IntN(3))*8, rng.Uint64())
			mustOK(t, vms[vm].Map(pg, to, 4096))
			m.page[vm][pg] = to
		case k < 63:
			op = "L1 unmaps a block"
			atL1()
			vm, b := rng.IntN(3), blockOf()
			mustOK(t, vms[vm].Unmap(b, blk2M))
			m.forget(vm, b)
			m.mapped[vm][b] = false
		case k < 67:
			op = "L1 write-protects"
			atL1()
			vm, b := rng.IntN(3), blockOf()
			if rng.IntN(2) == 0 {
				mustOK(t, vms[vm].WriteProtect(b, blk2M))
			} else {
				mustOK(t, vms[vm].WriteProtect(b+nested.NestedIPA(rng.IntN(6))<<12, 4096))
			}
		case k < 70:
			op = "L1 reads"
			atL1()
			vm := rng.IntN(3)
			l1 := m.target(vm, addr())
			got, err := r.v.Load(mem.VA(l1), 8)
			if err != nil || got != m.l1[l1] {
				t.Fatalf("step %d: L1 reads %#x at %#x (%v), want %#x", step, got, uint64(l1), err, m.l1[l1])
			}
		case k < 83: // on a page an L2 uses
			hva := hvaOf(r, m.target(rng.IntN(3), addr())&^0xfff)
			switch {
			case k < 76:
				op = "L0 swaps out"
				hostEvent(step, op, as.SwapOut(hva))
			case k < 81:
				op = "L0 migrates"
				hostEvent(step, op, as.Migrate(hva))
			default:
				op = "L0 splits a huge page"
				hostEvent(step, op, as.SplitHuge(hva))
			}
		case k < 85:
			op = "L0 KSM scan"
			as.Kernel().KSMScan(64)
		case k < 95:
			op = "L0 memory pressure"
			as.Kernel().PressureStep(rng, 32, &pst)
		case k < 97:
			op = "L0 dirty logging on/off"
			if m.logging {
				mustOK(t, r.kvm.DisableDirtyLog(0))
			} else {
				mustOK(t, r.kvm.EnableDirtyLog(0, rng.IntN(2) == 0))
				clear(m.dirty)
			}
			m.logging = !m.logging
		default:
			op = "L0 GetDirtyLog"
			if !m.logging {
				break
			}
			got, err := r.kvm.GetDirtyLog(0)
			mustOK(t, err)
			in := map[uint64]bool{}
			for _, p := range got {
				in[p] = true
			}
			for p := range m.dirty {
				if !in[p] {
					t.Fatalf("step %d: L1 page %#x was written but is not in the dirty log", step, uint64(l1RAM)+p<<12)
				}
			}
			clear(m.dirty)
		}
		counts[op]++
		if err := r.nvm.Check(); err != nil {
			t.Fatalf("step %d (%s): %v", step, op, err)
		}
		if err := r.nvm.Err(); err != nil {
			t.Fatalf("step %d (%s): %v", step, op, err)
		}
		if err := r.kvm.Err(); err != nil {
			t.Fatalf("step %d (%s): %v", step, op, err)
		}
	}
	t.Logf("%d operations in %v, 0 violations: %v", steps, time.Since(start).Round(time.Millisecond), counts)
	t.Logf("vCPU %+v; L1 %+v; reverse map %+v; %d shadow flushes; pressure %+v",
		r.v.Stats(), r.hyp.Stats(), r.nvm.RmapStats(), r.nvm.Flushes(), pst)
}

// isBenign: a host event on a page it does not apply to (not present, not
// huge, a KSM page) is not an error of the system under test.
func isBenign(err error) bool {
	return errors.Is(err, hostmm.ErrNotPresent) || errors.Is(err, hostmm.ErrNotHuge) || errors.Is(err, hostmm.ErrKSM)
}
