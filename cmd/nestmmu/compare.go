package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/sim"
)

func compareHelp() string {
	var b strings.Builder
	b.WriteString(`usage: nestmmu compare [flags] [FILE]

Runs a scenario (FILE, or the default) both ways for each variant, on the
same seed, and prints the figures side by side with their ratios; with
--plots, a bar chart of the ratios. Variants:
`)
	for _, v := range sim.Variants {
		fmt.Fprintf(&b, "  %-10s %s (%s vs %s)\n", v.Name, v.Doc, v.Sides[0], v.Sides[1])
	}
	b.WriteString(`
Without --variants every variant the scenario supports is run. Exit status
as for run.

flags:
`)
	return b.String()
}

const compareExample = `
examples:
  nestmmu compare --accesses 4M
  nestmmu compare --variants blocks --plots plots examples/blocks.yaml
  nestmmu compare --variants mips-gva examples/mips.yaml
`

// cmdCompare runs the variants of a scenario side by side.
func cmdCompare(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := fs.String("variants", "", "comma-separated variants to run (default: every one the scenario supports)")
	jsonOut := fs.Bool("json", false, "print the comparisons as JSON")
	plots := fs.String("plots", "", "write the ratio plot (SVG and PNG) into `DIR`")
	var rf runFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), compareHelp())
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), compareExample)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	base, err := rf.load(pos)
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu compare: %v\n", err)
		return 2
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
				fmt.Fprintf(stderr, "nestmmu compare: --variants: unknown variant %q (see nestmmu compare -h)\n", name)
				return 2
			}
			if err := v.Apply(clone(base), 0); err != nil {
				fmt.Fprintf(stderr, "nestmmu compare: variant %s: %v\n", v.Name, err)
				return 2
			}
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		fmt.Fprintf(stderr, "nestmmu compare: no variant applies to scenario %q\n", base.Name)
		return 2
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
				fmt.Fprintf(stderr, "nestmmu compare: %s (%s): %v\n", v.Name, v.Sides[side], err)
				return 1
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
			return 1
		}
	} else {
		fmt.Fprintf(stdout, "nestmmu compare: %s, seed %d, %d user accesses per run\n", base.Name, base.Seed, uint64(base.Accesses))
		for _, c := range cs {
			fmt.Fprintln(stdout)
			if err := c.WriteText(stdout); err != nil {
				return 1
			}
		}
	}
	if *plots != "" {
		files, err := report.WriteComparisonPlots(cs, *plots)
		if err != nil {
			fmt.Fprintf(stderr, "nestmmu compare: %v\n", err)
			return 1
		}
		if !*jsonOut {
			fmt.Fprintf(stdout, "\nplots: %v\n", files)
		}
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
