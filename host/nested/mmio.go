package nested

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/mem"
)

// MMIO in a guest hypervisor. An access of its guest to an IPA where the
// guest hypervisor's VM has no memory is an MMIO access for the device
// model of the guest hypervisor's VMM, as one where L0's VM has none is
// for L0's: a hypervisor whose guest takes such a Data Abort decodes it
// from the syndrome and performs it on its bus (EmulateMMIO). Package
// guesthyp does so for its VMs, and EL2VCPU for the guest hypervisor it
// runs and that one's guests; a stage-1 table walk or an instruction
// fetch from there reads no memory and takes a synchronous External abort
// instead (as the hardware, and L0, do).

// ErrNoDevice is returned by a guest hypervisor's MMIO handling when it
// has no device model (no bus) for the access.
var ErrNoDevice = errors.New("nested: no device model for the MMIO access")

// EmulateMMIO is a hypervisor's handling, at its EL2 c, of its guest's Data
// Abort on an IPA without memory (syndrome esr, FAR far, the IPA ipa): the
// access decoded from the syndrome (ESR_EL2.ISV; without one the
// instruction would have to be read, which these hypervisors do not do:
// an error matching mmio.ErrNoSyndrome, as KVM returns -ENOSYS without
// KVM_CAP_ARM_NISV_TO_USER), performed on bus with its bytes reversed for
// a big-endian guest (be), and completed in the guest's registers (c must
// be a GPRFrame), ELR_EL2 advanced past the instruction. The caller then
// returns to the guest (ERET). A nil bus is ErrNoDevice.
func EmulateMMIO(c EL2, bus mmio.Bus, esr sysreg.ESR, far, ipa uint64, be bool) error {
	a, err := mmio.DecodeSyndrome(mmio.ESR(esr), far, ipa)
	if err != nil {
		return fmt.Errorf("nested: MMIO access at IPA %#x: %w", ipa, err)
	}
	if bus == nil {
		return fmt.Errorf("%w: %s of %d bytes at IPA %#x", ErrNoDevice, rw(a.Write), a.Size, ipa)
	}
	f, ok := c.(GPRFrame)
	if !ok || f.GuestGPRs() == nil {
		return errors.New("nested: the hypervisor's EL2 gives no access to its guest's registers")
	}
	regs := frameRegs{f.GuestGPRs()}
	a.ReadStoreData(regs)
	if be {
		bus = swapBus{bus}
	}
	if err := mmio.Emulate(&a, regs, bus); err != nil {
		return fmt.Errorf("nested: MMIO access at IPA %#x: %w", ipa, err)
	}
	elr, err := c.MRS(cpu.ELR_EL2)
	if err != nil {
		return err
	}
	return c.MSR(cpu.ELR_EL2, elr+4)
}

