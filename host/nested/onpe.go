package nested

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// A guest hypervisor whose code the PE executes (an A64 program run by
// arm64/interp at virtual EL2), rather than a GuestHypervisor in Go. The
// PE runs its instructions and its guest's until one takes an exception
// to EL2; PEExit is L0's handling of that exit, after which the PE is back
// in a world (or waits for CompleteSMC). What differs from the Go guest
// hypervisor is only where general-purpose registers live:
//
//   - X0-X30 and SP_EL0 are the PE's, and neither a world switch nor an
//     exception entry changes them (ERET and AArch64.TakeException leave
//     them alone): the guest hypervisor's own code saves and loads its
//     guest's. L0 reads and writes them in the vCPU context (kvm.Context)
//     for the length of an exit, as KVM saves them on exit and restores
//     them on entry.
//   - SP_EL1 is the guest hypervisor's SP_EL2 while it runs at vEL2 (the
//     PE is at EL1 with SP_EL1 selected) and its guest's SP_EL1 while L2
//     runs; between them L2's lives at its VNCR page offset (0x240), where
//     the guest hypervisor's MSR/MRS SP_EL1 reach it (FEAT_NV2 memory, or
//     L0's emulation of the FEAT_NV trap).

// offSPEL1 and offTPIDREL2 are SP_EL1's and TPIDR_EL2's offsets in the
// VNCR page.
var (
	offSPEL1    = keptOff(3, 4, 4, 1, 0)
	offTPIDREL2 = keptOff(3, 4, 13, 0, 2)
)

// hcrTSC traps SMC.
const (
	hcrTSC sysreg.HCR = 1 << 19
	hcrHCD sysreg.HCR = 1 << 29
)

// keptOff is the VNCR page offset of a register the PE's model does not
// hold (cpu.KeptVNCROffset), for the tables here; one it has none for is
// a mistake in them.
func keptOff(op0, op1, crn, crm, op2 uint8) uint16 {
	off, ok := cpu.KeptVNCROffset(op0, op1, crn, crm, op2)
	if !ok {
		panic(fmt.Sprintf("nested: S%d_%d_C%d_C%d_%d has no VNCR offset", op0, op1, crn, crm, op2))
	}
	return off
}

// SetCodeOnPE makes the guest hypervisor's code the PE's instructions:
// world switches keep the general-purpose registers, and exits come
// through PEExit. Set it before running the vCPU.
func (v *VCPU) SetCodeOnPE() {
	v.onPE = true
	v.hyp = nil
}

// gprsToL2 and gprsToVEL2 are the register-file half of the world
// switches (toL2, toVEL2): ctx holds the world leaving the PE and gets
// the one entering it; the caller keeps the leaving one in v.other.
func (v *VCPU) gprsToL2(ctx *kvm.Context) {
	if v.onPE {
		ctx.SP = v.vncrGet(offSPEL1)
		v.applyKept(true)
		v.cpacrToL2()
		v.nv2KeptSwitch(true)
		return
	}
	ctx.X, ctx.SP = v.other.x, v.other.sp
}

func (v *VCPU) gprsToVEL2(ctx *kvm.Context) {
	if v.onPE {
		v.vncrSet(offSPEL1, ctx.SP)
		ctx.SP = v.other.sp
		v.applyKept(false)
		v.cpacrToVEL2()
		v.nv2KeptSwitch(false)
		return
	}
	ctx.X, ctx.SP = v.other.x, v.other.sp
}

// PEExit handles the exception e the PE took to EL2 (the PE is at EL2)
// while the vCPU runs code on the PE (SetCodeOnPE): x holds the PE's X0-X30
// and spEL1 its SP_EL1, which L0 reads and writes for the exit. At vEL2:
// trapped register accesses, TLBIs, ATs and ERETs are emulated (the ERET
// to EL1 or EL0 is the world switch into L2), faults on L0's stage 2 for
// the guest hypervisor resolved (MMIO on the VM's bus). In L2: shadow
// faults, L2's traps that the guest hypervisor asks for and its HVCs go to
// vEL2 (ExitVEL2: the PE is at the guest hypervisor's vector). An SMC
// nobody traps returns ExitSMC with the PE at EL2: the caller answers it
// (the firmware's PSCI, in the registers of x) and calls CompleteSMC.
func (v *VCPU) PEExit(e *cpu.Exception, x *[31]uint64, spEL1 *uint64) (Exit, error) {
	if !v.onPE {
		return Exit{}, fmt.Errorf("nested: PEExit on a vCPU whose guest hypervisor is not code on the PE")
	}
	ctx := v.k.Ctx()
	ctx.X, ctx.SP = *x, *spEL1
	exit, err := v.peExit(e)
	*x, *spEL1 = ctx.X, ctx.SP
	if err == nil && exit.Reason != ExitSMC && v.pe.EL == 2 {
		err = fmt.Errorf("%w: the PE stayed at EL2 after %v", ErrUnhandled, *e)
	}
	return exit, err
}

