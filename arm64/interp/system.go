package interp

import (
	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/mem"
)

// esrOf is an ESR value with EC, IL=1 and ISS.
func esrOf(ec uint8, iss uint32) sysreg.ESR {
	return sysreg.ESR(uint64(ec)<<26 | 1<<25 | uint64(iss&0x1ffffff))
}

// mrs: MRS Xt, <reg>; rd = Rt.
func mrs(c *CPU, d *insn) bool {
	switch d.sysreg.kind {
	case refPE:
		v, e := c.PE.MRS(d.sysreg.pe, d.rd)
		if e.Taken() {
			c.taken()
			return false
		}
		c.setReg(d.rd, v)
		return true
	case refOwn:
		off, nv2 := c.nv2Offset(d.sysreg.own)
		// An EL1 register's trap controls come before the FEAT_NV2
		// redirection; an EL2 register's NV trap is replaced by it.
		if (!nv2 || ownRegs[d.sysreg.own].flags&oEL2 == 0) && !c.ownAccess(d, true) {
			return false
		}
		if nv2 {
			v, e := c.PE.NV2Access(off, false, 0)
			if e.Taken() {
				c.taken()
				return false
			}
			c.setReg(d.rd, v)
			return true
		}
		v, _ := c.ownValue(d.sysreg.own)
		c.setReg(d.rd, v)
		return true
	}
	return c.undefined(d, "system register "+d.sysreg.String()+" is not modelled")
}

// msr: MSR <reg>, Xt.
func msr(c *CPU, d *insn) bool {
	v := c.reg(d.rd)
	switch d.sysreg.kind {
	case refPE:
		if e := c.PE.MSR(d.sysreg.pe, d.rd, v); e.Taken() {
			c.taken()
			return false
		}
		c.flush()
		return true
	case refOwn:
		off, nv2 := c.nv2Offset(d.sysreg.own)
		if (!nv2 || ownRegs[d.sysreg.own].flags&oEL2 == 0) && !c.ownAccess(d, false) {
			return false
		}
		if nv2 {
			_, e := c.PE.NV2Access(off, true, v)
			return c.took(e)
		}
		c.setOwn(d.sysreg.own, v)
		return true
	}
	return c.undefined(d, "system register "+d.sysreg.String()+" is not modelled")
}

// PSTATE fields of MSR (immediate) (d.op).
const (
	psSPSel = iota
	psDAIFSet
	psDAIFClr
	psPAN
	psUAO
	psDIT
	psSSBS
	psTCO
	psALLINT
)

// msrImm: MSR <pstatefield>, #imm (imm = CRm).
func msrImm(c *CPU, d *insn) bool {
	pe := c.PE
	imm := uint8(d.imm)
	if pe.EL == 0 {
		switch d.op {
		case psSPSel, psPAN, psUAO, psALLINT:
			return c.undefined(d, "")
		case psDAIFSet, psDAIFClr:
			s := uint64(pe.Regs.SCTLR_EL1)
			if pe.Regs.HCR_EL2.TGE() {
				s = uint64(pe.Regs.SCTLR_EL2)
			}
			if s>>9&1 == 0 { // SCTLR_ELx.UMA: trapped with the MSR (immediate) ISS
				pe.SysTrap(c.lowerTarget(), 0, d.sysreg.op1, 4, imm, d.sysreg.op2, 31, false)
				c.taken()
				return false
			}
		}
	}
	switch d.op {
	case psSPSel:
		pe.SP = imm&1 != 0
	case psDAIFSet:
		pe.DAIF |= imm & 15
	case psDAIFClr:
		pe.DAIF &^= imm & 15
	case psPAN:
		pe.PAN = imm&1 != 0
		pe.RegsChanged()
		c.flush()
	case psUAO:
		c.UAO = imm&1 != 0
	case psDIT:
		c.DIT = imm&1 != 0
	case psSSBS:
		c.SSBS = imm&1 != 0
	case psTCO:
		c.TCO = imm&1 != 0
	case psALLINT:
		// HCRX_EL2.TALLINT would trap a set at EL1 to EL2; HCRX_EL2 is not
		// modelled (docs/A64.md), so the trap never applies.
		c.ALLINT = imm&1 != 0
	}
	return true
}

// Hints (d.op): the ones with an effect here; every other hint is a NOP.
const (
	hintNOP = iota
	hintWFE
	hintWFI
)

