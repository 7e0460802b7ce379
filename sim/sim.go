// Package sim runs a scenario: it builds the host hypervisor (L0) with its
// VMs — guest OSes, and guest hypervisors (L1: package guesthyp at the
// virtual EL2 host/nested gives it) with VMs of their own (L2, and L3
// under an L2 hypervisor) — boots a guest kernel (package guestos) on
// every guest VM's vCPUs, whatever its level, runs the processes'
// workloads on physical-CPU worker goroutines (one per host CPU) and the
// MIPS guests beside them, applies the host's memory-pressure events while
// they run, checks every value the guests load against the last value
// stored (data integrity) and, with the world stopped, the stage-2, shadow
// stage-2 and host-kernel invariants, and returns a report.Report.
package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
)

// Options controls a run.
type Options struct {
	// Progress, when set, is called about ten times a second with the
	// user accesses done and the target.
	Progress func(done, target uint64)
	// Samples is the number of timeline samples kept (0: 100).
	Samples int
	// Variant labels the report (comparisons).
	Variant string
}

// Guest memory layout in every guest's IPA space: RAM at 1 GiB (QEMU
// virt's), the device page at QEMU virt's UART.
const (
	ramBase    = 0x4000_0000
	deviceBase = 0x0900_0000
	userEntry  = 0x40_0000
)

// machine is a running scenario.
type machine struct {
	s     *scenario.Scenario
	opt   Options
	host  *kvm.Host
	l0    []*l0VM    // L0's VMs
	vms   []*vmRun   // the guest VMs, every level
	hyps  []*hypRun  // the guest hypervisors, every level
	mips  []*mipsRun // the MIPS guests
	wrk   []*worker
	sched scheduler
	// loadMu guards every worker's loaded and the loading and putting of
	// vCPUs on physical CPUs: a worker that takes a runner still loaded
	// on another worker's CPU puts it there, while that worker may be
	// putting it itself to load its next runner.
	loadMu sync.Mutex
	pr     *pressure
	t0     time.Time

	totalWeight float64

	stop  atomic.Bool
	gate  gate
	meter meter

	errMu sync.Mutex
	errs  []error

	checks report.Checks
	chkMu  sync.Mutex
}

// l0VM is a VM of L0: its memory (what host events act on) and, for a
// guest hypervisor's VM, its nested state.
type l0VM struct {
	name string
	kvm  *kvm.VM
	hva  hostmm.HVA
	size uint64
	nvm  *nested.VM // nil: a guest OS's VM
}

// meter is what the workers publish while they run.
type meter struct {
	user, kernel, mips, mipsAll, walks, reads, faults atomic.Uint64
	// shadow counts the shadow stage-2 faults taken by nested VMs' vCPUs
	// (L0's, and for an L3 also its L1's), published by their workers.
	shadow atomic.Uint64
}

func (m *machine) fail(err error) {
	if err == nil {
		return
	}
	m.errMu.Lock()
	if len(m.errs) < 10 {
		m.errs = append(m.errs, err)
	}
	m.errMu.Unlock()
	m.stop.Store(true)
	m.sched.wake()
}

// violation records a failed check.
func (m *machine) violation(integrity bool, format string, args ...any) {
	m.chkMu.Lock()
	defer m.chkMu.Unlock()
	if integrity {
		m.checks.IntegrityViolations++
	} else {
		m.checks.InvariantViolations++
	}
	if len(m.checks.First) < 10 {
		m.checks.First = append(m.checks.First, fmt.Sprintf(format, args...))
	}
}

// Run runs s until its accesses are done or ctx is cancelled (then the
// report covers what ran, marked Interrupted).
func Run(ctx context.Context, s *scenario.Scenario, opt Options) (*report.Report, error) {
	if opt.Samples <= 0 {
		opt.Samples = 100
	}
	m := &machine{s: s, opt: opt}
	if err := m.build(); err != nil {
		m.teardown()
		return nil, err
	}
	cpu0 := cpuTime()
	m.t0 = time.Now()
	timeline := m.run(ctx)
	elapsed := time.Since(m.t0)
	r := m.collect(elapsed, timeline)
	if c := cpuTime() - cpu0; c > 0 {
		r.CPUSeconds = c.Seconds()
		r.Accesses.PerCPUSecond = float64(r.Accesses.Total) / c.Seconds()
	}
	r.Interrupted = ctx.Err() != nil
	if err := m.teardown(); err != nil {
		m.fail(err)
	}
	for _, e := range m.errs {
		r.Errors = append(r.Errors, e.Error())
	}
	if len(m.errs) > 0 && !r.Interrupted {
		return r, fmt.Errorf("sim: %w", errors.Join(m.errs...))
	}
	return r, nil
}

