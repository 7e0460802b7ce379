package interp

import (
	"golang.org/x/arch/arm64/arm64asm"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/tlb"
)

// compile turns an instruction arm64asm decoded into its handler and
// operand fields. arm64asm has already told an allocated encoding from an
// unallocated one and named it; the fields are read from the encoding
// as its diagram lays them out. Classes left out (SIMD and floating
// point, pointer authentication, CRC32, MTE, ...) return a zero insn,
// which executes as an unimplemented (UNDEFINED) encoding.
func compile(in arm64asm.Inst) insn {
	w := in.Enc
	d := insn{
		rd: uint8(w & 31), rn: uint8(w >> 5 & 31), rm: uint8(w >> 16 & 31), ra: uint8(w >> 10 & 31),
		sf: w>>31 != 0,
	}
	switch {
	case w>>26&7 == 0b100: // data processing, immediate
		return compileDPImm(w, d)
	case w>>26&7 == 0b101: // branches, exception generation, system
		return compileBranchSys(in, w, d)
	case w>>25&5 == 0b100: // loads and stores (bit 27 = 1, bit 25 = 0)
		if w>>26&1 != 0 {
			return insn{fn: fpInsn} // SIMD and floating-point registers
		}
		return compileLoadStore(in, w, d)
	case w>>25&7 == 0b101: // data processing, register
		return compileDPReg(w, d)
	case w>>25&7 == 0b111: // SIMD and floating-point data processing
		return insn{fn: fpInsn}
	}
	return insn{}
}

func sext(v uint64, bits uint) uint64 {
	return uint64(int64(v<<(64-bits)) >> (64 - bits))
}

func compileDPImm(w uint32, d insn) insn {
	switch w >> 23 & 7 {
	case 0, 1: // ADR, ADRP
		imm := uint64(w>>29&3) | uint64(w>>5&0x7ffff)<<2
		d.sub = w>>31 != 0
		if d.sub {
			d.imm = sext(imm, 21) << 12
		} else {
			d.imm = sext(imm, 21)
		}
		d.fn = adr
	case 2: // add/subtract immediate
		d.imm = uint64(w >> 10 & 0xfff)
		if w>>22&1 != 0 {
			d.imm <<= 12
		}
		d.sub = w>>30&1 != 0
		d.setFlags = w>>29&1 != 0
		d.fn = addSubImm
	case 4: // logical immediate
		n := uint8(w >> 22 & 1)
		if !d.sf && n != 0 {
			return insn{}
		}
		wmask, _, ok := decodeBitMasks(n, uint8(w>>10&0x3f), uint8(w>>16&0x3f), true, d.sf)
		if !ok {
			return insn{}
		}
		d.imm = wmask
		d.op = uint8(w >> 29 & 3)
		d.fn = logicImm
	case 5: // move wide
		d.op = uint8(w >> 29 & 3)
		hw := uint8(w >> 21 & 3)
		if d.op == 1 || (!d.sf && hw >= 2) {
			return insn{}
		}
		d.imm = uint64(w >> 5 & 0xffff)
		d.amount = hw * 16
		d.fn = movWide
	case 6: // bitfield
		d.op = uint8(w >> 29 & 3)
		n := uint8(w >> 22 & 1)
		if d.op == 3 || n != uint8(w>>31) {
			return insn{}
		}
		immr, imms := uint8(w>>16&0x3f), uint8(w>>10&0x3f)
		if !d.sf && (immr >= 32 || imms >= 32) {
			return insn{}
		}
		wmask, tmask, ok := decodeBitMasks(n, imms, immr, false, d.sf)
		if !ok {
			return insn{}
		}
		d.imm, d.imm2, d.amount, d.shift = wmask, tmask, immr, imms
		d.fn = bitfield
	case 7: // extract
		if w>>29&3 != 0 || w>>21&1 != 0 || w>>22&1 != w>>31 {
			return insn{}
		}
		d.amount = uint8(w >> 10 & 0x3f)
		if !d.sf && d.amount >= 32 {
			return insn{}
		}
		d.fn = extr
	}
	return d
}

