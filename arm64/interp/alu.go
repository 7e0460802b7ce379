package interp

import (
	"math/bits"
)

// NZCV flag bits as the PE keeps them (N at bit 3).
const (
	flagN = 8
	flagZ = 4
	flagC = 2
	flagV = 1
)

// condTable[nzcv] has bit cond set when ConditionHolds(cond).
var condTable [16]uint16

func init() {
	for f := 0; f < 16; f++ {
		n, z, c, v := f&flagN != 0, f&flagZ != 0, f&flagC != 0, f&flagV != 0
		for cond := 0; cond < 16; cond++ {
			var r bool
			switch cond >> 1 {
			case 0:
				r = z
			case 1:
				r = c
			case 2:
				r = n
			case 3:
				r = v
			case 4:
				r = c && !z
			case 5:
				r = n == v
			case 6:
				r = n == v && !z
			case 7:
				r = true
			}
			if cond&1 == 1 && cond != 15 {
				r = !r
			}
			if r {
				condTable[f] |= 1 << cond
			}
		}
	}
}

// condHolds is ConditionHolds for the current flags.
func (c *CPU) condHolds(cond uint8) bool { return condTable[c.PE.NZCV&15]>>cond&1 != 0 }

// addWithCarry is AddWithCarry for 64 or 32 bits: the result (zero-extended)
// and the NZCV flags.
func addWithCarry(sf bool, x, y, carry uint64) (uint64, uint8) {
	if sf {
		r, cout := bits.Add64(x, y, carry)
		var f uint8
		if int64(r) < 0 {
			f |= flagN
		}
		if r == 0 {
			f |= flagZ
		}
		if cout != 0 {
			f |= flagC
		}
		if ((x^r)&(y^r))>>63 != 0 {
			f |= flagV
		}
		return r, f
	}
	x32, y32 := uint64(uint32(x)), uint64(uint32(y))
	s := x32 + y32 + carry
	r := uint64(uint32(s))
	var f uint8
	if int32(r) < 0 {
		f |= flagN
	}
	if r == 0 {
		f |= flagZ
	}
	if s>>32 != 0 {
		f |= flagC
	}
	if ((x32^r)&(y32^r))>>31&1 != 0 {
		f |= flagV
	}
	return r, f
}

// logicFlags are the flags of ANDS/BICS: N and Z from the result, C=V=0.
func logicFlags(sf bool, r uint64) uint8 {
	var f uint8
	if sf {
		if int64(r) < 0 {
			f |= flagN
		}
	} else if int32(r) < 0 {
		f |= flagN
	}
	if r == 0 {
		f |= flagZ
	}
	return f
}

func trunc(sf bool, v uint64) uint64 {
	if sf {
		return v
	}
	return uint64(uint32(v))
}

// Shift types (ShiftType).
const (
	shLSL = iota
	shLSR
	shASR
	shROR
)

// shiftReg is ShiftReg: v shifted by amount (< datasize) of type t.
func shiftReg(sf bool, v uint64, t, amount uint8) uint64 {
	if sf {
		switch t {
		case shLSL:
			return v << amount
		case shLSR:
			return v >> amount
		case shASR:
			return uint64(int64(v) >> amount)
		}
		return bits.RotateLeft64(v, -int(amount))
	}
	w := uint32(v)
	switch t {
	case shLSL:
		return uint64(w << amount)
	case shLSR:
		return uint64(w >> amount)
	case shASR:
		return uint64(uint32(int32(w) >> amount))
	}
	return uint64(bits.RotateLeft32(w, -int(amount)))
}

// extendReg is ExtendReg: v extended by option (UXTB..SXTX) and shifted left.
func extendReg(v uint64, option, shift uint8) uint64 {
	switch option {
	case 0:
		v = uint64(uint8(v))
	case 1:
		v = uint64(uint16(v))
	case 2:
		v = uint64(uint32(v))
	case 4:
		v = uint64(int64(int8(v)))
	case 5:
		v = uint64(int64(int16(v)))
	case 6:
		v = uint64(int64(int32(v)))
	}
	return v << shift
}

