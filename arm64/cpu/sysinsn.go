package cpu

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// SysReg names a system register for MSR and MRS.
type SysReg uint8

// The registers MSR/MRS reach. The *_EL12 names are the EL1 registers as
// seen from EL2 with HCR_EL2.E2H=1.
const (
	SCTLR_EL1 SysReg = iota
	TCR_EL1
	TTBR0_EL1
	TTBR1_EL1
	MAIR_EL1
	ESR_EL1
	FAR_EL1
	PAR_EL1
	SCTLR_EL2
	TCR_EL2
	TTBR0_EL2
	TTBR1_EL2
	MAIR_EL2
	HCR_EL2
	VTCR_EL2
	VTTBR_EL2
	ESR_EL2
	FAR_EL2
	HPFAR_EL2
	SCTLR_EL12
	TCR_EL12
	TTBR0_EL12
	TTBR1_EL12
	MAIR_EL12
	ESR_EL12
	FAR_EL12
	ID_AA64MMFR0_EL1
	ID_AA64MMFR1_EL1
	ID_AA64MMFR2_EL1
	ELR_EL1
	SPSR_EL1
	VBAR_EL1
	ELR_EL2
	SPSR_EL2
	VBAR_EL2
	ELR_EL12
	SPSR_EL12
	VBAR_EL12
	VNCR_EL2
	CurrentEL
	numSysRegs
)

// regFlags describe how an access to a register is routed.
type regFlags uint16

const (
	fTVM       regFlags = 1 << iota // HCR_EL2.TVM (writes) / TRVM (reads) trap it at EL1
	fReadOnly                       // no MSR encoding
	fE12                            // an *_EL12 alias of the EL1 register in alias
	fVHE                            // an *_EL1 name reaching the EL2 register alias at EL2 with E2H=1
	fNV1Trap                        // trapped at EL1 with HCR_EL2.{NV,NV1,NV2}={1,1,0}
	fNV2EL1                         // with HCR_EL2.{NV,NV2}={1,1}, an EL1 access reaches the EL1 register alias
	fCurrentEL                      // CurrentEL: computed, not stored
)

// vncrMode says when FEAT_NV2 redirects an EL1 access to the register to
// memory at VNCR_EL2.BADDR + the register's offset.
type vncrMode uint8

const (
	vncrNever  vncrMode = iota
	vncrAlways          // EL2 registers without an EL1 counterpart
	vncrNV1             // EL1 registers: only with HCR_EL2.NV1=1
	vncrNoNV1           // *_EL12 aliases: only with HCR_EL2.NV1=0
)

type regInfo struct {
	name                    string
	op0, op1, crn, crm, op2 uint8
	el                      uint8 // lowest EL with access (1 or 2)
	flags                   regFlags
	alias                   SysReg // see fE12, fVHE, fNV2EL1
	vncr                    vncrMode
	off                     uint16 // offset in the VNCR page
}

