package nested

import "github.com/nestmmu/nestmmu/arm64/cpu"

// The guest hypervisor's EL2 registers that the PE keeps outside its
// register model (an interpreter's) and that are not SP_EL1 or TPIDR_EL2.
// L0 keeps the values at their VNCR page offset where the architecture
// gives one (FEAT_NV2's layout: VPIDR_EL2, VMPIDR_EL2, CNTVOFF_EL2,
// HSTR_EL2), else in the vCPU. Its MSR/MRS of them at vEL2 trap to L0
// (NV), except that with NV2 the PE redirects those with an offset to the
// page (no exit): L0 reads them from there where it applies them. L0 stores them and returns them
// on read, and (with a kept-register writer, SetKeptWriter) gives the PE
// the combination of its own and the guest hypervisor's that the
// hardware would apply (keptOnPE): VPIDR_EL2, VMPIDR_EL2, CNTVOFF_EL2 and
// the trap controls of CPTR_EL2, MDCR_EL2, CNTHCTL_EL2 and HCRX_EL2. The traps the
// guest hypervisor asked for are forwarded to it (keptTrapL1).
type keptEL2 struct {
	crn, crm, op2 uint8 // op0 3, op1 4
	off           uint16
	slot          int8 // index in VCPU.el2Kept when off is 0
}

var keptEL2Regs = [...]keptEL2{
	{0, 0, 0, keptOff(3, 4, 0, 0, 0), -1},   // VPIDR_EL2
	{0, 0, 5, keptOff(3, 4, 0, 0, 5), -1},   // VMPIDR_EL2
	{14, 0, 3, keptOff(3, 4, 14, 0, 3), -1}, // CNTVOFF_EL2
	{1, 1, 3, keptOff(3, 4, 1, 1, 3), -1},   // HSTR_EL2
	{1, 1, 2, 0, 0},                         // CPTR_EL2
	{1, 1, 1, 0, 1},                         // MDCR_EL2
	{14, 1, 0, 0, 2},                        // CNTHCTL_EL2
	{1, 1, 7, 0, 3},                         // HACR_EL2
	{1, 0, 1, 0, 4},                         // ACTLR_EL2
	{5, 1, 0, 0, 5},                         // AFSR0_EL2
	{5, 1, 1, 0, 6},                         // AFSR1_EL2
	{10, 3, 0, 0, 7},                        // AMAIR_EL2
	{13, 0, 1, 0, 8},                        // CONTEXTIDR_EL2
	{1, 2, 2, keptOff(3, 4, 1, 2, 2), -1},   // HCRX_EL2 (FEAT_HCX)
}

// numKeptEL2 is the number of registers kept in the vCPU.
const numKeptEL2 = 9

// keptEL2Access emulates a trapped MSR/MRS at vEL2 of one of them; false
// for any other encoding.
func (v *VCPU) keptEL2Access(op0, op1, crn, crm, op2, rt uint8, read bool) bool {
	if op0 != 3 || op1 != 4 {
		return false
	}
	for _, k := range keptEL2Regs {
		if k.crn != crn || k.crm != crm || k.op2 != op2 {
			continue
		}
		switch {
		case k.slot < 0 && read:
			v.setXreg(rt, v.vncrGet(k.off))
		case k.slot < 0:
			v.vncrSet(k.off, v.xreg(rt))
		case read:
			v.setXreg(rt, v.el2Kept[k.slot])
		default:
			v.el2Kept[k.slot] = v.xreg(rt)
		}
		if !read {
			v.applyKept(false)
		}
		return true
	}
	return false
}

// Indexes in keptEL2Regs of the registers whose guest-hypervisor value L0
// applies on the PE (kept).
const (
	kVPIDR = iota
	kVMPIDR
	kCNTVOFF
	kHSTR
	kCPTR
	kMDCR
	kCNTHCTL
	kHCRX = len(keptEL2Regs) - 1
)

