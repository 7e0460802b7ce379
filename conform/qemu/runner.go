package qemu

import (
	"encoding/binary"
	"fmt"

	"github.com/nestmmu/nestmmu/conform/qemu/a64"
)

// The runner is a bare-metal AArch64 program generated here, loaded by QEMU
// as an ELF at RunnerCodePage and entered at EL2 with the MMU off. It reads
// the case table at caseTableAddr and prints one line per case on the
// PL011 UART:
//
//	I<mmfr0><mmfr1><mmfr2><mmfr3><sctlr_el2>   once, at start
//	R{P<par> | E<v><esr><far><hpfar>}...{W<word>}...   per case
//	F<v><esr><elr><far>   an exception the runner did not expect; then off
//	D   all cases done; then PSCI SYSTEM_OFF
//
// <x> is 16 lower-case hex digits, <v> one hex digit: the vector index
// (offset from VBAR_EL2 / 0x80) of the exception.

// caseRegs lists the registers a case may set, in the order of the case
// table's register block.
func caseRegs() [13]string {
	return [13]string{"HCR_EL2", "SCTLR_EL2", "SCTLR_EL1", "TCR_EL1",
		"TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "VTCR_EL2", "VTTBR_EL2",
		"TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2"}
}

// Case-table layout (all little-endian 64-bit words):
//
//	header: magic, number of cases, 0
//	case:   nmem, nops | nwatch<<16 | pan<<32, 13 register values
//	        (caseRegs order), nmem × (pa, value), nops × (op, va),
//	        nwatch × pa
const (
	tableMagic  = 0x31455341434d4d4e // "NMMCASE1"
	tableHeader = 24
	caseFixed   = 16 + 13*8 // nmem, flags, registers
	hcrRW       = 1 << 31   // HCR_EL2.RW: EL1 is AArch64
	psciOff     = 0x84000008
	windowSize  = 64    // bytes per AT window
	windowAT    = 16    // offset of the AT instruction in a window
	windowsOff  = 0x800 // windows start in the code page after the vectors
	numVectors  = 16    // VBAR_EL2 entries, 0x80 apart
	vectorBytes = 0x80  // size of a vector entry
)

// Register allocation of the runner.
const (
	rTmp0, rTmp1, rTmp2, rTmp3, rTmp4, rTmp5, rTmp6, rPAR a64.Reg = 0, 1, 2, 3, 4, 5, 6, 7
	rHCR                                                  a64.Reg = 9  // case HCR_EL2
	rSCTLR2                                               a64.Reg = 10 // case SCTLR_EL2
	rNops                                                 a64.Reg = 11
	rNwatch                                               a64.Reg = 12
	rPAN                                                  a64.Reg = 13
	rPtr                                                  a64.Reg = 14 // position in the current case record
	rPrevN                                                a64.Reg = 16 // number of words the previous case wrote
	rPrevMem                                              a64.Reg = 17 // the previous case's (pa, value) list
	rLeft                                                 a64.Reg = 18 // cases left
	rCase                                                 a64.Reg = 19 // current position in the case table
	rExc                                                  a64.Reg = 20 // vector index + 1 of an exception, 0 if none
	rESR                                                  a64.Reg = 21
	rFAR                                                  a64.Reg = 22
	rHPFAR                                                a64.Reg = 23
	rELR                                                  a64.Reg = 24
	rUART                                                 a64.Reg = 25
	rWantELR                                              a64.Reg = 26 // address of the AT whose exception is expected
	rSafeHCR                                              a64.Reg = 27 // HCR_EL2 outside windows: RW only
	rSafeSC2                                              a64.Reg = 28 // SCTLR_EL2 outside windows: QEMU's reset value
)

