package sim

import (
	"fmt"
	"time"

	"github.com/nestmmu/nestmmu/mips/guestos"
	"github.com/nestmmu/nestmmu/mips/te"
	"github.com/nestmmu/nestmmu/report"
)

// mipsRun is a MIPS trap-and-emulate guest (its own machine model: the
// guest kernel of mips/guestos over KVM's engine of mips/te), run on a
// goroutine of its own beside the arm64 workers.
type mipsRun struct {
	m        *machine
	cfg      int
	e        *te.Engine
	os       *guestos.OS
	budget   uint64
	done     uint64
	finished bool
	busy     time.Duration
	// published is the engine's accesses already added to the meter.
	published uint64
}

func newMIPS(m *machine, i int, budget uint64) (*mipsRun, error) {
	c := &m.s.MIPS[i]
	seed := mix(m.s.Seed, 0x4d495053, uint64(i))
	e, err := te.New(te.Config{PageSize: uint32(c.PageSize), RAMSize: uint32(c.RAM), HostTLBEntries: c.HostTLB, Seed: seed, Legacy: !c.GVATables, DirtyLog: c.DirtyLog})
	if err != nil {
		return nil, err
	}
	o, err := guestos.New(e, guestos.Config{PageSize: uint32(c.PageSize), RAMSize: uint32(c.RAM), Processes: c.Processes,
		WorkingSet: c.WorkingSet, Quantum: c.Quantum, StorePercent: int(float64(c.Writes)*100 + 0.5),
		RandomPercent: int(float64(c.Random)*100 + 0.5), Seed: seed, KVMReads: true})
	if err != nil {
		return nil, err
	}
	return &mipsRun{m: m, cfg: i, e: e, os: o, budget: budget}, nil
}

func (r *mipsRun) ended() bool { return r.finished }

func (r *mipsRun) progress() float64 { return share(r.done, r.budget) }

func (r *mipsRun) put() error { return nil }

// slice runs the guest for a chunk of whole quanta, publishing progress.
func (r *mipsRun) slice(*worker) error {
	c := &r.m.s.MIPS[r.cfg]
	chunk := c.Quantum * max(1, 20000/c.Quantum)
	t0 := time.Now()
	defer func() { r.busy += time.Since(t0) }()
	n := int(min(uint64(chunk), r.budget-r.done))
	if err := r.os.Run(n); err != nil {
		r.finished = true
		return fmt.Errorf("mips %q: %w", c.Name, err)
	}
	if r.e.Stats.Livelocks != 0 {
		r.finished = true
		return fmt.Errorf("mips %q: %d accesses did not settle", c.Name, r.e.Stats.Livelocks)
	}
	r.done += uint64(n)
	r.m.meter.mips.Add(uint64(n))
	r.m.meter.mipsAll.Add(r.e.Stats.Accesses - r.published)
	r.published = r.e.Stats.Accesses
	r.finished = r.done >= r.budget
	return nil
}

// report summarises the guest.
func (r *mipsRun) report() report.MIPS {
	c := &r.m.s.MIPS[r.cfg]
	s, g := &r.e.Stats, &r.os.Stats
	out := report.MIPS{Name: c.Name, GVATables: c.GVATables, UserAccesses: g.Accesses, Accesses: s.Accesses,
		HostTLBHits: s.HostTLBHits, FastRefills: s.FastRefills, SlowRefills: s.SlowRefills, GuestScans: s.GuestScans,
		Compared: s.GuestCompared, TableReads: s.TableReads, GuestFaults: g.Refills + g.PageFaults + g.ModFaults,
		Verified: g.Verified, Errors: g.Errors, SecondsSpent: r.busy.Seconds()}
	for _, n := range s.Injected {
		out.Exceptions += n
	}
	for _, f := range s.Flush {
		out.Flushes += f.Count
	}
	return out
}
