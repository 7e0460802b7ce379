package interp

import (
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// Addressing modes of loads and stores (op field of a load/store insn).
const (
	amOffset  = iota // [Xn, #imm]
	amPre            // [Xn, #imm]!
	amPost           // [Xn], #imm
	amReg            // [Xn, Xm{, extend {#amount}}]
	amLiteral        // PC-relative
)

// Load/store flags (d.shift for single-register forms).
const (
	lsLoad     = 1 << iota
	lsSigned   // sign-extend the loaded value
	lsTo32     // sign-extend to 32 bits (LDRSB/LDRSH Wt)
	lsAcqRel   // load-acquire / store-release
	lsUnpriv   // LDTR/STTR
	lsPrefetch // PRFM: no access
	lsNoISV    // the instruction reports no syndrome (ISV=0)
)

var sizeMask = [9]uint64{1: 0xff, 2: 0xffff, 4: 0xffffffff, 8: ^uint64(0)}

// monitor is the local exclusive monitor: the VA, PA and size of the last
// load exclusive (AArch64.SetExclusiveMonitors).
type monitor struct {
	valid bool
	va    uint64
	pa    mem.PA
	size  uint8
}

// ClearExclusive clears the local monitor (CLREX; exception return).
func (c *CPU) ClearExclusive() { c.mon.valid = false }

// base reads the base register of an access: SP (with the SP alignment
// check of CheckSPAlignment) or Xn. ok is false when the check faulted.
func (c *CPU) base(n uint8) (uint64, bool) {
	if n != 31 {
		return c.X[n], true
	}
	sp := c.SP[c.spIndex()]
	if sp&15 != 0 && c.spAlignChecked() {
		c.exception(cpu.SPAlignment, c.lowerTarget(), 0x26, 0)
		return 0, false
	}
	return sp, true
}

// spAlignChecked is SCTLR_ELx.SA (SA0 at EL0) of the current regime.
func (c *CPU) spAlignChecked() bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	s := uint64(pe.Regs.SCTLR_EL1)
	if pe.EL == 2 || (pe.EL == 0 && h.E2H() && h.TGE()) {
		s = uint64(pe.Regs.SCTLR_EL2)
	}
	if pe.EL == 0 {
		return s>>4&1 != 0
	}
	return s>>3&1 != 0
}

// address computes the address of a single-register or pair access and
// the base register's value after writeback.
func (c *CPU) address(d *insn) (addr, wb uint64, ok bool) {
	if d.op == amLiteral {
		return uint64(c.PE.PC) + d.imm, 0, true
	}
	b, ok := c.base(d.rn)
	if !ok {
		return 0, 0, false
	}
	switch d.op {
	case amOffset:
		return b + d.imm, 0, true
	case amPre:
		return b + d.imm, b + d.imm, true
	case amPost:
		return b, b + d.imm, true
	}
	return b + extendReg(c.reg(d.rm), uint8(d.imm), uint8(d.imm2)), 0, true
}

func (c *CPU) writeback(d *insn, wb uint64) {
	if d.op == amPre || d.op == amPost {
		c.setRegSP(d.rn, wb)
	}
}

// unprivileged says whether LDTR/STTR act as EL0 accesses here
// (AArch64.IsUnprivAccessPriv is false): at EL1 unless HCR_EL2.{NV,NV1}
// are {1,1}, and at EL2 with {E2H,TGE}={1,1}; never with PSTATE.UAO.
func (c *CPU) unprivileged() bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	if c.UAO {
		return false
	}
	switch pe.EL {
	case 1:
		return !(h.NV() && h.NV1() && pe.Regs.MMFR2.NV() >= 1)
	case 2:
		return h.E2H() && h.TGE()
	}
	return false
}

// syndrome builds the instruction syndrome of a single-register access.
func (d *insn) syndrome() cpu.Insn {
	f := d.shift
	in := cpu.Insn{Valid: f&lsNoISV == 0, Reg: d.rd, AcqRel: f&lsAcqRel != 0}
	if f&lsLoad != 0 {
		in.SignExtend = f&lsSigned != 0
		in.SixtyFour = d.sf
	} else {
		in.SixtyFour = d.size == 8
	}
	return in
}