// The trap controls of the kept EL2 registers (E2H=0 layouts) that the PE
// and its interpreter implement for EL1 and EL0.
const (
	cptrTCPAC      = 1 << 31 // CPACR_EL1 accesses at EL1 (EC 0x18)
	cptrTFP        = 1 << 10 // FP/SIMD (EC 0x07, AArch64.CheckFPAdvSIMDEnabled)
	cptrTZ         = 1 << 8  // SVE (EC 0x19, AArch64.CheckSVEEnabled)
	mdcrTDA        = 1 << 9  // debug registers: MDSCR_EL1 at EL1 (EC 0x18)
	mdcrTDE        = 1 << 8  // debug exceptions (BRK) to EL2; TDA as if 1
	cnthctlEL1PCTN = 1 << 0  // EL1PCTEN: CNTPCT_EL0 at EL1 and EL0
	cnthctlEL1PCEN = 1 << 1  // EL1PCEN: the physical timer's registers
	hcrxTALLINT    = 1 << 6  // MSR writes of PSTATE.ALLINT at EL1 (EC 0x18)
)

// keptOnPE returns the PE's value of the kept register keptEL2Regs[i] from
// L0's own value l0 and the guest hypervisor's l1, while its guest runs
// (l2) or while it runs at vEL2 (an E2H=0 guest hypervisor), as KVM
// combines them for a nested guest:
//
//   - VPIDR_EL2, VMPIDR_EL2: the guest hypervisor's in L2 (what L2's MIDR_EL1
//     and MPIDR_EL1 read), L0's at vEL2;
//   - CNTVOFF_EL2: L0's offset plus the guest hypervisor's, in both worlds:
//     with E2H=0 the virtual offset also applies at EL2 (the CNTVCT_EL0
//     accessibility pseudocode: PhysicalCountInt() - CNTVOFF_EL2 unless
//     E2H=1 at EL2);
//   - CPTR_EL2, MDCR_EL2, CNTHCTL_EL2 in L2: a trap either asks for is set
//     (CPTR_EL2.TCPAC, TFP and TZ, MDCR_EL2.TDE and TDA set;
//     CNTHCTL_EL2.EL1PCTEN and EL1PCEN cleared), L0's otherwise; at vEL2,
//     where an E2H=0 guest hypervisor's controls of EL1 and EL0 do not
//     apply, L0's with the guest hypervisor's TFP and TZ (which trap FP/SIMD
//     and SVE at EL2 too: AArch64.CheckFPAdvSIMDEnabled,
//     AArch64.CheckSVEEnabled) and TCPAC, by which L0 keeps L2's
//     CPACR_EL1 off the PE (cpacrToVEL2);
//   - HCRX_EL2 in L2: L0's with the guest hypervisor's TALLINT (which
//     traps only at EL1); L0's at vEL2. Its other fields control nothing
//     the PE models (docs/A64.md).
//   - HSTR_EL2: not applied. Its T<n> trap EL1 and EL0 accesses in AArch32
//     state only (MCR/MRC to coproc 0b1111 with CRn n), which the PE here
//     does not have; it has no effect on AArch64 code.
func keptOnPE(i int, l0, l1 uint64, l2 bool) uint64 {
	switch {
	case i == kCNTVOFF:
		return l0 + l1
	case !l2 && i == kCPTR:
		return l0 | l1&(cptrTFP|cptrTZ) | cptrTCPAC
	case !l2:
		return l0
	case i == kVPIDR || i == kVMPIDR:
		return l1
	case i == kCPTR:
		return l0 | l1&(cptrTCPAC|cptrTFP|cptrTZ)
	case i == kMDCR:
		return l0 | l1&(mdcrTDE|mdcrTDA)
	case i == kCNTHCTL:
		return l0 &^ (^l1 & (cnthctlEL1PCTN | cnthctlEL1PCEN))
	case i == kHCRX:
		return l0 | l1&hcrxTALLINT
	}
	return l0
}

