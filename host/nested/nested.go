// Package nested is the host hypervisor's (L0's) support for nested
// virtualization, after KVM/arm64's: a guest hypervisor (L1) runs in a VM
// of package host/kvm at virtual EL2 (vEL2) on the modelled PE at EL1 with
// FEAT_NV (every EL2 register access traps) or FEAT_NV2 (register accesses
// go to the VNCR_EL2 page in memory); when it enters one of its own VMs
// (L2) with ERET, L0 switches the PE to L2's context on a shadow stage 2
// that composes L1's stage 2 (tables in L1 memory, L2 IPA -> L1 IPA) with
// L0's stage 2 for L1 (L1 IPA -> host PA).
//
// Shadow faults walk L1's stage 2 in software with the translation core's
// stage-2 walk over L1 memory; a fault there is injected into vEL2 as the
// abort L1 would get from hardware, an L1 IPA without memory is an MMIO
// exit, and otherwise the page goes through the VM's ordinary fault path
// and the result is installed in the shadow. The TLBIs L1 issues are
// trapped and emulated on the shadows. See docs/NESTED.md.
//
// The guest hypervisor itself is Go code (package guesthyp) that acts only
// through the EL2 interface a VCPU provides: the instructions it executes
// at vEL2, each run on the PE with the architecture's traps. The traps of
// L2 that the guest hypervisor's HCR_EL2 asks for are forwarded to it, and
// a guest hypervisor that runs one of its own (recursion) uses the same
// engine on its EL2 interface (EL2VCPU).
package nested

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/mem"
)

// NestedIPA is an intermediate physical address of a VM the guest
// hypervisor runs (an L2 IPA): the input of the guest hypervisor's stage 2
// and of the shadow stage 2. The guest hypervisor's own IPAs (L1 IPAs, the
// output of its stage 2 and the input of L0's) are mem.IPA.
type NestedIPA uint64

// Mode is how the guest hypervisor's EL2 register accesses reach L0.
type Mode uint8

// Modes.
const (
	// ModeNV: FEAT_NV, HCR_EL2.NV=1: every access to an EL2 register (and
	// to its guest's EL1 registers) traps to L0 with EC 0x18.
	ModeNV Mode = iota
	// ModeNV2: FEAT_NV2, HCR_EL2.{NV,NV2}={1,1}: accesses to the registers
	// with a VNCR offset are loads and stores to the VNCR page, ELR, SPSR,
	// ESR and FAR of EL2 reach the EL1 registers, the rest trap.
	ModeNV2
)

