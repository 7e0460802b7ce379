package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/virt"
)

func execCommand() command {
	return command{
		summary: "run a bare-metal AArch64 ELF on the modelled PE (a QEMU -M virt shaped machine)",
		usage:   "nestmmu exec [--el 2|1] [--max-insns N] [--seed N] [--seeds M] [--strict] [--stats] ELF",
		doc: `
Loads an AArch64 executable ELF at its physical addresses into a machine
shaped like QEMU's -M virt (RAM at 0x40000000, a PL011 UART at 0x09000000,
PSCI SYSTEM_OFF/SYSTEM_RESET through SMC with EL2, through HVC without),
enters it as QEMU's -kernel enters a bare-metal image (at the entry point,
at EL2 — or EL1 with --el 1 — with the MMU off) and runs it on the A64
interpreter over the modelled PE until PSCI SYSTEM_OFF, printing what it
writes to the UART. Every fetch, load and store goes through the PE's TLB
and translation walk (docs/A64.md). --seed writes a 64-bit value at the
program's symbol nestmmu_seed and --seeds at nestmmu_seeds, as the test
programs' torture program reads them; --qemu-deviations reproduces QEMU
10.0's known deviations from the architecture, to predict its output. --strict names on standard error
every instruction taken as UNDEFINED because the interpreter does not
implement it. Exit status: 0 after SYSTEM_OFF or SYSTEM_RESET; 1 when the
budget is exhausted or the PE can make no progress (its PC outside
memory, an exception loop); 2 on usage errors and a bad ELF (not an
AArch64 executable, a segment outside RAM).`,
		examples: []example{
			{args: "exec testdata/a64/hello.elf", want: []string{"hello from EL2"}},
			{args: "exec --el 1 testdata/a64/hello.elf", note: "no EL2: entered at EL1, PSCI through HVC", want: []string{"hello from EL1"}},
			{args: "exec --seed 7 --seeds 3 testdata/a64/torture.elf", note: "three scenarios of the seed-driven torture program", want: []string{"seed 7", "seed 9", "torture done"}},
		},
		run: cmdExec,
	}
}

// cmdExec runs an ELF on the virt board.
func cmdExec(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("exec", stdout, stderr)
	fs.Args(1, 1)
	el := fs.Uint("el", 2, "entry exception level: 2 (EL2 implemented) or 1 (no EL2)")
	maxInsns := fs.Uint64("max-insns", 1_000_000_000, "instruction budget")
	seed := fs.Number("seed", "value written at the program's symbol nestmmu_seed")
	seeds := fs.Number("seeds", "value written at the program's symbol nestmmu_seeds")
	strict := fs.Bool("strict", false, "name every unimplemented instruction on standard error")
	stats := fs.Bool("stats", false, "print instruction, exception and PE counts on standard error")
	qemuDev := fs.Bool("qemu-deviations", false, "reproduce QEMU 10.0's known deviations from the architecture (docs/A64.md), to predict its output")
	if code, done := fs.Parse(args); done {
		return code
	}
	if *el != 1 && *el != 2 {
		return fs.Fail(usagef("--el %d: want 2 or 1", *el))
	}
	if *maxInsns == 0 {
		return fs.Fail(usagef("--max-insns 0: want at least 1"))
	}
	cfg := virt.Config{EL: uint8(*el), Output: stdout}
	if *strict {
		cfg.Strict = func(pc mem.VA, w uint32, why string) {
			fmt.Fprintf(stderr, "nestmmu exec: UNDEFINED at PC %#x: %08x %s\n", uint64(pc), w, why)
		}
	}
	b, err := virt.New(cfg)
	if err != nil {
		return fs.Fail(err)
	}
	if *qemuDev {
		b.PE.Deviations = cpu.DeviationDeviceUnaligned | cpu.DeviationATSetsDirty | cpu.DeviationS1PTWWnR
	}
	path := fs.Arg(0)
	img, err := b.LoadFile(path)
	if err != nil {
		return fs.Fail(badInput(err))
	}
	for _, s := range []struct {
		name string
		f    *numberFlag
	}{{"nestmmu_seed", seed}, {"nestmmu_seeds", seeds}} {
		if s.f.set {
			if err := b.SetSymbol(img, s.name, s.f.v); err != nil {
				return fs.Fail(badInput(fmt.Errorf("%s: %v", path, err)))
			}
		}
	}
	err = b.Run(*maxInsns)
	if *stats {
		printExecStats(stderr, b)
	}
	switch {
	case err == nil && b.Reset:
		fmt.Fprintln(stderr, "nestmmu exec: PSCI SYSTEM_RESET")
		return 0
	case err == nil:
		return 0
	case errors.Is(err, virt.ErrBudget):
		return fs.Fail(fmt.Errorf("%v (raise --max-insns)", err))
	}
	return fs.Fail(err)
}

func printExecStats(w io.Writer, b *virt.Board) {
	c, s := b.CPU, b.PE.Stats
	fmt.Fprintf(w, "instructions %d, exceptions %d; PE: loads %d, stores %d, fetches %d, TLB hits %d, walks %d, TLBIs %d, ATs %d\n",
		c.Retired, c.Exceptions, s.Loads, s.Stores, s.Fetches, s.TLBHits, s.Walks, s.TLBIs, s.ATs)
}
