package main

import (
	"io"

	"github.com/nestmmu/nestmmu/mips/scenario"
)

func mipsCommand() command {
	return command{
		summary: "run a MIPS trap-and-emulate guest workload and report refills, exceptions, flushes",
		usage:   "nestmmu mips [flags]",
		doc: `
Runs a random guest OS workload (processes, working sets, loads and stores)
on the MIPS trap-and-emulate engine and reports host TLB refills by path,
guest exceptions injected, flushes and their cost; --compare also runs the
scheme before the GVA page-table series and checks that the guest saw the
same values. docs/MIPS.md describes the model.`,
		examples: []example{
			{args: "mips -ops 20000 -procs 4", want: []string{"refills by path", "the guest observed identical behaviour under both schemes"}},
		},
		run: cmdMIPS,
	}
}

// cmdMIPS runs a MIPS trap-and-emulate guest workload and reports host TLB
// refills by path, exceptions injected, flushes and their cost.
func cmdMIPS(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := scenario.Default()
	fs := newFlags("mips", stdout, stderr)
	seed := fs.Uint64("seed", c.Guest.Seed, "workload seed")
	fs.IntVar(&c.Accesses, "ops", c.Accesses, "user memory accesses to run")
	fs.IntVar(&c.Guest.Processes, "procs", c.Guest.Processes, "guest processes (1-250)")
	fs.IntVar(&c.Guest.WorkingSet, "ws", c.Guest.WorkingSet, "working set per process, in pages")
	page := fs.Uint("page", uint(c.Guest.PageSize), "page size in bytes (4096, 16384 or 65536)")
	ram := fs.Uint("ram", uint(c.Guest.RAMSize>>20), "guest RAM in MiB")
	fs.IntVar(&c.HostTLBEntries, "host-tlb", c.HostTLBEntries, "host TLB entries")
	fs.IntVar(&c.Guest.Quantum, "quantum", c.Guest.Quantum, "accesses per time slice")
	fs.IntVar(&c.Guest.StorePercent, "stores", c.Guest.StorePercent, "percent of accesses that are stores")
	fs.IntVar(&c.Guest.RandomPercent, "random", c.Guest.RandomPercent, "percent of random (vs sequential) page choices")
	fs.BoolVar(&c.Compare, "compare", c.Compare, "also run the pre-series scheme and compare")
	fs.BoolVar(&c.DirtyLog, "dirty-log", c.DirtyLog, "Linux 4.11 dirty logging (pages mapped clean until written) instead of the series' own semantics")
	if code, done := fs.Parse(args); done {
		return code
	}
	bad := func(format string, a ...any) int { return fs.Fail(usagef(format, a...)) }
	switch {
	case *page != 4096 && *page != 16384 && *page != 65536:
		return bad("-page %d: want 4096, 16384 or 65536", *page)
	case *ram < 1 || *ram > 512:
		return bad("-ram %d: want 1 to 512 MiB", *ram)
	case c.Accesses < 1:
		return bad("-ops %d: want at least 1", c.Accesses)
	case c.HostTLBEntries < 1 || c.HostTLBEntries > 1024:
		return bad("-host-tlb %d: want 1 to 1024", c.HostTLBEntries)
	case c.Guest.StorePercent < 0 || c.Guest.StorePercent > 100:
		return bad("-stores %d: want 0 to 100", c.Guest.StorePercent)
	case c.Guest.RandomPercent < 0 || c.Guest.RandomPercent > 100:
		return bad("-random %d: want 0 to 100", c.Guest.RandomPercent)
	}
	c.Guest.Seed = *seed
	c.Guest.PageSize = uint32(*page)
	c.Guest.RAMSize = uint32(*ram) << 20
	if err := scenario.Report(c, stdout); err != nil {
		return fs.Fail(badInput(err))
	}
	return 0
}
