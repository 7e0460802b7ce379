package sim

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/guestos"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/trace"
	"github.com/nestmmu/nestmmu/workload"
)

// runner is what a physical CPU runs a slice of: a vCPU of an arm64 VM
// (with its guest kernel and processes) or a MIPS guest.
type runner interface {
	// slice runs one time slice on physical CPU cpu.
	slice(w *worker) error
	// ended reports that the runner has nothing more to run.
	ended() bool
	// progress is the share of its accesses done (0 to 1).
	progress() float64
	// put takes the runner off its physical CPU (vcpu_put).
	put() error
}

// scheduler hands runners to workers: a runner runs on one worker at a
// time. A worker takes the runner furthest behind (the least share of its
// accesses done), so that all progress together and every physical CPU
// stays busy to the end, preferring among those nearly as far behind one
// that last ran on it (a vCPU that moves is loaded on the new CPU as KVM's
// vcpu_load does, with the flush that needs when another vCPU of its VM
// ran there).
type scheduler struct {
	mu sync.Mutex
	// freed is signalled when a runner is released, and when a worker
	// waiting for one must look up (a world stop, the end of the run).
	freed   sync.Cond
	runners []*slot
}

type slot struct {
	r       runner
	running bool
	last    int // the worker it last ran on (-1: none)
}

func (s *scheduler) add(r runner) {
	s.freed.L = &s.mu
	s.runners = append(s.runners, &slot{r: r, last: -1})
}

// stickiness is how far ahead (as a share of its accesses) a runner that
// last ran on a worker may be of the one furthest behind and still be
// preferred there.
const stickiness = 0.02

// take returns a runner for worker cpu. While every runner left runs on
// another worker it waits (blocked, not polling) for one to be released,
// unless interrupted reports a reason to stop waiting (it is checked under
// the scheduler's lock, and wake is called after it changes). It returns
// nil when no runner is left to run or when interrupted.
func (s *scheduler) take(cpu int, interrupted func() bool) *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		sl, wait := s.pick(cpu)
		if sl != nil || !wait || interrupted() {
			return sl
		}
		s.freed.Wait()
	}
}

// pick is take's choice under the lock: the runner, or nil and whether
// some are running elsewhere (and may come back).
func (s *scheduler) pick(cpu int) (sl *slot, wait bool) {
	var behind *slot
	least := 2.0
	for _, x := range s.runners {
		if x.running {
			// Its state belongs to the worker running it.
			wait = true
			continue
		}
		if x.r.ended() {
			continue
		}
		if p := x.r.progress(); p < least {
			behind, least = x, p
		}
	}
	if behind == nil {
		return nil, wait
	}
	for _, x := range s.runners {
		if !x.running && x.last == cpu && !x.r.ended() && x.r.progress() <= least+stickiness {
			behind = x
			break
		}
	}
	behind.running = true
	behind.last = cpu
	return behind, false
}

func (s *scheduler) release(sl *slot) {
	s.mu.Lock()
	sl.running = false
	// Move it to the back of the list: round-robin among the runners.
	for i, x := range s.runners {
		if x == sl {
			copy(s.runners[i:], s.runners[i+1:])
			s.runners[len(s.runners)-1] = sl
			break
		}
	}
	s.freed.Broadcast()
	s.mu.Unlock()
}

// wake makes the workers waiting in take look at their interrupted again.
func (s *scheduler) wake() {
	s.mu.Lock()
	s.freed.Broadcast()
	s.mu.Unlock()
}

// worker is one physical CPU.
type worker struct {
	m      *machine
	cpu    int
	loaded *vcpuRun
}

func (w *worker) run() {
	m := w.m
	defer func() {
		m.loadMu.Lock()
		if w.loaded != nil {
			m.fail(w.loaded.ld.Put())
			w.loaded = nil
		}
		m.loadMu.Unlock()
	}()
	for !m.stop.Load() {
		if m.gate.requested() {
			m.gate.pause()
			continue
		}
		sl := m.sched.take(w.cpu, w.interrupted)
		if sl == nil {
			if m.stop.Load() || m.gate.requested() {
				continue
			}
			return // nothing left to run
		}
		err := sl.r.slice(w)
		m.sched.release(sl)
		if err != nil {
			m.fail(err)
			return
		}
	}
}

// interrupted reports that a worker waiting for a runner must stop
// waiting: the run stops, or the world does.
func (w *worker) interrupted() bool { return w.m.stop.Load() || w.m.gate.requested() }