// nv2CNTVOFF gives the PE the guest hypervisor's CNTVOFF_EL2 at vEL2 with
// FEAT_NV2, where its MSR CNTVOFF_EL2 is a store to the VNCR page that L0
// does not see: L0 reads the page at each exit from vEL2 (as KVM reads
// its vCPU's CNTVOFF_EL2 when it loads the timer), so a new offset
// applies from the guest hypervisor's next exit on. L2's is applied on
// entry (applyKept).
func (v *VCPU) nv2CNTVOFF() {
	if v.vm.cfg.Mode != ModeNV2 || v.setKept == nil || v.ids == nil {
		return
	}
	k := keptEL2Regs[kCNTVOFF]
	v.setKept(3, 4, k.crn, k.crm, k.op2, keptOnPE(kCNTVOFF, v.l0Kept[kCNTVOFF], v.keptL1(kCNTVOFF), false))
}

// appliedKept are the keptEL2Regs entries keptOnPE gives the PE.
var appliedKept = [...]int{kVPIDR, kVMPIDR, kCNTVOFF, kCPTR, kMDCR, kCNTHCTL, kHCRX}

// keptL1 returns the guest hypervisor's value of keptEL2Regs[i].
func (v *VCPU) keptL1(i int) uint64 {
	k := keptEL2Regs[i]
	if k.slot < 0 {
		return v.vncrGet(k.off)
	}
	return v.el2Kept[k.slot]
}

// SetKeptWriter gives L0 the writer of the PE's registers its register
// model does not hold (an interpreter's, by MSR encoding; with the ID
// source, SetIDSource, their reader). L0 records the PE's values as its
// own, gives the guest hypervisor's kept EL2 registers the same values
// (QEMU's reset: VPIDR_EL2 = MIDR_EL1, VMPIDR_EL2 = MPIDR_EL1, MDCR_EL2,
// CNTHCTL_EL2, ...; the architecture leaves most UNKNOWN) and from then on
// gives the PE their combination (keptOnPE) in each world.
func (v *VCPU) SetKeptWriter(f func(op0, op1, crn, crm, op2 uint8, x uint64) bool) {
	v.setKept = f
	if v.ids == nil {
		return
	}
	for i, k := range keptEL2Regs {
		x, ok := v.ids(3, 4, k.crn, k.crm, k.op2)
		if !ok {
			continue
		}
		v.l0Kept[i] = x
		if k.slot < 0 {
			v.vncrSet(k.off, x)
		} else {
			v.el2Kept[k.slot] = x
		}
	}
	if !v.inL2 {
		v.cpacrToVEL2()
		v.nv2KeptSwitch(false)
	}
	v.applyKept(v.inL2)
}

// applyKept gives the PE keptOnPE's values for L2 (l2) or vEL2: on each
// world switch and when the guest hypervisor writes one.
func (v *VCPU) applyKept(l2 bool) {
	if v.setKept == nil || v.ids == nil {
		return
	}
	for _, i := range appliedKept {
		k := keptEL2Regs[i]
		v.setKept(3, 4, k.crn, k.crm, k.op2, keptOnPE(i, v.l0Kept[i], v.keptL1(i), l2))
	}
}

// keptTrapL1 reports whether the guest's guest's trapped System register
// access t (at EL el) is trapped by the guest hypervisor's kept EL2
// controls, as the register's accessibility pseudocode tests them (E2H=0;
// HCRX_EL2.TALLINT, the same with E2H=1, of ALLINT writes at EL1):
// CNTPCT_EL0 by CNTHCTL_EL2.EL1PCTEN=0 (at EL0 only after CNTKCTL_EL1
// allowed it, which the PE checked first), CPACR_EL1 at EL1 by
// CPTR_EL2.TCPAC, MDSCR_EL1 at EL1 by MDCR_EL2.TDE or TDA. The PE held
// L0's controls combined with these (keptOnPE), so one L0 set alone is not
// the guest hypervisor's.
func (v *VCPU) keptTrapL1(t decodedTrap, el uint8) bool {
	if !v.onPE || t.eret {
		return false
	}
	if el == 1 && !t.read && allintWrite(t) {
		return v.keptL1(kHCRX)&hcrxTALLINT != 0
	}
	if v.vm.cfg.E2H {
		return false
	}
	switch {
	case t.op0 == 3 && t.op1 == 3 && t.crn == 14 && t.crm == 0 && t.op2 == 1: // CNTPCT_EL0
		return v.keptL1(kCNTHCTL)&cnthctlEL1PCTN == 0
	case el == 1 && t.op0 == 3 && t.op1 == 0 && t.crn == 1 && t.crm == 0 && t.op2 == 2: // CPACR_EL1
		return v.keptL1(kCPTR)&cptrTCPAC != 0
	case el == 1 && t.op0 == 2 && t.op1 == 0 && t.crn == 0 && t.crm == 2 && t.op2 == 2: // MDSCR_EL1
		return v.keptL1(kMDCR)&(mdcrTDE|mdcrTDA) != 0
	}
	return false
}

