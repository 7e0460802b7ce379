package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nestmmu/nestmmu/bench"
)

func benchCommand() command {
	return command{
		summary: "measure nestmmu against its peers and goals, side by side, as ratios",
		usage:   "nestmmu bench [--json] [--only LIST] [--rounds N] [--batch D] [--qemu-cases N] [--peers DIR]",
		doc: `
Runs, in one invocation, the comparisons of docs/PERFORMANCE.md and prints
each with its ratio and goal:
  peers   host/s2pt against gVisor's page tables (map, unmap and look up
          4K pages and blocks); gVisor stays out of the main module: this
          runs "go run ./cmd/peerbench -json" in the peers module (--peers,
          default: the peers directory of the source tree above the working
          directory), so it needs the go tool and the source tree
  at      AT throughput against QEMU 10 on the same generated cases (runs
          of n cases minus a run of none, so QEMU's boot cancels)
  pe      simulated guest accesses on the modelled PE: TLB hit, TLB miss
          with a 4-level-over-4-level walk, stage-2 fault
  tables  stage-2 table bytes per GiB against the architectural minimum
  mips    MIPS host TLB refill through the GVA table against the linear
          guest-TLB path
Two implementations are timed interleaved (rounds of one batch each) in
thread CPU time; the ratio is the median of the rounds' ratios. A
comparison that cannot run here (no QEMU, no peers module) says why; the
others still run. --json prints the machine, the command and every row.`,
		examples: []example{
			{args: "bench --only tables", want: []string{"table bytes per GiB", "4K granule, 48-bit IPA, 4K pages", "<= 1.01 met"}},
			{args: "bench --only mips --rounds 3 --batch 2ms", want: []string{"refill of a guest-mapped page", "GVA table"}},
			{args: "bench --json --only tables", want: []string{`"title"`, `"goal_met": true`}},
		},
		run: cmdBench,
	}
}

var benchNames = []string{"peers", "at", "pe", "tables", "mips"}