// regs is the encoding table (DDI 0487, the System register descriptions
// and their accessibility pseudocode). For FEAT_NV2 (HCR_EL2.{NV,NV2} =
// {1,1} at EL1) the accessibility pseudocode of each register gives one of
// three outcomes, recorded here: the access becomes a 64-bit load or store
// at NVMem[offset] (VNCR_EL2.BADDR + offset; EL1 registers only with NV1=1
// and their *_EL12 aliases only with NV1=0, since the two share an
// offset), it reaches the EL1 register instead (ELR, SPSR, ESR and FAR of
// EL2), or it traps to EL2 with EC 0x18 as with NV alone.
var regs = [numSysRegs]regInfo{
	SCTLR_EL1:        {name: "SCTLR_EL1", op0: 3, crn: 1, el: 1, flags: fTVM | fVHE, alias: SCTLR_EL2, vncr: vncrNV1, off: 0x110},
	TCR_EL1:          {name: "TCR_EL1", op0: 3, crn: 2, op2: 2, el: 1, flags: fTVM | fVHE, alias: TCR_EL2, vncr: vncrNV1, off: 0x120},
	TTBR0_EL1:        {name: "TTBR0_EL1", op0: 3, crn: 2, el: 1, flags: fTVM | fVHE, alias: TTBR0_EL2, vncr: vncrNV1, off: 0x200},
	TTBR1_EL1:        {name: "TTBR1_EL1", op0: 3, crn: 2, op2: 1, el: 1, flags: fTVM | fVHE, alias: TTBR1_EL2, vncr: vncrNV1, off: 0x210},
	MAIR_EL1:         {name: "MAIR_EL1", op0: 3, crn: 10, crm: 2, el: 1, flags: fTVM | fVHE, alias: MAIR_EL2, vncr: vncrNV1, off: 0x140},
	ESR_EL1:          {name: "ESR_EL1", op0: 3, crn: 5, crm: 2, el: 1, flags: fTVM | fVHE, alias: ESR_EL2, vncr: vncrNV1, off: 0x138},
	FAR_EL1:          {name: "FAR_EL1", op0: 3, crn: 6, el: 1, flags: fTVM | fVHE, alias: FAR_EL2, vncr: vncrNV1, off: 0x220},
	PAR_EL1:          {name: "PAR_EL1", op0: 3, crn: 7, crm: 4, el: 1},
	SCTLR_EL2:        {name: "SCTLR_EL2", op0: 3, op1: 4, crn: 1, el: 2},
	TCR_EL2:          {name: "TCR_EL2", op0: 3, op1: 4, crn: 2, op2: 2, el: 2},
	TTBR0_EL2:        {name: "TTBR0_EL2", op0: 3, op1: 4, crn: 2, el: 2},
	TTBR1_EL2:        {name: "TTBR1_EL2", op0: 3, op1: 4, crn: 2, op2: 1, el: 2},
	MAIR_EL2:         {name: "MAIR_EL2", op0: 3, op1: 4, crn: 10, crm: 2, el: 2},
	HCR_EL2:          {name: "HCR_EL2", op0: 3, op1: 4, crn: 1, crm: 1, el: 2, vncr: vncrAlways, off: 0x078},
	VTCR_EL2:         {name: "VTCR_EL2", op0: 3, op1: 4, crn: 2, crm: 1, op2: 2, el: 2, vncr: vncrAlways, off: 0x040},
	VTTBR_EL2:        {name: "VTTBR_EL2", op0: 3, op1: 4, crn: 2, crm: 1, el: 2, vncr: vncrAlways, off: 0x020},
	ESR_EL2:          {name: "ESR_EL2", op0: 3, op1: 4, crn: 5, crm: 2, el: 2, flags: fNV2EL1, alias: ESR_EL1},
	FAR_EL2:          {name: "FAR_EL2", op0: 3, op1: 4, crn: 6, el: 2, flags: fNV2EL1, alias: FAR_EL1},
	HPFAR_EL2:        {name: "HPFAR_EL2", op0: 3, op1: 4, crn: 6, op2: 4, el: 2},
	SCTLR_EL12:       {name: "SCTLR_EL12", op0: 3, op1: 5, crn: 1, el: 2, flags: fE12, alias: SCTLR_EL1, vncr: vncrNoNV1, off: 0x110},
	TCR_EL12:         {name: "TCR_EL12", op0: 3, op1: 5, crn: 2, op2: 2, el: 2, flags: fE12, alias: TCR_EL1, vncr: vncrNoNV1, off: 0x120},
	TTBR0_EL12:       {name: "TTBR0_EL12", op0: 3, op1: 5, crn: 2, el: 2, flags: fE12, alias: TTBR0_EL1, vncr: vncrNoNV1, off: 0x200},
	TTBR1_EL12:       {name: "TTBR1_EL12", op0: 3, op1: 5, crn: 2, op2: 1, el: 2, flags: fE12, alias: TTBR1_EL1, vncr: vncrNoNV1, off: 0x210},
	MAIR_EL12:        {name: "MAIR_EL12", op0: 3, op1: 5, crn: 10, crm: 2, el: 2, flags: fE12, alias: MAIR_EL1, vncr: vncrNoNV1, off: 0x140},
	ESR_EL12:         {name: "ESR_EL12", op0: 3, op1: 5, crn: 5, crm: 2, el: 2, flags: fE12, alias: ESR_EL1, vncr: vncrNoNV1, off: 0x138},
	FAR_EL12:         {name: "FAR_EL12", op0: 3, op1: 5, crn: 6, el: 2, flags: fE12, alias: FAR_EL1, vncr: vncrNoNV1, off: 0x220},
	ID_AA64MMFR0_EL1: {name: "ID_AA64MMFR0_EL1", op0: 3, crm: 7, el: 1, flags: fReadOnly},
	ID_AA64MMFR1_EL1: {name: "ID_AA64MMFR1_EL1", op0: 3, crm: 7, op2: 1, el: 1, flags: fReadOnly},
	ID_AA64MMFR2_EL1: {name: "ID_AA64MMFR2_EL1", op0: 3, crm: 7, op2: 2, el: 1, flags: fReadOnly},
	ELR_EL1:          {name: "ELR_EL1", op0: 3, crn: 4, op2: 1, el: 1, flags: fVHE | fNV1Trap, alias: ELR_EL2, vncr: vncrNV1, off: 0x230},
	SPSR_EL1:         {name: "SPSR_EL1", op0: 3, crn: 4, el: 1, flags: fVHE | fNV1Trap, alias: SPSR_EL2, vncr: vncrNV1, off: 0x160},
	VBAR_EL1:         {name: "VBAR_EL1", op0: 3, crn: 12, el: 1, flags: fVHE | fNV1Trap, alias: VBAR_EL2, vncr: vncrNV1, off: 0x250},
	ELR_EL2:          {name: "ELR_EL2", op0: 3, op1: 4, crn: 4, op2: 1, el: 2, flags: fNV2EL1, alias: ELR_EL1},
	SPSR_EL2:         {name: "SPSR_EL2", op0: 3, op1: 4, crn: 4, el: 2, flags: fNV2EL1, alias: SPSR_EL1},
	VBAR_EL2:         {name: "VBAR_EL2", op0: 3, op1: 4, crn: 12, el: 2},
	ELR_EL12:         {name: "ELR_EL12", op0: 3, op1: 5, crn: 4, op2: 1, el: 2, flags: fE12, alias: ELR_EL1, vncr: vncrNoNV1, off: 0x230},
	SPSR_EL12:        {name: "SPSR_EL12", op0: 3, op1: 5, crn: 4, el: 2, flags: fE12, alias: SPSR_EL1, vncr: vncrNoNV1, off: 0x160},
	VBAR_EL12:        {name: "VBAR_EL12", op0: 3, op1: 5, crn: 12, el: 2, flags: fE12, alias: VBAR_EL1, vncr: vncrNoNV1, off: 0x250},
	VNCR_EL2:         {name: "VNCR_EL2", op0: 3, op1: 4, crn: 2, crm: 2, el: 2, vncr: vncrAlways, off: 0x0b0},
	CurrentEL:        {name: "CurrentEL", op0: 3, crn: 4, crm: 2, op2: 2, el: 1, flags: fReadOnly | fCurrentEL},
}