// hint: NOP, YIELD, SEV, SEVL, ESB, CSDB, BTI, PAC hints... as NOP; WFI
// and WFE complete at once (no interrupt source is modelled; an
// implementation may leave them at any time) unless trapped: at EL0 by
// SCTLR_EL1.nTWI/nTWE to EL1, at EL0 and EL1 by HCR_EL2.TWI/TWE to EL2
// (EC 0x01, CV=1, COND=0b1110, TI).
func hint(c *CPU, d *insn) bool {
	if d.op == hintNOP {
		return true
	}
	pe := c.PE
	h := pe.Regs.HCR_EL2
	wfe := d.op == hintWFE
	ti := uint32(0)
	sbit, hbit := uint(16), hcrTWI // SCTLR_EL1.nTWI, HCR_EL2.TWI
	if wfe {
		ti, sbit, hbit = 1, 18, hcrTWE
	}
	iss := uint32(1<<24 | 0xe<<20 | ti)
	if pe.EL == 0 && !h.TGE() && uint64(pe.Regs.SCTLR_EL1)>>sbit&1 == 0 {
		return c.exception(cpu.WFxTrap, 1, 0x01, iss)
	}
	if pe.EL == 0 && h.TGE() && h.E2H() && uint64(pe.Regs.SCTLR_EL2)>>sbit&1 == 0 {
		return c.exception(cpu.WFxTrap, 2, 0x01, iss)
	}
	if pe.EL < 2 && !c.opts.NoEL2 && h.Has(hbit) {
		return c.exception(cpu.WFxTrap, 2, 0x01, iss)
	}
	return true
}

// barrier: DSB, DMB, ISB, SB, and CLREX (sub) which clears the monitor.
// The model's memory is sequentially consistent and its caches coherent,
// so the barriers have nothing to wait for.
func barrier(c *CPU, d *insn) bool {
	if d.sub {
		c.mon.valid = false
	}
	return true
}

// Exception-generating instructions (d.op).
const (
	excSVC = iota
	excHVC
	excSMC
	excBRK
	excHLT
	excDCPS
)

// exceptionGen: SVC, HVC, SMC, BRK, HLT, DCPS1-3 with imm16 in imm.
func exceptionGen(c *CPU, d *insn) bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	imm := uint32(d.imm)
	switch d.op {
	case excSVC:
		c.Retired++
		pe.SVC(uint16(imm)) // AArch64.CallSupervisor: ELR is the next instruction
		c.taken()
		return false
	case excHVC:
		if pe.EL == 0 {
			return c.undefined(d, "")
		}
		if c.opts.NoEL2 {
			if c.firmware(false, imm) {
				return true
			}
			return c.undefined(d, "")
		}
		if h.Has(hcrHCD) {
			return c.undefined(d, "")
		}
		c.Retired++
		pe.PC += 4
		return c.exception(cpu.HypervisorCall, 2, 0x16, imm)
	case excSMC:
		if pe.EL == 0 {
			return c.undefined(d, "")
		}
		if pe.EL == 1 && !c.opts.NoEL2 && h.Has(hcrTSC) {
			// HCR_EL2.TSC: trapped to EL2; the preferred return address
			// is the SMC itself.
			return c.exception(cpu.SecureMonitorCall, 2, 0x17, imm)
		}
		if c.firmware(true, imm) {
			return true
		}
		return c.undefined(d, "")
	case excBRK:
		target := c.lowerTarget()
		if pe.EL == 1 && !c.opts.NoEL2 && (h.TGE() || c.sys.v[rMDCR_EL2]>>8&1 != 0) {
			target = 2 // HCR_EL2.TGE or MDCR_EL2.TDE route debug exceptions to EL2
		}
		if pe.EL == 0 && !c.opts.NoEL2 && c.sys.v[rMDCR_EL2]>>8&1 != 0 {
			target = 2
		}
		return c.exception(cpu.Breakpoint, target, 0x3c, imm)
	}
	// HLT without halting debug enabled, DCPS outside Debug state.
	return c.undefined(d, "")
}

// firmware offers an SMC or HVC to the platform (the PSCI conduit).
func (c *CPU) firmware(smc bool, imm uint32) bool {
	p := c.opts.Platform
	if p == nil || !p.Call(c, smc, uint16(imm)) {
		return false
	}
	c.flush()
	return true
}

