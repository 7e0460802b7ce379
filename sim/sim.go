// Package sim runs a scenario: it builds the host hypervisor (L0) with its
// VMs, boots a guest kernel (package guestos) on each VM's vCPUs, runs the
// processes' workloads on physical-CPU worker goroutines (one per host
// CPU) and the MIPS guests beside them, applies the host's memory-pressure
// events while they run, checks every value the guests load against the
// last value stored (data integrity) and, with the world stopped, the
// stage-2 and host-kernel invariants, and returns a report.Report.
//
// Topologies are built from the scenario's list of VMs; a VM is a level-1
// guest of L0. Nested kinds (a guest hypervisor with VMs of its own) are
// refused by package scenario until nested virtualization exists.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/guestos"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/trace"
	"github.com/nestmmu/nestmmu/workload"
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

// Guest memory layout in the IPA space: RAM at 1 GiB (QEMU virt's), the
// device page at QEMU virt's UART.
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
	vms   []*vmRun
	mips  []*mipsRun
	wrk   []*worker
	sched scheduler
	pr    *pressure
	t0    time.Time

	stop  atomic.Bool
	gate  gate
	meter meter

	errMu sync.Mutex
	errs  []error

	checks report.Checks
	chkMu  sync.Mutex
}

// meter is what the workers publish while they run.
type meter struct {
	user, kernel, mips, mipsAll, walks, reads, faults atomic.Uint64
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

// build creates the host, the VMs (memory, vCPUs, guest kernels booted,
// processes spawned), the MIPS guests and the workers.
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
	weights, total := m.weights()
	for i := range s.VMs {
		vr, err := m.buildVM(i, weights, total)
		if err != nil {
			return fmt.Errorf("sim: vm %q: %w", s.VMs[i].Name, err)
		}
		m.vms = append(m.vms, vr)
	}
	for i := range s.MIPS {
		mr, err := newMIPS(m, i, uint64(float64(s.Accesses)*s.MIPS[i].Weight/total))
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
	if h.Pressure.Enabled && len(m.vms) > 0 {
		m.pr = newPressure(m)
	}
	return nil
}

// weights returns the scenario's access shares' sum: each vCPU and each
// MIPS guest has its weight.
func (m *machine) weights() (map[int]float64, float64) {
	w := map[int]float64{}
	var total float64
	for i, v := range m.s.VMs {
		w[i] = v.Weight
		total += v.Weight * float64(v.VCPUs)
	}
	for _, mp := range m.s.MIPS {
		total += mp.Weight
	}
	return w, total
}

// vmRun is one VM and its guest.
type vmRun struct {
	m      *machine
	idx    int
	cfg    *scenario.VM
	vm     *kvm.VM
	hva    hostmm.HVA
	os     *guestos.OS
	vcpus  []*vcpuRun
	spawns atomic.Uint64
}

func (m *machine) buildVM(i int, weights map[int]float64, total float64) (*vmRun, error) {
	c := &m.s.VMs[i]
	vm, err := m.host.NewVM(kvm.VMConfig{IPABits: c.IPABits})
	if err != nil {
		return nil, err
	}
	vr := &vmRun{m: m, idx: i, cfg: c, vm: vm}
	var mf hostmm.MapFlags
	if m.s.Host.THP {
		mf |= hostmm.MapHuge
	}
	if m.s.Host.KSM {
		mf |= hostmm.MapMergeable
	}
	if vr.hva, err = vm.AddMemory(0, ramBase, uint64(c.Memory), 0, mf); err != nil {
		return vr, err
	}
	g := &c.Guest
	vr.os, err = guestos.New(guestos.Config{RAMBase: ramBase, RAMSize: uint64(c.Memory), IPABits: c.IPABits,
		Granule: granule(uint64(g.Granule)), VABits: g.VABits, ASIDBits: g.ASIDBits, PageLinearMap: !g.LinearMapBlocks,
		NoZeroPage: !g.ZeroPage, DeviceBase: deviceBase})
	if err != nil {
		return vr, err
	}
	budget := uint64(float64(m.s.Accesses) * weights[i] / total)
	for j := 0; j < c.VCPUs; j++ {
		v, err := vm.NewVCPU(j)
		if err != nil {
			return vr, err
		}
		r := &vcpuRun{m: m, vm: vr, id: j, v: v, core: vr.os.NewCore(v), budget: budget}
		vr.vcpus = append(vr.vcpus, r)
	}
	// Boot on CPU 0, then bring up the other vCPUs and spawn the
	// processes, each vCPU loaded in turn.
	for j, r := range vr.vcpus {
		if err := r.v.Load(0); err != nil {
			return vr, err
		}
		if j == 0 {
			err = r.core.Boot()
		} else {
			err = r.core.Start()
		}
		if err == nil {
			err = vr.spawnAll(r)
		}
		if perr := r.v.Put(); err == nil {
			err = perr
		}
		if err != nil {
			return vr, err
		}
	}
	return vr, nil
}

// spawnAll spawns the processes that run on r.
func (vr *vmRun) spawnAll(r *vcpuRun) error {
	c := vr.cfg
	n := 0
	for pi := range c.Procs {
		p := &c.Procs[pi]
		for k := 0; k < p.Count; k++ {
			slot := n
			n++
			if (p.VCPU >= 0 && p.VCPU != r.id) || (p.VCPU < 0 && slot%c.VCPUs != r.id) {
				continue
			}
			seed := mix(vr.m.s.Seed, uint64(vr.idx), uint64(pi), uint64(k))
			st, rp, err := vr.stream(p, seed)
			if err != nil {
				return fmt.Errorf("processes[%d]: %w", pi, err)
			}
			gp, err := r.core.Spawn(userEntry)
			if err != nil {
				return err
			}
			vr.spawns.Add(1)
			r.procs = append(r.procs, &proc{gp: gp, stream: st, replay: rp, sh: newShadow(pgShift(uint64(c.Guest.Granule)))})
		}
	}
	return nil
}

// stream builds a process's workload.
func (vr *vmRun) stream(p *scenario.Process, seed uint64) (workload.Stream, *trace.Replay, error) {
	if p.Workload == "trace" {
		limit := min(uint64(1)<<vr.cfg.Guest.VABits, 1<<47)
		src, format := p.Trace, trace.Format(p.Format)
		// Check the trace opens now rather than in the middle of the run.
		r, c, err := trace.OpenSource(src, format)
		if err != nil {
			return nil, nil, err
		}
		_ = r
		c.Close()
		rp := &trace.Replay{Limit: limit, Loop: true, Open: func() (trace.Reader, io.Closer, error) { return trace.OpenSource(src, format) }}
		return rp, rp, nil
	}
	st, err := workload.New(p.Spec(uint64(vr.cfg.Guest.Granule), seed))
	return st, nil, err
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

// teardown puts every vCPU and destroys the VMs and the host.
func (m *machine) teardown() error {
	var errs []error
	for _, vr := range m.vms {
		if vr.vm == nil {
			continue
		}
		for _, r := range vr.vcpus {
			if r.v.CPU() >= 0 {
				errs = append(errs, r.v.Put())
			}
		}
		errs = append(errs, vr.vm.Err(), vr.vm.Destroy())
	}
	if m.host != nil {
		errs = append(errs, m.host.Close())
	}
	return errors.Join(errs...)
}

// run starts the workers and the pressure driver, and
// monitors them: progress, the timeline, the invariant checks, Ctrl-C.
func (m *machine) run(ctx context.Context) []report.Sample {
	var wg sync.WaitGroup
	parties := len(m.wrk)
	if m.pr != nil {
		parties++
	}
	m.gate.init(parties)
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
	nextCheck, checkStep := uint64(0), uint64(0)
	if n := m.s.Checks.Invariants; n > 0 {
		checkStep = target / uint64(n+1)
		nextCheck = checkStep
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastSample := time.Time{}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-ctx.Done():
			m.stop.Store(true)
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
			nextCheck += checkStep
		}
	}
	m.stop.Store(true)
	<-prDone
	if m.s.Checks.Invariants > 0 { // also after Ctrl-C: the workers have stopped
		m.checkInvariants()
	}
	return thin(timeline, m.opt.Samples)
}

// sample reads the published counters.
func (m *machine) sample() report.Sample {
	s := report.Sample{Seconds: report.Since(m.t0), User: m.meter.user.Load() + m.meter.mips.Load(),
		Accesses: m.meter.user.Load() + m.meter.kernel.Load() + m.meter.mipsAll.Load(),
		Walks:    m.meter.walks.Load(), Reads: m.meter.reads.Load(), Faults: m.meter.faults.Load()}
	for _, vr := range m.vms {
		st := vr.vm.Stats()
		s.S2Faults += st.Maps + st.Relaxes + st.AccessFlagFaults + st.Retries
	}
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
