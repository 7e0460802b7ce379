// Package virt is a machine shaped like QEMU's `-M virt` board for
// running bare-metal AArch64 programs on the modelled PE (arm64/cpu)
// through the A64 interpreter (arm64/interp): RAM at 0x40000000, a PL011
// UART at 0x09000000 for output, PSCI SYSTEM_OFF and SYSTEM_RESET through
// SMC (EL2 implemented, as with virtualization=on) or HVC (EL1 only), and
// the generic timer's counter. Programs are ELF files loaded at their
// physical addresses and entered as QEMU's -kernel enters a bare-metal
// image: at the ELF entry point, at EL2 (or EL1) with the MMU off, SP
// selected and DAIF masked.
package virt

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// The memory map (QEMU's hw/arm/virt.c).
const (
	RAMBase  mem.PA = 0x4000_0000
	UARTBase mem.PA = 0x0900_0000
	UARTSize        = 0x1000
	// DefaultRAMSize is QEMU's default -m (128 MiB).
	DefaultRAMSize = 128 << 20
)

// PSCI function IDs (SMC32 calling convention; the SMC64 IDs alias them).
const (
	PSCIVersion     = 0x8400_0000
	PSCISystemOff   = 0x8400_0008
	PSCISystemReset = 0x8400_0009
	PSCIFeatures    = 0x8400_000a
)

// Config configures a Board.
type Config struct {
	// EL is the entry EL: 2 (EL2 implemented, PSCI through SMC, as
	// virtualization=on) or 1 (no EL2, PSCI through HVC). 0 means 2.
	EL uint8
	// RAMSize in bytes; 0 means DefaultRAMSize.
	RAMSize uint64
	// Output receives the UART's bytes; nil keeps them in Board.Output.
	Output io.Writer
	// Strict is passed to the interpreter (see interp.Options).
	Strict func(pc mem.VA, word uint32, why string)
	// TLB configures the PE's TLB (zero: the tlb package's defaults).
	TLB tlb.Config
}

// Board is one machine: RAM, the UART, one PE and its interpreter.
type Board struct {
	RAM  *RAM
	PE   *cpu.PE
	CPU  *interp.CPU
	UART *PL011
	// Output holds the UART's bytes when Config.Output is nil.
	Output bytes.Buffer
	cfg    Config
	// Off and Reset record a PSCI SYSTEM_OFF or SYSTEM_RESET.
	Off, Reset bool
}

// New returns a board with its PE at reset, before any program is loaded.
func New(cfg Config) (*Board, error) {
	if cfg.EL == 0 {
		cfg.EL = 2
	}
	if cfg.EL != 1 && cfg.EL != 2 {
		return nil, fmt.Errorf("virt: entry EL %d: want 1 or 2", cfg.EL)
	}
	if cfg.RAMSize == 0 {
		cfg.RAMSize = DefaultRAMSize
	}
	ram, err := NewRAM(RAMBase, cfg.RAMSize)
	if err != nil {
		return nil, err
	}
	b := &Board{RAM: ram, cfg: cfg}
	out := cfg.Output
	if out == nil {
		out = &b.Output
	}
	b.UART = &PL011{Out: out}
	t, err := tlb.New(cfg.TLB)
	if err != nil {
		return nil, err
	}
	regs := vmsa.DefaultRegs()
	// QEMU's reset values (the architecture leaves them UNKNOWN or
	// IMPLEMENTATION DEFINED): SCTLR_EL1 0xc50838, SCTLR_EL2 and HCR_EL2 0.
	regs.SCTLR_EL1 = 0xc50838
	if cfg.EL == 1 {
		// No EL2: HCR_EL2 behaves as 0 but for RW (EL1 is AArch64).
		regs.HCR_EL2 = sysreg.HCRFields{RW: true}.Value()
		regs.MMFR1 &^= 0xf << 8  // VH
		regs.MMFR2 &^= 0xf << 24 // NV
	}
	mem := &bus{ram: ram, uart: b.UART}
	b.PE = cpu.New(0, regs, cfg.EL, mem, t)
	b.PE.SP = true
	b.PE.DAIF = 0xf
	b.CPU = interp.New(b.PE, interp.Options{Platform: b, RAM: ram, Strict: cfg.Strict, NoEL2: cfg.EL == 1})
	return b, nil
}

// bus is the physical address space: RAM, the UART, and nothing else
// (a synchronous External abort).
type bus struct {
	ram  *RAM
	uart *PL011
}

func (m *bus) Read64(pa mem.PA) (uint64, bool) {
	if m.ram.Contains(pa) {
		return m.ram.Read64(pa)
	}
	return m.Read(pa, 8)
}

