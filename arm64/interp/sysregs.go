package interp

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// The system registers outside the memory system, which the PE does not
// keep: PSTATE views, stack pointers, thread IDs, the ID registers, the
// generic timer's counters and their controls, and EL1/EL2 controls that
// only need storage here. Their reset values are QEMU 10's -cpu max ones
// (the architecture leaves most UNKNOWN), so that a program printing them
// prints the same on both.

// sysRegRef is a decoded MRS/MSR operand.
type sysRegRef struct {
	kind                    uint8 // refPE, refOwn, refNone
	pe                      cpu.SysReg
	own                     ownReg
	op0, op1, crn, crm, op2 uint8
}

const (
	refNone = iota
	refPE
	refOwn
)

func (r sysRegRef) String() string {
	switch r.kind {
	case refPE:
		return r.pe.String()
	case refOwn:
		return ownRegs[r.own].name
	}
	return fmt.Sprintf("S%d_%d_C%d_C%d_%d", r.op0, r.op1, r.crn, r.crm, r.op2)
}

// ownReg indexes ownRegs.
type ownReg uint8

const (
	rNZCV ownReg = iota
	rDAIF
	rSPSel
	rPAN
	rUAO
	rDIT
	rSSBS
	rTCO
	rALLINT
	rSP_EL0
	rSP_EL1
	rTPIDR_EL0
	rTPIDRRO_EL0
	rTPIDR_EL1
	rTPIDR_EL2
	rCONTEXTIDR_EL1
	rCONTEXTIDR_EL2
	rCPACR_EL1
	rCPTR_EL2
	rACTLR_EL1
	rACTLR_EL2
	rAFSR0_EL1
	rAFSR1_EL1
	rAFSR0_EL2
	rAFSR1_EL2
	rAMAIR_EL1
	rAMAIR_EL2
	rMDCR_EL2
	rMDSCR_EL1
	rHSTR_EL2
	rHACR_EL2
	rHCRX_EL2
	rVPIDR_EL2
	rVMPIDR_EL2
	rCNTFRQ_EL0
	rCNTPCT_EL0
	rCNTVCT_EL0
	rCNTKCTL_EL1
	rCNTHCTL_EL2
	rCNTVOFF_EL2
	rMIDR_EL1
	rMPIDR_EL1
	rREVIDR_EL1
	rAIDR_EL1
	rCLIDR_EL1
	rCTR_EL0
	rDCZID_EL0
	rISR_EL1
	rID_AA64PFR0_EL1
	rID_AA64PFR1_EL1
	rID_AA64DFR0_EL1
	rID_AA64DFR1_EL1
	rID_AA64AFR0_EL1
	rID_AA64AFR1_EL1
	rID_AA64ISAR0_EL1
	rID_AA64ISAR1_EL1
	rID_AA64ISAR2_EL1
	rID_AA64MMFR3_EL1
	rID_AA64ZFR0_EL1
	rID_AA64SMFR0_EL1
	numOwnRegs
)

// Access classes of the registers kept here.
const (
	oEL0      = 1 << iota // accessible at EL0 (subject to the register's own control)
	oReadOnly             // no MSR
	oID                   // an ID register (FEAT_IDST traps EL0 reads, HCR_EL2.TID3 EL1 reads)
	oTVM                  // HCR_EL2.TVM/TRVM trap EL1 writes/reads
	oEL2                  // an EL2 register (UNDEFINED at EL1, trapped with HCR_EL2.NV)
	oSpecial              // read or written by code, not storage
	oEL0RO                // read-only at EL0
)

type ownInfo struct {
	name                    string
	op0, op1, crn, crm, op2 uint8
	flags                   uint16
	reset                   uint64
}

