package sim

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nestmmu/nestmmu/host/hostmm"
)

// Host events the pressure driver applies.
const (
	evSwap = iota
	evMigrate
	evSplit
	evCollapse
	evKSM
	evAge
	numEvents
)

var eventNames = [numEvents]string{"swap_out", "migrate", "split", "collapse", "ksm_scan", "age"}

// pressure applies host memory-management events to random pages of the
// memory of L0's VMs (a guest hypervisor's included: its own pages, and
// through them its VMs' and the shadows derived from them) at the scenario's rate (events per million guest
// accesses), concurrently with the guests, as kswapd, khugepaged, KSM and
// NUMA balancing would.
type pressure struct {
	m       *machine
	rate    float64 // events per access
	cum     [numEvents]float64
	r       *rand.Rand
	applied atomic.Uint64
	done    [numEvents]atomic.Uint64 // events that changed something
	skipped atomic.Uint64            // events on ineligible pages
	ksm     atomic.Uint64            // pages merged
}

func newPressure(m *machine) *pressure {
	p := &m.s.Host.Pressure
	pr := &pressure{m: m, rate: p.Rate / 1e6, r: rand.New(rand.NewPCG(m.s.Seed, 0x9e55))}
	w := [numEvents]float64{p.Swap, p.Migrate, p.Split, p.Collapse, p.KSM, p.Age}
	var sum float64
	for i, x := range w {
		sum += x
		pr.cum[i] = sum
	}
	for i := range pr.cum {
		pr.cum[i] /= sum
	}
	return pr
}

func (p *pressure) run() {
	m := p.m
	for !m.stop.Load() {
		if m.gate.requested() {
			m.gate.pause()
			continue
		}
		target := uint64(float64(m.meter.user.Load()) * p.rate)
		if p.applied.Load() >= target {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		p.step()
	}
}

// step applies one event.
func (p *pressure) step() {
	p.applied.Add(1)
	m := p.m
	x := p.r.Float64()
	kind := 0
	for kind < numEvents-1 && x >= p.cum[kind] {
		kind++
	}
	if kind == evKSM {
		if n := m.host.Kernel().KSMScan(64); n > 0 {
			p.ksm.Add(uint64(n))
		}
		p.done[kind].Add(1)
		return
	}
	vm := m.l0[p.r.IntN(len(m.l0))]
	pg := m.host.PageSize()
	hva := vm.hva + hostmm.HVA(p.r.Uint64N(vm.size/pg)*pg)
	as := vm.kvm.AddressSpace()
	var err error
	switch kind {
	case evSwap:
		// kswapd's second chance: a young page is aged, and swapped one
		// time in four anyway.
		young, aerr := as.Age(hva, true)
		if aerr == nil && young && p.r.IntN(4) != 0 {
			err = aerr
			kind = evAge
		} else {
			err = as.SwapOut(hva)
		}
	case evMigrate:
		err = as.Migrate(hva)
	case evSplit:
		err = as.SplitHuge(hva)
	case evCollapse:
		err = as.Collapse(hva)
	case evAge:
		_, err = as.Age(hva, p.r.IntN(2) == 0)
	}
	if err != nil {
		p.skipped.Add(1)
		return
	}
	p.done[kind].Add(1)
}
