package sim

import (
	"sync"
	"sync/atomic"
)

// gate stops the world: the parties (workers and the pressure driver)
// call pause at safe points (between batches, between events), where they
// hold no lock and run no access; stopWorld returns when every party still
// running is parked there.
type gate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	parties int  // parties still running
	parked  int  // parties parked
	req     bool // a stop is requested
	// flag mirrors req for the workers' per-batch check.
	flag atomic.Bool
	// wake, when set, is called after a stop is requested, for parties
	// blocked elsewhere (a worker waiting for a runner) to come and park.
	wake func()
}

func (g *gate) init(parties int) {
	g.cond = sync.NewCond(&g.mu)
	g.parties = parties
}

// requested reports whether the parties should park (cheap).
func (g *gate) requested() bool { return g.flag.Load() }

// pause parks the caller while a stop is requested.
func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.req {
		return
	}
	g.parked++
	g.cond.Broadcast()
	for g.req {
		g.cond.Wait()
	}
	g.parked--
}

// leave is called by a party that stops running.
func (g *gate) leave() {
	g.mu.Lock()
	g.parties--
	g.cond.Broadcast()
	g.mu.Unlock()
}

// stopWorld requests a stop and waits until every running party is parked.
func (g *gate) stopWorld() {
	g.mu.Lock()
	g.req = true
	g.flag.Store(true)
	g.mu.Unlock()
	if g.wake != nil {
		g.wake()
	}
	g.mu.Lock()
	for g.parked < g.parties {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// resume releases the parked parties.
func (g *gate) resume() {
	g.mu.Lock()
	g.req = false
	g.flag.Store(false)
	g.cond.Broadcast()
	g.mu.Unlock()
}