// load puts vCPU r on the worker's physical CPU (taking the one there off).
func (w *worker) load(r *vcpuRun) error {
	w.m.loadMu.Lock()
	defer w.m.loadMu.Unlock()
	if w.loaded == r {
		return nil
	}
	if w.loaded != nil {
		if err := w.loaded.ld.Put(); err != nil {
			return err
		}
		w.loaded = nil
	}
	if r.ld.CPU() >= 0 {
		// Still loaded on the CPU it ran on last: take it off there. The
		// worker of that CPU no longer runs it (the scheduler gave it
		// here), so only its bookkeeping is stale.
		if err := r.ld.Put(); err != nil {
			return err
		}
		for _, o := range r.m.wrk {
			if o.loaded == r {
				o.loaded = nil
			}
		}
	}
	if err := r.ld.Load(w.cpu); err != nil {
		return err
	}
	w.loaded = r
	return nil
}

// guestHW is the vCPU a guest kernel runs on, as the simulator drives it:
// a kvm.VCPU for a VM of L0; for a VM of a guest hypervisor, the nested
// vCPU's L2 interface (nested.L2Kernel), which answers in kvm's terms.
type guestHW interface {
	guestos.CPU
	Fetch() (uint32, kvm.Exit, error)
	PE() *cpu.PE
	CompleteMMIO(data [2]uint64) error
}

// physLoad puts a vCPU of L0 on and off a physical CPU (vcpu_load and
// vcpu_put): a kvm.VCPU, or the nested vCPU a guest of a guest hypervisor
// runs on.
type physLoad interface {
	Load(cpu int) error
	Put() error
	CPU() int
}

// proc is a guest process as the simulator drives it: its kernel process,
// its workload, the addresses of its regions and the shadow of its memory.
type proc struct {
	gp      *guestos.Proc
	stream  workload.Stream
	replay  *trace.Replay
	regions [maxRegions]region
	sh      *shadow
}

type region struct{ base, size uint64 }

// vcpuRun is a vCPU and what runs on it.
type vcpuRun struct {
	m    *machine
	vm   *vmRun
	id   int
	hw   guestHW
	ld   physLoad
	core *guestos.Core

	procs    []*proc
	pool     *pagePool // the integrity checker's pages of procs
	cur      int
	entered  bool
	finished bool
	budget   uint64 // user accesses to run
	done     uint64
	sinceIO  int

	acc   [batchSize]workload.Access
	batch [batchSize]kvm.BatchAccess

	// counters for the report
	faults, checks, records uint64
	userWalks               uint64
	lastWalks, lastReads    uint64
	lastKernel, lastShadow  uint64
}

const batchSize = 256

// shadowPool returns the pool of the integrity checker's pages of the
// vCPU's processes (pages of 1<<pgShift bytes).
func (r *vcpuRun) shadowPool(pgShift uint) *pagePool {
	if r.pool == nil {
		r.pool = newPagePool(pgShift)
	}
	return r.pool
}

func (r *vcpuRun) ended() bool { return r.finished }

func (r *vcpuRun) progress() float64 { return share(r.done, r.budget) }

// share is done/budget (1 for an empty budget).
func share(done, budget uint64) float64 {
	if budget == 0 {
		return 1
	}
	return float64(done) / float64(budget)
}

func (r *vcpuRun) put() error { return nil }

// slice runs one time slice of the vCPU on w's physical CPU: its current
// process for a quantum of accesses, then a timer interrupt that switches
// to the next.
func (r *vcpuRun) slice(w *worker) error {
	if err := w.load(r); err != nil {
		return err
	}
	if err := r.runSlice(); err != nil {
		return fmt.Errorf("vm %q vCPU %d: %w", r.vm.cfg.Name, r.id, err)
	}
	return nil
}

