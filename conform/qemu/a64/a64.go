// Package a64 encodes the few AArch64 instructions that the QEMU oracle's
// bare-metal runner needs, and assembles them with labels into a flat image.
//
// It is not a general assembler: it covers moves of immediates, 64-bit loads
// and stores, integer add/subtract/compare, branches, bit-field extraction,
// MSR/MRS of any system register by its (op0, op1, CRn, CRm, op2) encoding,
// MSR PAN, the AT and TLBI system instructions, barriers, ERET, SMC and HLT.
// Encodings follow the Arm Architecture Reference Manual (DDI 0487), section
// C4 "A64 Instruction Set Encoding"; the tests check them against
// golang.org/x/arch/arm64/arm64asm, an independent decoder.
//
// Errors (an immediate out of range, an undefined label) are recorded in the
// Asm and returned by Finish; encoding never panics.
package a64

import (
	"encoding/binary"
	"fmt"
)

// Reg is a general-purpose register number, 0..30, or 31 which means XZR or
// SP depending on the instruction (as in the architecture).
type Reg uint8

// XZR is register number 31 where it names the zero register.
const XZR Reg = 31

// SP is register number 31 where it names the stack pointer.
const SP Reg = 31

// LR is the link register X30.
const LR Reg = 30

// Cond is a condition code for B.cond (Arm ARM C1.2.4).
type Cond uint8

// Condition codes.
const (
	EQ Cond = 0x0
	NE Cond = 0x1
	HS Cond = 0x2
	LO Cond = 0x3
	MI Cond = 0x4
	PL Cond = 0x5
	HI Cond = 0x8
	LS Cond = 0x9
	GE Cond = 0xa
	LT Cond = 0xb
	GT Cond = 0xc
	LE Cond = 0xd
	AL Cond = 0xe
)

// SysReg is a system register or system instruction encoding: op0, op1, CRn,
// CRm and op2 as in the Arm ARM's register descriptions ("S<op0>_<op1>_C<n>_C<m>_<op2>").
type SysReg struct {
	Op0, Op1, CRn, CRm, Op2 uint8
}

// String returns the generic name S<op0>_<op1>_C<n>_C<m>_<op2>.
func (s SysReg) String() string {
	return fmt.Sprintf("S%d_%d_C%d_C%d_%d", s.Op0, s.Op1, s.CRn, s.CRm, s.Op2)
}

func (s SysReg) valid() bool {
	return s.Op0 <= 3 && s.Op1 <= 7 && s.CRn <= 15 && s.CRm <= 15 && s.Op2 <= 7
}

// LookupSysReg returns the encoding of a system register the runner uses, by
// its architectural name (e.g. "TCR_EL1"). Encodings: Arm ARM D23 (register
// descriptions), op0 = 3 for all of these.
func LookupSysReg(name string) (SysReg, bool) {
	r := func(op1, crn, crm, op2 uint8) (SysReg, bool) {
		return SysReg{Op0: 3, Op1: op1, CRn: crn, CRm: crm, Op2: op2}, true
	}
	switch name {
	case "SCTLR_EL1":
		return r(0, 1, 0, 0)
	case "TTBR0_EL1":
		return r(0, 2, 0, 0)
	case "TTBR1_EL1":
		return r(0, 2, 0, 1)
	case "TCR_EL1":
		return r(0, 2, 0, 2)
	case "MAIR_EL1":
		return r(0, 10, 2, 0)
	case "PAR_EL1":
		return r(0, 7, 4, 0)
	case "ID_AA64MMFR0_EL1":
		return r(0, 0, 7, 0)
	case "ID_AA64MMFR1_EL1":
		return r(0, 0, 7, 1)
	case "ID_AA64MMFR2_EL1":
		return r(0, 0, 7, 2)
	case "ID_AA64MMFR3_EL1":
		return r(0, 0, 7, 3)
	case "SCTLR_EL2":
		return r(4, 1, 0, 0)
	case "HCR_EL2":
		return r(4, 1, 1, 0)
	case "TTBR0_EL2":
		return r(4, 2, 0, 0)
	case "TTBR1_EL2":
		return r(4, 2, 0, 1)
	case "TCR_EL2":
		return r(4, 2, 0, 2)
	case "VTTBR_EL2":
		return r(4, 2, 1, 0)
	case "VTCR_EL2":
		return r(4, 2, 1, 2)
	case "SPSR_EL2":
		return r(4, 4, 0, 0)
	case "ELR_EL2":
		return r(4, 4, 0, 1)
	case "ESR_EL2":
		return r(4, 5, 2, 0)
	case "FAR_EL2":
		return r(4, 6, 0, 0)
	case "HPFAR_EL2":
		return r(4, 6, 0, 4)
	case "MAIR_EL2":
		return r(4, 10, 2, 0)
	case "VBAR_EL2":
		return r(4, 12, 0, 0)
	case "CurrentEL":
		return r(0, 4, 2, 2)
	}
	return SysReg{}, false
}

