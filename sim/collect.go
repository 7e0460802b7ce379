package sim

import (
	"fmt"
	"time"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/report"
)

// collect assembles the report once the workers have stopped.
func (m *machine) collect(elapsed time.Duration, timeline []report.Sample) *report.Report {
	s := m.s
	r := &report.Report{Scenario: s.Name, Description: s.Description, Seed: s.Seed, Variant: m.opt.Variant,
		Elapsed: elapsed.Seconds(), Timeline: timeline}
	r.Accesses.Target = uint64(s.Accesses)
	hist := make([]uint64, cpu.WalkReadsBuckets)
	m.chkMu.Lock()
	r.Checks = m.checks
	r.Checks.First = append([]string(nil), m.checks.First...)
	m.chkMu.Unlock()
	for _, vr := range m.vms {
		v := m.collectVM(vr, hist)
		r.Accesses.User += v.UserAccesses
		r.Accesses.Kernel += vr.os.Stats().KernelAccesses
		r.VMs = append(r.VMs, v)
		for _, c := range vr.vcpus {
			r.Checks.IntegrityChecks += c.checks
		}
	}
	for _, mr := range m.mips {
		x := mr.report()
		r.MIPS = append(r.MIPS, x)
		r.Accesses.MIPS += x.Accesses
		r.Checks.IntegrityChecks += x.Verified
		r.Checks.IntegrityViolations += x.Errors
	}
	last := len(hist)
	for last > 0 && hist[last-1] == 0 {
		last--
	}
	r.WalkReads = hist[:last]
	a := &r.Accesses
	a.Total = a.User + a.Kernel + a.MIPS
	if sec := elapsed.Seconds(); sec > 0 {
		a.PerSecond = float64(a.Total) / sec
		a.UserPerSecond = float64(a.User+sumMIPSUser(r)) / sec
	}
	m.collectHost(r)
	if m.s.Checks.FreedFrames {
		// Every guest access and walk read went through the checked view.
		r.Checks.FreedFrameChecks = r.Accesses.User + r.Accesses.Kernel
		if n, first, ok := m.host.Arena().StaleAccesses(); ok {
			r.Checks.InvariantViolations += n
			if len(r.Checks.First) < 10 {
				r.Checks.First = append(r.Checks.First, fmt.Sprintf("%d guest accesses or walk reads reached a freed host frame, the first at PA %#x", n, uint64(first)))
			}
		}
	}
	return r
}

func sumMIPSUser(r *report.Report) uint64 {
	var n uint64
	for _, x := range r.MIPS {
		n += x.UserAccesses
	}
	return n
}

func (m *machine) collectVM(vr *vmRun, hist []uint64) report.VM {
	c := vr.cfg
	os := vr.os.Stats()
	st := vr.vm.Stats()
	v := report.VM{Name: c.Name, Level: 1, VCPUs: c.VCPUs, Granule: uint64(c.Guest.Granule), Levels: vr.os.Levels(),
		Stage2Levels: 4 - vr.vm.Layout().StartLevel, Spawned: vr.spawns.Load()}
	var exceptions, guestExc uint64
	for _, r := range vr.vcpus {
		pe := r.v.PE()
		v.UserAccesses += r.done
		v.UserWalks += r.userWalks
		v.TLBHits += pe.Stats.TLBHits
		v.Walks += pe.Stats.Walks
		v.DescRead += pe.Walker.Stats.DescReads
		for i, n := range pe.Stats.WalkReads {
			hist[i] += n
		}
		exceptions += pe.Stats.Exceptions
		guestExc += r.faults
		v.Processes += uint64(len(r.procs))
		v.TraceRecords += r.records
		for _, p := range r.procs {
			if p.replay != nil {
				v.TraceRecords += p.replay.Records
			}
		}
	}
	if n := v.TLBHits + v.Walks; n > 0 {
		v.HitRate = float64(v.TLBHits) / float64(n)
	}
	if v.UserAccesses > 0 && v.UserWalks <= v.UserAccesses {
		v.UserHitRate = 1 - float64(v.UserWalks)/float64(v.UserAccesses)
	}
	if v.Walks > 0 {
		v.ReadsPerWalk = float64(v.DescRead) / float64(v.Walks)
	}
	v.Guest = report.GuestFaults{DemandZero: os.DemandZero, DemandPage: os.DemandPage, COWCopy: os.COWCopy, COWReuse: os.COWReuse,
		Spurious: os.Spurious + os.AccessFlag, Total: os.Faults(), Syscalls: os.Syscalls, Forks: os.Forks, Execs: os.Execs, Exits: os.Exits,
		Mmaps: os.Mmaps, Munmaps: os.Munmaps, ContextSwitches: os.ContextSwitches, ASIDRollovers: os.ASIDRollovers}
	v.Stage2 = report.S2Faults{Maps: st.Maps, BlockMaps: st.BlockMaps, Relaxes: st.Relaxes, AccessFlag: st.AccessFlagFaults,
		Retries: st.Retries + st.SlotRetries, NotifierUnmaps: st.NotifierUnmaps, ChangedPTEs: st.ChangedPTEs}
	v.Stage2.Total = v.Stage2.Maps + v.Stage2.Relaxes + v.Stage2.AccessFlag + v.Stage2.Retries
	v.MMIO = st.MMIOExits + st.MMIOEmulated
	// Exceptions the PE took that went to EL2: all of them but those
	// delivered to the guest (its page faults, system calls, timer
	// interrupts).
	if g := guestExc + os.Syscalls + os.Ticks; exceptions > g {
		v.Exits = exceptions - g
	}
	v.TLBIs = report.TLBIs{}
	for op, n := range os.TLBIs {
		if n > 0 {
			v.TLBIs[tlb.Op(op).String()] += n
		}
	}
	pg := vr.os.PageSize()
	v.PTBytes = report.PTBytes{Stage1: uint64(os.PTPages) * pg, Stage1Peak: uint64(os.PTPeak) * pg, Stage2: st.S2.TableBytes}
	return v
}

func (m *machine) collectHost(r *report.Report) {
	h := m.host
	hs := h.Stats()
	r.Host.CPUs = h.CPUs()
	r.Host.TLBIs = report.TLBIs{"IPAS2E1IS": hs.IPAS2E1IS, "VMALLE1IS": hs.VMALLE1IS, "VMALLS12E1IS": hs.VMALLS12E1IS, "ALLE1IS": hs.ALLE1IS}
	r.Host.VMIDRollovers = hs.Rollovers
	for i := 0; i < h.CPUs(); i++ {
		t := h.TLBStats(i)
		r.Host.TLB.Hits += t.Hits
		r.Host.TLB.MicroHits += t.MicroHits
		r.Host.TLB.Misses += t.Misses
		r.Host.TLB.Invalidated += t.Invalidated
	}
	k := h.Kernel().Stats()
	r.Host.Memory = report.HostMemory{Faults: k.Faults, HugeFaults: k.HugeFaults, SwapOuts: k.SwapOuts, SwapIns: k.SwapIns,
		Migrations: k.Migrations, Splits: k.Splits, Collapses: k.Collapses, KSMMerged: k.KSMMerged, COWBreaks: k.COWBreaks,
		FramesInUse: h.Arena().Stats().InUse}
	if m.pr != nil {
		r.Host.Pressure = map[string]uint64{"skipped": m.pr.skipped.Load(), "ksm_pages_merged": m.pr.ksm.Load()}
		for i, name := range eventNames {
			r.Host.Pressure[name] = m.pr.done[i].Load()
		}
	}
}
