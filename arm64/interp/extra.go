package interp

import "fmt"

// decodeExtra decodes the encodings arm64asm (golang.org/x/arch v0.32)
// does not know but the modelled PE implements: HVC and SMC, the SYS
// forms AT and IC, MSR (immediate) of PAN, UAO, DIT, SSBS, TCO and ALLINT, SB
// (its table has no entries for them), the FEAT_LSE atomics (CAS, CASP,
// SWP, LD<op>, ST<op>) and the FEAT_LRCPC loads and stores (LDAPR,
// LDAPUR, STLUR). Each is one fixed field pattern of the A64 encoding
// index; everything else it does not know is UDF or an encoding the
// interpreter does not implement.
func decodeExtra(w uint32) insn {
	d := insn{rd: uint8(w & 31), rn: uint8(w >> 5 & 31), rm: uint8(w >> 16 & 31), sf: w>>31 != 0}
	switch {
	case w>>16 == 0: // UDF #imm16: permanently UNDEFINED
		return insn{fn: undefinedInsn}
	case w&0xffe0001f == 0xd4000002: // HVC #imm16
		d.imm, d.op, d.fn = uint64(w>>5&0xffff), excHVC, exceptionGen
		return d
	case w&0xffe0001f == 0xd4000003: // SMC #imm16
		d.imm, d.op, d.fn = uint64(w>>5&0xffff), excSMC, exceptionGen
		return d
	case w>>22 == 0b1101010100: // system
		return compileSystem(w, d)
	case w>>24&0x3f == 0b001000 && w>>21&1 == 1 && w>>10&31 == 31: // CAS, CASP
		size := uint8(w >> 30)
		o2 := w >> 23 & 1
		d.fn = atomic
		if o2 == 1 {
			d.op, d.size = atCAS, 1<<size
			return d
		}
		if size >= 2 || d.rm&1 != 0 || d.rd&1 != 0 {
			return insn{} // CASP with odd registers is UNDEFINED; sizes 1x are LDXP/STXP
		}
		d.op, d.size = atCASP, 4<<size
		return d
	case w>>24&0x3f == 0b111000 && w>>21&1 == 1 && w>>10&3 == 0: // atomic memory operations
		size := uint8(w >> 30)
		o3, opc := w>>15&1, uint8(w>>12&7)
		d.size = 1 << size
		d.sf = size == 3
		switch {
		case o3 == 0:
			d.op, d.fn = opc, atomic // LDADD ... LDUMIN (ST<op> with Rt = XZR)
		case opc == 0:
			d.op, d.fn = atSWP, atomic
		case opc == 4 && w>>22&3 == 2 && d.rm == 31: // LDAPR
			d.op, d.fn = exLDAR, exclusive
		default:
			return insn{}
		}
		return d
	case w>>24&0x3f == 0b011001 && w>>21&1 == 0 && w>>10&3 == 0: // LDAPUR, STLUR
		size := uint8(w >> 30)
		opc := uint8(w >> 22 & 3)
		d.size = 1 << size
		if !setLoadFlags(&d, size, opc) || d.shift&lsPrefetch != 0 {
			return insn{}
		}
		d.shift |= lsAcqRel
		d.op = amOffset
		d.imm = sext(uint64(w>>12&0x1ff), 9)
		d.fn = ldrStr
		return d
	}
	return insn{}
}

// extraName names an encoding of decodeExtra's table for Disassemble.
func extraName(w uint32) string {
	switch {
	case w>>16 == 0:
		return fmt.Sprintf("udf #%d", w&0xffff)
	case w&0xffe0001f == 0xd4000002:
		return fmt.Sprintf("hvc #%#x", w>>5&0xffff)
	case w&0xffe0001f == 0xd4000003:
		return fmt.Sprintf("smc #%#x", w>>5&0xffff)
	case w>>22 == 0b1101010100:
		return fmt.Sprintf("sys op0=%d op1=%d C%d C%d op2=%d x%d", w>>19&3, w>>16&7, w>>12&15, w>>8&15, w>>5&7, w&31)
	}
	return fmt.Sprintf("lse/rcpc %#08x", w)
}