func (v *VCPU) peExit(e *cpu.Exception) (Exit, error) {
	if !v.inL2 {
		v.nv2CNTVOFF()
	}
	if e.Kind == cpu.SecureMonitorCall {
		// HCR_EL2.TSC is L0's (kvm.GuestHCR): an SMC of L2 whose guest
		// hypervisor sets TSC is the guest hypervisor's; any other is
		// the firmware's, which L0 stands in for.
		if v.inL2 && v.vHCR().Has(hcrTSC) {
			v.stats.L2Traps++
			v.stats.ForwardedTraps++
			x, _, err := v.forwardTrap(*e)
			return x, err
		}
		return Exit{Reason: ExitSMC}, nil
	}
	if v.inL2 {
		if e.Kind == cpu.HypervisorCall {
			if v.vHCR().Has(hcrHCD) {
				// The guest hypervisor disabled HVC: UNDEFINED at L2's
				// EL1 (hvc_enable = NOT(HCR_EL2.HCD)), never its trap.
				return Exit{}, v.undefinedHVC()
			}
			// HVC from L2's EL1 is taken to EL2: the guest hypervisor's
			// (AArch64.CallHypervisor), with ELR_EL2 past the HVC.
			v.stats.L2Traps++
			v.stats.ForwardedTraps++
			x, _, err := v.forwardTrap(*e)
			return x, err
		}
		if v.keptExceptionL1(e) {
			v.stats.L2Traps++
			v.stats.ForwardedTraps++
			x, _, err := v.forwardTrap(*e)
			return x, err
		}
		x, _, err := v.l2Exit(*e)
		if err == nil && x.Reason == ExitNone && !v.inL2 {
			x.Reason = ExitVEL2
		}
		return x, err
	}
	if e.Kind == cpu.HypervisorCall {
		return Exit{Reason: ExitVEL2}, v.hvcAtVEL2(e)
	}
	if e.Kind == cpu.FPAccess && v.keptL1(kCPTR)&cptrTFP != 0 || e.Kind == cpu.SVEAccess && v.keptL1(kCPTR)&cptrTZ != 0 {
		return Exit{Reason: ExitVEL2}, v.fpAtVEL2(e)
	}
	if e.Kind == cpu.SysTrap {
		if done, err := v.emulateOnPE(e); done || err != nil {
			return Exit{}, err
		}
	}
	if _, err := v.vel2Exit(*e); err != nil {
		return Exit{}, err
	}
	if v.inL2 {
		return Exit{}, nil
	}
	return Exit{Reason: ExitVEL2}, nil
}

// hvcAtVEL2 delivers the guest hypervisor's own HVC, which L0 took
// because the PE runs it at EL1, as an HVC taken to EL2 from EL2
// (AArch64.CallHypervisor): EC 0x16 with the immediate, ELR_EL2 past the
// HVC, vector VBAR_EL2 + 0x200 (SP_EL2) or + 0x000 (SP_EL0), SPSR_EL2.M
// EL2h/EL2t (spsrEL2). With its HCR_EL2.HCD=1 and no EL3 the HVC is
// UNDEFINED instead (the HVC decode: hvc_enable = NOT(HCR_EL2.HCD)): EC
// 0x00, ELR_EL2 at the HVC.
func (v *VCPU) hvcAtVEL2(e *cpu.Exception) error {
	if v.vHCR().Has(hcrHCD) {
		return v.undefinedHVC()
	}
	if err := v.eret(); err != nil {
		return err
	}
	x := cpu.Exception{Kind: cpu.HypervisorCall, TargetEL: 1,
		ESR: sysreg.ESR(0x16<<26 | 1<<25 | uint64(e.ESR.ISS())&0xffff)}
	v.pe.TakeException(&x)
	return nil
}

// undefinedHVC makes the HVC L0 took UNDEFINED where it was executed
// (the guest hypervisor's vEL2 or L2's EL1, both EL1 on the PE), with
// ELR at the HVC (its preferred return address as an UNDEFINED
// instruction) rather than past it.
func (v *VCPU) undefinedHVC() error {
	v.pe.ELR[2] -= 4
	return v.undefinedHere()
}