// load reads size bytes at va for d.
func (c *CPU) load(va uint64, size uint8, in cpu.Insn) (uint64, bool) {
	if va>>12 == c.rVPage && va&uint64(size-1) == 0 {
		off := va & 0xfff
		return c.rWords[off>>3] >> (off & 7 * 8) & sizeMask[size], true
	}
	return c.loadSlow(va, size, in)
}

// loadSlow is a load through the PE, which refills the read page.
func (c *CPU) loadSlow(va uint64, size uint8, in cpu.Insn) (uint64, bool) {
	v, e := c.PE.Read(mem.VA(va), int(size), in)
	if e.Taken() {
		c.taken()
		return 0, false
	}
	if c.opts.RAM != nil && !in.Unprivileged && va&uint64(size-1) == 0 {
		pa := c.PE.LastPA &^ 0xfff
		if p := c.opts.RAM.Page(pa); p != nil {
			c.rVPage, c.rWords, c.rPA = va>>12, p, pa
		}
	}
	return v, true
}

// store writes the low size bytes of v at va.
func (c *CPU) store(va uint64, size uint8, v uint64, in cpu.Insn) bool {
	if va>>12 == c.wVPage && va&uint64(size-1) == 0 {
		off := va & 0xfff
		sh := off & 7 * 8
		m := sizeMask[size] << sh
		w := &c.wWords[off>>3]
		*w = *w&^m | v<<sh&m
		return true
	}
	return c.storeSlow(va, size, v, in)
}

// storeSlow is a store through the PE, which refills the write page.
func (c *CPU) storeSlow(va uint64, size uint8, v uint64, in cpu.Insn) bool {
	if e := c.PE.Write(mem.VA(va), int(size), v, in); e.Taken() {
		c.taken()
		return false
	}
	if c.opts.RAM != nil && !in.Unprivileged && va&uint64(size-1) == 0 {
		pa := c.PE.LastPA &^ 0xfff
		if _, code := c.cache.pages[pa]; !code {
			if p := c.opts.RAM.Page(pa); p != nil {
				c.wVPage, c.wWords, c.wPA = va>>12, p, pa
			}
		}
	}
	return true
}

// ldrStr: every single-register LDR/STR form (d.size bytes, flags in
// d.shift, mode in d.op).
func ldrStr(c *CPU, d *insn) bool {
	f := d.shift
	if f&lsPrefetch != 0 {
		// PRFM: a hint with no architectural effect, never faults. Its
		// base register is not even read (SP alignment is not checked).
		return true
	}
	addr, wb, ok := c.address(d)
	if !ok {
		return false
	}
	in := d.syndrome()
	if d.op == amPre || d.op == amPost {
		in.Valid = false // writeback forms report no syndrome
	}
	if f&lsUnpriv != 0 && c.unprivileged() {
		in.Unprivileged = true
	}
	if f&lsLoad != 0 {
		var v uint64
		var ok bool
		if in.Unprivileged {
			v, ok = c.loadSlow(addr, d.size, in)
		} else {
			v, ok = c.load(addr, d.size, in)
		}
		if !ok {
			return false
		}
		if f&lsSigned != 0 {
			shift := 64 - 8*uint(d.size)
			v = uint64(int64(v<<shift) >> shift)
			if f&lsTo32 != 0 {
				v = uint64(uint32(v))
			}
		}
		c.writeback(d, wb)
		c.setReg(d.rd, v)
		return true
	}
	if in.Unprivileged {
		ok = c.storeSlow(addr, d.size, c.reg(d.rd), in)
	} else {
		ok = c.store(addr, d.size, c.reg(d.rd), in)
	}
	if !ok {
		return false
	}
	c.writeback(d, wb)
	return true
}

// ldpStp: LDP, STP, LDNP, STNP, LDPSW; rd = Rt, ra = Rt2; sub marks a
// load, setFlags LDPSW.
func ldpStp(c *CPU, d *insn) bool {
	addr, wb, ok := c.address(d)
	if !ok {
		return false
	}
	in := cpu.Insn{}
	sz := uint64(d.size)
	if d.sub {
		v1, ok := c.load(addr, d.size, in)
		if !ok {
			return false
		}
		v2, ok := c.load(addr+sz, d.size, in)
		if !ok {
			return false
		}
		if d.setFlags {
			v1, v2 = uint64(int64(int32(v1))), uint64(int64(int32(v2)))
		}
		c.writeback(d, wb)
		c.setReg(d.rd, v1)
		c.setReg(d.ra, v2)
		return true
	}
	v1, v2 := c.reg(d.rd), c.reg(d.ra)
	if !c.store(addr, d.size, v1, in) || !c.store(addr+sz, d.size, v2, in) {
		return false
	}
	c.writeback(d, wb)
	return true
}