// eret: ERET, through the PE (its traps and illegal returns), then the
// PSTATE fields kept here from SPSR_ELx; the local monitor is cleared
// (AArch64.ExceptionReturn: ClearExclusiveLocal).
func eret(c *CPU, d *insn) bool {
	pe := c.PE
	var spsr uint64
	if pe.EL > 0 {
		spsr = pe.SPSR[pe.EL]
	}
	if e := pe.ERET(); e.Taken() {
		c.taken()
		return false
	}
	c.setPSTATE(spsr)
	c.mon.valid = false
	c.flush()
	c.X[31] = 0
	c.Retired++
	c.vectorAt = ^uint64(0)
	return false
}

// System instruction classes (d.op) of SYS.
const (
	sysTLBI = iota
	sysAT
	sysDCZVA
	sysDCVA    // DC CVAC, CVAU, CVAP, CVADP, CIVAC: clean by VA (read permission)
	sysDCIVAC  // DC IVAC: invalidate by VA (write permission; UNDEFINED at EL0)
	sysDCSW    // DC ISW, CSW, CISW: by set/way (EL1 and up; HCR_EL2.TSW)
	sysICIALLU // IC IALLU, IC IALLUIS
	sysICIVAU
	sysOther
)

// sysInsn executes TLBI, AT, DC and IC; rd = Rt; the operation is in op
// with the tlb.Op or at.Op in imm.
func sysInsn(c *CPU, d *insn) bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	xt := c.reg(d.rd)
	r := d.sysreg
	trap := func(target uint8) bool {
		pe.SysTrap(target, 1, r.op1, r.crn, r.crm, r.op2, d.rd, false)
		c.taken()
		return false
	}
	switch d.op {
	case sysTLBI:
		e := pe.TLBI(tlb.Op(d.imm), d.rd, xt)
		c.flush()
		return c.took(e)
	case sysAT:
		e := pe.AT(at.Op(d.imm), d.rd, mem.VA(xt))
		c.flush()
		return c.took(e)
	case sysICIALLU:
		if pe.EL == 0 {
			return c.undefined(d, "")
		}
		if pe.EL == 1 && !c.opts.NoEL2 && h.Has(hcrTPU) {
			return trap(2)
		}
		c.InvalidateCode()
		return true
	case sysDCSW:
		if pe.EL == 0 {
			return c.undefined(d, "")
		}
		if pe.EL == 1 && !c.opts.NoEL2 && h.Has(hcrTSW) {
			return trap(2)
		}
		return true
	case sysDCZVA:
		if !c.dcZVAEnabled() {
			if pe.EL == 0 && !(h.E2H() && h.TGE()) && uint64(pe.Regs.SCTLR_EL1)>>14&1 == 0 {
				return trap(1)
			}
			return trap(2)
		}
		// DC ZVA zeroes the 64-byte block (DCZID_EL0.BS=4) holding Xt, as
		// stores: write permission, dirty state, faults reporting Xt.
		base := xt &^ 63
		in := cpu.Insn{}
		if _, e := pe.TranslateData(mem.VA(xt), 1, true, in); e.Taken() {
			c.taken()
			return false
		}
		for i := uint64(0); i < 64; i += 8 {
			if !c.store(base+i, 8, 0, in) {
				return false
			}
		}
		return true
	}
	// Maintenance by VA. The model has no caches, so no translation is
	// needed ("might require an address translation ... and that
	// translation might fault": the DC and IC descriptions) and none
	// faults; IC IVAU drops every decoded instruction (a VA can alias any
	// page). Only the traps apply.
	if pe.EL == 0 {
		if d.op == sysDCIVAC {
			return c.undefined(d, "")
		}
		s := uint64(pe.Regs.SCTLR_EL1)
		if h.E2H() && h.TGE() {
			s = uint64(pe.Regs.SCTLR_EL2)
		}
		if s>>26&1 == 0 { // SCTLR_ELx.UCI
			return trap(c.lowerTarget())
		}
	}
	if pe.EL < 2 && !c.opts.NoEL2 {
		switch {
		case d.op == sysICIVAU && h.Has(hcrTPU),
			d.op != sysICIVAU && h.Has(hcrTPCP):
			return trap(2)
		}
	}
	if d.op == sysICIVAU {
		c.InvalidateCode()
	}
	return true
}