func compileDPReg(w uint32, d insn) insn {
	imm6 := uint8(w >> 10 & 0x3f)
	if w>>28&1 == 0 {
		if !d.sf && imm6 >= 32 {
			return insn{}
		}
		if w>>24&1 == 0 { // logical (shifted register)
			d.op = uint8(w >> 29 & 3)
			d.sub = w>>21&1 != 0
			d.shift, d.amount = uint8(w>>22&3), imm6
			d.fn = logicShift
			return d
		}
		d.sub = w>>30&1 != 0
		d.setFlags = w>>29&1 != 0
		if w>>21&1 == 0 { // add/subtract (shifted register)
			d.shift, d.amount = uint8(w>>22&3), imm6
			if d.shift == shROR {
				return insn{}
			}
			d.fn = addSubShift
			return d
		}
		// add/subtract (extended register)
		d.shift, d.amount = uint8(w>>13&7), uint8(w>>10&7)
		if w>>22&3 != 0 || d.amount > 4 {
			return insn{}
		}
		d.fn = addSubExt
		return d
	}
	switch w >> 21 & 0xf {
	case 0: // add/subtract with carry
		if w>>10&0x3f != 0 {
			return insn{} // FEAT_FlagM RMIF, SETF
		}
		d.sub = w>>30&1 != 0
		d.setFlags = w>>29&1 != 0
		d.fn = addSubCarry
		return d
	case 2: // conditional compare
		if w>>10&1 != 0 || w>>4&1 != 0 || w>>29&1 == 0 {
			return insn{}
		}
		d.sub = w>>30&1 != 0
		d.setFlags = w>>11&1 != 0
		d.imm = uint64(w >> 16 & 31)
		d.shift = uint8(w >> 12 & 15)
		d.op = uint8(w & 15)
		d.fn = condCompare
		return d
	case 4: // conditional select
		if w>>29&1 != 0 || w>>11&1 != 0 {
			return insn{}
		}
		d.op = uint8(w>>30&1)<<1 | uint8(w>>10&1)
		d.shift = uint8(w >> 12 & 15)
		d.fn = condSelect
		return d
	case 6:
		if w>>29&1 != 0 {
			return insn{}
		}
		opcode := w >> 10 & 0x3f
		if w>>30&1 != 0 { // data processing (1 source)
			if w>>16&31 != 0 || opcode > 5 {
				return insn{}
			}
			d.op = uint8(opcode)
			if d.op == dp1REV && !d.sf {
				return insn{}
			}
			if d.op == dp1REV32 && !d.sf {
				d.op = dp1REV
			}
			d.fn = dataProc1
			return d
		}
		ops := map[uint32]uint8{2: dp2UDIV, 3: dp2SDIV, 8: dp2LSLV, 9: dp2LSRV, 10: dp2ASRV, 11: dp2RORV}
		op, ok := ops[opcode]
		if !ok {
			return insn{} // CRC32, PACGA, MTE, ...
		}
		d.op = op
		d.fn = dataProc2
		return d
	}
	if w>>24&1 == 1 && w>>29&3 == 0 { // data processing (3 source)
		op31 := w >> 21 & 7
		d.sub = w>>15&1 != 0
		switch op31 {
		case 0:
			d.op = dp3MADD
		case 1:
			d.op = dp3SMADDL
		case 5:
			d.op = dp3UMADDL
		case 2:
			d.op = dp3SMULH
		case 6:
			d.op = dp3UMULH
		default:
			return insn{}
		}
		if op31 != 0 && !d.sf || (op31 == 2 || op31 == 6) && d.sub {
			return insn{}
		}
		d.fn = dataProc3
		return d
	}
	return insn{}
}

func compileBranchSys(in arm64asm.Inst, w uint32, d insn) insn {
	switch {
	case w>>26&0x1f == 0b00101: // B, BL
		d.sub = w>>31 != 0
		d.imm = sext(uint64(w&0x3ffffff)<<2, 28)
		d.fn = branchImm
	case w>>24 == 0b01010100: // B.cond
		if w>>4&1 != 0 {
			return insn{} // BC.cond (FEAT_HBC)
		}
		d.imm = sext(uint64(w>>5&0x7ffff)<<2, 21)
		d.shift = uint8(w & 15)
		d.fn = branchCond
	case w>>25&0x3f == 0b011010: // CBZ, CBNZ
		d.sub = w>>24&1 != 0
		d.imm = sext(uint64(w>>5&0x7ffff)<<2, 21)
		d.fn = cbz
	case w>>25&0x3f == 0b011011: // TBZ, TBNZ
		d.sub = w>>24&1 != 0
		d.amount = uint8(w>>31)<<5 | uint8(w>>19&31)
		d.imm = sext(uint64(w>>5&0x3fff)<<2, 16)
		d.fn = tbz
	case w>>25 == 0b1101011: // unconditional branch (register)
		switch w &^ (31 << 5) {
		case 0xd61f0000:
			d.op = brBR
		case 0xd63f0000:
			d.op = brBLR
		case 0xd65f0000:
			d.op = brRET
		case 0xd69f0000:
			if d.rn != 31 {
				return insn{}
			}
			d.fn = eret
			return d
		default:
			return insn{} // pointer authentication forms, DRPS
		}
		d.fn = branchReg
	case w>>24 == 0b11010100: // exception generation
		d.imm = uint64(w >> 5 & 0xffff)
		switch in.Op {
		case arm64asm.SVC:
			d.op = excSVC
		case arm64asm.BRK:
			d.op = excBRK
		case arm64asm.HLT:
			d.op = excHLT
		case arm64asm.DCPS1, arm64asm.DCPS2, arm64asm.DCPS3:
			d.op = excDCPS
		default:
			return insn{}
		}
		d.fn = exceptionGen
	case w>>22 == 0b1101010100: // system
		return compileSystem(w, d)
	default:
		return insn{}
	}
	return d
}