// Exclusive and ordered operations (d.op).
const (
	exLDXR = iota
	exSTXR
	exLDXP
	exSTXP
	exLDAR // LDAR, LDLAR, LDAPR: ordered single-register loads
	exSTLR // STLR, STLLR
)

// exclusive: LDXR, LDAXR, STXR, STLXR and the pairs; LDAR and STLR.
// rd = Rt, ra = Rt2, rm = Rs (status).
func exclusive(c *CPU, d *insn) bool {
	addr, ok := c.base(d.rn)
	if !ok {
		return false
	}
	sz := d.size
	switch d.op {
	case exLDAR, exSTLR:
		in := cpu.Insn{Valid: true, Reg: d.rd, AcqRel: true, SixtyFour: sz == 8}
		if d.op == exLDAR {
			v, ok := c.load(addr, sz, in)
			if !ok {
				return false
			}
			c.setReg(d.rd, v)
			return true
		}
		return c.store(addr, sz, c.reg(d.rd), in)
	case exLDXR:
		in := cpu.Insn{Exclusive: true}
		v, e := c.PE.Read(mem.VA(addr), int(sz), in)
		if e.Taken() {
			c.taken()
			return false
		}
		c.mon = monitor{valid: true, va: addr, pa: c.PE.LastPA, size: sz}
		c.setReg(d.rd, v)
		return true
	case exLDXP:
		in := cpu.Insn{Exclusive: true}
		total := 2 * sz
		if !c.pairAligned(addr, total, false) {
			return false
		}
		var v1, v2 uint64
		if sz == 4 {
			v, e := c.PE.Read(mem.VA(addr), 8, in)
			if e.Taken() {
				c.taken()
				return false
			}
			v1, v2 = uint64(uint32(v)), v>>32
		} else {
			var e cpu.Exception
			if v1, e = c.PE.Read(mem.VA(addr), 8, in); e.Taken() {
				c.taken()
				return false
			}
			pa := c.PE.LastPA
			if v2, e = c.PE.Read(mem.VA(addr+8), 8, in); e.Taken() {
				c.taken()
				return false
			}
			c.PE.LastPA = pa
		}
		c.mon = monitor{valid: true, va: addr, pa: c.PE.LastPA, size: total}
		c.setReg(d.rd, v1)
		c.setReg(d.ra, v2)
		return true
	}
	// STXR, STXP (AArch64.ExclusiveMonitorsPass): the alignment check,
	// then the IMPLEMENTATION DEFINED VA check (IsExclusiveVA), which
	// fails without an access, then the translation and the PA check.
	total := sz
	if d.op == exSTXP {
		total = 2 * sz
	}
	in := cpu.Insn{Exclusive: true}
	if !c.pairAligned(addr, total, true) {
		return false
	}
	m := c.mon
	c.mon.valid = false
	if !m.valid || m.va != addr || m.size != total {
		c.setReg(d.rm, 1)
		return true
	}
	tsize := int(total)
	if tsize == 16 {
		tsize = 8
	}
	pa, e := c.PE.TranslateData(mem.VA(addr), tsize, true, in)
	if e.Taken() {
		c.taken()
		return false
	}
	if pa != m.pa {
		c.setReg(d.rm, 1)
		return true
	}
	switch {
	case d.op == exSTXR:
		if !c.store(addr, sz, c.reg(d.rd), in) {
			return false
		}
	case sz == 4:
		if !c.store(addr, 8, uint64(uint32(c.reg(d.rd)))|c.reg(d.ra)<<32, in) {
			return false
		}
	default:
		if !c.store(addr, 8, c.reg(d.rd), in) || !c.store(addr+8, 8, c.reg(d.ra), in) {
			return false
		}
	}
	c.setReg(d.rm, 0)
	return true
}

// pairAligned checks the alignment of an exclusive access of total bytes
// (AArch64.UnalignedAccessFaults for an exclusive access: with FEAT_LSE2
// only an access leaving its aligned 16-byte quantity faults).
func (c *CPU) pairAligned(addr uint64, total uint8, write bool) bool {
	lse2 := uint64(c.PE.Regs.MMFR2)>>32&0xf >= 1
	if addr&uint64(total-1) == 0 || (lse2 && addr&15+uint64(total) <= 16) {
		return true
	}
	c.PE.AlignmentFault(mem.VA(addr), write)
	c.taken()
	return false
}