// ATOp is an address translation instruction (AT <op>, Xt): a SYS
// instruction with CRn = 7 (Arm ARM C5.5, "A64 system instructions for
// address translation").
type ATOp uint8

// The AT operations, in the order of the at-json contract's list.
const (
	S1E0R ATOp = iota
	S1E0W
	S1E1R
	S1E1W
	S1E1RP
	S1E1WP
	S1E1A
	S1E2R
	S1E2W
	S1E2A
	S12E0R
	S12E0W
	S12E1R
	S12E1W
	numATOps
)

// NumATOps is the number of AT operations ATOp enumerates.
const NumATOps = int(numATOps)

// atEnc gives op1, CRm and op2 of each AT operation (CRn is 7). Arm ARM
// C5.5.x: AT S1E0R op1=0 CRm=8 op2=2, ..., AT S1E1RP CRm=9 (FEAT_PAN2),
// AT S1E1A/S1E2A CRm=9 op2=2 (FEAT_ATS1A), AT S12E* op1=4 CRm=8 op2=4..7.
func (o ATOp) enc() (op1, crm, op2 uint8) {
	switch o {
	case S1E0R:
		return 0, 8, 2
	case S1E0W:
		return 0, 8, 3
	case S1E1R:
		return 0, 8, 0
	case S1E1W:
		return 0, 8, 1
	case S1E1RP:
		return 0, 9, 0
	case S1E1WP:
		return 0, 9, 1
	case S1E1A:
		return 0, 9, 2
	case S1E2R:
		return 4, 8, 0
	case S1E2W:
		return 4, 8, 1
	case S1E2A:
		return 4, 9, 2
	case S12E0R:
		return 4, 8, 6
	case S12E0W:
		return 4, 8, 7
	case S12E1R:
		return 4, 8, 4
	case S12E1W:
		return 4, 8, 5
	}
	return 0xff, 0, 0
}

// Valid reports whether o is one of the enumerated operations.
func (o ATOp) Valid() bool { return o < numATOps }

// String returns the operation's name as the at-json contract spells it.
func (o ATOp) String() string {
	if !o.Valid() {
		return fmt.Sprintf("ATOp(%d)", uint8(o))
	}
	return [...]string{"S1E0R", "S1E0W", "S1E1R", "S1E1W", "S1E1RP", "S1E1WP",
		"S1E1A", "S1E2R", "S1E2W", "S1E2A", "S12E0R", "S12E0W", "S12E1R", "S12E1W"}[o]
}

// SysOp returns the SYS encoding (op0=1, CRn=7) of the AT operation.
func (o ATOp) SysOp() SysReg {
	op1, crm, op2 := o.enc()
	return SysReg{Op0: 1, Op1: op1, CRn: 7, CRm: crm, Op2: op2}
}

