package nested

// The guest hypervisor's EL2 registers that the PE keeps outside its
// register model (an interpreter's) and that are not SP_EL1 or TPIDR_EL2.
// Its MSR/MRS of them at vEL2 trap to L0 (NV; with NV2 the PE here
// redirects only SP_EL1 and TPIDR_EL2 to the VNCR page), which keeps the
// values: at their VNCR page offset where the architecture gives one
// (FEAT_NV2's layout), else in the vCPU. L0 stores them and returns them
// on read; it applies none of them to L2 (see docs/A64.md).
type keptEL2 struct {
	crn, crm, op2 uint8 // op0 3, op1 4
	off           uint16
	slot          int8 // index in VCPU.el2Kept when off is 0
}

var keptEL2Regs = [...]keptEL2{
	{0, 0, 0, 0x088, -1},  // VPIDR_EL2
	{0, 0, 5, 0x050, -1},  // VMPIDR_EL2
	{14, 0, 3, 0x060, -1}, // CNTVOFF_EL2
	{1, 1, 3, 0x080, -1},  // HSTR_EL2
	{1, 1, 2, 0, 0},       // CPTR_EL2
	{1, 1, 1, 0, 1},       // MDCR_EL2
	{14, 1, 0, 0, 2},      // CNTHCTL_EL2
	{1, 1, 7, 0, 3},       // HACR_EL2
	{1, 0, 1, 0, 4},       // ACTLR_EL2
	{5, 1, 0, 0, 5},       // AFSR0_EL2
	{5, 1, 1, 0, 6},       // AFSR1_EL2
	{10, 3, 0, 0, 7},      // AMAIR_EL2
	{13, 0, 1, 0, 8},      // CONTEXTIDR_EL2
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
		return true
	}
	return false
}