// allintWrite reports whether t is a write of PSTATE.ALLINT: MSR ALLINT,
// Xt (S3_0_C4_C3_0) or MSR ALLINT, #imm (op0 0b00, op1 0b001, CRn 4, op2
// 0b000 in the MSR (immediate) syndrome).
func allintWrite(t decodedTrap) bool {
	return t.crn == 4 && t.op2 == 0 && ((t.op0 == 3 && t.op1 == 0 && t.crm == 3) || (t.op0 == 0 && t.op1 == 1 && t.crm>>1 == 0))
}

// keptExceptionL1 reports whether an exception other than a System
// register trap that the guest's guest took to EL2 was routed there by the
// guest hypervisor's kept controls: an FP/SIMD access trap (EC 0x07) by
// CPTR_EL2.TFP (AArch64.CheckFPAdvSIMDEnabled: CPACR_EL1.FPEN, checked
// first, traps to EL1), an SVE access trap (EC 0x19) by CPTR_EL2.TZ
// (AArch64.CheckSVEEnabled: CPACR_EL1.ZEN and FPEN first), a BRK (EC 0x3C) by MDCR_EL2.TDE
// (AArch64.SoftwareBreakpoint routes debug exceptions to EL2 with it).
func (v *VCPU) keptExceptionL1(e *cpu.Exception) bool {
	if v.vm.cfg.E2H {
		return false
	}
	switch e.Kind {
	case cpu.FPAccess:
		return v.keptL1(kCPTR)&cptrTFP != 0
	case cpu.SVEAccess:
		return v.keptL1(kCPTR)&cptrTZ != 0
	case cpu.Breakpoint:
		return v.keptL1(kMDCR)&mdcrTDE != 0
	}
	return false
}

// keptByPE reports whether t names a register the PE keeps outside its
// register model (one the ID source reads).
func (v *VCPU) keptByPE(t decodedTrap) bool {
	if v.ids == nil || v.setKept == nil {
		return false
	}
	_, ok := v.ids(t.op0, t.op1, t.crn, t.crm, t.op2)
	return ok
}

// keptAccess performs the trapped access t on the PE's kept register (as
// L0 emulates an access its own trap control took) and returns past it.
func (v *VCPU) keptAccess(t decodedTrap) error {
	if t.read {
		x, _ := v.ids(t.op0, t.op1, t.crn, t.crm, t.op2)
		v.setXreg(t.rt, x)
	} else {
		v.setKept(t.op0, t.op1, t.crn, t.crm, t.op2, v.xreg(t.rt))
	}
	v.skip()
	return v.eret()
}

// L2's CPACR_EL1 while the guest hypervisor runs. The PE checks
// CPACR_EL1.FPEN at EL1, where it runs an E2H=0 guest hypervisor's vEL2,
// whose FP/SIMD and SVE instructions only its CPTR_EL2.TFP and TZ control:
// so at vEL2 the PE's CPACR_EL1 enables both and L2's value waits at its VNCR
// offset (0x100), where L0's CPTR_EL2.TCPAC trap (keptOnPE) makes the
// guest hypervisor's MSR/MRS CPACR_EL1 reach it (emulateOnPE).
const (
	cpacrVEL2                                        = 3<<20 | 3<<16 // FPEN, ZEN: no FP/SIMD or SVE trap at EL1 or EL0
	cpacrOp0, cpacrOp1, cpacrCRn, cpacrCRm, cpacrOp2 = 3, 0, 1, 0, 2
)

var offCPACREL1 = keptOff(cpacrOp0, cpacrOp1, cpacrCRn, cpacrCRm, cpacrOp2)

