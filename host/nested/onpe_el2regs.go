package nested

// The guest hypervisor's EL2 registers that the PE keeps outside its
// register model (an interpreter's) and that are not SP_EL1 or TPIDR_EL2.
// Its MSR/MRS of them at vEL2 trap to L0 (NV; with NV2 the PE here
// redirects only SP_EL1 and TPIDR_EL2 to the VNCR page), which keeps the
// values: at their VNCR page offset where the architecture gives one
// (FEAT_NV2's layout), else in the vCPU. L0 stores them and returns them
// on read. Of them it applies VPIDR_EL2 and VMPIDR_EL2 to L2 (with a
// kept-register writer, SetKeptWriter); the others are stored only (see
// docs/A64.md).
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

// appliedToL2 are the keptEL2Regs entries whose guest-hypervisor value the
// PE must hold while L2 runs: VPIDR_EL2 and VMPIDR_EL2, which L2's EL1
// reads of MIDR_EL1 and MPIDR_EL1 return (MIDR_EL1, MPIDR_EL1: EL2
// enabled, EL1 read).
var appliedToL2 = [...]int{0, 1}

// SetKeptWriter gives L0 the writer of the PE's registers its register
// model does not hold (an interpreter's, by MSR encoding; with the ID
// source, SetIDSource, their reader). L0 then gives the PE the guest
// hypervisor's VPIDR_EL2 and VMPIDR_EL2 while L2 runs and its own back at
// vEL2. It also resets the guest hypervisor's two to L0's (the MIDR and
// MPIDR the guest hypervisor reads), as QEMU resets VPIDR_EL2 to MIDR_EL1
// and VMPIDR_EL2 to MPIDR_EL1 (the architecture leaves them UNKNOWN).
func (v *VCPU) SetKeptWriter(f func(op0, op1, crn, crm, op2 uint8, x uint64) bool) {
	v.setKept = f
	if v.ids == nil {
		return
	}
	for _, i := range appliedToL2 {
		k := keptEL2Regs[i]
		if x, ok := v.ids(3, 4, k.crn, k.crm, k.op2); ok {
			v.vncrSet(k.off, x)
		}
	}
}

// keptToL2 and keptToVEL2 are the world switches' half for appliedToL2.
func (v *VCPU) keptToL2() {
	if v.setKept == nil || v.ids == nil {
		return
	}
	for j, i := range appliedToL2 {
		k := keptEL2Regs[i]
		v.l0Kept[j], _ = v.ids(3, 4, k.crn, k.crm, k.op2)
		v.setKept(3, 4, k.crn, k.crm, k.op2, v.vncrGet(k.off))
	}
}

func (v *VCPU) keptToVEL2() {
	if v.setKept == nil || v.ids == nil {
		return
	}
	for j, i := range appliedToL2 {
		k := keptEL2Regs[i]
		v.setKept(3, 4, k.crn, k.crm, k.op2, v.l0Kept[j])
	}
}
