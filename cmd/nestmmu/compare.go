package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/sim"
)

func compareCommand() command {
	doc := `
Runs a scenario (FILE, or the default) both ways for each variant, on the
same seed, and prints the figures side by side with their ratios; with
--plots, a bar chart of the ratios. Without --variants every variant the
scenario supports is run. The variants:
`
	for _, v := range sim.Variants {
		doc += fmt.Sprintf("  %-9s %s (%s against %s)\n", v.Name, v.Doc, v.Sides[0], v.Sides[1])
	}
	return command{
		summary: "run a scenario both ways for each design-choice variant and print the ratios",
		usage:   "nestmmu compare [flags] [FILE]",
		doc:     doc,
		examples: []example{
			{args: "compare --variants blocks --accesses 300K examples/blocks.yaml", want: []string{"pages / blocks", "stage-2 faults"}},
			{args: "compare --variants mips-gva --accesses 200K --plots /tmp/nestmmu-plots examples/mips.yaml",
				want: []string{"linear-scan / gva-tables", "host TLB refills, slow path", "/tmp/nestmmu-plots/compare.png"}},
		},
		run: cmdCompare,
	}
}

// cmdCompare runs the variants of a scenario side by side.
func cmdCompare(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("compare", stdout, stderr)
	fs.Args(0, 1)
	names := fs.String("variants", "", "comma-separated variants to run (default: every one the scenario supports)")
	jsonOut := fs.Bool("json", false, "print the comparisons as JSON")
	plots := fs.String("plots", "", "write the ratio plot (SVG and PNG) into `DIR`")
	var rf runFlags
	rf.register(fs)
	if code, done := fs.Parse(args); done {
		return code
	}
	base, err := rf.load(fs)
	if err != nil {
		return fs.Fail(err)
	}
	var vs []*sim.Variant
	if *names == "" {
		for i := range sim.Variants {
			v := &sim.Variants[i]
			if v.Apply(clone(base), 0) == nil {
				vs = append(vs, v)
			}
		}
	} else {
		for _, name := range strings.Split(*names, ",") {
			v, ok := sim.FindVariant(strings.TrimSpace(name))
			if !ok {
				return fs.Fail(usagef("--variants: unknown variant %q", name))
			}
			if err := v.Apply(clone(base), 0); err != nil {
				return fs.Fail(badInput(fmt.Errorf("variant %s: %w", v.Name, err)))
			}
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return fs.Fail(badInput(fmt.Errorf("no variant applies to scenario %q", base.Name)))
	}
	var cs []*report.Comparison
	status := 0
	for _, v := range vs {
		c := &report.Comparison{Variant: v.Name, Doc: v.Doc, Sides: v.Sides}
		for side := 0; side < 2; side++ {
			s := clone(base)
			_ = v.Apply(s, side)
			r, err := simulate(s, stderr, v.Name+": "+v.Sides[side])
			if r == nil || err != nil {
				return fs.Fail(fmt.Errorf("%s (%s): %w", v.Name, v.Sides[side], err))
			}
			if r.Interrupted {
				fmt.Fprintf(stderr, "nestmmu compare: interrupted\n")
				return 130
			}
			c.Reports[side], c.Checks[side], c.Elapsed[side] = r, r.Checks, r.Elapsed
			if r.Checks.Violations() > 0 {
				status = 1
			}
		}
		for _, m := range v.Metrics {
			a, b := m.Get(c.Reports[0]), m.Get(c.Reports[1])
			c.Rows = append(c.Rows, report.CompareRow{Metric: m.Name, A: a, B: b, Ratio: report.Ratio(a, b)})
		}
		cs = append(cs, c)
	}
	if *jsonOut {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		if err := e.Encode(jsonComparisons(cs)); err != nil {
			return fs.Fail(err)
		}
	} else {
		fmt.Fprintf(stdout, "nestmmu compare: %s, seed %d, %d user accesses per run\n", base.Name, base.Seed, uint64(base.Accesses))
		for _, c := range cs {
			fmt.Fprintln(stdout)
			if err := c.WriteText(stdout); err != nil {
				return fs.Fail(err)
			}
		}
	}
	if *plots != "" {
		files, err := report.WriteComparisonPlots(cs, *plots)
		if err != nil {
			return fs.Fail(err)
		}
		if !*jsonOut {
			fmt.Fprintf(stdout, "\nplots: %v\n", files)
		}
	}
	if status != 0 {
		fmt.Fprintf(stderr, "nestmmu compare: a run had violations\n")
	}
	return status
}

// jsonComparisons replaces NaN ratios (JSON has none) by null.
func jsonComparisons(cs []*report.Comparison) any {
	var out []map[string]any
	for _, c := range cs {
		var rows []map[string]any
		for _, r := range c.Rows {
			m := map[string]any{"metric": r.Metric, "a": r.A, "b": r.B, "ratio": nil}
			if r.Ratio == r.Ratio {
				m["ratio"] = r.Ratio
			}
			rows = append(rows, m)
		}
		out = append(out, map[string]any{"variant": c.Variant, "doc": c.Doc, "sides": c.Sides, "rows": rows,
			"checks": c.Checks, "elapsed_seconds": c.Elapsed})
	}
	return out
}

// clone deep-copies a scenario (its slices), so a variant's changes stay
// in its own run.
func clone(s *scenario.Scenario) *scenario.Scenario {
	c := *s
	c.VMs = append([]scenario.VM(nil), s.VMs...)
	for i := range c.VMs {
		c.VMs[i].Procs = append([]scenario.Process(nil), s.VMs[i].Procs...)
	}
	c.MIPS = append([]scenario.MIPS(nil), s.MIPS...)
	return &c
}
