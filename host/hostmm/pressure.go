package hostmm

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// PressureConfig configures the memory-pressure driver.
type PressureConfig struct {
	// Seed makes the sequence of chosen events and pages reproducible
	// (the interleaving with other goroutines is not).
	Seed uint64
	// Interval is the pause between events; 0 runs them back to back.
	Interval time.Duration
	// KSMPages bounds each KSM scan (0: 64 pages).
	KSMPages int
}

// PressureStats counts the events the driver applied.
type PressureStats struct {
	Steps, SwapOuts, Migrations, Splits, Collapses, KSMScans, KSMMerged, Aged, Skipped uint64
}

// Pressure is a running memory-pressure driver.
type Pressure struct {
	k     *Kernel
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	stats PressureStats // owned by the driver goroutine until Stop
	steps atomic.Uint64
}

// Steps returns how many events the driver has applied so far.
func (p *Pressure) Steps() uint64 { return p.steps.Load() }

// StartPressure starts a goroutine that applies random memory-management
// events to random pages of the kernel's address spaces until Stop.
func (k *Kernel) StartPressure(cfg PressureConfig) *Pressure {
	p := &Pressure{k: k, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			k.PressureStep(r, cfg.KSMPages, &p.stats)
			p.steps.Add(1)
			if cfg.Interval > 0 {
				select {
				case <-p.stop:
					return
				case <-time.After(cfg.Interval):
				}
			}
		}
	}()
	return p
}

// Stop stops the driver, waits for its goroutine and returns its counts.
func (p *Pressure) Stop() PressureStats {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return p.stats
}

// PressureStep applies one random event, chosen with r, to a random page
// of a random address space, and adds to st. Events on pages that are not
// eligible (not present, not huge, ...) count as skipped. The mix: 35%
// reclaim (age the page, swap it out unless it was young: the second
// chance kswapd gives; a young page is swapped anyway one time in four),
// 25% migration, 10% huge page split, 5% collapse into a huge page (in
// MapHuge regions), 10% KSM scan, 15% aging alone.
func (k *Kernel) PressureStep(r *rand.Rand, ksmPages int, st *PressureStats) {
	st.Steps++
	as, hva, ok := k.randomPage(r)
	if !ok {
		st.Skipped++
		return
	}
	var err error
	switch x := r.IntN(100); {
	case x < 35:
		young, aerr := as.Age(hva, true)
		if aerr == nil && young && r.IntN(4) != 0 {
			st.Aged++
			return
		}
		if err = as.SwapOut(hva); err == nil {
			st.SwapOuts++
		}
	case x < 60:
		if err = as.Migrate(hva); err == nil {
			st.Migrations++
		}
	case x < 70:
		if err = as.SplitHuge(hva); err == nil {
			st.Splits++
		}
	case x < 75:
		if err = as.Collapse(hva); err == nil {
			st.Collapses++
		}
	case x < 85:
		if ksmPages <= 0 {
			ksmPages = 64
		}
		st.KSMScans++
		st.KSMMerged += uint64(k.KSMScan(ksmPages))
	default:
		_, err = as.Age(hva, r.IntN(2) == 0)
		if err == nil {
			st.Aged++
		}
	}
	if err != nil {
		// Not eligible, or out of frames or swap: try another page next time.
		st.Skipped++
	}
}

// randomPage picks a mapped page uniformly over regions, then pages.
func (k *Kernel) randomPage(r *rand.Rand) (*AddressSpace, HVA, bool) {
	spaces := *k.spaces.Load()
	if len(spaces) == 0 {
		return nil, 0, false
	}
	as := spaces[r.IntN(len(spaces))]
	vs := *as.vmas.Load()
	if len(vs) == 0 {
		return nil, 0, false
	}
	v := vs[r.IntN(len(vs))]
	np := uint64(v.end-v.start) >> k.pageShift
	return as, v.start + HVA(r.Uint64N(np)<<k.pageShift), true
}
