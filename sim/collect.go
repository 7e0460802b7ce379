package sim

import (
	"fmt"
	"time"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
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
	for _, hr := range m.hyps {
		r.Hypervisors = append(r.Hypervisors, m.collectHyp(hr))
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
	v := report.VM{Name: c.Name, Level: vr.level, VCPUs: c.VCPUs, Granule: uint64(c.Guest.Granule), Levels: vr.os.Levels(),
		Spawned: vr.spawns.Load()}
	var exceptions, guestExc uint64
	for _, r := range vr.vcpus {
		pe := r.hw.PE()
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
	v.TLBIs = report.TLBIs{}
	for op, n := range os.TLBIs {
		if n > 0 {
			v.TLBIs[tlb.Op(op).String()] += n
		}
	}
	pg := vr.os.PageSize()
	v.PTBytes = report.PTBytes{Stage1: uint64(os.PTPages) * pg, Stage1Peak: uint64(os.PTPeak) * pg}
	if vr.level > 1 {
		m.collectNestedVM(vr, &v)
		return v
	}
	st := vr.l0.kvm.Stats()
	v.Stage2Levels = 4 - vr.l0.kvm.Layout().StartLevel
	v.PTBytes.Stage2 = st.S2.TableBytes
	v.Stage2 = s2Faults(st)
	v.MMIO = st.MMIOExits + st.MMIOEmulated
	// Exceptions the PE took that went to EL2: all of them but those
	// delivered to the guest (its page faults, system calls, timer
	// interrupts).
	if g := guestExc + os.Syscalls + os.Ticks; exceptions > g {
		v.Exits = exceptions - g
	}
	return v
}

// s2Faults are a VM of L0's stage-2 faults.
func s2Faults(st kvm.VMStats) report.S2Faults {
	s := report.S2Faults{Maps: st.Maps, BlockMaps: st.BlockMaps, Relaxes: st.Relaxes, AccessFlag: st.AccessFlagFaults,
		Retries: st.Retries + st.SlotRetries, NotifierUnmaps: st.NotifierUnmaps, ChangedPTEs: st.ChangedPTEs}
	s.Total = s.Maps + s.Relaxes + s.AccessFlag + s.Retries
	return s
}

// collectNestedVM fills in how a VM of a guest hypervisor ran: L0's
// shadow faults on its vCPU (and L1's, for an L3), its hypervisor's work,
// the shadow it runs on, and the exits to L0 on its vCPU.
func (m *machine) collectNestedVM(vr *vmRun, v *report.VM) {
	st := vr.nv.Stats()
	hr := vr.hyp
	v.Hypervisor = hr.cfg.Name
	n := &report.NestedVM{L0: report.ShadowFaults{Faults: st.ShadowFaults, Installed: st.Installed, Forwarded: st.Forwarded,
		MMIO: st.MMIOExits, AccessFlag: st.AccessFlagFaults}, Entries: st.L2Entries, VEL2Entries: st.VEL2Entries}
	if hr.el2 != nil {
		e := hr.el2.Stats()
		n.L1 = &report.ShadowFaults{Faults: e.ShadowFaults, Installed: e.Installed, Forwarded: e.Forwarded}
	}
	h := hr.hyps[0]
	if hr.level == 1 {
		for i, nv := range hr.vcpus {
			if nv == vr.nv {
				h = hr.hyps[i]
			}
		}
	}
	n.Hypervisor = hypWork(h.Stats())
	n.Stage2Bytes = vr.gvm.Stage2().Stats().TableBytes
	// The shadow it runs on: the one whose root is in VTTBR_EL2 now.
	pe := vr.nv.PE()
	if vr.nv.InL2() {
		l1 := hr
		for l1.parent != nil {
			l1 = l1.parent
		}
		root := mem.PA(sysreg.VTTBR(pe.Regs.VTTBR_EL2).BADDR())
		shadows := l1.l0.nvm.Shadows()
		l1.l0.kvm.LockMMU()
		for _, sh := range shadows {
			if sh.Stage2.Root() == root {
				v.Stage2Levels = 4 - sh.Stage2.Layout().StartLevel
				n.ShadowBytes = sh.Stage2.Stats().TableBytes
			}
		}
		l1.l0.kvm.UnlockMMU()
	}
	v.PTBytes.Stage2 = n.ShadowBytes
	v.MMIO = st.MMIOExits
	v.Exits = st.Exits() + st.GuestExits()
	if t := vr.three; t != nil {
		ts := &report.ThreeStage{Walks: t.walks, Reads: t.reads, Failed: t.failed, Histogram: t.hist,
			ShadowWalks: t.shadowWalks, ShadowReads: t.shadowReads, ShadowHistogram: t.shadowHist}
		if t.walks > 0 {
			ts.ReadsPerWalk = float64(t.reads) / float64(t.walks)
		}
		n.ThreeStage = ts
	}
	v.Nested = n
}

func hypWork(s guesthyp.Stats) report.HypervisorWork {
	return report.HypervisorWork{Faults: s.Faults, Maps: s.Maps, BlockMaps: s.BlockMaps, TLBIs: s.TLBIs}
}

// collectHyp reports a guest hypervisor: its exits by cause, the work
// done for it and by it, its shadows' and tables' memory, and (L1) L0's
// stage-2 faults of its memory and the reverse map.
func (m *machine) collectHyp(hr *hypRun) report.Hypervisor {
	c := hr.cfg
	h := report.Hypervisor{Name: c.Name, Level: hr.level, VCPUs: c.VCPUs, Mode: nestedMode(c.Hypervisor.Mode).String(),
		E2H: c.Hypervisor.E2H, ReverseMap: c.Hypervisor.ReverseMap && hr.level == 1}
	for i := range c.VMs {
		h.VMs = append(h.VMs, c.VMs[i].Name)
	}
	for _, g := range hr.hyps {
		w := hypWork(g.Stats())
		h.Work.Faults += w.Faults
		h.Work.Maps += w.Maps
		h.Work.BlockMaps += w.BlockMaps
		h.Work.TLBIs += w.TLBIs
	}
	if hr.level > 1 {
		e := hr.el2.Stats()
		h.Exits = report.HypervisorExits{SysReg: e.SysRegTraps, ERET: e.ERETTraps, TLBI: e.TLBITraps, AT: e.ATTraps, OwnFaults: e.CanonicalFaults}
		h.GuestExits = e.ShadowFaults + e.GuestTraps
		h.ForwardedTraps = e.ForwardedTraps
		h.Entries, h.VEL2Entries = e.Entries, e.VEL2Entries
		h.Stage2Bytes = hr.hyps[0].Current().Stage2().Stats().TableBytes
		h.Exits.Total = h.Exits.SysReg + h.Exits.ERET + h.Exits.TLBI + h.Exits.AT + h.Exits.OwnFaults
		return h
	}
	for _, nv := range hr.vcpus {
		st := nv.Stats()
		x := &h.Exits
		x.SysReg += st.SysRegTraps
		x.ERET += st.ERETTraps
		x.TLBI += st.TLBITraps
		x.AT += st.ATTraps
		x.OwnFaults += st.CanonicalFaults
		x.Total += st.Exits()
		h.GuestExits += st.GuestExits()
		h.ForwardedTraps += st.ForwardedTraps
		h.Entries += st.L2Entries
		h.VEL2Entries += st.VEL2Entries
		h.ATFast += st.ATFast
		h.ATSoftware += st.ATSoftware
		h.VNCRSyncs += st.VNCRSyncs
	}
	for _, g := range hr.hyps {
		if vm := g.Current(); vm != nil {
			h.Stage2Bytes += vm.Stage2().Stats().TableBytes
		}
	}
	l := hr.l0
	shadows := l.nvm.Shadows()
	l.kvm.LockMMU()
	for _, sh := range shadows {
		h.ShadowBytes += sh.Stage2.Stats().TableBytes
	}
	l.kvm.UnlockMMU()
	h.Shadows = len(shadows)
	h.ShadowFlushes = l.nvm.Flushes()
	st := l.kvm.Stats()
	h.L0Stage2Bytes = st.S2.TableBytes
	s2 := s2Faults(st)
	h.Stage2 = &s2
	r := l.nvm.RmapStats()
	leaves, bytes := hr.unmaps.Unmapped()
	h.Rmap = &report.Rmap{Enabled: r.Enabled, Extents: r.Extents, Capacity: r.Capacity, Bytes: r.Bytes, Inserts: r.Inserts,
		Merges: r.Merges, Overflows: r.Overflows, CoarseFlushes: r.CoarseFlushes, CoarseProtects: r.CoarseProtects,
		AgeSkipped: r.AgeSkipped, Unmapped: r.Unmapped, WriteProtected: r.WriteProtected, Aged: r.Aged, Young: r.Young,
		ChangedPTEs: r.ChangedPTEs, LeavesUnmapped: leaves, BytesUnmapped: bytes}
	return h
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
