package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// n formats a count with thousands separators.
func n(v uint64) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// mega formats a count in millions (or thousands) for tables.
func mega(v uint64) string {
	switch {
	case v >= 10_000_000:
		return fmt.Sprintf("%.0fM", float64(v)/1e6)
	case v >= 1_000_000:
		return fmt.Sprintf("%.2fM", float64(v)/1e6)
	case v >= 10_000:
		return fmt.Sprintf("%.0fK", float64(v)/1e3)
	}
	return fmt.Sprint(v)
}

func bytesStr(v uint64) string {
	switch {
	case v >= 10<<20:
		return fmt.Sprintf("%.0fM", float64(v)/(1<<20))
	case v >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(v)/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.0fK", float64(v)/(1<<10))
	}
	return fmt.Sprint(v)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// tlbis writes a TLBI map in a stable order.
func tlbis(m TLBIs) string {
	var keys []string
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s", k, n(m[k])))
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(ew, format, args...) }
	title := r.Scenario
	if r.Variant != "" {
		title += " [" + r.Variant + "]"
	}
	p("nestmmu run: %s", title)
	if r.Description != "" {
		p(" - %s", r.Description)
	}
	p("\n")
	if r.Interrupted {
		p("INTERRUPTED: the figures below cover the part that ran\n")
	}
	a := r.Accesses
	p("\naccesses   %s guest accesses in %.2f s: %.2f million per second", n(a.Total), r.Elapsed, a.PerSecond/1e6)
	if r.CPUSeconds > 0 && r.Elapsed > 0 {
		p(" (%.1f CPU-seconds, %.2f cores busy: %.2f million per CPU-second)", r.CPUSeconds, r.CPUSeconds/r.Elapsed, a.PerCPUSecond/1e6)
	}
	p("\n")
	p("           user %s, guest kernels %s, MIPS %s (target: %s user accesses; user rate %.2f M/s)\n",
		n(a.User), n(a.Kernel), n(a.MIPS), n(a.Target), a.UserPerSecond/1e6)

	if len(r.VMs) > 0 {
		p("\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "VM (level)\tvCPUs\tgranule\tlevels S1+S2\tuser acc.\tTLB hit user/all\twalks\treads/walk\tguest faults\tstage-2 faults\tMMIO\texits to L0\t")
		for _, v := range r.VMs {
			s2 := v.Stage2.Total
			if v.Nested != nil {
				s2 = v.Nested.L0.Faults
			}
			fmt.Fprintf(tw, "%s (L%d)\t%d\t%s\t%d+%d\t%s\t%s / %s\t%s\t%.1f\t%s\t%s\t%s\t%s\t\n", v.Name, v.Level, v.VCPUs, bytesStr(v.Granule),
				v.Levels, v.Stage2Levels, mega(v.UserAccesses), pct(v.UserHitRate), pct(v.HitRate), mega(v.Walks), v.ReadsPerWalk,
				n(v.Guest.Total), n(s2), n(v.MMIO), n(v.Exits))
		}
		tw.Flush()
		if r.hasNested() {
			p("  (for a VM of a guest hypervisor: stage-2 faults are L0's shadow faults, levels S2 the shadow's, and the TLB,\n")
			p("   walk and exit figures its vCPU's, the guest hypervisors' own work on it included)\n")
		}
		p("\nfaults by kind and level\n")
		for _, v := range r.VMs {
			g := v.Guest
			p("  %s L%d stage 1: demand %s (zero page %s), copy-on-write copy %s, reuse %s, spurious %s\n",
				v.Name, v.Level, n(g.DemandPage+g.DemandZero), n(g.DemandZero), n(g.COWCopy), n(g.COWReuse), n(g.Spurious))
			if nv := v.Nested; nv != nil {
				sh := nv.L0
				p("  %s shadow (L0): %s faults: installed %s, forwarded to L1 %s, MMIO %s, access flag %s\n",
					v.Name, n(sh.Faults), n(sh.Installed), n(sh.Forwarded), n(sh.MMIO), n(sh.AccessFlag))
				if l1 := nv.L1; l1 != nil {
					p("  %s L1's shadow: %s faults: installed %s, forwarded to L2 %s\n", v.Name, n(l1.Faults), n(l1.Installed), n(l1.Forwarded))
				}
				w := nv.Hypervisor
				p("  %s L%d stage 2 (%s): %s faults, mapped %s (blocks %s)\n", v.Name, v.Level-1, v.Hypervisor, n(w.Faults), n(w.Maps), n(w.BlockMaps))
				continue
			}
			s := v.Stage2
			p("  %s L0 stage 2:    map %s (blocks %s), relax %s, access flag %s, retried %s; MMU-notifier unmaps %s\n",
				v.Name, n(s.Maps), n(s.BlockMaps), n(s.Relaxes), n(s.AccessFlag), n(s.Retries), n(s.NotifierUnmaps))
		}
		for _, h := range r.Hypervisors {
			if s := h.Stage2; s != nil {
				p("  %s L0 stage 2 (its memory): map %s (blocks %s), relax %s, access flag %s, retried %s; MMU-notifier unmaps %s\n",
					h.Name, n(s.Maps), n(s.BlockMaps), n(s.Relaxes), n(s.AccessFlag), n(s.Retries), n(s.NotifierUnmaps))
			}
		}
		if len(r.Hypervisors) > 0 {
			p("\nguest hypervisors\n")
			for i := range r.Hypervisors {
				r.Hypervisors[i].writeText(p)
			}
		}
		p("\nguest kernels\n")
		for _, v := range r.VMs {
			g := v.Guest
			p("  %s: %s processes (%s live), forks %s, execs %s, exits %s, mmaps %s, munmaps %s, context switches %s, ASID rollovers %s",
				v.Name, n(v.Spawned), n(v.Processes), n(g.Forks), n(g.Execs), n(g.Exits), n(g.Mmaps), n(g.Munmaps), n(g.ContextSwitches), n(g.ASIDRollovers))
			if v.TraceRecords > 0 {
				p(", trace records replayed %s", n(v.TraceRecords))
			}
			p("\n")
		}
		p("\nTLB invalidations\n")
		for _, v := range r.VMs {
			p("  %s guest: %s\n", v.Name, tlbis(v.TLBIs))
		}
		p("  host (L0): %s; VMID rollovers %s\n", tlbis(r.Host.TLBIs), n(r.Host.VMIDRollovers))
		t := r.Host.TLB
		p("  physical TLBs: %s hits (%s in micro-TLBs), %s misses, %s entries invalidated\n", n(t.Hits), n(t.MicroHits), n(t.Misses), n(t.Invalidated))
		p("\npage-table memory\n")
		for _, v := range r.VMs {
			if nv := v.Nested; nv != nil {
				p("  %s: guest stage 1 %s (peak %s), %s's stage 2 for it %s, L0's shadow %s\n", v.Name, bytesStr(v.PTBytes.Stage1),
					bytesStr(v.PTBytes.Stage1Peak), v.Hypervisor, bytesStr(nv.Stage2Bytes), bytesStr(nv.ShadowBytes))
				continue
			}
			p("  %s: guest stage 1 %s (peak %s), L0 stage 2 %s\n", v.Name, bytesStr(v.PTBytes.Stage1), bytesStr(v.PTBytes.Stage1Peak), bytesStr(v.PTBytes.Stage2))
		}
		for _, h := range r.Hypervisors {
			if h.Level == 1 {
				p("  %s: L0 stage 2 %s, shadow stage 2s %s (%d), its stage 2s %s, reverse map %s\n", h.Name, bytesStr(h.L0Stage2Bytes),
					bytesStr(h.ShadowBytes), h.Shadows, bytesStr(h.Stage2Bytes), bytesStr(h.Rmap.Bytes))
			}
		}
		if len(r.Host.Pressure) > 0 {
			pr := r.Host.Pressure
			p("\nhost memory pressure: swap-outs %s, migrations %s, huge-page splits %s, collapses %s, KSM scans %s (%s pages merged), aging %s, skipped %s\n",
				n(pr["swap_out"]), n(pr["migrate"]), n(pr["split"]), n(pr["collapse"]), n(pr["ksm_scan"]), n(pr["ksm_pages_merged"]), n(pr["age"]), n(pr["skipped"]))
		}
		m := r.Host.Memory
		p("host kernel: huge-page faults %s, swap-ins %s, KSM copy-on-write breaks %s, frames in use %s\n", n(m.HugeFaults), n(m.SwapIns), n(m.COWBreaks), n(m.FramesInUse))
	}
	for _, x := range r.MIPS {
		scheme := "GVA page tables, fast refill"
		if !x.GVATables {
			scheme = "linear guest-TLB scan (pre-series)"
		}
		p("\nMIPS %s (%s): %s user accesses (%s in all), host TLB hits %s, refills fast %s / slow %s, guest TLB scans %s (%s entries compared), GVA-table reads %s, exceptions injected %s, flushes %s\n",
			x.Name, scheme, n(x.UserAccesses), n(x.Accesses), n(x.HostTLBHits), n(x.FastRefills), n(x.SlowRefills), n(x.GuestScans), n(x.Compared), n(x.TableReads), n(x.Exceptions), n(x.Flushes))
	}
	if len(r.WalkReads) > 0 {
		p("\ndescriptor reads per TLB miss (every arm64 vCPU)\n")
		writeHistogram(ew, r.WalkReads)
	}
	for _, v := range r.VMs {
		if v.Nested == nil || v.Nested.ThreeStage == nil {
			continue
		}
		t := v.Nested.ThreeStage
		shadow := 0.0
		if t.ShadowWalks > 0 {
			shadow = float64(t.ShadowReads) / float64(t.ShadowWalks)
		}
		p("\n%s: descriptor reads per TLB miss of its processes by the software three-stage walk: %.1f (through the shadow: %.1f; %s misses, %s not walked)\n",
			v.Name, t.ReadsPerWalk, shadow, n(t.Walks), n(t.Failed))
		writeHistogram(ew, t.Histogram)
	}
	c := r.Checks
	verdict := "OK"
	if c.Violations() > 0 {
		verdict = "FAILED"
	}
	p("\nchecks     data integrity: %s loads checked, %s violations; invariants: %s stage-2 and host checks", n(c.IntegrityChecks), n(c.IntegrityViolations), n(c.InvariantChecks))
	if c.FreedFrameChecks > 0 {
		p(" and %s accesses checked for freed frames", n(c.FreedFrameChecks))
	}
	if c.ShadowChecks > 0 {
		p("; %s shadow stage-2 checks (%s shadow leaves against both stages, the TLBs and the reverse map)", n(c.ShadowChecks), n(c.ShadowLeavesChecked))
	}
	p(", %s violations: %s\n", n(c.InvariantViolations), verdict)
	for _, f := range c.First {
		p("           %s\n", f)
	}
	for _, e := range r.Errors {
		p("error: %s\n", e)
	}
	return ew.err
}

// writeHistogram draws a walk-length histogram with bars; lengths with
// under 0.1% of the walks are summed on one line.
func writeHistogram(w io.Writer, hist []uint64) {
	var total, peak uint64
	for _, v := range hist {
		total += v
		peak = max(peak, v)
	}
	if total == 0 {
		return
	}
	var rare, rareKinds uint64
	for reads, v := range hist {
		if v == 0 {
			continue
		}
		if v*1000 < total {
			rare += v
			rareKinds++
			continue
		}
		bar := max(int(40*v/peak), 1)
		label := fmt.Sprint(reads)
		if reads == len(hist)-1 && reads >= 127 {
			label += "+"
		}
		fmt.Fprintf(w, "  %4s |%-40s %5.1f%%  %s\n", label, strings.Repeat("#", bar), 100*float64(v)/float64(total), n(v))
	}
	if rare > 0 {
		fmt.Fprintf(w, "  (%s walks of %d other lengths, each under 0.1%%)\n", n(rare), rareKinds)
	}
}

// hasNested reports whether a guest hypervisor ran.
func (r *Report) hasNested() bool { return len(r.Hypervisors) > 0 }

// writeText writes a guest hypervisor's lines: its exits by cause, the
// emulated TLBIs and ATs, its memory and the reverse map.
func (h *Hypervisor) writeText(p func(string, ...any)) {
	below := "L0"
	if h.Level > 1 {
		below = fmt.Sprintf("L%d (each through L0)", h.Level-1)
	}
	e2h := 0
	if h.E2H {
		e2h = 1
	}
	rm := ""
	if h.Level == 1 {
		rm = ", reverse map off"
		if h.ReverseMap {
			rm = ", reverse map on"
		}
	}
	x := h.Exits
	p("  %s (L%d, %s, E2H=%d, %d vCPUs%s) runs %s\n", h.Name, h.Level, h.Mode, e2h, h.VCPUs, rm, strings.Join(h.VMs, ", "))
	p("    exits to %s from its virtual EL2: %s (register accesses %s, ERET %s, TLBI %s, AT %s, its own stage-2 faults %s)\n",
		below, n(x.Total), n(x.SysReg), n(x.ERET), n(x.TLBI), n(x.AT), n(x.OwnFaults))
	p("    exits while its VMs ran: %s (traps forwarded to it %s); world switches: %s into its VMs, %s back to it\n",
		n(h.GuestExits), n(h.ForwardedTraps), n(h.Entries), n(h.VEL2Entries))
	p("    emulated by %s: TLBIs %s, ATs %s (fast path %s, software walk %s); its own work: %s stage-2 faults of its VMs, %s maps (%s blocks), %s TLBIs issued\n",
		below, n(x.TLBI), n(x.AT), n(h.ATFast), n(h.ATSoftware), n(h.Work.Faults), n(h.Work.Maps), n(h.Work.BlockMaps), n(h.Work.TLBIs))
	if r := h.Rmap; r != nil {
		p("    reverse map: %s extents of %s (%s), %s recorded (%s merged), %s overflows; host changes sent to %s ranges unmapped, %s write-protected, %s aged (%s young), %s change_pte\n",
			n(uint64(r.Extents)), n(uint64(r.Capacity)), bytesStr(r.Bytes), n(r.Inserts), n(r.Merges), n(r.Overflows),
			n(r.Unmapped), n(r.WriteProtected), n(r.Aged), n(r.Young), n(r.ChangedPTEs))
		p("    shadow leaves unmapped by host changes: %s (%s); whole shadows emptied by them %s, write-protected %s; shadow flushes in all %s\n",
			n(r.LeavesUnmapped), bytesStr(r.BytesUnmapped), n(r.CoarseFlushes), n(r.CoarseProtects), n(h.ShadowFlushes))
	}
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	k, err := e.w.Write(b)
	e.err = err
	return k, err
}
