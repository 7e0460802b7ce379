package cpu

import (
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// ecSVC is the exception class of SVC executed in AArch64 state.
const ecSVC = 0x15

// SVC executes SVC #imm at PC (AArch64.CallSupervisor): a synchronous
// exception to EL1, or to EL2 from EL2 and from EL0 with HCR_EL2.TGE=1,
// with ESR EC 0x15, IL=1 and ISS = imm; the preferred return address in
// ELR_ELx is the next instruction.
func (pe *PE) SVC(imm uint16) Exception {
	e := Exception{Kind: SupervisorCall, TargetEL: pe.targetEL(), ESR: sysreg.ESR(ecSVC<<26 | 1<<25 | uint64(imm))}
	pe.PC += 4
	pe.TakeException(&e)
	return e
}

// VirtualIRQ takes a virtual IRQ (HCR_EL2.IMO=1, the interrupt a
// hypervisor injects with HCR_EL2.VI or the GIC's virtual interface): an
// asynchronous exception to EL1 from EL0 or EL1 at the IRQ entry of the
// vector, writing neither ESR nor FAR; ELR_EL1 is the interrupted
// instruction. Virtual interrupts are not taken at EL2 or with
// HCR_EL2.TGE=1, nor while PSTATE.I masks them: the result is then no
// exception.
func (pe *PE) VirtualIRQ() Exception {
	const daifI = 1 << 1
	if pe.EL == 2 || pe.Regs.HCR_EL2.TGE() || pe.DAIF&daifI != 0 {
		return Exception{}
	}
	e := Exception{Kind: IRQ, TargetEL: 1}
	pe.TakeException(&e)
	return e
}
