package interp

// Branches. imm holds the PC-relative offset; branchTo retires them.

// branchImm: B, and BL (sub) which writes the return address to X30.
func branchImm(c *CPU, d *insn) bool {
	pc := uint64(c.PE.PC)
	if d.sub {
		c.X[30] = pc + 4
	}
	return c.branchTo(pc + d.imm)
}

// branchCond: B.cond; shift = cond.
func branchCond(c *CPU, d *insn) bool {
	if !c.condHolds(d.shift) {
		return true
	}
	return c.branchTo(uint64(c.PE.PC) + d.imm)
}

// cbz: CBZ, and CBNZ (sub).
func cbz(c *CPU, d *insn) bool {
	v := trunc(d.sf, c.reg(d.rd))
	if (v == 0) == d.sub {
		return true
	}
	return c.branchTo(uint64(c.PE.PC) + d.imm)
}

// tbz: TBZ, and TBNZ (sub); amount = bit number.
func tbz(c *CPU, d *insn) bool {
	bit := c.reg(d.rd) >> d.amount & 1
	if (bit != 0) != d.sub {
		return true
	}
	return c.branchTo(uint64(c.PE.PC) + d.imm)
}

// Indirect branch kinds (op).
const (
	brBR = iota
	brBLR
	brRET
)

// branchReg: BR, BLR, RET. PSTATE.BTYPE (FEAT_BTI) records the kind for
// the instruction at the target: BR sets 0b01 (the modelled pages are
// never guarded, so the X16/X17 distinction does not arise), BLR 0b10.
func branchReg(c *CPU, d *insn) bool {
	target := c.reg(d.rn)
	if d.op == brBLR {
		c.X[30] = uint64(c.PE.PC) + 4
	}
	c.branchTo(target)
	switch d.op {
	case brBR:
		c.BTYPE = 1
	case brBLR:
		c.BTYPE = 2
	}
	return false
}

// branchAddr is AArch64.BranchAddr: the top bits of a branch target when
// top-byte-ignore applies to instruction addresses (TCR_ELx.TBI without
// TBID): copies of bit 55 in the regimes with two VA ranges, zeros in
// the EL2 regime.
func (c *CPU) branchAddr(v uint64) uint64 {
	pe := c.PE
	r := &pe.Regs
	h := r.HCR_EL2
	var tbi, tbid, twoRanges bool
	switch {
	case pe.EL == 2 && !h.E2H():
		tcr := r.TCR_EL2
		tbi, tbid = tcr>>20&1 != 0, tcr>>29&1 != 0
	default:
		tcr := uint64(r.TCR_EL1)
		if pe.EL == 2 || (pe.EL == 0 && h.E2H() && h.TGE()) {
			tcr = r.TCR_EL2
		}
		twoRanges = true
		if v>>55&1 != 0 {
			tbi, tbid = tcr>>38&1 != 0, tcr>>52&1 != 0
		} else {
			tbi, tbid = tcr>>37&1 != 0, tcr>>51&1 != 0
		}
	}
	if !tbi || tbid {
		return v
	}
	if twoRanges && v>>55&1 != 0 {
		return v | 0xff<<56
	}
	return v &^ (0xff << 56)
}