// ownRegs: encodings from the System register descriptions; resets and ID
// values read from QEMU 10.0 -M virt,virtualization=on -cpu max
// (TestIDRegistersMatchQEMU checks them against QEMU).
var ownRegs = [numOwnRegs]ownInfo{
	rNZCV:             {"NZCV", 3, 3, 4, 2, 0, oEL0 | oSpecial, 0},
	rDAIF:             {"DAIF", 3, 3, 4, 2, 1, oEL0 | oSpecial, 0},
	rSPSel:            {"SPSel", 3, 0, 4, 2, 0, oSpecial, 0},
	rPAN:              {"PAN", 3, 0, 4, 2, 3, oSpecial, 0},
	rUAO:              {"UAO", 3, 0, 4, 2, 4, oSpecial, 0},
	rDIT:              {"DIT", 3, 3, 4, 2, 5, oEL0 | oSpecial, 0},
	rSSBS:             {"SSBS", 3, 3, 4, 2, 6, oEL0 | oSpecial, 0},
	rTCO:              {"TCO", 3, 3, 4, 2, 7, oEL0 | oSpecial, 0},
	rALLINT:           {"ALLINT", 3, 0, 4, 3, 0, oSpecial, 0},
	rSP_EL0:           {"SP_EL0", 3, 0, 4, 1, 0, oSpecial, 0},
	rSP_EL1:           {"SP_EL1", 3, 4, 4, 1, 0, oEL2 | oSpecial, 0},
	rTPIDR_EL0:        {"TPIDR_EL0", 3, 3, 13, 0, 2, oEL0, 0},
	rTPIDRRO_EL0:      {"TPIDRRO_EL0", 3, 3, 13, 0, 3, oEL0 | oEL0RO, 0},
	rTPIDR_EL1:        {"TPIDR_EL1", 3, 0, 13, 0, 4, 0, 0},
	rTPIDR_EL2:        {"TPIDR_EL2", 3, 4, 13, 0, 2, oEL2, 0},
	rCONTEXTIDR_EL1:   {"CONTEXTIDR_EL1", 3, 0, 13, 0, 1, oTVM, 0},
	rCONTEXTIDR_EL2:   {"CONTEXTIDR_EL2", 3, 4, 13, 0, 1, oEL2, 0},
	rCPACR_EL1:        {"CPACR_EL1", 3, 0, 1, 0, 2, 0, 0},
	rCPTR_EL2:         {"CPTR_EL2", 3, 4, 1, 1, 2, oEL2, 0},
	rACTLR_EL1:        {"ACTLR_EL1", 3, 0, 1, 0, 1, 0, 0},
	rACTLR_EL2:        {"ACTLR_EL2", 3, 4, 1, 0, 1, oEL2, 0},
	rAFSR0_EL1:        {"AFSR0_EL1", 3, 0, 5, 1, 0, oTVM, 0},
	rAFSR1_EL1:        {"AFSR1_EL1", 3, 0, 5, 1, 1, oTVM, 0},
	rAFSR0_EL2:        {"AFSR0_EL2", 3, 4, 5, 1, 0, oEL2, 0},
	rAFSR1_EL2:        {"AFSR1_EL2", 3, 4, 5, 1, 1, oEL2, 0},
	rAMAIR_EL1:        {"AMAIR_EL1", 3, 0, 10, 3, 0, oTVM, 0},
	rAMAIR_EL2:        {"AMAIR_EL2", 3, 4, 10, 3, 0, oEL2, 0},
	rMDCR_EL2:         {"MDCR_EL2", 3, 4, 1, 1, 1, oEL2, 6},
	rMDSCR_EL1:        {"MDSCR_EL1", 2, 0, 0, 2, 2, 0, 0},
	rHSTR_EL2:         {"HSTR_EL2", 3, 4, 1, 1, 3, oEL2, 0},
	rHACR_EL2:         {"HACR_EL2", 3, 4, 1, 1, 7, oEL2, 0},
	rHCRX_EL2:         {"HCRX_EL2", 3, 4, 1, 2, 2, oEL2, 0}, // FEAT_HCX; reset UNKNOWN, QEMU's 0
	rVPIDR_EL2:        {"VPIDR_EL2", 3, 4, 0, 0, 0, oEL2, qemuMIDR},
	rVMPIDR_EL2:       {"VMPIDR_EL2", 3, 4, 0, 0, 5, oEL2, qemuMPIDR},
	rCNTFRQ_EL0:       {"CNTFRQ_EL0", 3, 3, 14, 0, 0, oEL0 | oEL0RO, qemuCNTFRQ},
	rCNTPCT_EL0:       {"CNTPCT_EL0", 3, 3, 14, 0, 1, oEL0 | oReadOnly | oSpecial, 0},
	rCNTVCT_EL0:       {"CNTVCT_EL0", 3, 3, 14, 0, 2, oEL0 | oReadOnly | oSpecial, 0},
	rCNTKCTL_EL1:      {"CNTKCTL_EL1", 3, 0, 14, 1, 0, 0, 0},
	rCNTHCTL_EL2:      {"CNTHCTL_EL2", 3, 4, 14, 1, 0, oEL2, 3},
	rCNTVOFF_EL2:      {"CNTVOFF_EL2", 3, 4, 14, 0, 3, oEL2, 0},
	rMIDR_EL1:         {"MIDR_EL1", 3, 0, 0, 0, 0, oReadOnly | oSpecial | oID, qemuMIDR},
	rMPIDR_EL1:        {"MPIDR_EL1", 3, 0, 0, 0, 5, oReadOnly | oSpecial | oID, qemuMPIDR},
	rREVIDR_EL1:       {"REVIDR_EL1", 3, 0, 0, 0, 6, oReadOnly | oID, 0},
	rAIDR_EL1:         {"AIDR_EL1", 3, 1, 0, 0, 7, oReadOnly, 0},
	rCLIDR_EL1:        {"CLIDR_EL1", 3, 1, 0, 0, 1, oReadOnly, 0x2000023},
	rCTR_EL0:          {"CTR_EL0", 3, 3, 0, 0, 1, oEL0 | oReadOnly, 0xb444c004},
	rDCZID_EL0:        {"DCZID_EL0", 3, 3, 0, 0, 7, oEL0 | oReadOnly | oSpecial, 4},
	rISR_EL1:          {"ISR_EL1", 3, 0, 12, 1, 0, oReadOnly, 0},
	rID_AA64PFR0_EL1:  {"ID_AA64PFR0_EL1", 3, 0, 0, 4, 0, oReadOnly | oID, 0x1301001120110222},
	rID_AA64PFR1_EL1:  {"ID_AA64PFR1_EL1", 3, 0, 0, 4, 1, oReadOnly | oID, 0x1001000121},
	rID_AA64DFR0_EL1:  {"ID_AA64DFR0_EL1", 3, 0, 0, 5, 0, oReadOnly | oID, 0x100000001030560a},
	rID_AA64DFR1_EL1:  {"ID_AA64DFR1_EL1", 3, 0, 0, 5, 1, oReadOnly | oID, 0},
	rID_AA64AFR0_EL1:  {"ID_AA64AFR0_EL1", 3, 0, 0, 5, 4, oReadOnly | oID, 0},
	rID_AA64AFR1_EL1:  {"ID_AA64AFR1_EL1", 3, 0, 0, 5, 5, oReadOnly | oID, 0},
	rID_AA64ISAR0_EL1: {"ID_AA64ISAR0_EL1", 3, 0, 0, 6, 0, oReadOnly | oID, 0x1221111110212120},
	rID_AA64ISAR1_EL1: {"ID_AA64ISAR1_EL1", 3, 0, 0, 6, 1, oReadOnly | oID, 0x111211110211502},
	rID_AA64ISAR2_EL1: {"ID_AA64ISAR2_EL1", 3, 0, 0, 6, 2, oReadOnly | oID, 0x110012},
	rID_AA64MMFR3_EL1: {"ID_AA64MMFR3_EL1", 3, 0, 0, 7, 3, oReadOnly | oID, 0x1000000000000000},
	rID_AA64ZFR0_EL1:  {"ID_AA64ZFR0_EL1", 3, 0, 0, 4, 4, oReadOnly | oID, 0},
	rID_AA64SMFR0_EL1: {"ID_AA64SMFR0_EL1", 3, 0, 0, 4, 5, oReadOnly | oID, 0},
}