func (r *vcpuRun) runSlice() error {
	m := r.m
	if !r.entered {
		if len(r.procs) == 0 {
			r.finished = true
			return nil
		}
		if err := r.core.Enter(r.procs[0].gp); err != nil {
			return err
		}
		r.entered = true
	}
	q := r.vm.cfg.Guest.Quantum
	for q > 0 && r.done < r.budget && !r.finished {
		if m.gate.requested() {
			m.gate.pause()
		}
		if m.stop.Load() {
			return nil
		}
		p := r.procs[r.cur]
		k := min(batchSize, q, int(r.budget-r.done))
		if io := r.vm.cfg.Guest.IOEvery; io > 0 {
			if r.sinceIO >= io {
				r.sinceIO = 0
				if err := r.doorbell(); err != nil {
					return err
				}
			}
			k = min(k, io-r.sinceIO)
		}
		n := p.stream.Fill(r.acc[:k])
		if n > 0 {
			if err := r.exec(p, r.acc[:n]); err != nil {
				return err
			}
			q -= n
			r.done += uint64(n)
			r.sinceIO += n
			m.meter.user.Add(uint64(n))
		}
		if n < k {
			ev := p.stream.Event()
			if ev.Kind == workload.EventNone {
				return fmt.Errorf("process %d's workload stopped with no event", p.gp.PID)
			}
			if err := r.event(p, ev); err != nil {
				return err
			}
		}
		r.publish()
	}
	if r.done >= r.budget {
		r.finished = true
	}
	if r.finished || len(r.procs) == 0 {
		return nil
	}
	// The timer interrupt: round-robin to the next process.
	r.cur = (r.cur + 1) % len(r.procs)
	return r.core.Tick(r.procs[r.cur].gp)
}

// publish adds the PE's new walks and descriptor reads, the kernel's
// accesses and a nested VM's shadow faults to the meter.
func (r *vcpuRun) publish() {
	pe := r.hw.PE()
	w, d := pe.Stats.Walks, pe.Walker.Stats.DescReads
	r.m.meter.walks.Add(w - r.lastWalks)
	r.m.meter.reads.Add(d - r.lastReads)
	r.lastWalks, r.lastReads = w, d
	k := r.core.Stats.KernelAccesses
	r.m.meter.kernel.Add(k - r.lastKernel)
	r.lastKernel = k
	if sh := r.vm.shadowFaults(); sh != r.lastShadow {
		r.m.meter.shadow.Add(sh - r.lastShadow)
		r.lastShadow = sh
	}
}

// va returns an access's virtual address.
func (p *proc) va(a *workload.Access) uint64 {
	if a.Region < 0 {
		return a.Off
	}
	return p.regions[a.Region].base + a.Off
}

// exec runs accesses of p in batches (loads, stores and instruction
// fetches, in order), taking p's page faults to the guest kernel, and
// checks every load and fetch.
func (r *vcpuRun) exec(p *proc, acc []workload.Access) error {
	integrity := r.m.s.Checks.Integrity
	for i := range acc {
		a := &acc[i]
		var hint *uint64
		if integrity {
			hint = p.sh.hint(a)
		}
		if a.Kind == workload.Fetch {
			r.batch[i] = kvm.BatchAccess{VA: mem.VA(a.Off), Fetch: true, Hint: hint}
			continue
		}
		r.batch[i] = kvm.BatchAccess{VA: mem.VA(p.va(a)), Val: a.Val, Size: a.Size, Write: a.Kind == workload.Store, Hint: hint}
	}
	return r.data(p, acc, r.batch[:len(acc)])
}

// maxFaults bounds the faults one access may take before the simulator
// calls it a livelock.
const maxFaults = 64

func (r *vcpuRun) data(p *proc, acc []workload.Access, b []kvm.BatchAccess) error {
	faults := 0
	pe := r.hw.PE()
	step := len(b)
	if r.vm.three != nil {
		step = 1 // each TLB miss is walked again in three stages
	}
	for off := 0; off < len(b); {
		w, d := pe.Stats.Walks, pe.Walker.Stats.DescReads
		n, x, err := r.hw.RunBatch(b[off:min(off+step, len(b))])
		walks := pe.Stats.Walks - w
		r.userWalks += walks
		if err != nil {
			return err
		}
		if t := r.vm.three; t != nil && walks == 1 && n == 1 && !b[off].Fetch {
			// (A fetch's walk is the shadow's alone: the software
			// three-stage walk models data accesses.)
			reads := pe.Walker.Stats.DescReads - d
			t.shadowWalks += walks
			t.shadowReads += reads
			count(&t.shadowHist, reads)
			t.walk(b[off].VA, b[off].Write)
		}
		r.verify(p, acc[off:off+n], b[off:off+n])
		if n > 0 {
			faults = 0
		}
		off += n
		if off == len(b) || x.Reason == kvm.ExitNone {
			continue
		}
		if x.Reason != kvm.ExitException {
			return fmt.Errorf("user access to %#x: unexpected exit %v", b[off].VA, x.Reason)
		}
		faults++
		if faults > maxFaults {
			if b[off].Fetch {
				return fmt.Errorf("fetch at %#x faults again and again", b[off].VA)
			}
			return fmt.Errorf("user access to %#x faults again and again", b[off].VA)
		}
		r.faults++
		if err := r.core.HandleFault(x); err != nil {
			return err
		}
		r.m.meter.faults.Add(1)
	}
	return nil
}

