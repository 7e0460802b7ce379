package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// cmdConform runs the differential conformance harness (conform.Run) or
// replays one at-json case on both sides. Exit status: 0 when every
// difference is explained, 1 on unexplained mismatches, 2 on usage or
// setup errors.
func cmdConform(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "generator seed")
	cases := fs.Int("cases", 1000, "number of generated cases")
	out := fs.String("out", "", "directory for minimized at-json reproducers (mismatch-*.json); empty writes none")
	replay := fs.String("replay", "", "run one at-json FILE (or - for standard input) on the model and QEMU instead of generating")
	instances := fs.Int("instances", 0, "parallel QEMU processes (0: one per CPU)")
	quiet := fs.Bool("q", false, "do not print the coverage counters")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "nestmmu conform: unexpected argument %q; usage: nestmmu conform [--seed N] [--cases M] [--out DIR] [--replay FILE]\n", fs.Arg(0))
		return 2
	}
	if *cases < 0 || *instances < 0 {
		fmt.Fprintf(stderr, "nestmmu conform: --cases %d, --instances %d: want counts >= 0\n", *cases, *instances)
		return 2
	}
	o, err := qemu.New(qemu.Options{Instances: *instances})
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu conform: %v\n", err)
		if errors.Is(err, qemu.ErrNotFound) {
			fmt.Fprintln(stderr, "nestmmu conform: install qemu-system-arm 10 or set NESTMMU_QEMU")
		}
		return 2
	}
	defer o.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *replay != "" {
		r, done, err := openInput(*replay, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "nestmmu conform: %v\n", err)
			return 2
		}
		defer done()
		c, err := conform.ParseCase(r)
		if err != nil {
			fmt.Fprintf(stderr, "nestmmu conform: %s: %v\n", *replay, err)
			return 2
		}
		n, err := conform.Replay(ctx, o, c, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "nestmmu conform: %v\n", err)
			return 2
		}
		if n > 0 {
			return 1
		}
		return 0
	}
	rep, err := conform.Run(ctx, conform.Options{Seed: *seed, Cases: *cases, OutDir: *out, Log: stdout, Oracle: o})
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu conform: %v\n", err)
		return 2
	}
	if *quiet {
		rep.Coverage = conform.NewCoverage()
	}
	rep.WriteSummary(stdout)
	if rep.Unexplained() > 0 {
		return 1
	}
	return 0
}