// Encoding returns the register's MRS/MSR encoding (op0, op1, CRn, CRm, op2).
func (r SysReg) Encoding() (op0, op1, crn, crm, op2 uint8) {
	if r >= numSysRegs {
		return 0, 0, 0, 0, 0
	}
	ri := &regs[r]
	return ri.op0, ri.op1, ri.crn, ri.crm, ri.op2
}

// SysRegByEncoding returns the modelled register with an MRS/MSR encoding
// (the fields of a trapped access's ISS), and whether there is one.
func SysRegByEncoding(op0, op1, crn, crm, op2 uint8) (SysReg, bool) {
	for i := range regs {
		ri := &regs[i]
		if ri.op0 == op0 && ri.op1 == op1 && ri.crn == crn && ri.crm == crm && ri.op2 == op2 {
			return SysReg(i), true
		}
	}
	return 0, false
}

// IDGroup3 reports whether an MRS encoding is in the ID group 3 space
// that HCR_EL2.TID3 traps at EL1: op0 3, op1 0, CRn 0, CRm 1-7 (not
// MIDR_EL1, MPIDR_EL1 or REVIDR_EL1 at CRm 0).
func IDGroup3(op0, op1, crn, crm uint8) bool {
	return op0 == 3 && op1 == 0 && crn == 0 && crm >= 1 && crm <= 7
}