func (m Mode) String() string {
	switch m {
	case ModeNV:
		return "NV"
	case ModeNV2:
		return "NV2"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// EL2 is what a guest hypervisor can do at virtual EL2: the instructions
// it executes, each run on the modelled PE at EL1 with HCR_EL2.NV (and NV2)
// set, so that the architecture decides which ones trap to L0. Addresses
// are virtual addresses of the guest hypervisor's own EL2 (or EL2&0)
// translation regime (with its stage 1 off, its IPAs).
type EL2 interface {
	// MRS reads a system register.
	MRS(r cpu.SysReg) (uint64, error)
	// MSR writes a system register.
	MSR(r cpu.SysReg, v uint64) error
	// Load and Store are data accesses of 1, 2, 4 or 8 bytes.
	Load(va mem.VA, size int) (uint64, error)
	Store(va mem.VA, size int, v uint64) error
	// CompareAndSwap64 is an atomic compare-and-swap of an aligned
	// 64-bit word (CASAL): it reports whether the word held old.
	CompareAndSwap64(va mem.VA, old, new uint64) (bool, error)
	// TLBI executes TLBI op with operand xt.
	TLBI(op tlb.Op, xt uint64) error
	// ERET returns to the state in SPSR_EL2 and ELR_EL2: a guest VM when
	// they name EL1 or EL0.
	ERET() error
	// AT executes AT op with input address va and returns PAR_EL1
	// afterwards.
	AT(op at.Op, va mem.VA) (sysreg.PAR, error)
}

// GuestHypervisor is the code a guest hypervisor runs when an exception is
// taken to virtual EL2: hardware would start executing at VBAR_EL2 plus
// the vector offset, with ESR_EL2, FAR_EL2, HPFAR_EL2, ELR_EL2 and SPSR_EL2
// describing it. Exception reads them through cpu, handles the exception
// and usually ends with cpu.ERET(); returning without it leaves the vCPU
// at vEL2 (the caller then gets ExitVEL2). A guest hypervisor that made
// its guest take an exception (the guest's instruction it emulated takes
// one) returns a *GuestException describing it after its ERET to the
// guest's vector: the caller then gets ExitL2Exception.
type GuestHypervisor interface {
	Exception(cpu EL2) error
}

// ExitReason says why an L2 access returned before completing.
type ExitReason uint8

// Exit reasons.
const (
	// ExitNone: the access completed (PC advanced).
	ExitNone ExitReason = iota
	// ExitMMIO: L2 reached, through the guest hypervisor's stage 2, an L1
	// IPA without memory: an MMIO access for L0's VMM (the device is the
	// guest hypervisor's). Complete it with CompleteMMIO.
	ExitMMIO
	// ExitL2Exception: L2 took an exception to its own EL1 (its stage-1
	// fault); the PE is at L2's vector.
	ExitL2Exception
	// ExitVEL2: an exception went to the guest hypervisor, which did not
	// return to L2: the vCPU is at vEL2.
	ExitVEL2
	// ExitSwitched: an exception went to the guest hypervisor, which
	// entered another of its worlds (another VM, or the virtual EL2 of a
	// guest hypervisor it runs, which handles the exception there) instead
	// of returning to the interrupted instruction.
	ExitSwitched
	// ExitSMC: a world whose code runs on the PE made an SMC that L0
	// answers (the firmware's PSCI; VCPU.PEExit): the PE waits at EL2 for
	// CompleteSMC.
	ExitSMC
)

func (r ExitReason) String() string {
	switch r {
	case ExitNone:
		return "none"
	case ExitMMIO:
		return "mmio"
	case ExitL2Exception:
		return "L2 exception"
	case ExitVEL2:
		return "vEL2"
	case ExitSwitched:
		return "switched"
	case ExitSMC:
		return "SMC"
	}
	return fmt.Sprintf("ExitReason(%d)", uint8(r))
}

// Exit is the outcome of an L2 access.
type Exit struct {
	Reason ExitReason
	// MMIO is the decoded access of ExitMMIO; its IPA is an L1 IPA.
	MMIO      mmio.Access
	Exception cpu.Exception
}

// Stats count a nested vCPU's exits to L0 by cause, and the work done.
type Stats struct {
	// SysRegTraps, ERETTraps, TLBITraps and ATTraps are exits from vEL2
	// with EC 0x18 (MSR/MRS, TLBI, AT) and EC 0x1A.
	SysRegTraps, ERETTraps, TLBITraps, ATTraps uint64
	// CanonicalFaults are stage-2 faults of the guest hypervisor's own
	// accesses (on L0's stage 2 for it).
	CanonicalFaults uint64
	// ShadowFaults are stage-2 faults while L2 runs; of these, Installed
	// put a shadow entry, Forwarded were injected into vEL2 (L1's stage 2
	// faulted), MMIOExits were MMIO for L0's VMM.
	ShadowFaults, Installed, Forwarded, MMIOExits uint64
	// AccessFlagFaults are shadow faults resolved by setting the Access
	// flag of a shadow leaf that aging had cleared.
	AccessFlagFaults uint64
	// L2Entries and VEL2Entries count world switches each way.
	L2Entries, VEL2Entries uint64
	// L2Traps are traps of the guest's guest (EC 0x18 or 0x1A) taken to
	// L0, and (code on the PE, PEExit) its HVCs and the SMCs its guest
	// hypervisor traps; ForwardedTraps of these went to the guest hypervisor (its
	// HCR_EL2 asked for them), the others L0 emulated.
	L2Traps, ForwardedTraps uint64
	// VNCRSyncs count copies of a guest hypervisor's VNCR page into and out
	// of L0's frame (FEAT_NV2 for the guest's guest), VNCRFaults the
	// aborts of its redirected accesses before the page was in place.
	VNCRSyncs, VNCRFaults uint64
	// ATFast and ATSoftware count the emulated AT instructions answered
	// by the fast path and by the software walk (at.go).
	ATFast, ATSoftware uint64
}

// Exits returns the total exits to L0 from vEL2.
func (s Stats) Exits() uint64 {
	return s.SysRegTraps + s.ERETTraps + s.TLBITraps + s.ATTraps + s.CanonicalFaults
}

// GuestExits returns the exits to L0 while the guest hypervisor's guest
// ran: shadow faults, traps and aborts of its FEAT_NV2 accesses.
func (s Stats) GuestExits() uint64 { return s.ShadowFaults + s.L2Traps + s.VNCRFaults }

// GuestException is returned by the EL2 instructions when the guest
// hypervisor's instruction took an exception that the guest hypervisor
// itself would handle (its own stage-1 fault, an UNDEFINED instruction):
// the model of the guest hypervisor has no code for it.
type GuestException struct{ Exception cpu.Exception }

func (e *GuestException) Error() string {
	return fmt.Sprintf("nested: the guest hypervisor's instruction took %v", e.Exception)
}

// Errors.
var (
	// ErrNotVEL2 is returned by an EL2 instruction while the vCPU runs L2.
	ErrNotVEL2 = errors.New("nested: the vCPU is not at virtual EL2")
	// ErrNotL2 is returned by RunL2 while the vCPU is at virtual EL2.
	ErrNotL2 = errors.New("nested: the vCPU is not running a nested guest")
	// ErrUnhandled is returned for an exit L0 does not emulate.
	ErrUnhandled = errors.New("nested: unhandled exit")
)