// buildRunner generates the runner's code: the code page (vectors and AT
// windows) at RunnerCodePage followed by the main program at runnerMain.
func buildRunner() ([]byte, error) {
	a := a64.New(RunnerCodePage)
	sys := func(name string) a64.SysReg {
		r, ok := a64.LookupSysReg(name)
		if !ok {
			a.Word(0) // unreachable with the fixed names below
		}
		return r
	}
	putc := func(c byte) {
		a.MOVZ(rTmp0, uint16(c), 0)
		a.STRW(rTmp0, rUART, 0)
	}

	// Vectors: entry k records k+1 in rExc and joins the common handler.
	a.Label("vectors")
	for k := 0; k < numVectors; k++ {
		a.MOVZ(rExc, uint16(k+1), 0)
		a.B("exc_common")
		a.Align(vectorBytes)
	}

	// AT windows, one per operation. The case's HCR_EL2 is written last
	// (with E2H=1, MSR to *_EL1 at EL2 would reach *_EL2), then SCTLR_EL2;
	// nothing but register moves happens until both are restored, so with
	// SCTLR_EL2.M=1 only this page is fetched through the case's tables.
	a.Label("windows")
	for op := a64.ATOp(0); int(op) < a64.NumATOps; op++ {
		start := a.PC()
		a.MSR(sys("HCR_EL2"), rHCR)
		a.ISB()
		a.MSR(sys("SCTLR_EL2"), rSCTLR2)
		a.ISB()
		if a.PC()-start != windowAT {
			return nil, fmt.Errorf("qemu: AT window layout: AT at offset %d", a.PC()-start)
		}
		a.AT(op, rTmp5)
		a.ISB()
		a.MRS(rPAR, sys("PAR_EL1"))
		a.MSR(sys("SCTLR_EL2"), rSafeSC2)
		a.ISB()
		a.MSR(sys("HCR_EL2"), rSafeHCR)
		a.ISB()
		a.RET()
		a.Align(windowSize)
	}

	// Common exception handler: make the runner's world safe again, record
	// the syndrome, and skip the AT if that is what faulted; anything else
	// is fatal. An External abort on a walk for AT is taken as a Data Abort
	// rather than reported in PAR_EL1 (Arm ARM D8.x "Synchronous faults
	// generated by address translation instructions").
	a.Label("exc_common")
	a.MSR(sys("SCTLR_EL2"), rSafeSC2)
	a.ISB()
	a.MSR(sys("HCR_EL2"), rSafeHCR)
	a.ISB()
	a.MRS(rESR, sys("ESR_EL2"))
	a.MRS(rFAR, sys("FAR_EL2"))
	a.MRS(rHPFAR, sys("HPFAR_EL2"))
	a.MRS(rELR, sys("ELR_EL2"))
	a.CMP(rELR, rWantELR)
	a.BCond(a64.NE, "fatal")
	a.ADDI(rELR, rELR, 4)
	a.MSR(sys("ELR_EL2"), rELR)
	a.ERET()
	if a.PC() > RunnerCodePage+0x1000 {
		return nil, fmt.Errorf("qemu: runner code page overflows: ends at %#x", a.PC())
	}
	a.Align(0x1000)

	// Main program.
	a.Label("main")
	a.MovImm(rUART, uartBase)
	a.MovImm(rSafeHCR, hcrRW)
	a.MSR(sys("HCR_EL2"), rSafeHCR)
	a.MRS(rSafeSC2, sys("SCTLR_EL2"))
	a.MovAddr(rTmp0, "vectors")
	a.MSR(sys("VBAR_EL2"), rTmp0)
	a.MovImm(rWantELR, 1)
	a.ISB()

	// Zero the device tree QEMU put at the start of RAM.
	a.MovImm(rTmp0, RAMBase)
	a.MovImm(rTmp1, RAMBase+bootZeroSize)
	a.Label("zero_boot")
	a.STR(a64.XZR, rTmp0, 0)
	a.ADDI(rTmp0, rTmp0, 8)
	a.CMP(rTmp0, rTmp1)
	a.BCond(a64.LO, "zero_boot")
	a.DSBSY()

	putc('I')
	for _, id := range []string{"ID_AA64MMFR0_EL1", "ID_AA64MMFR1_EL1", "ID_AA64MMFR2_EL1", "ID_AA64MMFR3_EL1"} {
		a.MRS(rTmp1, sys(id))
		a.BL("puthex")
	}
	a.MOV(rTmp1, rSafeSC2)
	a.BL("puthex")
	putc('\n')

	a.MovImm(rCase, caseTableAddr)
	a.LDR(rTmp0, rCase, 0)
	a.MovImm(rTmp1, tableMagic)
	a.CMP(rTmp0, rTmp1)
	a.BCond(a64.NE, "bad_table")
	a.LDR(rLeft, rCase, 8)
	a.ADDI(rCase, rCase, tableHeader)
	a.MOVZ(rPrevN, 0, 0)

	a.Label("case_loop")
	a.CBZ(rLeft, "done")
	// (a) zero the words the previous case wrote (and hardware updated).
	a.Label("zero_prev")
	a.CBZ(rPrevN, "zero_prev_done")
	a.LDR(rTmp0, rPrevMem, 0)
	a.STR(a64.XZR, rTmp0, 0)
	a.ADDI(rPrevMem, rPrevMem, 16)
	a.SUBI(rPrevN, rPrevN, 1)
	a.B("zero_prev")
	a.Label("zero_prev_done")

	// (b) registers, with HCR_EL2 = RW only so that *_EL1 are the EL1
	// registers; HCR_EL2 and SCTLR_EL2 are kept for the window.
	a.LDR(rTmp0, rCase, 0) // nmem
	a.LDR(rTmp1, rCase, 8) // flags
	regs := caseRegs()
	a.LDR(rHCR, rCase, 16)
	a.LDR(rSCTLR2, rCase, 24)
	for i := 2; i < len(regs); i++ {
		a.LDR(rTmp2, rCase, uint64(16+8*i))
		a.MSR(sys(regs[i]), rTmp2)
	}
	a.ISB()

	// Memory words.
	a.ADDI(rPrevMem, rCase, caseFixed)
	a.MOV(rPrevN, rTmp0)
	a.MOV(rPtr, rPrevMem)
	a.Label("mem_loop")
	a.CBZ(rTmp0, "mem_done")
	a.LDR(rTmp3, rPtr, 0)
	a.LDR(rTmp4, rPtr, 8)
	a.STR(rTmp4, rTmp3, 0)
	a.ADDI(rPtr, rPtr, 16)
	a.SUBI(rTmp0, rTmp0, 1)
	a.B("mem_loop")
	a.Label("mem_done")
	a.DSBSY()

	a.UBFX(rNops, rTmp1, 0, 16)
	a.UBFX(rNwatch, rTmp1, 16, 16)
	a.UBFX(rPAN, rTmp1, 32, 1)
	putc('R')

	// (c) operations.
	a.Label("op_loop")
	a.CBZ(rNops, "op_done")
	a.LDR(rTmp4, rPtr, 0) // op index
	a.LDR(rTmp5, rPtr, 8) // VA
	a.ADDI(rPtr, rPtr, 16)
	a.TLBI(a64.TLBIALLE1)
	a.TLBI(a64.TLBIALLE2)
	a.DSBSY()
	a.ISB()
	a.CBZ(rPAN, "pan0")
	a.MSRPAN(true)
	a.B("pan_done")
	a.Label("pan0")
	a.MSRPAN(false)
	a.Label("pan_done")
	a.MovAddr(rTmp6, "windows")
	a.LSLI(rTmp3, rTmp4, 6) // windowSize
	a.ADD(rTmp6, rTmp6, rTmp3)
	a.ADDI(rWantELR, rTmp6, windowAT)
	a.MOVZ(rExc, 0, 0)
	a.BLR(rTmp6)
	a.MovImm(rWantELR, 1)
	a.CBNZ(rExc, "op_exc")
	putc('P')
	a.MOV(rTmp1, rPAR)
	a.BL("puthex")
	a.B("op_next")
	a.Label("op_exc")
	putc('E')
	a.SUBI(rTmp1, rExc, 1)
	a.BL("puthex1")
	a.MOV(rTmp1, rESR)
	a.BL("puthex")
	a.MOV(rTmp1, rFAR)
	a.BL("puthex")
	a.MOV(rTmp1, rHPFAR)
	a.BL("puthex")
	a.Label("op_next")
	a.SUBI(rNops, rNops, 1)
	a.B("op_loop")
	a.Label("op_done")

	// (d) watched words.
	a.Label("watch_loop")
	a.CBZ(rNwatch, "watch_done")
	a.LDR(rTmp4, rPtr, 0)
	a.ADDI(rPtr, rPtr, 8)
	putc('W')
	a.LDR(rTmp1, rTmp4, 0)
	a.BL("puthex")
	a.SUBI(rNwatch, rNwatch, 1)
	a.B("watch_loop")
	a.Label("watch_done")
	putc('\n')
	a.MOV(rCase, rPtr)
	a.SUBI(rLeft, rLeft, 1)
	a.B("case_loop")

	a.Label("done")
	putc('D')
	putc('\n')
	a.Label("poweroff")
	a.MovImm(rTmp0, psciOff)
	a.SMC(0)
	a.B("poweroff")

	a.Label("bad_table")
	putc('F')
	a.MOVZ(rTmp1, 0xf, 0)
	a.BL("puthex1")
	a.MOV(rTmp1, rCase)
	a.BL("puthex")
	putc('\n')
	a.B("poweroff")

	// An exception other than the expected one: report and stop. The
	// host blames the case in progress and resumes after it.
	a.Label("fatal")
	putc('F')
	a.SUBI(rTmp1, rExc, 1)
	a.BL("puthex1")
	a.MOV(rTmp1, rESR)
	a.BL("puthex")
	a.MOV(rTmp1, rELR)
	a.BL("puthex")
	a.MOV(rTmp1, rFAR)
	a.BL("puthex")
	putc('\n')
	a.B("poweroff")

	// puthex prints X1 as 16 hex digits, puthex1 its low nibble; they use
	// X0, X2, X3 and return through X30.
	a.Label("puthex")
	a.MOVZ(rTmp2, 60, 0)
	a.B("puthex_loop")
	a.Label("puthex1")
	a.MOVZ(rTmp2, 0, 0)
	a.Label("puthex_loop")
	a.LSRV(rTmp3, rTmp1, rTmp2)
	a.UBFX(rTmp3, rTmp3, 0, 4)
	a.CMPI(rTmp3, 10)
	a.BCond(a64.LO, "puthex_digit")
	a.ADDI(rTmp3, rTmp3, 'a'-'0'-10)
	a.Label("puthex_digit")
	a.ADDI(rTmp3, rTmp3, '0')
	a.STRW(rTmp3, rUART, 0)
	a.CBZ(rTmp2, "puthex_done")
	a.SUBI(rTmp2, rTmp2, 4)
	a.B("puthex_loop")
	a.Label("puthex_done")
	a.RET()

	code, err := a.Finish()
	if err != nil {
		return nil, err
	}
	if w, ok := a.Addr("windows"); !ok || w != RunnerCodePage+windowsOff {
		return nil, fmt.Errorf("qemu: AT windows at %#x, want %#x", w, RunnerCodePage+windowsOff)
	}
	if m, _ := a.Addr("main"); m != runnerMain {
		return nil, fmt.Errorf("qemu: runner main at %#x, want %#x", m, uint64(runnerMain))
	}
	return code, nil
}