// Identification values of QEMU's -cpu max.
const (
	qemuMIDR   = 0xf0510
	qemuMPIDR  = 0x80000000
	qemuCNTFRQ = 1_000_000_000
)

// sysRegs holds the values of the registers kept here.
type sysRegs struct {
	v [numOwnRegs]uint64
}

func (s *sysRegs) init(c *CPU) {
	for i := range ownRegs {
		s.v[i] = ownRegs[i].reset
	}
	if c.opts.NoEL2 {
		// No EL2: ID_AA64PFR0_EL1.EL2 reads 0.
		s.v[rID_AA64PFR0_EL1] &^= 0xf << 8
	}
}

// Get returns the value of a register kept by the interpreter, by name
// (as ParseSysReg spells them), for tests and debuggers.
func (c *CPU) Get(name string) (uint64, bool) {
	for i := range ownRegs {
		if ownRegs[i].name == name {
			v, _ := c.ownValue(ownReg(i))
			return v, true
		}
	}
	return 0, false
}

// GetByEncoding returns the value of a register kept by the interpreter,
// by its MRS encoding (false for one the PE's register model holds or
// none names), as an MRS at the current EL reads it.
func (c *CPU) GetByEncoding(op0, op1, crn, crm, op2 uint8) (uint64, bool) {
	r := resolveSysReg(op0, op1, crn, crm, op2)
	if r.kind != refOwn {
		return 0, false
	}
	return c.ownValue(r.own)
}