// isCPACREL1 reports whether an MSR/MRS encoding names CPACR_EL1.
func isCPACREL1(op0, op1, crn, crm, op2 uint8) bool {
	return op0 == cpacrOp0 && op1 == cpacrOp1 && crn == cpacrCRn && crm == cpacrCRm && op2 == cpacrOp2
}

// cpacrToL2 and cpacrToVEL2 switch CPACR_EL1 with the worlds.
func (v *VCPU) cpacrToL2() {
	if v.setKept != nil && !v.vm.cfg.E2H {
		v.setKept(cpacrOp0, cpacrOp1, cpacrCRn, cpacrCRm, cpacrOp2, v.vncrGet(offCPACREL1))
	}
}

func (v *VCPU) cpacrToVEL2() {
	if v.setKept == nil || v.ids == nil || v.vm.cfg.E2H {
		return
	}
	if x, ok := v.ids(cpacrOp0, cpacrOp1, cpacrCRn, cpacrCRm, cpacrOp2); ok {
		v.vncrSet(offCPACREL1, x)
	}
	v.setKept(cpacrOp0, cpacrOp1, cpacrCRn, cpacrCRm, cpacrOp2, cpacrVEL2)
}

// fpAtVEL2 delivers the FP/SIMD or SVE access trap the guest hypervisor's
// own instruction took (its CPTR_EL2.TFP or TZ, which L0 set on the PE at
// vEL2) as the hardware takes it at EL2 from EL2: the same syndrome (EC
// 0x07 or 0x19), its vector for the current EL, ELR_EL2 at the instruction.
func (v *VCPU) fpAtVEL2(e *cpu.Exception) error {
	if err := v.eret(); err != nil {
		return err
	}
	x := cpu.Exception{Kind: e.Kind, TargetEL: 1, ESR: e.ESR}
	v.pe.TakeException(&x)
	return nil
}

// nv2EL1Kept are the EL1 registers the PE keeps outside its model that
// FEAT_NV2 redirects to the VNCR page at EL1 with HCR_EL2.NV1=1 (their
// accessibility pseudocode: NVMem[offset] for <NV2,NV1,NV> '111'), other
// than CPACR_EL1 (cpacrToL2). With FEAT_NV2 (ModeNV2) the guest
// hypervisor's MSR/MRS of them at vEL2 reach L0's page for it: its
// guest's values, which L0 loads into the PE for L2 and saves back, as
// for the EL1 registers of the PE's model. With FEAT_NV alone they reach
// the PE's registers, which then hold L2's values throughout.
var nv2EL1Kept = [...]struct {
	op0, op1, crn, crm, op2 uint8
	off                     uint16
}{
	{3, 0, 13, 0, 1, keptOff(3, 0, 13, 0, 1)}, // CONTEXTIDR_EL1
	{3, 0, 1, 0, 1, keptOff(3, 0, 1, 0, 1)},   // ACTLR_EL1
	{3, 0, 5, 1, 0, keptOff(3, 0, 5, 1, 0)},   // AFSR0_EL1
	{3, 0, 5, 1, 1, keptOff(3, 0, 5, 1, 1)},   // AFSR1_EL1
	{3, 0, 10, 3, 0, keptOff(3, 0, 10, 3, 0)}, // AMAIR_EL1
	{2, 0, 0, 2, 2, keptOff(2, 0, 0, 2, 2)},   // MDSCR_EL1
}

// nv2KeptSwitch moves nv2EL1Kept between L0's VNCR page and the PE: into
// the PE when L2 runs (toL2), into the page when the guest hypervisor does.
func (v *VCPU) nv2KeptSwitch(toL2 bool) {
	if v.setKept == nil || v.ids == nil || v.vm.cfg.Mode != ModeNV2 || v.vm.cfg.E2H {
		return
	}
	for _, k := range nv2EL1Kept {
		if toL2 {
			v.setKept(k.op0, k.op1, k.crn, k.crm, k.op2, v.vncrGet(k.off))
		} else if x, ok := v.ids(k.op0, k.op1, k.crn, k.crm, k.op2); ok {
			v.vncrSet(k.off, x)
		}
	}
}
