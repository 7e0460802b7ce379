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
	if r.CPUSeconds > 0 {
		p(" (%.1f CPU-seconds: %.2f million per CPU-second)", r.CPUSeconds, a.PerCPUSecond/1e6)
	}
	p("\n")
	p("           user %s, guest kernels %s, MIPS %s (target: %s user accesses; user rate %.2f M/s)\n",
		n(a.User), n(a.Kernel), n(a.MIPS), n(a.Target), a.UserPerSecond/1e6)

	if len(r.VMs) > 0 {
		p("\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "VM (level)\tvCPUs\tgranule\tlevels S1+S2\tuser acc.\tTLB hit user/all\twalks\treads/walk\tguest faults\tstage-2 faults\tMMIO\texits to L0\t")
		for _, v := range r.VMs {
			fmt.Fprintf(tw, "%s (L%d)\t%d\t%s\t%d+%d\t%s\t%s / %s\t%s\t%.1f\t%s\t%s\t%s\t%s\t\n", v.Name, v.Level, v.VCPUs, bytesStr(v.Granule),
				v.Levels, v.Stage2Levels, mega(v.UserAccesses), pct(v.UserHitRate), pct(v.HitRate), mega(v.Walks), v.ReadsPerWalk,
				n(v.Guest.Total), n(v.Stage2.Total), n(v.MMIO), n(v.Exits))
		}
		tw.Flush()
		p("\nfaults by kind and level\n")
		for _, v := range r.VMs {
			g, s := v.Guest, v.Stage2
			p("  %s guest stage 1: demand %s (zero page %s), copy-on-write copy %s, reuse %s, spurious %s\n",
				v.Name, n(g.DemandPage+g.DemandZero), n(g.DemandZero), n(g.COWCopy), n(g.COWReuse), n(g.Spurious))
			p("  %s L0 stage 2:    map %s (blocks %s), relax %s, access flag %s, retried %s; MMU-notifier unmaps %s\n",
				v.Name, n(s.Maps), n(s.BlockMaps), n(s.Relaxes), n(s.AccessFlag), n(s.Retries), n(s.NotifierUnmaps))
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
			p("  %s: guest stage 1 %s (peak %s), L0 stage 2 %s\n", v.Name, bytesStr(v.PTBytes.Stage1), bytesStr(v.PTBytes.Stage1Peak), bytesStr(v.PTBytes.Stage2))
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
		r.writeHistogram(ew)
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
	p(", %s violations: %s\n", n(c.InvariantViolations), verdict)
	for _, f := range c.First {
		p("           %s\n", f)
	}
	for _, e := range r.Errors {
		p("error: %s\n", e)
	}
	return ew.err
}

// writeHistogram draws the walk-length histogram with bars; lengths with
// under 0.1% of the walks are summed on one line.
func (r *Report) writeHistogram(w io.Writer) {
	var total, peak uint64
	for _, v := range r.WalkReads {
		total += v
		peak = max(peak, v)
	}
	if total == 0 {
		return
	}
	var rare, rareKinds uint64
	for reads, v := range r.WalkReads {
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
		if reads == len(r.WalkReads)-1 && reads >= 127 {
			label += "+"
		}
		fmt.Fprintf(w, "  %4s |%-40s %5.1f%%  %s\n", label, strings.Repeat("#", bar), 100*float64(v)/float64(total), n(v))
	}
	if rare > 0 {
		fmt.Fprintf(w, "  (%s walks of %d other lengths, each under 0.1%%)\n", n(rare), rareKinds)
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