// SetByEncoding writes a register the interpreter keeps outside the PE's
// register model, by its MSR encoding, without an access check (for a
// hypervisor switching worlds); false for any other encoding.
func (c *CPU) SetByEncoding(op0, op1, crn, crm, op2 uint8, x uint64) bool {
	r := resolveSysReg(op0, op1, crn, crm, op2)
	if r.kind != refOwn {
		return false
	}
	c.setOwn(r.own, x)
	return true
}

// resolveSysReg finds the register an MRS/MSR encoding names.
func resolveSysReg(op0, op1, crn, crm, op2 uint8) sysRegRef {
	r := sysRegRef{op0: op0, op1: op1, crn: crn, crm: crm, op2: op2}
	if pr, ok := cpu.SysRegByEncoding(op0, op1, crn, crm, op2); ok {
		r.kind, r.pe = refPE, pr
		return r
	}
	for i := range ownRegs {
		o := &ownRegs[i]
		if o.op0 == op0 && o.op1 == op1 && o.crn == crn && o.crm == crm && o.op2 == op2 {
			r.kind, r.own = refOwn, ownReg(i)
			return r
		}
	}
	return r
}

// HCR_EL2 bits used by the accessibility rules here.
const (
	hcrTID1 sysreg.HCR = 1 << 16
	hcrTID2 sysreg.HCR = 1 << 17
	hcrTID3 sysreg.HCR = 1 << 18
	hcrTSC  sysreg.HCR = 1 << 19
	hcrTWI  sysreg.HCR = 1 << 13
	hcrTWE  sysreg.HCR = 1 << 14
	hcrTDZ  sysreg.HCR = 1 << 28
	hcrHCD  sysreg.HCR = 1 << 29
	hcrTRVM sysreg.HCR = 1 << 30
	hcrTSW  sysreg.HCR = 1 << 22
	hcrTPCP sysreg.HCR = 1 << 23
	hcrTPU  sysreg.HCR = 1 << 24
	hcrTACR sysreg.HCR = 1 << 21
)