// LSE atomic operations (d.op).
const (
	atADD = iota
	atCLR
	atEOR
	atSET
	atSMAX
	atSMIN
	atUMAX
	atUMIN
	atSWP
	atCAS
	atCASP
)

// atomic: LD<op>, ST<op>, SWP, CAS, CASP (FEAT_LSE). rm = Rs, rd = Rt.
// The read is made first, then the write: a fault a read would take is
// reported as a read (WnR=0), a fault only the write takes as a write
// (the WnR rule for atomic instructions); a CAS whose comparison fails
// still needs write permission.
func atomic(c *CPU, d *insn) bool {
	addr, ok := c.base(d.rn)
	if !ok {
		return false
	}
	sz := d.size
	in := cpu.Insn{Exclusive: true}
	if d.op == atCASP {
		return casp(c, d, addr, in)
	}
	old, e := c.PE.Read(mem.VA(addr), int(sz), in)
	if e.Taken() {
		c.taken()
		return false
	}
	s := c.reg(d.rm) & sizeMask[sz]
	var nv uint64
	shift := 64 - 8*uint(sz)
	switch d.op {
	case atADD:
		nv = old + s
	case atCLR:
		nv = old &^ s
	case atEOR:
		nv = old ^ s
	case atSET:
		nv = old | s
	case atSMAX, atSMIN:
		a, b := int64(old<<shift)>>shift, int64(s<<shift)>>shift
		nv = old
		if (d.op == atSMAX) == (b > a) {
			nv = s
		}
	case atUMAX, atUMIN:
		nv = old
		if (d.op == atUMAX) == (s > old) {
			nv = s
		}
	case atSWP:
		nv = s
	case atCAS:
		if old != s {
			if _, e := c.PE.TranslateData(mem.VA(addr), int(sz), true, in); e.Taken() {
				c.taken()
				return false
			}
			c.setReg(d.rm, old)
			return true
		}
		nv = c.reg(d.rd)
	}
	if e := c.PE.Write(mem.VA(addr), int(sz), nv&sizeMask[sz], in); e.Taken() {
		c.taken()
		return false
	}
	if d.op == atCAS {
		c.setReg(d.rm, old)
	} else {
		c.setReg(d.rd, old)
	}
	return true
}

// casp: CASP of two registers (rm, rm+1 compared with the pair at addr,
// rd, rd+1 stored).
func casp(c *CPU, d *insn, addr uint64, in cpu.Insn) bool {
	sz := d.size
	total := 2 * sz
	if !c.pairAligned(addr, total, false) {
		return false
	}
	var lo, hi uint64
	if sz == 4 {
		v, e := c.PE.Read(mem.VA(addr), 8, in)
		if e.Taken() {
			c.taken()
			return false
		}
		lo, hi = uint64(uint32(v)), v>>32
	} else {
		var e cpu.Exception
		if lo, e = c.PE.Read(mem.VA(addr), 8, in); e.Taken() {
			c.taken()
			return false
		}
		if hi, e = c.PE.Read(mem.VA(addr+8), 8, in); e.Taken() {
			c.taken()
			return false
		}
	}
	m := sizeMask[sz]
	s1, s2 := c.reg(d.rm)&m, c.reg(d.rm+1)&m
	if lo == s1 && hi == s2 {
		n1, n2 := c.reg(d.rd)&m, c.reg(d.rd+1)&m
		if sz == 4 {
			if e := c.PE.Write(mem.VA(addr), 8, n1|n2<<32, in); e.Taken() {
				c.taken()
				return false
			}
		} else {
			if e := c.PE.Write(mem.VA(addr), 8, n1, in); e.Taken() {
				c.taken()
				return false
			}
			if e := c.PE.Write(mem.VA(addr+8), 8, n2, in); e.Taken() {
				c.taken()
				return false
			}
		}
	} else if _, e := c.PE.TranslateData(mem.VA(addr), 8, true, in); e.Taken() {
		c.taken()
		return false
	}
	c.setReg(d.rm, lo)
	c.setReg(d.rm+1, hi)
	return true
}