// cmdBench runs the comparisons.
func cmdBench(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("bench", stdout, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	only := fs.String("only", strings.Join(benchNames, ","), "comma-separated `LIST` of comparisons: "+strings.Join(benchNames, ", "))
	rounds := fs.Int("rounds", 9, "interleaved rounds per measurement")
	batch := fs.Duration("batch", 20*time.Millisecond, "CPU time of one side's batch in a round")
	cases := fs.Int("qemu-cases", 1000, "generated cases for the AT comparison")
	peersDir := fs.String("peers", "", "the peers module `DIR` (default: found above the working directory)")
	if code, done := fs.Parse(args); done {
		return code
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		n = strings.TrimSpace(n)
		if !contains(benchNames, n) {
			return fs.Fail(usagef("--only: unknown comparison %q (want some of %s)", n, strings.Join(benchNames, ", ")))
		}
		want[n] = true
	}
	switch {
	case *rounds < 1 || *rounds > 1000:
		return fs.Fail(usagef("--rounds %d: want 1 to 1000", *rounds))
	case *batch <= 0 || *batch > time.Minute:
		return fs.Fail(usagef("--batch %v: want a positive duration up to a minute", *batch))
	case *cases < 1 || *cases > 100000:
		return fs.Fail(usagef("--qemu-cases %d: want 1 to 100000", *cases))
	}
	cfg := bench.Config{Rounds: *rounds, Batch: *batch}
	report := struct {
		Machine     bench.Machine      `json:"machine"`
		Command     string             `json:"command"`
		Comparisons []bench.Comparison `json:"comparisons"`
	}{Machine: bench.ThisMachine(), Command: strings.Join(append([]string{"nestmmu", "bench"}, args...), " ")}
	run := func(name string, f func() (bench.Comparison, error)) error {
		if !want[name] {
			return nil
		}
		c, err := f()
		if err != nil && !errors.Is(err, bench.ErrUnavailable) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err != nil && c.Unavailable == "" {
			c.Unavailable = err.Error()
		}
		report.Comparisons = append(report.Comparisons, c)
		return nil
	}
	steps := []struct {
		name string
		f    func() (bench.Comparison, error)
	}{
		{"peers", func() (bench.Comparison, error) { return peerComparison(*peersDir, *rounds, *batch) }},
		{"at", func() (bench.Comparison, error) { return bench.ATThroughput(context.Background(), *cases, 1) }},
		{"pe", func() (bench.Comparison, error) { return bench.PEAccesses(cfg) }},
		{"tables", bench.TableBytes},
		{"mips", func() (bench.Comparison, error) { return bench.MIPSRefill(cfg) }},
	}
	for _, s := range steps {
		if err := run(s.name, s.f); err != nil {
			return fs.Fail(err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return fs.Fail(err)
		}
		return 0
	}
	m := report.Machine
	fmt.Fprintf(stdout, "%s\n%s, %s, %d CPUs, %s %s\n", report.Command, m.Date, m.CPU, m.CPUs, m.Go, m.OS)
	for i, c := range report.Comparisons {
		fmt.Fprintf(stdout, "\n%d. %s\n   %s\n", i+1, c.Title, c.Method)
		if c.Unavailable != "" {
			fmt.Fprintf(stdout, "   unavailable: %s\n", c.Unavailable)
			continue
		}
		for _, r := range c.Rows {
			fmt.Fprintf(stdout, "   %-58s %s %s", r.Name, value(r.A, r.ANs, r.Unit), value(r.B, r.BNs, r.Unit))
			if r.Ratio != 0 {
				fmt.Fprintf(stdout, "  ratio %.2f", r.Ratio)
			}
			if r.Goal != "" {
				met := "met"
				if !r.Met {
					met = "MISSED"
				}
				fmt.Fprintf(stdout, "  goal %s %s", r.Goal, met)
			}
			fmt.Fprintln(stdout)
			if r.Note != "" {
				fmt.Fprintf(stdout, "   %58s %s\n", "", r.Note)
			}
		}
	}
	return 0
}

func value(name string, v float64, unit string) string {
	if name == "" {
		return ""
	}
	f := "%s %.1f"
	if v >= 1000 {
		f = "%s %.0f"
	}
	s := fmt.Sprintf(f, name, v)
	if unit != "" {
		s += " " + unit
	}
	return s + ";"
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// peerComparison runs comparison 1 in the peers module, which alone
// depends on gVisor: go run ./cmd/peerbench -json there.
func peerComparison(dir string, rounds int, batch time.Duration) (bench.Comparison, error) {
	c := bench.Comparison{Title: "host/s2pt against gVisor's page tables (gvisor.dev/gvisor/pkg/ring0/pagetables)",
		Method: "the peers module's cmd/peerbench: 48-bit IPA, 4K granule on both sides; interleaved batches, thread CPU time; neither side takes a lock (gVisor's callers synchronize its tables; s2pt is given an MMU lock its caller holds)"}
	if dir == "" {
		dir = findPeers()
	}
	goTool, err := exec.LookPath("go")
	if dir == "" || err != nil {
		c.Unavailable = "needs the source tree's peers module and the go tool (--peers DIR)"
		return c, bench.ErrUnavailable
	}
	cmd := exec.Command(goTool, "run", "./cmd/peerbench", "-json", "-rounds", fmt.Sprint(rounds), "-batch", batch.String())
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return c, fmt.Errorf("go run ./cmd/peerbench in %s: %v: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	var res []struct {
		Name    string  `json:"name"`
		Nestmmu float64 `json:"nestmmu_ns_per_op"`
		Gvisor  float64 `json:"gvisor_ns_per_op"`
		Ratio   float64 `json:"ratio"`
		Goal    float64 `json:"goal"`
		Met     bool    `json:"goal_met"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return c, fmt.Errorf("peerbench output: %w", err)
	}
	for _, r := range res {
		row := bench.Row{Name: r.Name, A: "nestmmu", ANs: r.Nestmmu, B: "gVisor", BNs: r.Gvisor, Unit: "ns/op", Ratio: r.Ratio, Met: r.Met}
		if r.Goal != 0 {
			row.Goal = fmt.Sprintf("<= %.2f", r.Goal)
		}
		c.Rows = append(c.Rows, row)
	}
	return c, nil
}

// findPeers returns the peers module directory of the source tree that
// holds the working directory, or "".
func findPeers() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		mod, err := os.ReadFile(filepath.Join(d, "peers", "go.mod"))
		if err == nil && strings.Contains(string(mod), "module github.com/nestmmu/nestmmu/peers") {
			return filepath.Join(d, "peers")
		}
		up := filepath.Dir(d)
		if up == d {
			return ""
		}
		d = up
	}
}
