package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

func conformCommand() command {
	return command{
		summary: "differential conformance of the translation core against QEMU 10",
		usage:   "nestmmu conform [--seed N] [--cases M] [--out DIR] [--instances K] [-q] | nestmmu conform --replay FILE|-",
		doc: `
Generates random translation scenarios from a seed, runs each on the model
and on QEMU 10 (qemu-system-aarch64, bare metal at EL2), and compares
PAR_EL1, the exceptions AT takes and the watched descriptors. Differences
that match a known QEMU deviation from the architecture are counted apart
(docs/CONFORMANCE.md). --out DIR writes one minimized at-json reproducer
per mismatch class (DIR is created only when there is one). --replay runs
one at-json document (docs/AT-JSON.md) on both sides and prints both
answers per operation; a document whose walks read outside the oracle
machine's memory map (the runner's reserved RAM, or flash and devices
outside RAM) is refused with the reason, since the answers could not be
compared. Exit status: 0 when every difference is explained, 1 on
unexplained mismatches, 2 on usage or setup errors.`,
		examples: []example{
			{args: "conform --seed 1 --cases 200", qemu: true, want: []string{"cases 200,", "unexplained mismatches: 0"}},
			{args: "conform --replay conform/testdata/mismatch-64k-oa-high-bits.json", qemu: true,
				note: "a recorded QEMU deviation, replayed on both sides", want: []string{"op 0 AT S1E1R 0xd0000: model", "explained:"}},
		},
		run: cmdConform,
	}
}

// cmdConform runs the differential conformance harness (conform.Run) or
// replays one at-json case on both sides.
func cmdConform(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("conform", stdout, stderr)
	seed := fs.Int64("seed", 1, "generator seed")
	cases := fs.Int("cases", 1000, "number of generated cases")
	out := fs.String("out", "", "`DIR` for minimized at-json reproducers (mismatch-*.json), created when one is written")
	replay := fs.String("replay", "", "run one at-json `FILE` (or - for standard input) on the model and QEMU instead of generating")
	instances := fs.Int("instances", 0, "parallel QEMU processes (0: one per CPU)")
	quiet := fs.Bool("q", false, "do not print the coverage counters")
	if code, done := fs.Parse(args); done {
		return code
	}
	if *cases < 0 || *instances < 0 {
		return fs.Fail(usagef("--cases %d, --instances %d: want counts >= 0", *cases, *instances))
	}
	var c qemu.Case
	if *replay != "" {
		// The case is read and checked before QEMU is looked for.
		r, done, err := openInput(*replay, stdin)
		if err != nil {
			return fs.Fail(badInput(err))
		}
		c, err = conform.ParseCase(r)
		done()
		if err != nil {
			return fs.Fail(badInput(fmt.Errorf("%s: %w", *replay, err)))
		}
		why, err := conform.OutsideMemoryMap(&c)
		if err == nil && why != "" {
			err = fmt.Errorf("%s: case not replayed: %s", *replay, why)
		}
		if err != nil {
			return fs.Fail(badInput(err))
		}
	}
	o, err := qemu.New(qemu.Options{Instances: *instances})
	if err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			err = fmt.Errorf("%w (install qemu-system-arm 10 or set NESTMMU_QEMU)", err)
		}
		fs.Fail(err)
		return 2
	}
	defer o.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *replay != "" {
		n, err := conform.Replay(ctx, o, c, stdout)
		if err != nil {
			fs.Fail(err)
			return 2
		}
		if n > 0 {
			return 1
		}
		return 0
	}
	rep, err := conform.Run(ctx, conform.Options{Seed: *seed, Cases: *cases, OutDir: *out, Log: stdout, Oracle: o})
	if err != nil {
		fs.Fail(err)
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