// decodeBitMasks is DecodeBitMasks: the wmask and tmask of a logical
// immediate or bitfield operation, ok false for a reserved encoding.
func decodeBitMasks(n, imms, immr uint8, immediate, sf bool) (wmask, tmask uint64, ok bool) {
	combined := uint(n)<<6 | uint(^imms&0x3f)
	if combined == 0 {
		return 0, 0, false
	}
	length := uint(bits.Len(combined)) - 1
	if length < 1 || length > 6 || (!sf && length > 5) {
		return 0, 0, false
	}
	levels := uint(1)<<length - 1
	if immediate && uint(imms)&levels == levels {
		return 0, 0, false
	}
	s := uint(imms) & levels
	r := uint(immr) & levels
	diff := (s - r) & levels
	esize := uint(1) << length
	welem := uint64(1)<<(s+1) - 1
	telem := uint64(1)<<(diff+1) - 1
	emask := uint64(1)<<esize - 1
	if esize == 64 {
		emask = ^uint64(0)
		if s+1 == 64 {
			welem = ^uint64(0)
		}
		if diff+1 == 64 {
			telem = ^uint64(0)
		}
	}
	// ROR(welem, r) within esize bits.
	welem &= emask
	if r != 0 {
		welem = (welem>>r | welem<<(esize-r)) & emask
	}
	telem &= emask
	wmask, tmask = replicate(welem, esize), replicate(telem, esize)
	if !sf {
		wmask, tmask = uint64(uint32(wmask)), uint64(uint32(tmask))
	}
	return wmask, tmask, true
}

func replicate(v uint64, esize uint) uint64 {
	for e := esize; e < 64; e *= 2 {
		v |= v << e
	}
	return v
}

// --- handlers ---

// addSub is AddWithCarry(x, y or NOT(y), carry) with the flags for S and
// the result to Rd, which is SP for the immediate and extended forms
// without S (spDest).
func (c *CPU) addSub(d *insn, x, y uint64, spDest bool) bool {
	carry := uint64(0)
	if d.sub {
		y, carry = ^y, 1
	}
	r, f := addWithCarry(d.sf, x, y, carry)
	if d.setFlags {
		c.PE.NZCV = f
		c.setReg(d.rd, r)
	} else if spDest {
		c.setRegSP(d.rd, r)
	} else {
		c.setReg(d.rd, r)
	}
	return true
}

// addSubImm: ADD, ADDS, SUB, SUBS (immediate); imm already shifted.
func addSubImm(c *CPU, d *insn) bool { return c.addSub(d, c.regSP(d.rn), d.imm, true) }

// addSubShift: ADD/ADDS/SUB/SUBS (shifted register).
func addSubShift(c *CPU, d *insn) bool {
	return c.addSub(d, c.reg(d.rn), shiftReg(d.sf, c.reg(d.rm), d.shift, d.amount), false)
}

// addSubExt: ADD/ADDS/SUB/SUBS (extended register): Rn is SP.
func addSubExt(c *CPU, d *insn) bool {
	return c.addSub(d, c.regSP(d.rn), extendReg(c.reg(d.rm), d.shift, d.amount), true)
}

// addSubCarry: ADC, ADCS, SBC, SBCS.
func addSubCarry(c *CPU, d *insn) bool {
	y := c.reg(d.rm)
	if d.sub {
		y = ^y
	}
	carry := uint64(c.PE.NZCV>>1) & 1
	r, f := addWithCarry(d.sf, c.reg(d.rn), y, carry)
	if d.setFlags {
		c.PE.NZCV = f
	}
	c.setReg(d.rd, r)
	return true
}

// Logical operations (opc).
const (
	logAND = iota
	logORR
	logEOR
	logANDS
)

func logic(op uint8, x, y uint64) uint64 {
	switch op {
	case logORR:
		return x | y
	case logEOR:
		return x ^ y
	}
	return x & y
}

// logicImm: AND/ORR/EOR/ANDS (immediate); Rd is SP unless ANDS.
func logicImm(c *CPU, d *insn) bool {
	r := trunc(d.sf, logic(d.op, c.reg(d.rn), d.imm))
	if d.op == logANDS {
		c.PE.NZCV = logicFlags(d.sf, r)
		c.setReg(d.rd, r)
	} else {
		c.setRegSP(d.rd, r)
	}
	return true
}