// verify checks the completed accesses' loads against the shadow and
// records their stores in it.
func (r *vcpuRun) verify(p *proc, acc []workload.Access, b []kvm.BatchAccess) {
	if !r.m.s.Checks.Integrity {
		return
	}
	for i := range acc {
		a := &acc[i]
		if a.Kind == workload.Store {
			reg, pg, off := r.loc(p, a)
			p.sh.store(reg, pg, off, a.Size, a.Val)
			continue
		}
		r.check(p, a, b[i].Val)
	}
}

// loc returns where the shadow keeps an access: region (or -1), page and
// byte offset in the page.
func (r *vcpuRun) loc(p *proc, a *workload.Access) (int, uint64, uint64) {
	sh := p.sh.pgShift
	return int(a.Region), a.Off >> sh, a.Off & (1<<sh - 1)
}

func (r *vcpuRun) check(p *proc, a *workload.Access, got uint64) {
	reg, pg, off := r.loc(p, a)
	want := p.sh.load(reg, pg, off, a.Size)
	r.checks++
	if got != want {
		r.m.violation(true, "vm %q pid %d: load of %d bytes at %#x read %#x, the last store there wrote %#x", r.vm.cfg.Name, p.gp.PID, a.Size, p.va(a), got, want)
	}
}

// event carries out a workload event in the current process.
func (r *vcpuRun) event(p *proc, ev workload.Event) error {
	c := r.core
	switch ev.Kind {
	case workload.EventMmap:
		va, err := c.Mmap(ev.Size, guestos.ProtRead|guestos.ProtWrite)
		if err != nil {
			return err
		}
		p.regions[ev.Region] = region{va, ev.Size}
		p.sh.mapRegion(int(ev.Region), ev.Size)
	case workload.EventMmapAll:
		limit := min(uint64(1)<<r.vm.cfg.Guest.VABits, 1<<47)
		if err := c.MmapFixed(0, limit, guestos.ProtRead|guestos.ProtWrite|guestos.ProtExec); err != nil {
			return err
		}
	case workload.EventMunmap:
		rg := p.regions[ev.Region]
		if err := c.Munmap(rg.base, rg.size); err != nil {
			return err
		}
		p.regions[ev.Region] = region{}
		p.sh.unmap(int(ev.Region))
	case workload.EventFork:
		gp, err := c.Fork()
		if err != nil {
			return err
		}
		r.vm.spawns.Add(1)
		r.procs = append(r.procs, &proc{gp: gp, stream: ev.Child, regions: p.regions, sh: p.sh.fork()})
		// The parent yields and the child runs first (as a shell's child
		// that execs at once): its exec drops the shared pages before the
		// parent writes them again.
		r.cur = len(r.procs) - 1
		return c.Tick(gp)
	case workload.EventExec:
		if err := c.Exec(userEntry); err != nil {
			return err
		}
		p.regions = [maxRegions]region{}
		p.sh.release()
	case workload.EventExit, workload.EventEnd:
		if p.replay != nil {
			if err := p.replay.Err(); err != nil {
				return err
			}
			r.records += p.replay.Records
			p.replay.Close()
		}
		p.sh.release()
		r.procs = append(r.procs[:r.cur], r.procs[r.cur+1:]...)
		var next *guestos.Proc
		if len(r.procs) > 0 {
			r.cur %= len(r.procs)
			next = r.procs[r.cur].gp
		} else {
			r.finished = true
		}
		return c.Exit(next)
	default:
		return fmt.Errorf("unknown workload event %d", ev.Kind)
	}
	return nil
}

// doorbell is the current process's write to the guest's device: the
// MMIO exit comes to the VMM (here), which completes it.
func (r *vcpuRun) doorbell() error {
	x, err := r.core.Doorbell(r.done)
	if err != nil {
		return err
	}
	if x.Reason == kvm.ExitMMIO {
		if err := r.hw.CompleteMMIO([2]uint64{}); err != nil {
			return err
		}
	} else {
		return errors.New("the device write did not exit to the VMM")
	}
	return r.core.DoorbellDone()
}