// ownAccess applies the accessibility rules of a register kept here for
// an access at the current EL: it returns false after taking the
// exception (UNDEFINED or a trap) the access takes.
func (c *CPU) ownAccess(d *insn, read bool) bool {
	r := d.sysreg
	o := &ownRegs[r.own]
	pe := c.PE
	h := pe.Regs.HCR_EL2
	trap := func(target uint8) bool {
		pe.SysTrap(target, r.op0, r.op1, r.crn, r.crm, r.op2, d.rd, read)
		c.taken()
		return false
	}
	if !read && o.flags&oReadOnly != 0 {
		return c.undefined(d, "")
	}
	el := pe.EL
	tge := h.TGE()
	switch el {
	case 0:
		if o.flags&oID != 0 && uint64(pe.Regs.MMFR2)>>36&0xf >= 1 {
			return trap(c.lowerTarget()) // FEAT_IDST
		}
		if o.flags&oEL0 == 0 || (!read && o.flags&oEL0RO != 0) {
			return c.undefined(d, "")
		}
		sctlr := uint64(pe.Regs.SCTLR_EL1)
		if tge {
			sctlr = uint64(pe.Regs.SCTLR_EL2)
		}
		switch r.own {
		case rDAIF:
			if sctlr>>9&1 == 0 { // SCTLR_ELx.UMA
				return trap(c.lowerTarget())
			}
		case rCTR_EL0:
			if sctlr>>15&1 == 0 { // SCTLR_ELx.UCT
				return trap(c.lowerTarget())
			}
			if h.Has(hcrTID2) && !tge {
				return trap(2)
			}
		case rCNTPCT_EL0, rCNTVCT_EL0, rCNTFRQ_EL0:
			if !c.counterEL0Enabled(r.own) {
				return trap(c.lowerTarget())
			}
			if r.own != rCNTFRQ_EL0 && !c.counterEL1Enabled(r.own) {
				return trap(2)
			}
		}
		return true
	case 1:
		if o.flags&oEL2 != 0 {
			if h.NV() && pe.Regs.MMFR2.NV() >= 1 {
				return trap(2)
			}
			return c.undefined(d, "")
		}
		switch {
		case o.flags&oID != 0 && cpu.IDGroup3(r.op0, r.op1, r.crn, r.crm) && h.Has(hcrTID3):
			return trap(2)
		case o.flags&oTVM != 0 && ((!read && h.Has(sysreg.HCR_TVM)) || (read && h.Has(hcrTRVM))):
			return trap(2)
		case (r.own == rREVIDR_EL1 || r.own == rAIDR_EL1) && h.Has(hcrTID1):
			return trap(2)
		case (r.own == rCTR_EL0 || r.own == rCLIDR_EL1) && h.Has(hcrTID2):
			return trap(2)
		case (r.own == rCNTPCT_EL0 || r.own == rCNTVCT_EL0) && !c.counterEL1Enabled(r.own):
			return trap(2)
		case r.own == rACTLR_EL1 && !c.opts.NoEL2 && h.Has(hcrTACR):
			return trap(2) // HCR_EL2.TACR (ACTLR_EL1's accessibility pseudocode)
		case r.own == rCPACR_EL1 && !c.opts.NoEL2 && c.sys.v[rCPTR_EL2]>>31&1 != 0:
			return trap(2) // CPTR_EL2.TCPAC (CPACR_EL1's accessibility pseudocode)
		case r.own == rMDSCR_EL1 && !c.opts.NoEL2 && c.sys.v[rMDCR_EL2]&(1<<8|1<<9) != 0:
			return trap(2) // MDCR_EL2.TDE or TDA (MDSCR_EL1's accessibility pseudocode)
		case r.own == rSP_EL0 && !pe.SP:
			return c.undefined(d, "") // SP_EL0 is UNDEFINED while it is the SP in use
		case r.own == rALLINT && !read && c.tallint():
			return trap(2) // HCRX_EL2.TALLINT (ALLINT's accessibility pseudocode)
		}
		return true
	}
	if r.own == rSP_EL0 && !pe.SP {
		return c.undefined(d, "")
	}
	return true
}

// nv2Offset is where an access at EL1 to a register kept here goes with
// HCR_EL2.{NV,NV2}={1,1} (FEAT_NV2), as a 64-bit access at VNCR_EL2.BADDR
// plus the register's offset in the VNCR page (cpu.KeptVNCROffset: the EL2
// registers with NV2, the EL1 registers only with NV1=1 as well, after
// their trap controls). The others trap or are UNDEFINED as ownAccess
// says.
func (c *CPU) nv2Offset(r ownReg) (uint16, bool) {
	pe := c.PE
	if pe.EL != 1 || c.opts.NoEL2 {
		return 0, false
	}
	h := pe.Regs.HCR_EL2
	if !h.NV() || !h.NV2() || pe.Regs.MMFR2.NV() < 2 {
		return 0, false
	}
	o := &ownRegs[r]
	off, ok := cpu.KeptVNCROffset(o.op0, o.op1, o.crn, o.crm, o.op2)
	if !ok || o.op1 != 4 && !h.NV1() {
		return 0, false
	}
	return off, true
}

