package mmio

import "fmt"

// Instruction encoders written from the A64 "Loads and Stores" encoding
// tables. Each takes the fields exactly as the Arm ARM names them.

// encUImm: Load/store register (unsigned immediate)
// size:2 | 111 | V=0 | 01 | opc:2 | imm12 | Rn | Rt
func encUImm(size, opc, imm12, rn, rt uint32) uint32 {
	return size<<30 | 0b111<<27 | 0b01<<24 | opc<<22 | imm12<<10 | rn<<5 | rt
}

// imm9 forms: size:2 | 111 | V=0 | 00 | opc:2 | 0 | imm9 | op2:2 | Rn | Rt
// with op2 = 00 unscaled (LDUR), 01 post-index, 10 unprivileged (LDTR),
// 11 pre-index.
const (
	op2Unscaled = 0b00
	op2Post     = 0b01
	op2Unpriv   = 0b10
	op2Pre      = 0b11
)

func encImm9(size, opc uint32, imm9 int32, op2, rn, rt uint32) uint32 {
	return size<<30 | 0b111<<27 | opc<<22 | (uint32(imm9)&0x1ff)<<12 | op2<<10 | rn<<5 | rt
}

// encReg: Load/store register (register offset)
// size:2 | 111 | V=0 | 00 | opc:2 | 1 | Rm | option:3 | S | 10 | Rn | Rt
func encReg(size, opc, rm, option, s, rn, rt uint32) uint32 {
	return size<<30 | 0b111<<27 | opc<<22 | 1<<21 | rm<<16 | option<<13 | s<<12 | 0b10<<10 | rn<<5 | rt
}

// encLit: Load register (literal): opc:2 | 011 | V=0 | 00 | imm19 | Rt
func encLit(opc uint32, imm19 int32, rt uint32) uint32 {
	return opc<<30 | 0b011<<27 | (uint32(imm19)&0x7ffff)<<5 | rt
}

// Pair forms: opc:2 | 101 | V=0 | mode:2 | L | imm7 | Rt2 | Rn | Rt with
// mode (bits 24:23) = 00 non-temporal, 01 post-index, 10 offset, 11 pre-index.
const (
	pairNT     = 0b00
	pairPost   = 0b01
	pairOffset = 0b10
	pairPre    = 0b11
)

func encPair(opc, mode, l uint32, imm7 int32, rt2, rn, rt uint32) uint32 {
	return opc<<30 | 0b101<<27 | mode<<23 | l<<22 | (uint32(imm7)&0x7f)<<15 | rt2<<10 | rn<<5 | rt
}

// encExcl: Load/store exclusive and ordered
// size:2 | 001000 | o2 | L | o1 | Rs | o0 | Rt2 | Rn | Rt
func encExcl(size, o2, l, o1, rs, o0, rt2, rn, rt uint32) uint32 {
	return size<<30 | 0b001000<<24 | o2<<23 | l<<22 | o1<<21 | rs<<16 | o0<<15 | rt2<<10 | rn<<5 | rt
}

// encLDAR/encSTLR: o2=1 o1=0 o0=1, Rs=Rt2=11111.
func encLDAR(size, rn, rt uint32) uint32 { return encExcl(size, 1, 1, 0, 31, 1, 31, rn, rt) }
func encSTLR(size, rn, rt uint32) uint32 { return encExcl(size, 1, 0, 0, 31, 1, 31, rn, rt) }

// fakeRegs is a guest register file.
type fakeRegs struct {
	x      [31]uint64
	sp, pc uint64
}

func (r *fakeRegs) X(n int) uint64 {
	if n < 0 || n > 30 {
		panic(fmt.Sprintf("X(%d)", n))
	}
	return r.x[n]
}

func (r *fakeRegs) SetX(n int, v uint64) {
	if n < 0 || n > 30 {
		panic(fmt.Sprintf("SetX(%d)", n))
	}
	r.x[n] = v
}
func (r *fakeRegs) SP() uint64     { return r.sp }
func (r *fakeRegs) SetSP(v uint64) { r.sp = v }
func (r *fakeRegs) PC() uint64     { return r.pc }

// esrDA builds a Data Abort syndrome (EC 0x24, IL=1) with a translation
// fault at level 3 and the given ISS fields.
func esrDA(isv bool, sas uint8, sse bool, srt uint8, sf, ar, wnr bool) ESR {
	e := ESR(ECDataAbortLowerEL)<<26 | 1<<25 | DFSCTranslation | 3
	b := func(c bool, bit uint) ESR {
		if c {
			return 1 << bit
		}
		return 0
	}
	e |= b(isv, 24) | ESR(sas)<<22 | b(sse, 21) | ESR(srt)<<16 | b(sf, 15) | b(ar, 14) | b(wnr, 6)
	return e
}

// fetchWord returns a Fetcher for a fixed word.
func fetchWord(w uint32) Fetcher {
	return FetchFunc(func() (uint32, error) { return w, nil })
}
