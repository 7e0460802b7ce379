package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/virt"
)

func execCommand() command {
	return command{
		summary: "run a bare-metal AArch64 ELF on the modelled PE (a QEMU -M virt shaped machine)",
		usage:   "nestmmu exec [--el 2|1 | --nested [--nv|--nv2]] [--max-insns N] [--seed N] [--seeds M] [--strict] [--stats] ELF",
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
implement it. --nested runs an EL2 program as a guest hypervisor (L1):
at virtual EL2 in a VM of nestmmu's host hypervisor L0 (host/kvm and
host/nested), with FEAT_NV (--nv, the default) or FEAT_NV2 (--nv2); its
EL2 register accesses trap or reach the VNCR page, its guests run on
L0's shadow stage 2, and its UART and PSCI calls go through L0
(docs/A64.md). Exit status: 0 after SYSTEM_OFF or SYSTEM_RESET; 1 when the
budget is exhausted or the PE can make no progress (its PC outside
memory, an exception loop); 2 on usage errors and a bad ELF (not an
AArch64 executable, a segment outside RAM).`,
		examples: []example{
			{args: "exec testdata/a64/hello.elf", want: []string{"hello from EL2"}},
			{args: "exec --el 1 testdata/a64/hello.elf", note: "no EL2: entered at EL1, PSCI through HVC", want: []string{"hello from EL1"}},
			{args: "exec --nested --nv2 testdata/a64/tlbi.elf", note: "the same binary as a guest hypervisor under L0 with FEAT_NV2", want: []string{"tlbi done"}},
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
	nest := fs.Bool("nested", false, "run the EL2 program as a guest hypervisor at virtual EL2 under nestmmu's L0")
	nv := fs.Bool("nv", false, "with --nested: FEAT_NV, every EL2 register access traps (the default)")
	nv2 := fs.Bool("nv2", false, "with --nested: FEAT_NV2, EL2 register accesses go to the VNCR page")
	if code, done := fs.Parse(args); done {
		return code
	}
	if *el != 1 && *el != 2 {
		return fs.Fail(usagef("--el %d: want 2 or 1", *el))
	}
	switch {
	case (*nv || *nv2) && !*nest:
		return fs.Fail(usagef("--nv and --nv2 go with --nested"))
	case *nv && *nv2:
		return fs.Fail(usagef("--nv and --nv2 together: choose one"))
	case *nest && *el != 2:
		return fs.Fail(usagef("--nested with --el %d: a guest hypervisor is entered at (virtual) EL2", *el))
	}
	if *maxInsns == 0 {
		return fs.Fail(usagef("--max-insns 0: want at least 1"))
	}
	var strictFn func(pc mem.VA, w uint32, why string)
	if *strict {
		strictFn = func(pc mem.VA, w uint32, why string) {
			fmt.Fprintf(stderr, "nestmmu exec: UNDEFINED at PC %#x: %08x %s\n", uint64(pc), w, why)
		}
	}
	var b execMachine
	if *nest {
		mode := nested.ModeNV
		if *nv2 {
			mode = nested.ModeNV2
		}
		n, err := virt.NewNested(virt.NestedConfig{Mode: mode, Output: stdout, Strict: strictFn})
		if err != nil {
			return fs.Fail(err)
		}
		defer n.Close()
		b = nestedMachine{n}
	} else {
		m, err := virt.New(virt.Config{EL: uint8(*el), Output: stdout, Strict: strictFn})
		if err != nil {
			return fs.Fail(err)
		}
		b = boardMachine{m}
	}
	if *qemuDev {
		b.pe().Deviations = cpu.DeviationDeviceUnaligned | cpu.DeviationATSetsDirty | cpu.DeviationS1PTWWnR
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
		b.stats(stderr)
	}
	switch {
	case err == nil && b.reset():
		fmt.Fprintln(stderr, "nestmmu exec: PSCI SYSTEM_RESET")
		return 0
	case err == nil:
		return 0
	case errors.Is(err, virt.ErrBudget):
		return fs.Fail(fmt.Errorf("%v (raise --max-insns)", err))
	}
	return fs.Fail(err)
}

// execMachine is what exec runs: the bare board or the nested one.
type execMachine interface {
	LoadFile(path string) (*virt.Image, error)
	SetSymbol(img *virt.Image, name string, v uint64) error
	Run(budget uint64) error
	pe() *cpu.PE
	reset() bool
	stats(w io.Writer)
}

type boardMachine struct{ *virt.Board }

func (b boardMachine) pe() *cpu.PE       { return b.PE }
func (b boardMachine) reset() bool       { return b.Reset }
func (b boardMachine) stats(w io.Writer) { printExecStats(w, b.CPU, b.PE) }

type nestedMachine struct{ *virt.Nested }

func (b nestedMachine) pe() *cpu.PE { return b.PE }
func (b nestedMachine) reset() bool { return b.Reset }
func (b nestedMachine) stats(w io.Writer) {
	printExecStats(w, b.CPU, b.PE)
	s := b.VCPU.Stats()
	fmt.Fprintf(w, "L0: exits from vEL2 %d (register traps %d, ERET %d, TLBI %d, AT %d, stage-2 faults %d); in L2: shadow faults %d (installed %d, forwarded %d, MMIO %d), traps %d (forwarded %d); world switches %d to L2, %d to vEL2\n",
		s.Exits(), s.SysRegTraps, s.ERETTraps, s.TLBITraps, s.ATTraps, s.CanonicalFaults,
		s.ShadowFaults, s.Installed, s.Forwarded, s.MMIOExits, s.L2Traps, s.ForwardedTraps, s.L2Entries, s.VEL2Entries)
}

func printExecStats(w io.Writer, c *interp.CPU, s0 *cpu.PE) {
	s := s0.Stats
	fmt.Fprintf(w, "instructions %d, exceptions %d; PE: loads %d, stores %d, fetches %d, TLB hits %d, walks %d, TLBIs %d, ATs %d\n",
		c.Retired, c.Exceptions, s.Loads, s.Stores, s.Fetches, s.TLBHits, s.Walks, s.TLBIs, s.ATs)
}