// logicShift: AND/BIC/ORR/ORN/EOR/EON/ANDS/BICS (shifted register); sub = N (invert).
func logicShift(c *CPU, d *insn) bool {
	y := shiftReg(d.sf, c.reg(d.rm), d.shift, d.amount)
	if d.sub {
		y = ^y
	}
	r := trunc(d.sf, logic(d.op, c.reg(d.rn), y))
	if d.op == logANDS {
		c.PE.NZCV = logicFlags(d.sf, r)
	}
	c.setReg(d.rd, r)
	return true
}

// movWide: MOVN (op 0), MOVZ (2), MOVK (3); imm is imm16, amount the shift.
func movWide(c *CPU, d *insn) bool {
	var r uint64
	switch d.op {
	case 0:
		r = trunc(d.sf, ^(d.imm << d.amount))
	case 2:
		r = d.imm << d.amount
	default:
		r = c.reg(d.rd)&^(0xffff<<d.amount) | d.imm<<d.amount
		r = trunc(d.sf, r)
	}
	c.setReg(d.rd, r)
	return true
}

// bitfield: SBFM (op 0), BFM (1), UBFM (2); imm = wmask, imm2 = tmask,
// amount = R, shift = S.
func bitfield(c *CPU, d *insn) bool {
	src := c.reg(d.rn)
	var dst uint64
	if d.op == 1 {
		dst = c.reg(d.rd)
	}
	width := uint(32)
	if d.sf {
		width = 64
	}
	bot := dst&^d.imm | rorN(src, uint(d.amount), width)&d.imm
	var top uint64
	switch d.op {
	case 0: // replicate bit S
		if src>>d.shift&1 != 0 {
			top = ^uint64(0)
		}
	case 1:
		top = dst
	}
	r := trunc(d.sf, top&^d.imm2|bot&d.imm2)
	c.setReg(d.rd, r)
	return true
}

func rorN(v uint64, r, width uint) uint64 {
	if width == 64 {
		return bits.RotateLeft64(v, -int(r))
	}
	return uint64(bits.RotateLeft32(uint32(v), -int(r)))
}

// extr: EXTR (and ROR immediate); amount = lsb.
func extr(c *CPU, d *insn) bool {
	hi, lo := c.reg(d.rn), c.reg(d.rm)
	lsb := uint(d.amount)
	var r uint64
	if d.sf {
		if lsb == 0 {
			r = lo
		} else {
			r = lo>>lsb | hi<<(64-lsb)
		}
	} else {
		v := uint64(uint32(hi))<<32 | uint64(uint32(lo))
		r = uint64(uint32(v >> lsb))
	}
	c.setReg(d.rd, r)
	return true
}

// adr: ADR and ADRP (imm is the PC-relative target offset, sub = page).
func adr(c *CPU, d *insn) bool {
	pc := uint64(c.PE.PC)
	if d.sub {
		pc &^= 0xfff
	}
	c.setReg(d.rd, pc+d.imm)
	return true
}

// Two-source operations.
const (
	dp2UDIV = iota
	dp2SDIV
	dp2LSLV
	dp2LSRV
	dp2ASRV
	dp2RORV
)

func dataProc2(c *CPU, d *insn) bool {
	x, y := c.reg(d.rn), c.reg(d.rm)
	var r uint64
	switch d.op {
	case dp2UDIV:
		x, y = trunc(d.sf, x), trunc(d.sf, y)
		if y != 0 {
			r = x / y
		}
	case dp2SDIV:
		if d.sf {
			if y != 0 {
				if int64(x) == -1<<63 && int64(y) == -1 {
					r = x
				} else {
					r = uint64(int64(x) / int64(y))
				}
			}
		} else if int32(y) != 0 {
			if int32(x) == -1<<31 && int32(y) == -1 {
				r = uint64(uint32(x))
			} else {
				r = uint64(uint32(int32(x) / int32(y)))
			}
		}
	default:
		width := uint64(32)
		if d.sf {
			width = 64
		}
		r = shiftReg(d.sf, x, d.op-dp2LSLV, uint8(y%width))
	}
	c.setReg(d.rd, trunc(d.sf, r))
	return true
}