// LookupAT returns the AT operation with the given name (e.g. "S12E1W").
func LookupAT(name string) (ATOp, bool) {
	for o := ATOp(0); o < numATOps; o++ {
		if o.String() == name {
			return o, true
		}
	}
	return 0, false
}

// TLBIOp is a TLB maintenance operation without an address operand.
type TLBIOp uint8

// The TLBI operations the runner uses (Arm ARM C5.5, TLBI <op>).
const (
	TLBIVMALLE1 TLBIOp = iota // TLBI VMALLE1: op1=0 CRm=7 op2=0
	TLBIALLE1                 // TLBI ALLE1: op1=4 CRm=7 op2=4
	TLBIALLE2                 // TLBI ALLE2: op1=4 CRm=7 op2=0
)

// SysOp returns the SYS encoding (op0=1, CRn=8) of the TLBI operation.
func (t TLBIOp) SysOp() SysReg {
	switch t {
	case TLBIVMALLE1:
		return SysReg{Op0: 1, Op1: 0, CRn: 8, CRm: 7, Op2: 0}
	case TLBIALLE1:
		return SysReg{Op0: 1, Op1: 4, CRn: 8, CRm: 7, Op2: 4}
	case TLBIALLE2:
		return SysReg{Op0: 1, Op1: 4, CRn: 8, CRm: 7, Op2: 0}
	}
	return SysReg{Op0: 0xff}
}

// Asm accumulates instructions at consecutive addresses from a base address,
// with forward and backward branch labels. The first error (a bad operand,
// an undefined or duplicate label) is kept and returned by Finish.
type Asm struct {
	base   uint64
	words  []uint32
	labels map[string]int
	fixups []fixup
	err    error
}

type fixupKind uint8

const (
	fixB26   fixupKind = iota // B, BL: imm26 at [25:0]
	fixB19                    // B.cond, CBZ, CBNZ: imm19 at [23:5]
	fixAbs64                  // a 64-bit absolute address split over 4 MOVZ/MOVK
)

type fixup struct {
	at    int // word index
	label string
	kind  fixupKind
}

// New returns an empty Asm whose first instruction will be at base.
// base must be 4-byte aligned.
func New(base uint64) *Asm {
	a := &Asm{base: base, labels: map[string]int{}}
	if base%4 != 0 {
		a.err = fmt.Errorf("a64: base address %#x is not 4-byte aligned", base)
	}
	return a
}

func (a *Asm) fail(format string, args ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("a64: "+format, args...)
	}
}

// Err returns the first error recorded, if any.
func (a *Asm) Err() error { return a.err }

// PC returns the address of the next instruction.
func (a *Asm) PC() uint64 { return a.base + 4*uint64(len(a.words)) }

// Word emits a raw 32-bit word.
func (a *Asm) Word(w uint32) { a.words = append(a.words, w) }

// Label defines name at the current address. Defining a label twice is an
// error.
func (a *Asm) Label(name string) {
	if _, dup := a.labels[name]; dup {
		a.fail("label %q defined twice", name)
		return
	}
	a.labels[name] = len(a.words)
}

// Addr returns the address of a label defined so far.
func (a *Asm) Addr(name string) (uint64, bool) {
	i, ok := a.labels[name]
	return a.base + 4*uint64(i), ok
}

// Align pads with NOPs (HINT #0) up to a multiple of n bytes (a power of two
// at least 4) from address 0.
func (a *Asm) Align(n uint64) {
	if n < 4 || n&(n-1) != 0 {
		a.fail("alignment %d is not a power of two >= 4", n)
		return
	}
	for a.PC()%n != 0 {
		a.Word(0xd503201f)
	}
}

