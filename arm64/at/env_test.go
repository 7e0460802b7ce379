package at_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// The tests in this package build translation tables by hand, word by
// word, so that each expectation can be read off the descriptors and the
// rules without trusting any table-building code.

const (
	ramBase = 0x4000_0000
	ramSize = 0x1000_0000 // RAM is [0x4000_0000, 0x5000_0000)

	// Descriptor bits (DDI 0487, D8.3 "Translation table descriptor formats").
	dValid = 1 << 0
	dTable = 3       // table (levels <3) or page (level 3)
	dBlock = 1       // block (levels <3)
	dAF    = 1 << 10 // access flag
	dNG    = 1 << 11
	shNS   = 0 << 8
	shOS   = 2 << 8
	shIS   = 3 << 8
	dDBM   = 1 << 51
	dCont  = 1 << 52
	dPXN   = 1 << 53
	dUXN   = 1 << 54

	// Standard stage-1 tables (4K granule, 48-bit VA, start level 0).
	l0 = 0x4400_0000
	l1 = 0x4400_1000
	l2 = 0x4400_2000
	l3 = 0x4400_3000

	// Standard stage-2 tables (4K granule, 32-bit IPA, start level 1). All
	// table addresses lie in the QEMU oracle's case RAM (below 0x4f00_0000).
	s2l1 = 0x4e00_0000
	s2l2 = 0x4e00_1000
	s2l3 = 0x4e00_2000

	sctlrM = 1 << 0
	sctlrC = 1 << 2
	sctlrI = 1 << 12

	// stdMAIR: Attr0 0xff Normal WB RW-alloc, Attr1 0x00 Device-nGnRnE,
	// Attr2 0x44 Normal NC, Attr3 0x04 Device-nGnRE, Attr4 0xbb Normal WT
	// RW-alloc, Attr5 0x0c Device-GRE, Attr6 0xf4 outer WB / inner NC,
	// Attr7 0x08 Device-nGRE.
	stdMAIR = 0x08f4_0cbb_0444_00ff
)

func ap(v uint64) uint64   { return v << 6 }
func attr(n uint64) uint64 { return n << 2 }

// s2attr is a stage-2 leaf's MemAttr[3:0] in bits [5:2].
func s2attr(m uint64) uint64 { return m << 2 }

// s2ap is S2AP[1:0] in bits [7:6]: bit 6 read, bit 7 write.
func s2ap(v uint64) uint64 { return v << 6 }

// fpar is PAR_EL1 for a fault: F=1, FST in [6:1], PTW bit 8, S bit 9 and
// the RES1 bit 11 (DDI 0487, PAR_EL1 with F=1).
func fpar(fst uint64, s, ptw bool) uint64 {
	v := uint64(1) | fst<<1 | 1<<11
	if ptw {
		v |= 1 << 8
	}
	if s {
		v |= 1 << 9
	}
	return v
}

// spar is PAR_EL1 for a success: PA[51:12], SH in [8:7], NS bit 9 (UNKNOWN
// for a Non-secure regime; the contract reports 1, as QEMU), RES1 bit 11,
// ATTR in [63:56].
func spar(pa uint64, attr uint8, sh uint64) uint64 {
	return pa&0x000f_ffff_ffff_f000 | sh<<7 | 1<<9 | 1<<11 | uint64(attr)<<56
}

// FST values (ESR_ELx DFSC encodings).
func fstTrans(level int) uint64 {
	if level < 0 {
		return 0b101011
	}
	return 0b000100 | uint64(level)
}
func fstAddr(level int) uint64 {
	if level < 0 {
		return 0b101001
	}
	return uint64(level)
}
func fstAF(level int) uint64   { return 0b001000 | uint64(level) }
func fstPerm(level int) uint64 { return 0b001100 | uint64(level) }
func fstSEA(level int) uint64 {
	if level < 0 {
		return 0b010011
	}
	return 0b010100 | uint64(level)
}

type env struct {
	t  testing.TB
	m  *mem.Sparse
	r  vmsa.Regs
	ps at.PSTATE
	w  vmsa.Walker
}

func newEnv(t testing.TB) *env {
	t.Helper()
	m, err := mem.NewSparse([]mem.Range{{Base: ramBase, Size: ramSize}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, r: vmsa.DefaultRegs(), ps: at.PSTATE{EL: 2}}
	e.r.HCR_EL2 = sysreg.HCR_RW
	e.w.Mem = m
	return e
}

// set writes a little-endian word.
func (e *env) set(pa, v uint64) {
	e.t.Helper()
	if err := e.m.Write64(mem.PA(pa), v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(pa uint64) uint64 {
	e.t.Helper()
	v, ok := e.m.Read64(mem.PA(pa))
	if !ok {
		e.t.Fatalf("read %#x outside RAM", pa)
	}
	return v
}

func (e *env) exec(op at.Op, va uint64) at.Result {
	return at.Execute(&e.w, &e.r, e.ps, op, va, 0)
}

// s1std sets up stage 1 of the EL1&0 regime: 4K granule, T0SZ=16 (48-bit
// VA, start level 0 by AArch64.S1StartLevel: 3-(47-12)/9 = 0), IPS 48
// bits, MMU and caches on, and the chain L0[0] -> L1[0] -> L2[0] -> L3,
// with L3[1] mapping VA 0x1000 to PA 0x4000_1000 (Attr0, IS, AF, AP=00).
func (e *env) s1std() {
	e.r.SCTLR_EL1 = sctlrM | sctlrC | sctlrI
	e.r.TCR_EL1 = sysreg.TCR(16 | 5<<32)
	e.r.TTBR0_EL1 = l0
	e.r.MAIR_EL1 = stdMAIR
	e.set(l0, l1|dTable)
	e.set(l1, l2|dTable)
	e.set(l2, l3|dTable)
	e.set(l3+8, 0x4000_1000|dTable|dAF|shIS)
}

// s2std turns stage 2 on: 4K granule, T0SZ=32 (32-bit IPA), SL0=1 (start
// level 1: 4 entries for IPA[31:30]), PS 48 bits; IPA [0x4000_0000,
// 0x5000_0000) is mapped to the same PA with 2MB blocks at level 2
// (Normal WB, S2AP RW, IS, AF).
func (e *env) s2std() {
	e.r.HCR_EL2 |= sysreg.HCR_VM
	e.r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 5<<16)
	e.r.VTTBR_EL2 = s2l1
	e.set(s2l1+8, s2l2|dTable) // IPA[31:30] = 1
	for ipa := uint64(ramBase); ipa < ramBase+ramSize; ipa += 1 << 21 {
		e.set(s2l2+(ipa>>21&511)*8, ipa|dBlock|s2attr(0xf)|s2ap(3)|shIS|dAF)
	}
}

// s2page replaces the 2MB block covering ipa by a level-3 table whose
// entries map the same addresses, with the page for ipa set to d.
func (e *env) s2page(ipa, d uint64) {
	blk := ipa &^ (1<<21 - 1)
	for i := uint64(0); i < 512; i++ {
		e.set(s2l3+i*8, (blk+i<<12)|dTable|s2attr(0xf)|s2ap(3)|shIS|dAF)
	}
	e.set(s2l2+(ipa>>21&511)*8, s2l3|dTable)
	e.set(s2l3+(ipa>>12&511)*8, d)
}
