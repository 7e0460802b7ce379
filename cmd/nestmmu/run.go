package main

import (
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/demo"
)

// cmdRun is the main job. Until the simulator exists it demonstrates the
// translation core end to end on a two-stage machine.
func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("run", stdout, stderr)
	if code, done := fs.Parse(args); done {
		return code
	}
	m, err := demo.TwoStage()
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu run: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "nestmmu run: a guest's 4-level stage-1 tables (4K granule, 48-bit VA) live in its own")
	fmt.Fprintln(stdout, "IPA space, over a 4-level stage 2 (48-bit IPA). Every AT below is executed at EL2 on")
	fmt.Fprintln(stdout, "the modelled MMU; each walk is shown step by step.")
	fmt.Fprintln(stdout)
	refs, err := demo.WalkCost(m, demo.VAData)
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu run: %v\n", err)
		return 1
	}
	m.Explain(stdout)
	fmt.Fprintf(stdout, "\ncost of one uncached two-stage translation of %#x: %d descriptor reads\n", uint64(demo.VAData), refs)
	fmt.Fprintf(stdout, "(a 4-level stage 1 over a 4-level stage 2: (4+1)*(4+1)-1 = 24)\n")
	return 0
}