// fpInsn is an Advanced SIMD or floating-point instruction. The modelled
// PE has FP/SIMD (ID_AA64PFR0_EL1 says so, as QEMU's -cpu max), so access
// controls apply first (AArch64.CheckFPAdvSIMDEnabled): CPACR_EL1.FPEN
// traps EL0 and EL1 to EL1 (EL2 from EL0 with HCR_EL2.TGE), CPTR_EL2.TFP
// (E2H=0) or CPTR_EL2.FPEN (E2H=1) to EL2, with EC 0x07 and ISS CV=1,
// COND=0b1110 (ConditionSyndrome). An enabled FP/SIMD instruction is not
// implemented by the interpreter: UNDEFINED, reported to Strict.
func fpInsn(c *CPU, d *insn) bool {
	if c.cpacrDisables(cpacrFPEN) {
		return c.fpTrap(c.lowerTarget())
	}
	if c.cptrDisables(cptrFPEN, cptrTFP) {
		return c.fpTrap(2)
	}
	return c.undefined(d, "floating-point and SIMD instructions are not implemented: "+Disassemble(d.word))
}

// sveInsn is an encoding of the SVE space (op0 = 0b0010 in the A64
// top-level encoding table; arm64asm v0.32 decodes none of them). The
// modelled PE has SVE (ID_AA64PFR0_EL1.SVE, as QEMU's -cpu max), so the
// checks of AArch64.CheckSVEEnabled come first, in its order (PSTATE.SM
// is 0: non-streaming): CPACR_EL1.ZEN then FPEN (EL0 and EL1, to EL1 or
// with HCR_EL2.TGE to EL2), then CPTR_EL2.TZ (E2H=0) or ZEN (E2H=1), then
// TFP or FPEN (to EL2); the SVE access trap is EC 0x19 with ISS 0. An
// enabled SVE instruction is not implemented: UNDEFINED, reported to
// Strict. (The unallocated encodings of the space meet the checks too,
// the interpreter not telling them apart.)
func sveInsn(c *CPU, d *insn) bool {
	switch {
	case c.cpacrDisables(cpacrZEN):
		return c.exception(cpu.SVEAccess, c.lowerTarget(), 0x19, 0)
	case c.cpacrDisables(cpacrFPEN):
		return c.fpTrap(c.lowerTarget())
	case c.cptrDisables(cptrZEN, cptrTZ):
		return c.exception(cpu.SVEAccess, 2, 0x19, 0)
	case c.cptrDisables(cptrFPEN, cptrTFP):
		return c.fpTrap(2)
	}
	return c.undefined(d, "SVE instructions are not implemented: "+Disassemble(d.word))
}

// The enable fields of CPACR_EL1 and CPTR_EL2 (E2H=1: the same places;
// E2H=0: trap bits).
const (
	cpacrZEN  = 16 // CPACR_EL1.ZEN, CPTR_EL2.ZEN with E2H=1
	cpacrFPEN = 20 // CPACR_EL1.FPEN, CPTR_EL2.FPEN with E2H=1
	cptrZEN   = cpacrZEN
	cptrFPEN  = cpacrFPEN
	cptrTZ    = 8  // CPTR_EL2.TZ with E2H=0
	cptrTFP   = 10 // CPTR_EL2.TFP with E2H=0
)

// cpacrDisables is the CPACR_EL1 check of an enable field (ZEN, FPEN) at
// EL0 and EL1 outside the EL2&0 host regime: '00' and '10' disable EL0
// and EL1, '01' EL0 only.
func (c *CPU) cpacrDisables(field uint) bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	if pe.EL >= 2 || (h.E2H() && h.TGE()) {
		return false
	}
	switch c.sys.v[rCPACR_EL1] >> field & 3 {
	case 0, 2:
		return true
	case 1:
		return pe.EL == 0
	}
	return false
}

// cptrDisables is the CPTR_EL2 check at EL0, EL1 and EL2 when EL2 is
// implemented: with E2H=1 the enable field (ZEN, FPEN; '01' disables EL0
// with HCR_EL2.TGE=1 only), with E2H=0 the trap bit (TZ, TFP).
func (c *CPU) cptrDisables(field, trapBit uint) bool {
	if c.opts.NoEL2 {
		return false
	}
	pe := c.PE
	h := pe.Regs.HCR_EL2
	cptr := c.sys.v[rCPTR_EL2]
	if !h.E2H() {
		return cptr>>trapBit&1 != 0
	}
	switch cptr >> field & 3 {
	case 0, 2:
		return true
	case 1:
		return pe.EL == 0 && h.TGE()
	}
	return false
}

// fpTrap takes the FP/SIMD access trap (EC 0x07, CV=1, COND=0b1110) to target.
func (c *CPU) fpTrap(target uint8) bool {
	return c.exception(cpu.FPAccess, target, 0x07, 1<<24|0xe<<20)
}