// elfImage wraps code (linked at RunnerCodePage) in a minimal ELF64
// executable with one PT_LOAD segment and entry point runnerMain.
func elfImage(code []byte) []byte {
	const ehsize, phsize, off = 64, 56, 0x1000
	out := make([]byte, off+len(code))
	le := binary.LittleEndian
	copy(out, "\x7fELF")
	out[4], out[5], out[6] = 2, 1, 1 // ELFCLASS64, little-endian, EV_CURRENT
	le.PutUint16(out[16:], 2)        // ET_EXEC
	le.PutUint16(out[18:], 183)      // EM_AARCH64
	le.PutUint32(out[20:], 1)        // EV_CURRENT
	le.PutUint64(out[24:], runnerMain)
	le.PutUint64(out[32:], ehsize) // e_phoff
	le.PutUint16(out[52:], ehsize)
	le.PutUint16(out[54:], phsize)
	le.PutUint16(out[56:], 1) // e_phnum
	ph := out[ehsize:]
	le.PutUint32(ph[0:], 1)   // PT_LOAD
	le.PutUint32(ph[4:], 7)   // RWX
	le.PutUint64(ph[8:], off) // p_offset
	le.PutUint64(ph[16:], RunnerCodePage)
	le.PutUint64(ph[24:], RunnerCodePage)
	le.PutUint64(ph[32:], uint64(len(code)))
	le.PutUint64(ph[40:], uint64(len(code)))
	le.PutUint64(ph[48:], off)
	copy(out[off:], code)
	return out
}