// EL12 returns the *_EL12 name of an EL1 register (how EL2 with
// HCR_EL2.E2H=1 reaches it), and whether it has one.
func (r SysReg) EL12() (SysReg, bool) {
	for i := range regs {
		if regs[i].flags&fE12 != 0 && regs[i].alias == r {
			return SysReg(i), true
		}
	}
	return 0, false
}

// VNCROffset returns the register's offset in the VNCR_EL2 page, where
// FEAT_NV2 redirects EL1 accesses to it (see regs), and whether it has one.
func (r SysReg) VNCROffset() (uint16, bool) {
	if r >= numSysRegs || regs[r].vncr == vncrNever {
		return 0, false
	}
	return regs[r].off, true
}

// KeptVNCROffset returns the offset in the VNCR_EL2 page of a register
// the PE's register model does not hold (an interpreter keeps it), by its
// MSR/MRS encoding, and whether FEAT_NV2 gives it one: each register's
// accessibility pseudocode, NVMem[offset] when HCR_EL2.<NV2,NV> is '11'
// (the EL2 registers, op1 4) or HCR_EL2.<NV2,NV1,NV> is '111' (the EL1
// registers, op1 0). The one table of these offsets, for the interpreter
// and for a host keeping them for a guest hypervisor.
func KeptVNCROffset(op0, op1, crn, crm, op2 uint8) (uint16, bool) {
	for _, k := range keptVNCR {
		if k.op0 == op0 && k.op1 == op1 && k.crn == crn && k.crm == crm && k.op2 == op2 {
			return k.off, true
		}
	}
	return 0, false
}

var keptVNCR = [...]struct {
	op0, op1, crn, crm, op2 uint8
	off                     uint16
}{
	{3, 4, 4, 1, 0, 0x240},  // SP_EL1
	{3, 4, 13, 0, 2, 0x090}, // TPIDR_EL2
	{3, 4, 0, 0, 0, 0x088},  // VPIDR_EL2
	{3, 4, 0, 0, 5, 0x050},  // VMPIDR_EL2
	{3, 4, 14, 0, 3, 0x060}, // CNTVOFF_EL2
	{3, 4, 1, 1, 3, 0x080},  // HSTR_EL2
	{3, 4, 1, 2, 2, 0x0a0},  // HCRX_EL2
	{3, 0, 1, 0, 2, 0x100},  // CPACR_EL1
	{3, 0, 13, 0, 1, 0x108}, // CONTEXTIDR_EL1
	{3, 0, 1, 0, 1, 0x118},  // ACTLR_EL1
	{3, 0, 5, 1, 0, 0x128},  // AFSR0_EL1
	{3, 0, 5, 1, 1, 0x130},  // AFSR1_EL1
	{3, 0, 10, 3, 0, 0x148}, // AMAIR_EL1
	{2, 0, 0, 2, 2, 0x158},  // MDSCR_EL1
}

func (r SysReg) String() string {
	if r < numSysRegs {
		return regs[r].name
	}
	return fmt.Sprintf("SysReg(%d)", uint8(r))
}

// ParseSysReg returns the register with an architectural name, in any
// case (as assemblers accept them), e.g. "TTBR0_EL1" or "sctlr_el12".
func ParseSysReg(name string) (SysReg, error) {
	for i, ri := range regs {
		if strings.EqualFold(ri.name, name) {
			return SysReg(i), nil
		}
	}
	return 0, fmt.Errorf("cpu: unknown system register %q", name)
}

// undefined takes the exception of an UNDEFINED instruction (EC 0x00,
// IL=1). AArch64.UndefinedFault routes it to the current EL above EL1, to
// EL2 from EL0 only when HCR_EL2.TGE is 1, otherwise to EL1: unlike an
// abort, HCR_EL2.TGE does not send it from EL1 to EL2.
func (pe *PE) undefined() Exception {
	t := uint8(1)
	if pe.EL == 2 || (pe.EL == 0 && pe.Regs.HCR_EL2.TGE()) {
		t = 2
	}
	e := Exception{Kind: Undefined, FromEL: pe.EL, TargetEL: t, ESR: sysreg.ESR(1 << 25)}
	pe.TakeException(&e)
	return e
}

