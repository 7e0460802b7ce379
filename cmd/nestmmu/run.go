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

const runHelp = `usage: nestmmu run [flags] [FILE]

Runs a simulation scenario (FILE, YAML; see docs/USAGE.md and examples/),
or the default scenario without one: the host hypervisor (L0) with two VMs
running guest kernels and mixed workloads under host memory pressure, and
a MIPS trap-and-emulate guest. Prints the report: accesses simulated and
per second, TLB hit rates, faults by kind and level, exits, TLB
invalidations, page-table memory, the walk-length histogram, and the
integrity and invariant checks (violations must be 0).

A progress bar is drawn on a terminal. Ctrl-C stops the run and prints the
report of what ran.

Exit status: 0 when the run completed with no violation, 1 on a violation
or an error of the simulated system, 2 for bad arguments or an invalid
scenario, 130 when interrupted.

flags:
`

const runExample = `
examples:
  nestmmu run
  nestmmu run --plots plots examples/tlb-reach.yaml
  nestmmu run --json --accesses 2M examples/churn.yaml > churn.json
`

// parseInterleaved parses flags that may come before or after the
// positional arguments, and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// runFlags are the flags run and compare share.
type runFlags struct {
	accesses string
	seed     uint64
	seedSet  bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.accesses, "accesses", "", "override the scenario's duration in user accesses (e.g. 5M)")
	fs.Func("seed", "override the scenario's seed", func(s string) error {
		_, err := fmt.Sscan(s, &f.seed)
		f.seedSet = err == nil
		return err
	})
}

// load reads the scenario (or the default) and applies the overrides.
func (f *runFlags) load(pos []string) (*scenario.Scenario, error) {
	var s *scenario.Scenario
	switch len(pos) {
	case 0:
		s = scenario.Default()
	case 1:
		var err error
		if s, err = scenario.Load(pos[0]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unexpected argument %q (one scenario file at most)", pos[1])
	}
	if f.accesses != "" {
		var c scenario.Count
		if err := c.UnmarshalText([]byte(f.accesses)); err != nil || c == 0 {
			return nil, fmt.Errorf("--accesses %q: want a positive count such as 5000000 or 5M", f.accesses)
		}
		s.Accesses = c
	}
	if f.seedSet {
		s.Seed = f.seed
	}
	return s, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress returns a progress callback drawing a bar on stderr when it is
// a terminal, and a function that clears it.
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
	// The simulator keeps large, long-lived heaps (guest memory shadows):
	// collect less often.
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
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	plots := fs.String("plots", "", "write the figures (SVG and PNG) into `DIR`")
	var rf runFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runHelp)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), runExample)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	s, err := rf.load(pos)
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu run: %v\n", err)
		return 2
	}
	r, err := simulate(s, stderr, "")
	if r == nil {
		fmt.Fprintf(stderr, "nestmmu run: %v\n", err)
		return 1
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
		fmt.Fprintf(stderr, "nestmmu run: %v\n", err)
		return 1
	case r.Checks.Violations() > 0:
		fmt.Fprintf(stderr, "nestmmu run: %d violations\n", r.Checks.Violations())
		return 1
	}
	return 0
}
