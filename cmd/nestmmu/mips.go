package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/mips/scenario"
)

// cmdMIPS runs a MIPS trap-and-emulate guest workload and reports host TLB
// refills by path, exceptions injected, flushes and their cost.
func cmdMIPS(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c := scenario.Default()
	fs := flag.NewFlagSet("mips", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "nestmmu mips: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nestmmu mips: "+format+"\n", a...)
		return 2
	}
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
		fmt.Fprintf(stderr, "nestmmu mips: %v\n", err)
		return 2
	}
	return 0
}