// Finish resolves labels and returns the little-endian image.
func (a *Asm) Finish() ([]byte, error) {
	for _, f := range a.fixups {
		t, ok := a.labels[f.label]
		if !ok {
			a.fail("undefined label %q", f.label)
			break
		}
		off := int64(t-f.at) * 4
		switch f.kind {
		case fixB26:
			if off < -(1<<27) || off >= 1<<27 {
				a.fail("branch to %q out of range (%d bytes)", f.label, off)
			}
			a.words[f.at] |= uint32(off>>2) & (1<<26 - 1)
		case fixB19:
			if off < -(1<<20) || off >= 1<<20 {
				a.fail("branch to %q out of range (%d bytes)", f.label, off)
			}
			a.words[f.at] |= (uint32(off>>2) & (1<<19 - 1)) << 5
		case fixAbs64:
			v := a.base + 4*uint64(t)
			for i := 0; i < 4; i++ {
				a.words[f.at+i] |= uint32(v>>(16*i)&0xffff) << 5
			}
		}
	}
	if a.err != nil {
		return nil, a.err
	}
	out := make([]byte, 4*len(a.words))
	for i, w := range a.words {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	return out, nil
}

func (a *Asm) reg(r Reg) uint32 {
	if r > 31 {
		a.fail("register number %d out of range", r)
	}
	return uint32(r & 31)
}

// MOVZ emits MOVZ Xd, #imm16, LSL #(16*hw).
func (a *Asm) MOVZ(rd Reg, imm16 uint16, hw uint) {
	if hw > 3 {
		a.fail("MOVZ shift index %d out of range", hw)
	}
	a.Word(0xd2800000 | uint32(hw&3)<<21 | uint32(imm16)<<5 | a.reg(rd))
}

// MOVK emits MOVK Xd, #imm16, LSL #(16*hw).
func (a *Asm) MOVK(rd Reg, imm16 uint16, hw uint) {
	if hw > 3 {
		a.fail("MOVK shift index %d out of range", hw)
	}
	a.Word(0xf2800000 | uint32(hw&3)<<21 | uint32(imm16)<<5 | a.reg(rd))
}

// MovImm loads a 64-bit constant into Xd with MOVZ and as many MOVKs as
// needed.
func (a *Asm) MovImm(rd Reg, v uint64) {
	a.MOVZ(rd, uint16(v), 0)
	for hw := uint(1); hw < 4; hw++ {
		if h := uint16(v >> (16 * hw)); h != 0 {
			a.MOVK(rd, h, hw)
		}
	}
}

// MovAddr loads the address of a label into Xd (always four instructions,
// patched by Finish).
func (a *Asm) MovAddr(rd Reg, label string) {
	a.fixups = append(a.fixups, fixup{at: len(a.words), label: label, kind: fixAbs64})
	a.MOVZ(rd, 0, 0)
	a.MOVK(rd, 0, 1)
	a.MOVK(rd, 0, 2)
	a.MOVK(rd, 0, 3)
}

// MOV emits MOV Xd, Xm (ORR Xd, XZR, Xm). Neither register may be SP.
func (a *Asm) MOV(rd, rm Reg) {
	a.Word(0xaa0003e0 | a.reg(rm)<<16 | a.reg(rd))
}

func (a *Asm) ldst(base uint32, rt, rn Reg, off uint64, scale uint64, name string) {
	if off%scale != 0 || off/scale > 4095 {
		a.fail("%s offset %d not a multiple of %d in [0, %d]", name, off, scale, 4095*scale)
	}
	a.Word(base | uint32(off/scale&4095)<<10 | a.reg(rn)<<5 | a.reg(rt))
}

// LDR emits LDR Xt, [Xn|SP, #off] (unsigned offset, a multiple of 8).
func (a *Asm) LDR(rt, rn Reg, off uint64) { a.ldst(0xf9400000, rt, rn, off, 8, "LDR") }

// STR emits STR Xt, [Xn|SP, #off] (unsigned offset, a multiple of 8).
func (a *Asm) STR(rt, rn Reg, off uint64) { a.ldst(0xf9000000, rt, rn, off, 8, "STR") }

// STRW emits STR Wt, [Xn|SP, #off] (unsigned offset, a multiple of 4).
func (a *Asm) STRW(rt, rn Reg, off uint64) { a.ldst(0xb9000000, rt, rn, off, 4, "STR (32-bit)") }

func (a *Asm) addsub(base uint32, rd, rn Reg, imm uint32, name string) {
	sh := uint32(0)
	if imm > 4095 {
		if imm&4095 != 0 || imm>>12 > 4095 {
			a.fail("%s immediate %#x not encodable", name, imm)
		}
		sh, imm = 1, imm>>12
	}
	a.Word(base | sh<<22 | (imm&4095)<<10 | a.reg(rn)<<5 | a.reg(rd))
}

// ADDI emits ADD Xd|SP, Xn|SP, #imm (imm12, optionally shifted by 12).
func (a *Asm) ADDI(rd, rn Reg, imm uint32) { a.addsub(0x91000000, rd, rn, imm, "ADD") }

// SUBI emits SUB Xd|SP, Xn|SP, #imm.
func (a *Asm) SUBI(rd, rn Reg, imm uint32) { a.addsub(0xd1000000, rd, rn, imm, "SUB") }

// SUBSI emits SUBS Xd, Xn|SP, #imm.
func (a *Asm) SUBSI(rd, rn Reg, imm uint32) { a.addsub(0xf1000000, rd, rn, imm, "SUBS") }

// CMPI emits CMP Xn|SP, #imm (SUBS XZR, Xn, #imm).
func (a *Asm) CMPI(rn Reg, imm uint32) { a.SUBSI(XZR, rn, imm) }

// ADD emits ADD Xd, Xn, Xm (shifted register, LSL #0).
func (a *Asm) ADD(rd, rn, rm Reg) {
	a.Word(0x8b000000 | a.reg(rm)<<16 | a.reg(rn)<<5 | a.reg(rd))
}

// CMP emits CMP Xn, Xm (SUBS XZR, Xn, Xm).
func (a *Asm) CMP(rn, rm Reg) {
	a.Word(0xeb000000 | a.reg(rm)<<16 | a.reg(rn)<<5 | 31)
}

// UBFM emits UBFM Xd, Xn, #immr, #imms (64-bit, N=1).
func (a *Asm) UBFM(rd, rn Reg, immr, imms uint) {
	if immr > 63 || imms > 63 {
		a.fail("UBFM immr %d / imms %d out of range", immr, imms)
	}
	a.Word(0xd3400000 | uint32(immr&63)<<16 | uint32(imms&63)<<10 | a.reg(rn)<<5 | a.reg(rd))
}

// UBFX emits UBFX Xd, Xn, #lsb, #width.
func (a *Asm) UBFX(rd, rn Reg, lsb, width uint) {
	if width == 0 || lsb+width > 64 {
		a.fail("UBFX lsb %d width %d out of range", lsb, width)
		return
	}
	a.UBFM(rd, rn, lsb, lsb+width-1)
}

// LSLI emits LSL Xd, Xn, #sh (UBFM Xd, Xn, #(-sh mod 64), #(63-sh)).
func (a *Asm) LSLI(rd, rn Reg, sh uint) {
	if sh == 0 || sh > 63 {
		a.fail("LSL shift %d out of range", sh)
		return
	}
	a.UBFM(rd, rn, 64-sh, 63-sh)
}

// LSRV emits LSR Xd, Xn, Xm (LSRV).
func (a *Asm) LSRV(rd, rn, rm Reg) {
	a.Word(0x9ac02400 | a.reg(rm)<<16 | a.reg(rn)<<5 | a.reg(rd))
}

func (a *Asm) branch(w uint32, label string, kind fixupKind) {
	a.fixups = append(a.fixups, fixup{at: len(a.words), label: label, kind: kind})
	a.Word(w)
}

// B emits B label.
func (a *Asm) B(label string) { a.branch(0x14000000, label, fixB26) }

// BL emits BL label.
func (a *Asm) BL(label string) { a.branch(0x94000000, label, fixB26) }

// BCond emits B.<cond> label.
func (a *Asm) BCond(c Cond, label string) {
	if c > 15 {
		a.fail("condition %d out of range", c)
	}
	a.branch(0x54000000|uint32(c&15), label, fixB19)
}

// CBZ emits CBZ Xt, label.
func (a *Asm) CBZ(rt Reg, label string) { a.branch(0xb4000000|a.reg(rt), label, fixB19) }

// CBNZ emits CBNZ Xt, label.
func (a *Asm) CBNZ(rt Reg, label string) { a.branch(0xb5000000|a.reg(rt), label, fixB19) }

// BLR emits BLR Xn.
func (a *Asm) BLR(rn Reg) { a.Word(0xd63f0000 | a.reg(rn)<<5) }

// RET emits RET X30.
func (a *Asm) RET() { a.Word(0xd65f0000 | 30<<5) }

// sysWord is the system instruction class: 1101 0101 00 L op0(2) op1(3)
// CRn(4) CRm(4) op2(3) Rt(5) (Arm ARM C4.1.66 "System instructions").
func (a *Asm) sysWord(l uint32, s SysReg, rt Reg) {
	if !s.valid() {
		a.fail("system encoding %+v out of range", s)
		return
	}
	a.Word(0xd5000000 | l<<21 | uint32(s.Op0)<<19 | uint32(s.Op1)<<16 |
		uint32(s.CRn)<<12 | uint32(s.CRm)<<8 | uint32(s.Op2)<<5 | a.reg(rt))
}

// MSR emits MSR <sysreg>, Xt. The register's op0 must be 2 or 3.
func (a *Asm) MSR(s SysReg, rt Reg) {
	if s.Op0 < 2 {
		a.fail("MSR to %v: op0 must be 2 or 3", s)
		return
	}
	a.sysWord(0, s, rt)
}

// MRS emits MRS Xt, <sysreg>. The register's op0 must be 2 or 3.
func (a *Asm) MRS(rt Reg, s SysReg) {
	if s.Op0 < 2 {
		a.fail("MRS from %v: op0 must be 2 or 3", s)
		return
	}
	a.sysWord(1, s, rt)
}

// MSRPAN emits MSR PAN, #imm (MSR immediate, op1=0 op2=4, CRm=imm).
func (a *Asm) MSRPAN(on bool) {
	imm := uint32(0)
	if on {
		imm = 1
	}
	a.Word(0xd500401f | 0<<16 | imm<<8 | 4<<5)
}

// AT emits AT <op>, Xt.
func (a *Asm) AT(op ATOp, rt Reg) {
	if !op.Valid() {
		a.fail("AT operation %d out of range", op)
		return
	}
	a.sysWord(0, op.SysOp(), rt)
}

// TLBI emits TLBI <op> (Rt = XZR).
func (a *Asm) TLBI(op TLBIOp) { a.sysWord(0, op.SysOp(), XZR) }

// DSBSY emits DSB SY.
func (a *Asm) DSBSY() { a.Word(0xd5033f9f) }

// ISB emits ISB.
func (a *Asm) ISB() { a.Word(0xd5033fdf) }

// NOP emits NOP.
func (a *Asm) NOP() { a.Word(0xd503201f) }

// ERET emits ERET.
func (a *Asm) ERET() { a.Word(0xd69f03e0) }

// SMC emits SMC #imm16.
func (a *Asm) SMC(imm16 uint16) { a.Word(0xd4000003 | uint32(imm16)<<5) }

// HLT emits HLT #imm16.
func (a *Asm) HLT(imm16 uint16) { a.Word(0xd4400000 | uint32(imm16)<<5) }