// build creates the host, the VMs (memory, vCPUs, guest kernels booted and
// processes spawned; guest hypervisors booted with their VMs), the MIPS
// guests and the workers.
func (m *machine) build() error {
	s := m.s
	h := &s.Host
	hk, err := kvm.NewHost(kvm.Config{CPUs: h.CPUs, MemBytes: uint64(h.Memory), PageSize: uint64(h.PageSize),
		TLB: tlb.Config{Sets: h.TLB.Sets, Ways: h.TLB.Ways, Micro: h.TLB.Micro}, SwapPages: int(uint64(h.Swap) / uint64(h.PageSize)),
		PoisonFreed: s.Checks.FreedFrames})
	if err != nil {
		return fmt.Errorf("sim: host: %w", err)
	}
	m.host = hk
	m.weigh()
	for i := range s.VMs {
		c := &s.VMs[i]
		if c.Kind == scenario.KindHypervisor {
			err = m.buildL1(c)
		} else {
			err = m.buildL0Guest(c)
		}
		if err != nil {
			return fmt.Errorf("sim: vm %q: %w", c.Name, err)
		}
	}
	for i := range s.MIPS {
		mr, err := newMIPS(m, i, uint64(float64(s.Accesses)*s.MIPS[i].Weight/m.totalWeight))
		if err != nil {
			return fmt.Errorf("sim: mips %q: %w", s.MIPS[i].Name, err)
		}
		m.mips = append(m.mips, mr)
	}
	// The runnable entities (vCPUs, MIPS guests) are shared by the
	// physical-CPU workers, each taking the next one not running
	// elsewhere, preferring those that last ran on it.
	m.wrk = make([]*worker, h.CPUs)
	for i := range m.wrk {
		m.wrk[i] = &worker{m: m, cpu: i}
	}
	for _, vr := range m.vms {
		for _, r := range vr.vcpus {
			m.sched.add(r)
		}
	}
	for _, mr := range m.mips {
		m.sched.add(mr)
	}
	if h.Pressure.Enabled && len(m.l0) > 0 {
		m.pr = newPressure(m)
	}
	return nil
}

// weigh sums the access shares: each vCPU of a guest VM (any level) has
// its VM's weight, each MIPS guest its own.
func (m *machine) weigh() {
	m.s.EachVM(func(v *scenario.VM, _ int) {
		if v.Kind == scenario.KindGuest {
			m.totalWeight += v.Weight * float64(v.VCPUs)
		}
	})
	for _, mp := range m.s.MIPS {
		m.totalWeight += mp.Weight
	}
}

// budget is the user accesses each vCPU of guest VM c runs.
func (m *machine) budget(c *scenario.VM) uint64 {
	return uint64(float64(m.s.Accesses) * c.Weight / m.totalWeight)
}

// newL0VM makes a VM of L0 with its RAM: one memslot at ramBase, backed by
// transparent huge pages and mergeable as the host is configured.
func (m *machine) newL0VM(c *scenario.VM) (*l0VM, error) {
	vm, err := m.host.NewVM(kvm.VMConfig{IPABits: c.IPABits})
	if err != nil {
		return nil, err
	}
	l := &l0VM{name: c.Name, kvm: vm, size: uint64(c.Memory)}
	m.l0 = append(m.l0, l)
	var mf hostmm.MapFlags
	if m.s.Host.THP {
		mf |= hostmm.MapHuge
	}
	if m.s.Host.KSM {
		mf |= hostmm.MapMergeable
	}
	l.hva, err = vm.AddMemory(0, ramBase, uint64(c.Memory), 0, mf)
	return l, err
}

