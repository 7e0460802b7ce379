package cpu

import (
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// ecSVC is the exception class of SVC executed in AArch64 state.
const ecSVC = 0x15

// SVC executes SVC #imm (AArch64.CallSupervisor): a synchronous exception
// to EL1, or to EL2 from EL2 and from EL0 with HCR_EL2.TGE=1, with ESR
// EC 0x15, IL=1 and ISS = imm. The preferred return address is the
// instruction after the SVC: the caller's PC bookkeeping.
func (pe *PE) SVC(imm uint16) Exception {
	e := Exception{Kind: SupervisorCall, TargetEL: pe.targetEL(), ESR: sysreg.ESR(ecSVC<<26 | 1<<25 | uint64(imm))}
	pe.TakeException(&e)
	return e
}

// VirtualIRQ takes a virtual IRQ (HCR_EL2.IMO=1, the interrupt a
// hypervisor injects with HCR_EL2.VI or the GIC's virtual interface): an
// asynchronous exception to EL1 from EL0 or EL1 that writes neither ESR
// nor FAR. At EL2, or with HCR_EL2.TGE=1, virtual interrupts are not
// taken: the result is no exception.
func (pe *PE) VirtualIRQ() Exception {
	if pe.EL == 2 || pe.Regs.HCR_EL2.TGE() {
		return Exception{}
	}
	e := Exception{Kind: IRQ, TargetEL: 1}
	pe.TakeException(&e)
	return e
}

// SPSR fields the model keeps: M[3:2] (the EL), M[0] (the stack pointer
// select, 1 for ELxh above EL0) and PAN.
const (
	spsrM0  = 1 << 0
	spsrPAN = 1 << 22
)

// SPSR returns SPSR_ELel (el 1 or 2): the state an ERET from el returns
// to, in the register's layout. Only the EL (M[3:2], with M[0]=1 above
// EL0) and PSTATE.PAN (bit 22) are modelled; the other fields read 0.
func (pe *PE) SPSR(el uint8) uint64 {
	s := pe.spsr[el&3]
	v := uint64(s.el&3) << 2
	if s.el != 0 {
		v |= spsrM0
	}
	if s.pan {
		v |= spsrPAN
	}
	return v
}

// SetSPSR writes SPSR_ELel (MSR SPSR_EL1, as an OS does before ERET to
// start a process): M[3:2] is the EL an ERET from el returns to and bit 22
// its PSTATE.PAN. The other fields are not modelled; an ERET to an EL
// above el (an illegal exception return) is not modelled either.
func (pe *PE) SetSPSR(el uint8, v uint64) {
	pe.spsr[el&3] = saved{el: uint8(v>>2) & 3, pan: v&spsrPAN != 0}
}