// compileSystem decodes the system instruction class (MSR/MRS, SYS,
// hints, barriers, PSTATE), for arm64asm's decodes and the table of
// encodings it lacks alike.
func compileSystem(w uint32, d insn) insn {
	l := w>>21&1 != 0
	op0 := uint8(w >> 19 & 3)
	op1, crn, crm, op2 := uint8(w>>16&7), uint8(w>>12&15), uint8(w>>8&15), uint8(w>>5&7)
	rt := uint8(w & 31)
	d.rd = rt
	switch {
	case op0 == 3 && op1 == 3 && crn == 4 && crm == 4 && (op2 == 0 || op2 == 1): // FPCR, FPSR
		return insn{fn: fpInsn}
	case op0 >= 2: // MRS, MSR (register)
		d.sysreg = resolveSysReg(op0, op1, crn, crm, op2)
		if l {
			d.fn = mrs
		} else {
			d.fn = msr
		}
		return d
	case op0 == 1 && !l: // SYS
		d.sysreg = sysRegRef{op0: 1, op1: op1, crn: crn, crm: crm, op2: op2}
		return compileSys(d, op1, crn, crm, op2)
	case op0 == 0 && !l && crn == 4 && rt == 31: // MSR (immediate)
		fields := map[uint8]uint8{0<<3 | 5: psSPSel, 3<<3 | 6: psDAIFSet, 3<<3 | 7: psDAIFClr,
			0<<3 | 4: psPAN, 0<<3 | 3: psUAO, 3<<3 | 2: psDIT, 3<<3 | 1: psSSBS, 3<<3 | 4: psTCO,
			1<<3 | 0: psALLINT}
		f, ok := fields[op1<<3|op2]
		if !ok {
			return insn{}
		}
		if f == psALLINT && crm>>1 != 0 {
			return insn{fn: undefinedInsn} // MSR ALLINT, #imm decode: CRm<3:1> != '000'
		}
		d.op = f
		d.imm = uint64(crm)
		d.sysreg = sysRegRef{op1: op1, op2: op2}
		d.fn = msrImm
		return d
	case op0 == 0 && !l && crn == 2 && rt == 31: // hints
		switch crm<<3 | op2 {
		case 2:
			d.op = hintWFE
		case 3:
			d.op = hintWFI
		default:
			d.op = hintNOP
		}
		d.fn = hint
		return d
	case op0 == 0 && !l && crn == 3 && op1 == 3 && rt == 31: // barriers, CLREX
		switch op2 {
		case 2: // CLREX
			d.sub = true
		case 4, 5, 6, 7: // DSB, DMB, ISB, SB
		default:
			return insn{}
		}
		d.fn = barrier
		return d
	}
	return insn{}
}

// compileSys decodes SYS: TLBI (CRn 8), AT, DC and IC (CRn 7).
func compileSys(d insn, op1, crn, crm, op2 uint8) insn {
	d.fn = sysInsn
	if crn == 8 {
		op, ok := tlb.OpFromSys(1, op1, crn, crm, op2)
		if !ok {
			return insn{}
		}
		d.op, d.imm = sysTLBI, uint64(op)
		return d
	}
	if crn != 7 {
		return insn{}
	}
	for _, op := range at.Ops() {
		_, o1, _, cm, o2 := op.Encoding()
		if o1 == op1 && cm == crm && o2 == op2 {
			d.op, d.imm = sysAT, uint64(op)
			return d
		}
	}
	switch {
	case op1 == 3 && crm == 4 && op2 == 1:
		d.op = sysDCZVA
	case op1 == 3 && op2 == 1 && (crm == 10 || crm == 11 || crm == 12 || crm == 13 || crm == 14):
		d.op = sysDCVA // CVAC, CVAU, CVAP, CVADP, CIVAC
	case op1 == 0 && crm == 6 && op2 == 1:
		d.op = sysDCIVAC
	case op1 == 0 && op2 == 2 && (crm == 6 || crm == 10 || crm == 14):
		d.op = sysDCSW
	case op1 == 0 && op2 == 0 && (crm == 1 || crm == 5):
		d.op = sysICIALLU
	case op1 == 3 && crm == 5 && op2 == 1:
		d.op = sysICIVAU
	default:
		return insn{}
	}
	return d
}