// mix hashes seeds together (splitmix64 steps).
func mix(xs ...uint64) uint64 {
	var h uint64 = 0x243f6a8885a308d3
	for _, x := range xs {
		h ^= x + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
		h = (h ^ h>>27) * 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

func pgShift(size uint64) uint {
	s := uint(0)
	for uint64(1)<<s < size {
		s++
	}
	return s
}

// teardown takes every vCPU off its CPU, closes the nested state and
// destroys the VMs and the host.
func (m *machine) teardown() error {
	var errs []error
	for _, vr := range m.vms {
		for _, r := range vr.vcpus {
			if r.ld.CPU() >= 0 {
				errs = append(errs, r.ld.Put())
			}
		}
	}
	for _, l := range m.l0 {
		if l.nvm != nil {
			errs = append(errs, l.nvm.Err(), l.nvm.Close())
		}
		errs = append(errs, l.kvm.Err(), l.kvm.Destroy())
	}
	if m.host != nil {
		errs = append(errs, m.host.Close())
	}
	return errors.Join(errs...)
}

// checkPoints returns the user accesses between world-stopped checks (0:
// none during the run).
func (m *machine) checkPoints() uint64 {
	c := &m.s.Checks
	switch {
	case c.Interval > 0:
		return uint64(c.Interval)
	case c.Invariants > 0:
		return uint64(m.s.Accesses) / uint64(c.Invariants+1)
	}
	return 0
}

// run starts the workers and the pressure driver, and monitors them:
// progress, the timeline, the invariant checks, Ctrl-C.
func (m *machine) run(ctx context.Context) []report.Sample {
	var wg sync.WaitGroup
	parties := len(m.wrk)
	if m.pr != nil {
		parties++
	}
	m.gate.init(parties)
	m.gate.wake = m.sched.wake
	for _, w := range m.wrk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer m.gate.leave()
			w.run()
		}()
	}
	prDone := make(chan struct{})
	if m.pr != nil {
		go func() {
			defer close(prDone)
			defer m.gate.leave()
			m.pr.run()
		}()
	} else {
		close(prDone)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	target := uint64(m.s.Accesses)
	var timeline []report.Sample
	checkStep := m.checkPoints()
	nextCheck := checkStep
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastSample := time.Time{}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-ctx.Done():
			m.stop.Store(true)
			m.sched.wake()
			<-done
			running = false
		case <-tick.C:
		}
		doneN := m.meter.user.Load() + m.meter.mips.Load()
		if m.opt.Progress != nil {
			m.opt.Progress(min(doneN, target), target)
		}
		if time.Since(lastSample) >= 100*time.Millisecond || !running {
			timeline = append(timeline, m.sample())
			lastSample = time.Now()
		}
		if running && checkStep > 0 && doneN >= nextCheck && !m.stop.Load() {
			m.gate.stopWorld()
			m.checkInvariants()
			m.gate.resume()
			for nextCheck <= doneN {
				nextCheck += checkStep
			}
		}
	}
	m.stop.Store(true)
	<-prDone
	if m.s.Checks.Invariants > 0 || m.s.Checks.Interval > 0 { // also after Ctrl-C: the workers have stopped
		m.checkInvariants()
	}
	return thin(timeline, m.opt.Samples)
}

// sample reads the published counters.
func (m *machine) sample() report.Sample {
	s := report.Sample{Seconds: report.Since(m.t0), User: m.meter.user.Load() + m.meter.mips.Load(),
		Accesses: m.meter.user.Load() + m.meter.kernel.Load() + m.meter.mipsAll.Load(),
		Walks:    m.meter.walks.Load(), Reads: m.meter.reads.Load(), Faults: m.meter.faults.Load()}
	for _, l := range m.l0 {
		st := l.kvm.Stats()
		s.S2Faults += st.Maps + st.Relaxes + st.AccessFlagFaults + st.Retries
	}
	s.S2Faults += m.meter.shadow.Load()
	if m.pr != nil {
		s.Events = m.pr.applied.Load()
	}
	return s
}

// thin keeps at most n samples, evenly spaced, and the last.
func thin(s []report.Sample, n int) []report.Sample {
	if len(s) <= n {
		return s
	}
	out := make([]report.Sample, 0, n)
	for i := 0; i < n-1; i++ {
		out = append(out, s[i*len(s)/(n-1)])
	}
	return append(out, s[len(s)-1])
}

// cpuTime is the process's CPU time so far (user and system), 0 where the
// system cannot tell.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// granule is the sysreg.Granule of a page size (checked by scenario).
func granule(size uint64) sysreg.Granule {
	switch size {
	case 16384:
		return sysreg.Granule16K
	case 65536:
		return sysreg.Granule64K
	}
	return sysreg.Granule4K
}
