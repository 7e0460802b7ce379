// Package scenario runs a MIPS trap-and-emulate guest workload (the guest
// OS model of package guestos) on the engine of package te and reports what
// the hypervisor did: host TLB refills by path, slow-path exits, exceptions
// injected, flushes and their cost, optionally against the pre-series
// scheme. It backs the "nestmmu mips" command.
package scenario

import (
	"fmt"
	"io"
	"time"

	"github.com/nestmmu/nestmmu/mips/guestos"
	"github.com/nestmmu/nestmmu/mips/te"
)

// Config is a workload and the machine it runs on.
type Config struct {
	Guest          guestos.Config
	HostTLBEntries int
	Accesses       int  // user accesses to run
	Compare        bool // also run the pre-series scheme and compare
	// DirtyLog runs both schemes with Linux 4.11's dirty logging
	// (te.Config.DirtyLog) instead of the series' own semantics, which
	// have no dirty-logging exits.
	DirtyLog bool
}

// Default returns the default scenario: 4 processes of 96 pages each on a
// 64-entry host TLB, 200000 accesses, with the comparison, under the
// series' own semantics (no dirty logging).
func Default() Config {
	return Config{Guest: guestos.DefaultConfig(), HostTLBEntries: 64, Accesses: 200000, Compare: true}
}

// Result is one run.
type Result struct {
	Stats   te.Stats
	Guest   guestos.Stats
	Elapsed time.Duration
}

// Run runs the workload once.
func Run(c Config, legacy bool) (Result, error) {
	e, err := te.New(te.Config{PageSize: c.Guest.PageSize, RAMSize: c.Guest.RAMSize, HostTLBEntries: c.HostTLBEntries, Seed: c.Guest.Seed, Legacy: legacy, DirtyLog: c.DirtyLog})
	if err != nil {
		return Result{}, err
	}
	o, err := guestos.New(e, c.Guest)
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	err = o.Run(c.Accesses)
	r := Result{Stats: e.Stats, Guest: o.Stats, Elapsed: time.Since(t0)}
	if err == nil && e.Stats.Livelocks != 0 {
		err = fmt.Errorf("scenario: %d accesses did not settle", e.Stats.Livelocks)
	}
	return r, err
}

// Report runs the scenario and writes the report to w.
func Report(c Config, w io.Writer) error {
	g := c.Guest
	fmt.Fprintf(w, "MIPS trap-and-emulate with GVA page tables\n")
	fmt.Fprintf(w, "workload: %d processes x %d pages of %d bytes, %d accesses (%d%% stores, %d%% random), quantum %d, host TLB %d entries, seed %d\n",
		g.Processes, g.WorkingSet, g.PageSize, c.Accesses, g.StorePercent, g.RandomPercent, g.Quantum, c.HostTLBEntries, g.Seed)
	if c.DirtyLog {
		fmt.Fprintf(w, "semantics: Linux 4.11 with dirty logging (pages mapped clean until written)\n\n")
	} else {
		fmt.Fprintf(w, "semantics: the series' own (pages mapped writable at once, no dirty logging)\n\n")
	}
	r, err := Run(c, false)
	if err != nil {
		return err
	}
	writeGuest(w, r)
	r.Stats.Report(w)
	if !c.Compare {
		return nil
	}
	old, err := Run(c, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\ncompared with the pre-series scheme (guest mappings injected into the host TLB):\n")
	fmt.Fprintf(w, "  %-34s %14s %14s\n", "", "GVA tables", "pre-series")
	row := func(name string, a, b uint64) { fmt.Fprintf(w, "  %-34s %14d %14d\n", name, a, b) }
	row("host TLB refills, fast path", r.Stats.FastRefills, old.Stats.FastRefills)
	row("host TLB refills, slow path (exit)", r.Stats.SlowRefills, old.Stats.SlowRefills)
	var se, so uint64
	for k := range r.Stats.Slow {
		se += r.Stats.Slow[k]
		so += old.Stats.Slow[k]
	}
	row("slow-path exits (all reasons)", se, so)
	row("dirty-logging exits", r.Stats.Slow[te.SlowDirty], old.Stats.Slow[te.SlowDirty])
	row("guest TLB linear scans", r.Stats.GuestScans, old.Stats.GuestScans)
	row("ASID-change flush PTEs cleared", r.Stats.Flush[te.FlushASID].PTEsCleared, old.Stats.Flush[te.FlushASID].PTEsCleared)
	fmt.Fprintf(w, "  %-34s %14v %14v\n", "ASID-change flush time", r.Stats.Flush[te.FlushASID].Time, old.Stats.Flush[te.FlushASID].Time)
	fmt.Fprintf(w, "  %-34s %14v %14v\n", "wall time (model)", r.Elapsed.Round(time.Microsecond), old.Elapsed.Round(time.Microsecond))
	if r.Guest.Refills != old.Guest.Refills || r.Guest.PageFaults != old.Guest.PageFaults || r.Guest.Verified != old.Guest.Verified {
		return fmt.Errorf("scenario: the guest saw different behaviour under the two schemes: %+v vs %+v", r.Guest, old.Guest)
	}
	fmt.Fprintf(w, "  the guest observed identical behaviour under both schemes (%d values verified)\n", r.Guest.Verified)
	return nil
}

func writeGuest(w io.Writer, r Result) {
	s := r.Guest
	fmt.Fprintf(w, "guest kernel: %d accesses, %d values verified, %d errors; %d TLB refills handled, %d page faults, %d TLB-modified faults, %d context switches (%d machine operations, %v)\n\n",
		s.Accesses, s.Verified, s.Errors, s.Refills, s.PageFaults, s.ModFaults, s.ContextSwitches, s.Ops, r.Elapsed.Round(time.Microsecond))
}
