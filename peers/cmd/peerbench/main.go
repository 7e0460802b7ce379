//go:build amd64

// Command peerbench measures host/s2pt against gVisor's page tables
// (peers.Rows), both sides interleaved in thread CPU time, and prints the
// ratios: comparison 1 of `nestmmu bench`, which runs it (go run) so that
// gVisor stays out of the main module.
//
// Usage: go run ./cmd/peerbench [-json] [-rounds N] [-batch D]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nestmmu/nestmmu/bench"
	"github.com/nestmmu/nestmmu/peers"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	rounds := fs.Int("rounds", 9, "interleaved rounds per row")
	batch := fs.Duration("batch", 20*time.Millisecond, "CPU time of one side's batch")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "peerbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *rounds < 1 || *batch <= 0 {
		fmt.Fprintln(stderr, "peerbench: -rounds and -batch must be positive")
		return 2
	}
	res, err := peers.Compare(bench.Config{Rounds: *rounds, Batch: *batch}, 64<<20)
	if err != nil {
		fmt.Fprintf(stderr, "peerbench: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "peerbench: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "%-48s %12s %12s %7s %6s\n", "operation", "nestmmu ns", "gVisor ns", "ratio", "goal")
	for _, r := range res {
		goal := "-"
		if r.Goal != 0 {
			goal = fmt.Sprintf("%.2f", r.Goal)
			if !r.Met {
				goal += " missed"
			}
		}
		fmt.Fprintf(stdout, "%-48s %12.1f %12.1f %7.2f %6s\n", r.Name, r.Nestmmu, r.Gvisor, r.Ratio, goal)
	}
	return 0
}