func compileLoadStore(in arm64asm.Inst, w uint32, d insn) insn {
	size := uint8(w >> 30)
	switch {
	case w>>24&0x3f == 0b001000: // load/store exclusive, ordered (and CAS)
		return compileExclusive(w, d)
	case w>>27&7 == 0b011 && w>>24&3 == 0: // load register (literal)
		opc := w >> 30
		d.op = amLiteral
		d.imm = sext(uint64(w>>5&0x7ffff)<<2, 21)
		d.shift = lsLoad
		switch opc {
		case 0:
			d.size = 4
		case 1:
			d.size, d.sf = 8, true
		case 2:
			d.size, d.sf = 4, true
			d.shift |= lsSigned
		case 3:
			d.shift = lsPrefetch
		}
		d.fn = ldrStr
		return d
	case w>>27&7 == 0b101: // load/store pair
		opc := w >> 30
		l := w>>22&1 != 0
		switch w >> 23 & 3 {
		case 0:
			d.op = amOffset // no-allocate pair
		case 1:
			d.op = amPost
		case 2:
			d.op = amOffset
		case 3:
			d.op = amPre
		}
		switch opc {
		case 0:
			d.size = 4
		case 1:
			if !l || w>>23&3 == 0 {
				return insn{} // STGP (MTE)
			}
			d.size, d.setFlags = 4, true
		case 2:
			d.size = 8
		default:
			return insn{}
		}
		d.sub = l
		d.imm = sext(uint64(w>>15&0x7f), 7) * uint64(d.size)
		d.fn = ldpStp
		return d
	case w>>24&0x3f == 0b111000 || w>>24&0x3f == 0b111001: // load/store register
		opc := uint8(w >> 22 & 3)
		d.size = 1 << size
		if !setLoadFlags(&d, size, opc) {
			return insn{}
		}
		if w>>24&1 != 0 { // unsigned offset
			d.op = amOffset
			d.imm = uint64(w>>10&0xfff) << size
			d.fn = ldrStr
			return d
		}
		if w>>21&1 != 0 { // register offset
			if w>>10&3 != 2 {
				return insn{} // atomics are decoded by decodeExtra
			}
			option := uint8(w >> 13 & 7)
			if option&2 == 0 {
				return insn{}
			}
			d.op = amReg
			d.imm = uint64(option)
			if w>>12&1 != 0 {
				d.imm2 = uint64(size)
			}
			d.fn = ldrStr
			return d
		}
		d.imm = sext(uint64(w>>12&0x1ff), 9)
		switch w >> 10 & 3 {
		case 0:
			d.op = amOffset
		case 1:
			d.op = amPost
		case 2:
			d.op = amOffset
			d.shift |= lsUnpriv
			if d.shift&lsPrefetch != 0 {
				return insn{}
			}
		case 3:
			d.op = amPre
		}
		d.fn = ldrStr
		return d
	}
	return insn{}
}

// setLoadFlags sets the load flags, width and register size of a
// single-register load/store from size and opc; false for unallocated.
func setLoadFlags(d *insn, size, opc uint8) bool {
	switch opc {
	case 0:
		d.shift = 0
	case 1:
		d.shift = lsLoad
		d.sf = size == 3
	case 2:
		if size == 3 {
			d.shift = lsPrefetch
			return true
		}
		d.shift = lsLoad | lsSigned
		d.sf = true
	case 3:
		if size >= 2 {
			return false
		}
		d.shift = lsLoad | lsSigned | lsTo32
		d.sf = false
	}
	return true
}

// compileExclusive: LDXR/STXR and their acquire/release and pair forms,
// LDAR/STLR, LDLAR/STLLR; CAS and CASP come from decodeExtra.
func compileExclusive(w uint32, d insn) insn {
	size := uint8(w >> 30)
	o2, l, o1, o0 := w>>23&1, w>>22&1, w>>21&1, w>>15&1
	d.size = 1 << size
	d.sf = size == 3
	d.ra = uint8(w >> 10 & 31)
	switch {
	case o2 == 0 && o1 == 0:
		if l == 1 {
			d.op = exLDXR
		} else {
			d.op = exSTXR
		}
	case o2 == 0 && o1 == 1 && size >= 2:
		d.size = 4 << (size - 2)
		if l == 1 {
			d.op = exLDXP
		} else {
			d.op = exSTXP
		}
	case o2 == 1 && o1 == 0:
		if l == 1 {
			d.op = exLDAR
		} else {
			d.op = exSTLR
		}
	default:
		return insn{}
	}
	_ = o0
	d.fn = exclusive
	return d
}
