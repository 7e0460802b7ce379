package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/sim"
)

func runCommand() command {
	return command{
		summary: "run a simulation scenario (the default without a file) and print its report",
		usage:   "nestmmu run [flags] [FILE]",
		doc: `
Runs a simulation scenario (FILE, YAML; docs/USAGE.md and examples/), or
the default scenario without one: the host hypervisor (L0) with two VMs
whose guest kernels run mixed workloads under host memory pressure, and a
MIPS trap-and-emulate guest. Prints the report: accesses simulated and
per second, TLB hit rates, faults by kind and level, exits, TLB
invalidations, page-table memory, the walk-length histogram, and the
integrity and invariant checks (violations must be 0).

A progress bar is drawn on a terminal. Ctrl-C stops the run and prints the
report of what ran (exit status 130). Exit status 1: a violation or an
error of the simulated system; 2: a bad argument or an invalid scenario
(the error names its file, line and field).`,
		examples: []example{
			{args: "run", note: "the default scenario (about 30 million user accesses)", want: []string{"million per second", ", 0 violations: OK"}},
			{args: "run --accesses 300K examples/tlb-reach.yaml", note: "a scenario file, shortened",
				want: []string{"nestmmu run: tlb-reach", "sequential (L1)", "random (L1)", ", 0 violations: OK"}},
			{args: "run --json --accesses 200K examples/churn.yaml", want: []string{`"scenario": "churn"`, `"integrity_violations": 0`}},
			{args: "run --plots /tmp/nestmmu-plots --accesses 200K examples/granules.yaml", note: "also write faults, walks and cost as SVG and PNG",
				want: []string{"plots: [/tmp/nestmmu-plots/faults.svg"}},
		},
		run: cmdRun,
	}
}

// runFlags are the flags run and compare share.
type runFlags struct {
	accesses *string
	seed     *uint64
}

func (f *runFlags) register(fs *cliFlags) {
	f.accesses = fs.String("accesses", "", "override the scenario's duration in user accesses (5000000, 5M)")
	f.seed = fs.Uint64("seed", 0, "override the scenario's seed")
}

// load reads the scenario (or the default) and applies the overrides.
func (f *runFlags) load(fs *cliFlags) (*scenario.Scenario, error) {
	var s *scenario.Scenario
	if fs.NArg() == 0 {
		s = scenario.Default()
	} else {
		var err error
		if s, err = scenario.Load(fs.Arg(0)); err != nil {
			return nil, badInput(err)
		}
	}
	if *f.accesses != "" {
		var c scenario.Count
		if err := c.UnmarshalText([]byte(*f.accesses)); err != nil || c == 0 {
			return nil, usagef("--accesses %q: want a positive count such as 5000000 or 5M", *f.accesses)
		}
		s.Accesses = c
	}
	seedSet := false
	fs.Visit(func(fl *flag.Flag) { seedSet = seedSet || fl.Name == "seed" })
	if seedSet {
		s.Seed = *f.seed
	}
	return s, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress returns a progress callback drawing a bar on stderr when it is
// a terminal (nil otherwise), and a function that clears it.
func progress(stderr io.Writer, label string) (func(done, target uint64), func()) {
	if !isTerminal(stderr) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, target uint64) {
			if bar == nil {
				bar = progressbar.NewOptions64(int64(target), progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription(label), progressbar.OptionShowCount(),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetPredictTime(true),
					progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
			}
			_ = bar.Set64(int64(done))
		}, func() {
			if bar != nil {
				_ = bar.Clear()
			}
		}
}

// simulate runs s with Ctrl-C handling and the progress bar.
func simulate(s *scenario.Scenario, stderr io.Writer, variant string) (*report.Report, error) {
	// The simulator keeps large, long-lived heaps (the shadows of guest
	// memory): collect less often.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	label := "simulating " + s.Name
	if variant != "" {
		label += " [" + variant + "]"
	}
	prog, clear := progress(stderr, label)
	r, err := sim.Run(ctx, s, sim.Options{Progress: prog, Variant: variant})
	clear()
	return r, err
}

// cmdRun is the main job: run a scenario and print its report.
func cmdRun(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("run", stdout, stderr)
	fs.Args(0, 1)
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	plots := fs.String("plots", "", "write the figures (SVG and PNG) into `DIR`")
	var rf runFlags
	rf.register(fs)
	if code, done := fs.Parse(args); done {
		return code
	}
	s, err := rf.load(fs)
	if err != nil {
		return fs.Fail(err)
	}
	r, err := simulate(s, stderr, "")
	if r == nil {
		return fs.Fail(err)
	}
	if *jsonOut {
		err = errors.Join(err, r.WriteJSON(stdout))
	} else {
		err = errors.Join(err, r.WriteText(stdout))
	}
	if *plots != "" {
		files, perr := r.WritePlots(*plots)
		if perr != nil {
			err = errors.Join(err, perr)
		} else if !*jsonOut {
			fmt.Fprintf(stdout, "\nplots: %v\n", files)
		}
	}
	switch {
	case r.Interrupted:
		return 130
	case err != nil:
		return fs.Fail(err)
	case r.Checks.Violations() > 0:
		return fs.Fail(fmt.Errorf("%d violations", r.Checks.Violations()))
	}
	return 0
}