// Undefined takes the exception of an instruction the caller found
// UNDEFINED (EC 0x00), routed as AArch64.UndefinedFault routes it.
func (pe *PE) Undefined() Exception { return pe.undefined() }

// SysTrap takes the trap of a System instruction (MSR, MRS, SYS) to the
// target EL with EC 0x18 and the ISS built from its encoding, Rt and
// direction (AArch64.SystemAccessTrap), for the registers an interpreter
// keeps outside this package.
func (pe *PE) SysTrap(target, op0, op1, crn, crm, op2, rt uint8, read bool) Exception {
	return pe.sysTrapTo(target, op0, op1, crn, crm, op2, rt, read)
}

// sysTrap takes a trap of a System instruction to EL2 (EC 0x18) with the
// ISS: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5], CRm
// [4:1], Direction [0] (1 for a read).
func (pe *PE) sysTrap(op0, op1, crn, crm, op2, rt uint8, read bool) Exception {
	return pe.sysTrapTo(2, op0, op1, crn, crm, op2, rt, read)
}

// sysTrapTo is sysTrap to a given EL (AArch64.SystemAccessTrap).
func (pe *PE) sysTrapTo(target, op0, op1, crn, crm, op2, rt uint8, read bool) Exception {
	iss := uint64(op0)<<20 | uint64(op2)<<17 | uint64(op1)<<14 | uint64(crn)<<10 | uint64(rt&31)<<5 | uint64(crm)<<1
	if read {
		iss |= 1
	}
	e := Exception{Kind: SysTrap, FromEL: pe.EL, TargetEL: target, ESR: sysreg.ESR(uint64(sysreg.ECSysRegTrap)<<26 | 1<<25 | iss)}
	pe.TakeException(&e)
	return e
}

// target is where an MSR or MRS goes after the access rules: a register,
// or (FEAT_NV2) memory at VNCR_EL2.BADDR + off.
type target struct {
	reg SysReg
	mem bool
	off uint16
}

// nvState is the Effective value of HCR_EL2.{NV,NV1,NV2}
// (EffectiveHCR_EL2_NVx) for the implemented FEAT_NV level.
func (pe *PE) nvState() (nv, nv1, nv2 bool) {
	h := pe.Regs.HCR_EL2
	lvl := pe.Regs.MMFR2.NV()
	nv = h.NV() && lvl >= 1
	return nv, nv && h.NV1(), nv && h.NV2() && lvl >= 2
}