func (m *bus) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	if m.ram.Contains(pa) {
		return m.ram.CompareAndSwap64(pa, old, new)
	}
	return false, false
}

func (m *bus) Read(pa mem.PA, size int) (uint64, bool) {
	if m.ram.Contains(pa) {
		return m.ram.Read(pa, size)
	}
	if pa >= UARTBase && pa < UARTBase+UARTSize {
		return m.uart.Read(uint64(pa-UARTBase), size)
	}
	return 0, false
}

func (m *bus) Write(pa mem.PA, size int, v uint64) bool {
	if m.ram.Contains(pa) {
		return m.ram.Write(pa, size, v)
	}
	if pa >= UARTBase && pa < UARTBase+UARTSize {
		return m.uart.Write(uint64(pa-UARTBase), size, v)
	}
	return false
}

// Call implements interp.Platform: PSCI over the board's conduit (SMC
// with EL2, HVC without). Calls outside the PSCI range are not taken.
func (b *Board) Call(c *interp.CPU, smc bool, imm uint16) bool {
	if smc != (b.cfg.EL == 2) || imm != 0 {
		return false
	}
	r, ok := psci(c.X[0], c.X[1])
	if !ok {
		return false
	}
	c.X[0] = r.x0
	b.Off, b.Reset = r.off, r.reset
	if r.stop != "" {
		c.Stop(r.stop)
	}
	c.PE.PC += 4
	c.Retired++
	return true
}

// psciResult is the firmware's answer to a PSCI call.
type psciResult struct {
	x0         uint64
	off, reset bool
	stop       string // the Stop message of SYSTEM_OFF and SYSTEM_RESET
}

// psci answers PSCI function fn (with its first argument arg) as QEMU's
// firmware does; ok is false for a function ID outside the PSCI range.
func psci(fn, arg uint64) (r psciResult, ok bool) {
	if fn := uint32(fn); fn>>24 != 0x84 && fn>>24 != 0xc4 {
		return r, false
	}
	switch uint32(fn) &^ 0x4000_0000 {
	case PSCIVersion:
		r.x0 = 0x1_0001 // PSCI 1.1, as QEMU
	case PSCISystemOff:
		r.off, r.stop = true, "PSCI SYSTEM_OFF"
	case PSCISystemReset:
		r.reset, r.stop = true, "PSCI SYSTEM_RESET"
	case PSCIFeatures:
		switch uint32(arg) &^ 0x4000_0000 {
		case PSCIVersion, PSCISystemOff, PSCISystemReset, PSCIFeatures:
			r.x0 = 0
		default:
			r.x0 = ^uint64(0) // NOT_SUPPORTED
		}
	default:
		r.x0 = ^uint64(0) // NOT_SUPPORTED
	}
	return r, true
}

// Counter implements interp.Platform: the count advances by one per
// retired instruction (CNTFRQ_EL0 says 1 GHz: one instruction a
// nanosecond), so that runs are deterministic.
func (b *Board) Counter(c *interp.CPU) uint64 { return c.Retired }

// Errors of Run.
var (
	ErrBudget        = errors.New("instruction budget exhausted")
	ErrPCOutside     = errors.New("PC outside memory")
	ErrExceptionLoop = errors.New("exception loop")
)

// Run executes until PSCI SYSTEM_OFF or SYSTEM_RESET (nil error) or the
// budget of instructions is used up (ErrBudget), or the PE can make no
// progress (ErrPCOutside when its PC has no memory behind it,
// ErrExceptionLoop otherwise).
func (b *Board) Run(budget uint64) error { return runResult(b.CPU, b.CPU.Run(budget), budget) }

// runResult is Run's error for the interpreter's stop reason r.
func runResult(c *interp.CPU, r interp.StopReason, budget uint64) error {
	pe := c.PE
	switch r {
	case interp.Halted:
		return nil
	case interp.Budget:
		return fmt.Errorf("%w after %d steps (PC %#x, EL%d)", ErrBudget, budget, uint64(pe.PC), pe.EL)
	default:
		esr := sysreg.ESR(pe.ESR[pe.EL])
		if esr.EC() == sysreg.ECInstrAbortSame || esr.EC() == sysreg.ECInstrAbortLower {
			if esr&0x3f == 0x10 {
				return fmt.Errorf("%w: PC %#x (fetch: synchronous External abort, and again at the vector %#x)",
					ErrPCOutside, pe.FAR[pe.EL], uint64(pe.PC))
			}
		}
		return fmt.Errorf("%w: %s", ErrExceptionLoop, c.StopMessage())
	}
}