// counterEL0Enabled is CNTKCTL_EL1.EL0PCTEN/EL0VCTEN (for CNTFRQ either);
// with {E2H,TGE}={1,1} CNTHCTL_EL2 holds them.
func (c *CPU) counterEL0Enabled(r ownReg) bool {
	ctl := c.sys.v[rCNTKCTL_EL1]
	h := c.PE.Regs.HCR_EL2
	if h.E2H() && h.TGE() {
		ctl = c.sys.v[rCNTHCTL_EL2]
	}
	switch r {
	case rCNTPCT_EL0:
		return ctl&1 != 0
	case rCNTVCT_EL0:
		return ctl&2 != 0
	}
	return ctl&3 != 0
}

// counterEL1Enabled is CNTHCTL_EL2.EL1PCTEN for CNTPCT_EL0 at EL1 and
// EL0 (bit 0 with E2H=0, bit 10 with E2H=1; not with {E2H,TGE}={1,1}).
func (c *CPU) counterEL1Enabled(r ownReg) bool {
	if c.opts.NoEL2 || r != rCNTPCT_EL0 {
		return true
	}
	h := c.PE.Regs.HCR_EL2
	ctl := c.sys.v[rCNTHCTL_EL2]
	switch {
	case h.E2H() && h.TGE():
		return true
	case h.E2H():
		return ctl>>10&1 != 0
	}
	return ctl&1 != 0
}

// counter is the physical count.
func (c *CPU) counter() uint64 {
	if c.opts.Platform != nil {
		return c.opts.Platform.Counter(c)
	}
	return c.Retired
}

// ownValue reads a register kept here (after the access checks).
func (c *CPU) ownValue(r ownReg) (uint64, bool) {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	b := func(v bool, bit uint) uint64 {
		if v {
			return 1 << bit
		}
		return 0
	}
	switch r {
	case rNZCV:
		return uint64(pe.NZCV&15) << 28, true
	case rDAIF:
		return uint64(pe.DAIF&15) << 6, true
	case rSPSel:
		return b(pe.SP, 0), true
	case rPAN:
		return b(pe.PAN, 22), true
	case rUAO:
		return b(c.UAO, 23), true
	case rDIT:
		return b(c.DIT, 24), true
	case rSSBS:
		return b(c.SSBS, 12), true
	case rTCO:
		return b(c.TCO, 25), true
	case rALLINT:
		return b(c.ALLINT, 13), true
	case rSP_EL0:
		return c.SP[0], true
	case rSP_EL1:
		return c.SP[1], true
	case rCNTPCT_EL0:
		return c.counter(), true
	case rCNTVCT_EL0:
		off := c.sys.v[rCNTVOFF_EL2]
		if c.opts.NoEL2 || (h.E2H() && (pe.EL == 2 || (pe.EL == 0 && h.TGE()))) {
			off = 0
		}
		return c.counter() - off, true
	case rMIDR_EL1:
		if pe.EL < 2 && !c.opts.NoEL2 {
			return c.sys.v[rVPIDR_EL2], true
		}
	case rMPIDR_EL1:
		if pe.EL < 2 && !c.opts.NoEL2 {
			return c.sys.v[rVMPIDR_EL2], true
		}
	case rDCZID_EL0:
		return 4 | b(!c.dcZVAEnabled(), 4), true
	}
	return c.sys.v[r], true
}