// resolve applies the access rules of MSR/MRS at the current EL (each
// register's accessibility pseudocode): UNDEFINED accesses, the
// HCR_EL2.TVM/TRVM, TID3 and FEAT_NV traps to EL2 (EC 0x18), the FEAT_NV2
// redirections to memory or to EL1 registers, the FEAT_IDST trap of EL0 ID
// register reads, and the E2H redirections at EL2.
func (pe *PE) resolve(r SysReg, rt uint8, read bool) (target, Exception) {
	if r >= numSysRegs {
		return target{}, pe.undefined()
	}
	ri := &regs[r]
	h := pe.Regs.HCR_EL2
	trap := func() (target, Exception) {
		return target{}, pe.sysTrap(ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
	}
	if ri.flags&fReadOnly != 0 && !read {
		return target{}, pe.undefined() // there is no MSR encoding of an ID register
	}
	isID := ri.flags&fReadOnly != 0 && ri.flags&fCurrentEL == 0
	if pe.EL == 0 {
		// ID_AA64MMFR*_EL1 at EL0: trapped to EL1 (to EL2 with
		// HCR_EL2.TGE=1) with FEAT_IDST (ID_AA64MMFR2_EL1.IDS=1),
		// UNDEFINED without; every other register here is UNDEFINED.
		if isID && uint64(pe.Regs.MMFR2)>>36&0xf >= 1 {
			return target{}, pe.sysTrapTo(pe.targetEL(), ri.op0, ri.op1, ri.crn, ri.crm, ri.op2, rt, read)
		}
		return target{}, pe.undefined()
	}
	if pe.EL == 1 {
		nv, nv1, nv2 := pe.nvState()
		toMem := nv2 && (ri.vncr == vncrAlways || (ri.vncr == vncrNV1 && nv1) || (ri.vncr == vncrNoNV1 && !nv1))
		if ri.el == 2 {
			switch {
			case toMem:
				return target{mem: true, off: ri.off}, Exception{}
			case nv2 && ri.flags&fNV2EL1 != 0:
				return target{reg: ri.alias}, Exception{}
			case nv:
				return trap()
			}
			return target{}, pe.undefined()
		}
		// HCR_EL2.TID3 (bit 18) traps EL1 reads of the ID group 3 registers.
		if isID && IDGroup3(ri.op0, ri.op1, ri.crn, ri.crm) && h.Has(hcrTID3) {
			return trap()
		}
		// HCR_EL2.TVM traps EL1 writes, HCR_EL2.TRVM (bit 30) EL1 reads,
		// of the stage-1 controls, before any FEAT_NV2 redirection.
		if ri.flags&fTVM != 0 && ((!read && h.Has(sysreg.HCR_TVM)) || (read && h.Has(hcrTRVM))) {
			return trap()
		}
		if ri.flags&fNV1Trap != 0 && nv1 && !nv2 {
			return trap() // HCR_EL2.{NV,NV1}={1,1}: ELR_EL1, SPSR_EL1, VBAR_EL1 trap
		}
		if toMem {
			return target{mem: true, off: ri.off}, Exception{}
		}
		return target{reg: r}, Exception{}
	}
	// EL2.
	if ri.flags&fE12 != 0 {
		if !h.E2H() {
			return target{}, pe.undefined()
		}
		return target{reg: ri.alias}, Exception{}
	}
	if ri.flags&fVHE != 0 && h.E2H() {
		return target{reg: ri.alias}, Exception{}
	}
	return target{reg: r}, Exception{}
}

const (
	hcrTRVM sysreg.HCR = 1 << 30
	hcrTID3 sysreg.HCR = 1 << 18
)

func (pe *PE) slot(r SysReg) *uint64 {
	g := &pe.Regs
	switch r {
	case SCTLR_EL1:
		return (*uint64)(&g.SCTLR_EL1)
	case TCR_EL1:
		return (*uint64)(&g.TCR_EL1)
	case TTBR0_EL1:
		return (*uint64)(&g.TTBR0_EL1)
	case TTBR1_EL1:
		return (*uint64)(&g.TTBR1_EL1)
	case MAIR_EL1:
		return (*uint64)(&g.MAIR_EL1)
	case ESR_EL1:
		return (*uint64)(&pe.ESR[1])
	case FAR_EL1:
		return &pe.FAR[1]
	case PAR_EL1:
		return (*uint64)(&pe.PAR)
	case SCTLR_EL2:
		return (*uint64)(&g.SCTLR_EL2)
	case TCR_EL2:
		return &g.TCR_EL2
	case TTBR0_EL2:
		return (*uint64)(&g.TTBR0_EL2)
	case TTBR1_EL2:
		return (*uint64)(&g.TTBR1_EL2)
	case MAIR_EL2:
		return (*uint64)(&g.MAIR_EL2)
	case HCR_EL2:
		return (*uint64)(&g.HCR_EL2)
	case VTCR_EL2:
		return (*uint64)(&g.VTCR_EL2)
	case VTTBR_EL2:
		return (*uint64)(&g.VTTBR_EL2)
	case ESR_EL2:
		return (*uint64)(&pe.ESR[2])
	case FAR_EL2:
		return &pe.FAR[2]
	case HPFAR_EL2:
		return (*uint64)(&pe.HPFAR)
	case ID_AA64MMFR0_EL1:
		return (*uint64)(&g.MMFR0)
	case ID_AA64MMFR1_EL1:
		return (*uint64)(&g.MMFR1)
	case ID_AA64MMFR2_EL1:
		return (*uint64)(&g.MMFR2)
	case ELR_EL1:
		return (*uint64)(&pe.ELR[1])
	case SPSR_EL1:
		return &pe.SPSR[1]
	case VBAR_EL1:
		return (*uint64)(&pe.VBAR[1])
	case ELR_EL2:
		return (*uint64)(&pe.ELR[2])
	case SPSR_EL2:
		return &pe.SPSR[2]
	case VBAR_EL2:
		return (*uint64)(&pe.VBAR[2])
	case VNCR_EL2:
		return &pe.VNCR
	}
	return nil
}

// Get returns the value held in register r's storage, with no access
// rules or redirection: what a hypervisor's context switch at EL2 (E2H=0)
// reads, or a debugger. The *_EL12 aliases and CurrentEL have no storage
// of their own and read 0.
func (pe *PE) Get(r SysReg) uint64 {
	if r >= numSysRegs || pe.slot(r) == nil {
		return 0
	}
	return *pe.slot(r)
}

// Set writes register r's storage directly (see Get); it ignores the
// *_EL12 aliases and CurrentEL.
func (pe *PE) Set(r SysReg, v uint64) {
	if r >= numSysRegs || pe.slot(r) == nil {
		return
	}
	*pe.slot(r) = v
	pe.c.valid = false
}

// MSR writes v to r (MSR <r>, X<rt>) at the current EL.
func (pe *PE) MSR(r SysReg, rt uint8, v uint64) Exception {
	t, e := pe.resolve(r, rt, false)
	if e.Taken() {
		return e
	}
	if t.mem {
		_, e = pe.nvMem(t.off, true, v)
		return e
	}
	if t.reg == VNCR_EL2 {
		v &^= 0xfff // BADDR: bits [11:0] are RES0
	}
	*pe.slot(t.reg) = v
	pe.c.valid = false
	return Exception{}
}

// MRS reads r (MRS X<rt>, <r>) at the current EL.
func (pe *PE) MRS(r SysReg, rt uint8) (uint64, Exception) {
	t, e := pe.resolve(r, rt, true)
	if e.Taken() {
		return 0, e
	}
	if t.mem {
		return pe.nvMem(t.off, false, 0)
	}
	if t.reg == CurrentEL {
		el := pe.EL
		if nv, _, _ := pe.nvState(); nv && el == 1 {
			el = 2 // HCR_EL2.NV: EL1 reads of CurrentEL report EL2
		}
		return uint64(el) << 2, Exception{}
	}
	return *pe.slot(t.reg), Exception{}
}

// nvMem is a register access transformed by FEAT_NV2 into a 64-bit load or
// store at VNCR_EL2.BADDR + off: translated in the EL2 (HCR_EL2.E2H=0) or
// EL2&0 regime as if PSTATE.PAN were 0, with the endianness of
// SCTLR_EL2.EE. A fault on it is a Data Abort taken to EL2 with
// ESR_EL2.ISS.VNCR (bit 13) set and FAR_EL2 the address (the VNCR_EL2
// field descriptions and the ISS encoding for a Data Abort).
func (pe *PE) nvMem(off uint16, write bool, v uint64) (uint64, Exception) {
	va := mem.VA(pe.VNCR&^0xfff | uint64(off))
	regime := vmsa.RegimeEL2
	if pe.Regs.HCR_EL2.E2H() {
		regime = vmsa.RegimeEL20
	}
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	pe.Stats.Walks++
	tr := pe.Walker.Translate(&pe.Regs, regime, va, vmsa.Access{Kind: kind, EL: 2}, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		return 0, pe.vncrAbort(tr.Fault.FSC(), va, write)
	}
	ee := pe.Regs.SCTLR_EL2.EE()
	if write {
		if ee {
			v = bits.ReverseBytes64(v)
		}
		if !pe.Mem.Write(tr.OA, 8, v) {
			return 0, pe.vncrAbort(0b010000, va, write)
		}
		return 0, Exception{}
	}
	r, ok := pe.Mem.Read(tr.OA, 8)
	if !ok {
		return 0, pe.vncrAbort(0b010000, va, write)
	}
	if ee {
		r = bits.ReverseBytes64(r)
	}
	return r, Exception{}
}

// NV2Access is a FEAT_NV2 access to the register at VNCR page offset off
// made by an MSR or MRS at EL1 with HCR_EL2.{NV,NV2}={1,1} (nvMem): for
// registers an instruction executor keeps outside the PE (SP_EL1,
// TPIDR_EL2, ...).
func (pe *PE) NV2Access(off uint16, write bool, v uint64) (uint64, Exception) {
	return pe.nvMem(off, write, v)
}

// vncrAbort takes the Data Abort of a faulting FEAT_NV2 access: to EL2,
// EC "from a lower Exception level", ISS.VNCR=1, the FSC and WnR.
func (pe *PE) vncrAbort(fsc uint8, va mem.VA, write bool) Exception {
	iss := uint64(fsc) | 1<<13
	if write {
		iss |= 1 << 6
	}
	e := Exception{Kind: DataAbort, TargetEL: 2, FAR: va,
		ESR: sysreg.ESR(uint64(sysreg.ECDataAbortLower)<<26 | 1<<25 | iss)}
	if fsc == 0b010000 {
		e.External = true
	}
	pe.TakeException(&e)
	return e
}

// TLBI executes TLBI op, X<rt> with operand xt at the current EL:
// UNDEFINED at EL0 and for the EL2 and stage-2 forms at EL1 (trapped with
// HCR_EL2.NV), trapped to EL2 by HCR_EL2.TTLB (and TTLBIS/TTLBOS for the
// shareable forms, FEAT_EVT), and upgraded to Inner Shareable at EL1 by
// HCR_EL2.FB.
func (pe *PE) TLBI(op tlb.Op, rt uint8, xt uint64) Exception {
	pe.Stats.TLBIs++
	op1, crm, op2, ok := op.Sys()
	if !ok || pe.EL == 0 {
		return pe.undefined()
	}
	h := pe.Regs.HCR_EL2
	if pe.EL == 1 {
		if op1 != 0 { // the EL2 and stage-2 forms are encoded with op1=4
			if h.NV() && pe.Regs.MMFR2.NV() >= 1 {
				return pe.sysTrap(1, op1, 8, crm, op2, rt, false)
			}
			return pe.undefined()
		}
		trap := h.TTLB() ||
			(op.InnerShareable() && h.Has(sysreg.HCR_TTLBIS)) ||
			(op.OuterShareable() && h.Has(sysreg.HCR_TTLBOS))
		if trap {
			return pe.sysTrap(1, op1, 8, crm, op2, rt, false)
		}
		if h.Has(hcrFB) && !op.InnerShareable() && !op.OuterShareable() {
			op = op.IS()
		}
	}
	ctx := tlb.ContextFromRegs(&pe.Regs, pe.EL)
	var err error
	switch {
	case pe.Domain != nil:
		_, err = pe.Domain.Invalidate(pe.ID, op, xt, ctx)
	case pe.TLB != nil:
		_, err = pe.TLB.Invalidate(op, xt, ctx)
	}
	if err != nil {
		return pe.undefined()
	}
	return Exception{}
}

const hcrFB sysreg.HCR = 1 << 9

// AT executes AT op, X<rt> with input address va at the current EL: PAR_EL1
// is written, or the exception the instruction takes is taken. AT does not
// use the TLB (the architecture permits but does not require it).
func (pe *PE) AT(op at.Op, rt uint8, va mem.VA) Exception {
	pe.Stats.ATs++
	if pe.EL == 0 {
		return pe.undefined()
	}
	res := at.ExecuteRt(&pe.Walker, &pe.Regs, at.PSTATE{EL: pe.EL, PAN: pe.PAN}, op, uint64(va), rt, pe.PAR)
	if !res.Taken {
		pe.PAR = res.PAR
		if pe.Deviations&DeviationATSetsDirty != 0 && pe.EL == 1 && (op == at.S1E1W || op == at.S1E0W) && !res.PAR.F() {
			el := uint8(1)
			if op == at.S1E0W {
				el = 0
			}
			pe.Walker.Translate(&pe.Regs, vmsa.RegimeEL10, va, vmsa.Access{Kind: vmsa.Write, EL: el},
				vmsa.TranslateOptions{Stage1Only: true})
		}
		return Exception{}
	}
	x := res.Exception
	e := Exception{FromEL: pe.EL, TargetEL: x.TargetEL, ESR: x.ESR, FAR: mem.VA(x.FAR), HPFAR: x.HPFAR, Fault: res.Translation.Fault}
	switch x.Kind {
	case at.Undefined:
		e.Kind = Undefined
	case at.TrapEL2:
		e.Kind = SysTrap
	default:
		e.Kind = DataAbort
	}
	pe.TakeException(&e)
	return e
}