func rw(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// frameRegs is mmio.Registers over a guest's general-purpose registers as
// its hypervisor saved them. An access with a syndrome writes no base
// register back, so SP and PC are never needed.
type frameRegs struct{ x *[31]uint64 }

func (r frameRegs) X(n int) uint64       { return r.x[n] }
func (r frameRegs) SetX(n int, v uint64) { r.x[n] = v }
func (r frameRegs) SP() uint64           { return 0 }
func (r frameRegs) SetSP(uint64)         {}
func (r frameRegs) PC() uint64           { return 0 }

// swapBus is a bus as a big-endian guest's accesses reach it: the bytes
// of each item reversed (SCTLR_ELx.EE, E0E).
type swapBus struct{ mmio.Bus }

func (b swapBus) Read(ipa uint64, size int) (uint64, error) {
	v, err := b.Bus.Read(ipa, size)
	return mmio.ByteSwap(v, uint8(size)), err
}

func (b swapBus) Write(ipa uint64, size int, v uint64) error {
	return b.Bus.Write(ipa, size, mmio.ByteSwap(v, uint8(size)))
}

// bigEndian reports whether a data access at EL el (0 or 1) under
// SCTLR_EL1 sctlr is big-endian (SCTLR_EL1.E0E for EL0, EE for EL1).
func bigEndian(sctlr uint64, el uint8) bool {
	if el == 0 {
		return sctlr>>24&1 != 0
	}
	return sctlr>>25&1 != 0
}

// noMemory handles an access of the guest hypervisor (at its virtual EL2)
// to its IPA ipa, where the VM has no memory (syndrome esr, FAR far): a
// data access is MMIO for the hypervisor's VMM (EmulateMMIO on
// EL2Config.Bus); its stage-1 walk, or a fetch, reads no memory there and
// takes a synchronous External abort at its virtual EL2 (on the walk, at
// the level a software walk of its EL2&0 regime finds: AArch64.S1Walk).
func (e *EL2VCPU) noMemory(esr sysreg.ESR, far uint64, ipa mem.IPA, fetch bool) error {
	spsr, err := e.c.MRS(cpu.SPSR_EL2)
	if err != nil {
		return err
	}
	keep := sysreg.ESR(uint64(esr) & (1<<6 | 1<<8)) // WnR, CM
	switch {
	case fetch:
		return e.injectVEL2(cpu.InstructionAbort, sysreg.ESR(uint64(sysreg.ECInstrAbortSame)<<26|1<<25|0b010000), far, HPFARUnknown, spsr)
	case esr.S1PTW():
		vr, err := e.virtualRegs()
		if err != nil {
			return err
		}
		regime := vmsa.RegimeEL2
		if vr.HCR_EL2.E2H() {
			regime = vmsa.RegimeEL20
		}
		tr := e.walker.Translate(&vr, regime, mem.VA(far), vmsa.Access{Kind: vmsa.Read, EL: 2}, vmsa.TranslateOptions{Stage1Only: true})
		if f := tr.Fault; f.Kind != vmsa.FaultSyncExternalOnWalk || f.Stage2 {
			return e.resume() // its tables changed meanwhile: executed again
		}
		esr := sysreg.ESR(uint64(sysreg.ECDataAbortSame)<<26 | 1<<25 | uint64(keep) | uint64(tr.Fault.FSC()))
		return e.injectVEL2(cpu.DataAbort, esr, far, HPFARUnknown, spsr)
	}
	sctlr, err := e.c.MRS(e.guestEL1(cpu.SCTLR_EL1)) // SCTLR_EL2 of the VHE guest hypervisor
	if err != nil {
		return err
	}
	if err := EmulateMMIO(e.c, e.cfg.Bus, esr, far, uint64(ipa), bigEndian(sctlr, 1)); err != nil {
		return err
	}
	return e.resume()
}

// guestNoMemory handles an access of the guest's guest whose IPA the guest
// hypervisor's stage 2 maps to ipa, where the VM has no memory (syndrome
// esr, FAR far): a data access is MMIO for the hypervisor's VMM (the
// device is in the guest hypervisor's IPA space); the guest's stage-1
// walk, or a fetch, reads no memory there and takes a synchronous
// External abort at its EL1 (on the walk, at the level a software walk of
// its stage 1 finds), as L0 does for its own guests' guests.
func (e *EL2VCPU) guestNoMemory(esr sysreg.ESR, far uint64, ipa mem.IPA, fetch bool) error {
	r := &regs{c: e.c}
	spsr, sctlr := r.get(cpu.SPSR_EL2), r.get(e.guestEL1(cpu.SCTLR_EL1))
	if r.err != nil {
		return r.err
	}
	el := uint8(spsr >> 2 & 3)
	keep := uint64(esr) & (1<<6 | 1<<8) // WnR, CM
	switch {
	case fetch:
		return e.injectGuest(cpu.InstructionAbort, 0b010000, far, spsr, sctlr)
	case esr.S1PTW():
		tr, ok := e.guestStage1(mem.VA(far), vmsa.Access{Kind: vmsa.Read, EL: el})
		if f := tr.Fault; !ok || f.Kind != vmsa.FaultSyncExternalOnWalk || f.Stage2 {
			return e.resume() // its tables changed meanwhile: executed again
		}
		return e.injectGuest(cpu.DataAbort, keep|uint64(tr.Fault.FSC()), far, spsr, sctlr)
	}
	if err := EmulateMMIO(e.c, e.cfg.Bus, esr, far, uint64(ipa), bigEndian(sctlr, el)); err != nil {
		return err
	}
	return e.resume()
}

// injectGuest makes the guest's guest take an abort of kind k with ISS
// iss (FAR far) to its EL1, from its PSTATE spsr under its SCTLR_EL1
// sctlr, as the hardware takes it there (AArch64.TakeException): ESR_EL1
// (the class from EL0 or from EL1, IL), FAR_EL1, ELR_EL1 the instruction,
// SPSR_EL1 its PSTATE; the vector VBAR_EL1 + 0x400 from EL0, + 0x200 from
// EL1 with SP_EL1, + 0x000 with SP_EL0; EL1h with D, A, I, F masked and
// PSTATE.PAN set unless SCTLR_EL1.SPAN. L0 reports it as an exception of
// its guest (a *GuestException). With the guest hypervisor's HCR_EL2.TEA
// the abort is its instead (AArch64.DataAbort), forwarded to its EL2.
func (e *EL2VCPU) injectGuest(k cpu.ExceptionKind, iss uint64, far, spsr, sctlr uint64) error {
	from := uint8(spsr >> 2 & 3)
	ec := uint64(sysreg.ECDataAbortLower)
	if k == cpu.InstructionAbort {
		ec = uint64(sysreg.ECInstrAbortLower)
	}
	if h, err := e.guestHCR(); err != nil {
		return err
	} else if h.TEA() {
		// The guest hypervisor routes External aborts to its EL2.
		e.stats.Forwarded++
		return e.forward(sysreg.ESR(ec<<26|1<<25|iss), far, HPFARUnknown, 0x400, false)
	}
	off := uint64(0x400)
	if from == 1 {
		ec++ // the "same Exception level" class is one above
		off = 0
		if spsr&1 != 0 {
			off = 0x200
		}
	}
	esr := sysreg.ESR(ec<<26 | 1<<25 | iss)
	r := &regs{c: e.c}
	pc, vbar := r.get(cpu.ELR_EL2), r.get(e.guestEL1(cpu.VBAR_EL1))
	r.set(e.guestEL1(cpu.ELR_EL1), pc)
	r.set(e.guestEL1(cpu.SPSR_EL1), spsr)
	r.set(e.guestEL1(cpu.ESR_EL1), uint64(esr))
	r.set(e.guestEL1(cpu.FAR_EL1), far)
	pan := spsr & spsrPAN
	if sctlr>>23&1 == 0 { // SCTLR_EL1.SPAN
		pan = spsrPAN
	}
	r.set(cpu.ELR_EL2, vbar&^0x7ff+off)
	r.set(cpu.SPSR_EL2, 0b0101|0xf<<6|pan)
	if r.err != nil {
		return r.err
	}
	if err := e.p.SetStage2(e.worldStage2()); err != nil {
		return err
	}
	if err := e.c.ERET(); err != nil {
		return err
	}
	return &GuestException{Exception: cpu.Exception{Kind: k, FromEL: from, TargetEL: 1, ESR: esr, FAR: mem.VA(far)}}
}