// emulateOnPE emulates the guest hypervisor's trapped accesses (FEAT_NV)
// to the EL2 registers that the PE keeps outside its register model:
// SP_EL1 (its guest's, at VNCR offset 0x240) and TPIDR_EL2 (0x090).
func (v *VCPU) emulateOnPE(e *cpu.Exception) (bool, error) {
	iss := uint64(e.ESR.ISS())
	op0, op2, op1 := uint8(iss>>20&3), uint8(iss>>17&7), uint8(iss>>14&7)
	crn, rt, crm, read := uint8(iss>>10&0xf), uint8(iss>>5&0x1f), uint8(iss>>1&0xf), iss&1 == 1
	var off uint16
	switch {
	case op0 == 3 && op1 == 4 && crn == 4 && crm == 1 && op2 == 0:
		off = offSPEL1
	case op0 == 3 && op1 == 4 && crn == 13 && crm == 0 && op2 == 2:
		off = offTPIDREL2
	case isCPACREL1(op0, op1, crn, crm, op2):
		off = offCPACREL1 // L2's, under L0's CPTR_EL2.TCPAC (cpacrToVEL2)
	case v.keptEL2Access(op0, op1, crn, crm, op2, rt, read):
		v.stats.SysRegTraps++
		v.skip()
		return true, v.eret()
	case cpu.IDGroup3(op0, op1, crn, crm):
		v.stats.SysRegTraps++
		return true, v.idAccess(op0, op1, crn, crm, op2, rt, read)
	default:
		return false, nil
	}
	v.stats.SysRegTraps++
	if read {
		v.setXreg(rt, v.vncrGet(off))
	} else {
		v.vncrSet(off, v.xreg(rt))
	}
	v.skip()
	return true, v.eret()
}

// CompleteSMC finishes an ExitSMC once the caller answered it: the PE
// returns past the SMC (the preferred return address of a trapped SMC is
// the SMC itself, as AArch64.CheckForSMCUndefOrTrap traps it).
func (v *VCPU) CompleteSMC() error {
	if v.pe.EL != 2 || v.pe.ESR[2].EC() != 0x17 {
		return fmt.Errorf("nested: no SMC to complete")
	}
	v.pe.ELR[2] += mem.VA(4)
	return v.eret()
}

// externalAbortVEL2 makes the guest hypervisor take the synchronous
// External abort of its access e to an L1 IPA where no device answers:
// the PE returns to vEL2 and takes the Data Abort from the same EL (EC
// 0x25, WnR kept, FSC 0b010000, FAR the VA), as the hardware would at EL2
// (AArch64.DataAbort).
func (v *VCPU) externalAbortVEL2(e cpu.Exception) error {
	if err := v.eret(); err != nil {
		return err
	}
	iss := uint64(e.ESR) & (1<<6 | 1<<8) // WnR, CM
	x := cpu.Exception{Kind: cpu.DataAbort, TargetEL: 1, FAR: e.FAR, External: true,
		ESR: sysreg.ESR(uint64(sysreg.ECDataAbortLower+1)<<26 | 1<<25 | iss | 0b010000)}
	v.pe.TakeException(&x)
	return nil
}

// spsrFixup: FEAT_NV without NV2 and an E2H=0 guest hypervisor run with
// HCR_EL2.{NV,NV1}={1,1}. Its SPSR_EL2 is the PE's SPSR_EL1 while it runs,
// and an exception it takes at vEL2 writes SPSR_EL1 with M[3:2] = EL1:
// GetPSRFromPSTATE reports EL2 only for NVx 'x01' and '111'. So that L0
// can tell that value from one software wrote (an L2 PSTATE, M = EL1),
// software's values are kept in spsr2 and reach the PE with M[3:2] = 0:
// a PE value with M[3:2] != 0 was written by an exception entry at vEL2
// and reads as from EL2. (With NV2 the PE reports EL2 itself.)
func (v *VCPU) spsrFixup() bool { return v.onPE && v.vm.cfg.Mode == ModeNV && !v.vm.cfg.E2H }

// spsrEL2 is the guest hypervisor's SPSR_EL2.
func (v *VCPU) spsrEL2() uint64 {
	x := v.pe.SPSR[1]
	if !v.spsrFixup() {
		return x
	}
	if x&0xc != 0 {
		return x&^0xc | 2<<2 // the PE's exception entry at vEL2
	}
	return v.spsr2
}

// setSPSREL2 writes the guest hypervisor's SPSR_EL2.
func (v *VCPU) setSPSREL2(x uint64) {
	if v.spsrFixup() {
		v.spsr2, x = x, x&^0xc
	}
	v.pe.SPSR[1] = x
}
