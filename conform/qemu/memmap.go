package qemu

// Physical memory map of the machine the oracle runs cases on: QEMU's
// `virt` board with `-m 256M` (RAM at 0x40000000; Arm's "virt" memory map,
// hw/arm/virt.c's base_memmap in QEMU). A case generator uses these facts
// to place translation tables and to pick addresses that abort.

// Range is a physical address range [Base, Base+Size).
type Range struct {
	Base, Size uint64
}

// End returns Base+Size.
func (r Range) End() uint64 { return r.Base + r.Size }

// Contains reports whether [pa, pa+n) lies inside r.
func (r Range) Contains(pa, n uint64) bool {
	return pa >= r.Base && pa-r.Base <= r.Size && n <= r.Size-(pa-r.Base)
}

const (
	// RAMBase and RAMSize describe all of the machine's RAM. The model's
	// at-json "ram" must be exactly this range: a walk read anywhere else
	// is either an external abort (see AbortRanges) or a device.
	RAMBase = 0x40000000
	RAMSize = 256 << 20

	// ReservedBase is the start of the top 16 MiB of RAM, which hold the
	// runner's code, its vectors and the case table. Cases may not write
	// or watch words there, and their tables may not point into it (the
	// runner's own words would be read as descriptors, and hardware
	// access-flag updates could overwrite the runner).
	ReservedBase = RAMBase + RAMSize - 16<<20

	// RunnerCodePage is the 4 KiB page holding the EL2 vector table (at
	// its start, VBAR_EL2) and the code that executes while a case's
	// SCTLR_EL2 is live. A case with SCTLR_EL2.M=1 must identity-map this
	// page in its EL2 (or EL2&0) stage-1 regime, readable and executable
	// at EL2, with AF=1 (see the EL2-MMU contract in docs/QEMU-ORACLE.md).
	RunnerCodePage = ReservedBase

	// runnerMain is where the rest of the runner (never executed with a
	// case's SCTLR_EL2 live) starts; it is also the ELF entry point.
	runnerMain = RunnerCodePage + 0x1000

	// caseTableAddr is where the case table is loaded; it may extend to
	// the end of RAM.
	caseTableAddr = ReservedBase + 1<<20
	caseTableMax  = RAMBase + RAMSize - caseTableAddr

	// bootZeroSize bytes from RAMBase are zeroed by the runner before the
	// first case: QEMU places its device tree at the start of RAM.
	bootZeroSize = 2 << 20

	// uartBase is the PL011 UART0 data register.
	uartBase = 0x09000000
)

// CaseRAM returns the part of RAM that belongs to cases: every word a case
// writes or watches is in it, and all of it reads as zero at the start of
// each case except the words the case writes.
func CaseRAM() Range { return Range{Base: RAMBase, Size: ReservedBase - RAMBase} }

// RAM returns all of the machine's RAM (CaseRAM followed by the runner's
// reserved 16 MiB).
func RAM() Range { return Range{Base: RAMBase, Size: RAMSize} }

// AbortRanges returns physical ranges in which a translation-table walk
// read takes a synchronous External abort (nothing is mapped there: the
// hole between the end of RAM and the high PCIe/redistributor regions at
// 256 GiB). TestAbortRanges checks both ends and interior points of each
// range on QEMU. Flash at 0x0 and the MMIO devices below RAM are not in
// this list: walk reads there return data (TestFlashReadsData).
func AbortRanges() []Range {
	return []Range{{Base: RAMBase + RAMSize, Size: 0x40_0000_0000 - (RAMBase + RAMSize)}}
}