// One-source operations.
const (
	dp1RBIT = iota
	dp1REV16
	dp1REV32
	dp1REV
	dp1CLZ
	dp1CLS
)

func dataProc1(c *CPU, d *insn) bool {
	x := c.reg(d.rn)
	var r uint64
	if d.sf {
		switch d.op {
		case dp1RBIT:
			r = bits.Reverse64(x)
		case dp1REV16:
			r = (x&0x00ff00ff00ff00ff)<<8 | (x>>8)&0x00ff00ff00ff00ff
		case dp1REV32:
			r = uint64(bits.ReverseBytes32(uint32(x))) | uint64(bits.ReverseBytes32(uint32(x>>32)))<<32
		case dp1REV:
			r = bits.ReverseBytes64(x)
		case dp1CLZ:
			r = uint64(bits.LeadingZeros64(x))
		case dp1CLS:
			r = uint64(clsN(x, 64))
		}
	} else {
		w := uint32(x)
		switch d.op {
		case dp1RBIT:
			r = uint64(bits.Reverse32(w))
		case dp1REV16:
			r = uint64((w&0x00ff00ff)<<8 | (w>>8)&0x00ff00ff)
		case dp1REV32, dp1REV:
			r = uint64(bits.ReverseBytes32(w))
		case dp1CLZ:
			r = uint64(bits.LeadingZeros32(w))
		case dp1CLS:
			r = uint64(clsN(uint64(w), 32))
		}
	}
	c.setReg(d.rd, r)
	return true
}

// clsN is CountLeadingSignBits for an n-bit value.
func clsN(x uint64, n uint) int {
	if n == 32 {
		w := uint32(x)
		return bits.LeadingZeros32((w ^ w<<1) | 1)
	}
	return bits.LeadingZeros64((x ^ x<<1) | 1)
}

// Three-source operations.
const (
	dp3MADD = iota
	dp3SMADDL
	dp3UMADDL
	dp3SMULH
	dp3UMULH
)

// dataProc3: sub selects the subtracting form (MSUB, SMSUBL, UMSUBL).
func dataProc3(c *CPU, d *insn) bool {
	x, y, a := c.reg(d.rn), c.reg(d.rm), c.reg(d.ra)
	var p uint64
	switch d.op {
	case dp3MADD:
		p = x * y
	case dp3SMADDL:
		p = uint64(int64(int32(x)) * int64(int32(y)))
	case dp3UMADDL:
		p = uint64(uint32(x)) * uint64(uint32(y))
	case dp3SMULH:
		hi, _ := bits.Mul64(x, y)
		// Signed high half: correct the unsigned product.
		if int64(x) < 0 {
			hi -= y
		}
		if int64(y) < 0 {
			hi -= x
		}
		c.setReg(d.rd, hi)
		return true
	case dp3UMULH:
		hi, _ := bits.Mul64(x, y)
		c.setReg(d.rd, hi)
		return true
	}
	if d.sub {
		p = a - p
	} else {
		p = a + p
	}
	c.setReg(d.rd, trunc(d.sf, p))
	return true
}

// condSelect: CSEL (op 0), CSINC (1), CSINV (2), CSNEG (3); shift = cond.
func condSelect(c *CPU, d *insn) bool {
	var r uint64
	if c.condHolds(d.shift) {
		r = c.reg(d.rn)
	} else {
		r = c.reg(d.rm)
		switch d.op {
		case 1:
			r++
		case 2:
			r = ^r
		case 3:
			r = -r
		}
	}
	c.setReg(d.rd, trunc(d.sf, r))
	return true
}

// condCompare: CCMN (sub false), CCMP (sub true), register or immediate
// (setFlags marks the immediate form, imm); shift = cond, op = nzcv.
func condCompare(c *CPU, d *insn) bool {
	if !c.condHolds(d.shift) {
		c.PE.NZCV = d.op
		return true
	}
	y := d.imm
	if !d.setFlags {
		y = c.reg(d.rm)
	}
	carry := uint64(0)
	if d.sub {
		y, carry = ^y, 1
	}
	_, f := addWithCarry(d.sf, c.reg(d.rn), y, carry)
	c.PE.NZCV = f
	return true
}