// setOwn writes a register kept here (after the access checks).
func (c *CPU) setOwn(r ownReg, v uint64) {
	pe := c.PE
	switch r {
	case rNZCV:
		pe.NZCV = uint8(v>>28) & 15
	case rDAIF:
		pe.DAIF = uint8(v>>6) & 15
	case rSPSel:
		pe.SP = v&1 != 0
	case rPAN:
		pe.PAN = v>>22&1 != 0
		pe.RegsChanged()
		c.flush()
	case rUAO:
		c.UAO = v>>23&1 != 0
	case rDIT:
		c.DIT = v>>24&1 != 0
	case rSSBS:
		c.SSBS = v>>12&1 != 0
	case rTCO:
		c.TCO = v>>25&1 != 0
	case rALLINT:
		c.ALLINT = v>>13&1 != 0
	case rSP_EL0:
		c.SP[0] = v
	case rSP_EL1:
		c.SP[1] = v
	case rHCRX_EL2:
		c.sys.v[r] = v & c.hcrxFields()
	default:
		c.sys.v[r] = v
	}
}

// HCRX_EL2 fields of the features the model's ID registers say are
// implemented; every other bit is RES0 (a field of an absent feature, or
// reserved). Of these only TALLINT acts (MSR ALLINT at EL1, tallint);
// VINMI and VFNMI signal virtual interrupts, which are not modelled; FnXS
// and FGTnXS qualify TLBI nXS and fine-grained traps, MSCEn and MCE2
// FEAT_MOPS's CPY/SET, CMOW cache maintenance permissions, none of which
// the interpreter executes or models: they are stored.
const (
	hcrxFnXS    = 1 << 3  // FEAT_XS
	hcrxFGTnXS  = 1 << 4  // FEAT_XS
	hcrxTALLINT = 1 << 6  // FEAT_NMI
	hcrxVINMI   = 1 << 7  // FEAT_NMI
	hcrxVFNMI   = 1 << 8  // FEAT_NMI
	hcrxCMOW    = 1 << 9  // FEAT_CMOW
	hcrxMCE2    = 1 << 10 // FEAT_MOPS
	hcrxMSCEn   = 1 << 11 // FEAT_MOPS
)

// hcrxFields returns the writable bits of HCRX_EL2, from the ID registers:
// ID_AA64ISAR1_EL1.XS, ID_AA64PFR1_EL1.NMI, ID_AA64MMFR1_EL1.CMOW and
// ID_AA64ISAR2_EL1.MOPS.
func (c *CPU) hcrxFields() uint64 {
	var m uint64
	if c.sys.v[rID_AA64ISAR1_EL1]>>56&0xf != 0 {
		m |= hcrxFnXS | hcrxFGTnXS
	}
	if c.sys.v[rID_AA64PFR1_EL1]>>36&0xf != 0 {
		m |= hcrxTALLINT | hcrxVINMI | hcrxVFNMI
	}
	if uint64(c.PE.Regs.MMFR1)>>56&0xf != 0 {
		m |= hcrxCMOW
	}
	if c.sys.v[rID_AA64ISAR2_EL1]>>16&0xf != 0 {
		m |= hcrxMCE2 | hcrxMSCEn
	}
	return m
}

// tallint reports whether HCRX_EL2.TALLINT traps a write of PSTATE.ALLINT
// at EL1 to EL2 (EL2Enabled(); IsHCRXEL2Enabled() holds without EL3).
func (c *CPU) tallint() bool {
	return c.PE.EL == 1 && !c.opts.NoEL2 && c.sys.v[rHCRX_EL2]&hcrxTALLINT != 0
}

// dcZVAEnabled says whether DC ZVA is permitted at the current EL
// (SCTLR_EL1.DZE at EL0, HCR_EL2.TDZ at EL1 and EL0).
func (c *CPU) dcZVAEnabled() bool {
	pe := c.PE
	h := pe.Regs.HCR_EL2
	if pe.EL == 0 {
		s := uint64(pe.Regs.SCTLR_EL1)
		if h.E2H() && h.TGE() {
			s = uint64(pe.Regs.SCTLR_EL2)
		}
		if s>>14&1 == 0 {
			return false
		}
	}
	if pe.EL < 2 && !c.opts.NoEL2 && h.Has(hcrTDZ) && !(h.E2H() && h.TGE()) {
		return false
	}
	return true
}
