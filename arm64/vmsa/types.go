// Package vmsa is the modelled AArch64 MMU: the translation process of the
// Virtual Memory System Architecture (DDI 0487, chapter D8) for the EL1&0,
// EL2 and EL2&0 stage-1 regimes and for stage 2, alone or together, with
// the architecture's faults, memory attributes and hardware Access flag and
// dirty-state updates.
//
// The code follows the pseudocode function by function
// (AArch64.FullTranslate, AArch64.S1Translate, AArch64.S1Walk,
// AArch64.S2Translate, AArch64.S2Walk, AArch64.S1CheckPermissions, ...), so
// a reviewer can hold the two side by side. A Walker reads translation
// tables through a mem.Memory; it is allocation-free unless a Trace is
// attached.
package vmsa

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// Regime is a stage-1 translation regime.
type Regime uint8

// Stage-1 translation regimes (Non-secure state).
const (
	RegimeEL10 Regime = iota // EL1&0, TTBR0/1_EL1
	RegimeEL20               // EL2&0 (HCR_EL2.E2H=1), TTBR0/1_EL2
	RegimeEL2                // EL2 (HCR_EL2.E2H=0), TTBR0_EL2
)

func (r Regime) String() string {
	switch r {
	case RegimeEL10:
		return "EL1&0"
	case RegimeEL20:
		return "EL2&0"
	case RegimeEL2:
		return "EL2"
	}
	return fmt.Sprintf("Regime(%d)", uint8(r))
}

// twoRanges reports whether the regime has TTBR0 and TTBR1 (HasUnprivileged).
func (r Regime) twoRanges() bool { return r != RegimeEL2 }

// Regs is the register state that translation reads.
type Regs struct {
	SCTLR_EL1 sysreg.SCTLR
	TCR_EL1   sysreg.TCR
	TTBR0_EL1 sysreg.TTBR
	TTBR1_EL1 sysreg.TTBR
	MAIR_EL1  sysreg.MAIR

	SCTLR_EL2 sysreg.SCTLR
	// TCR_EL2 is read as sysreg.TCR2 when HCR_EL2.E2H=0, sysreg.TCR otherwise.
	TCR_EL2   uint64
	TTBR0_EL2 sysreg.TTBR
	TTBR1_EL2 sysreg.TTBR
	MAIR_EL2  sysreg.MAIR

	HCR_EL2   sysreg.HCR
	VTCR_EL2  sysreg.VTCR
	VTTBR_EL2 sysreg.VTTBR

	MMFR0 sysreg.MMFR0
	MMFR1 sysreg.MMFR1
	MMFR2 sysreg.MMFR2
	ISAR2 sysreg.ISAR2
}

// DefaultRegs returns all-zero translation registers with the ID registers
// of QEMU 10.0's -cpu max (the defaults of the at-json contract).
func DefaultRegs() Regs {
	return Regs{MMFR0: sysreg.DefaultMMFR0, MMFR1: sysreg.DefaultMMFR1, MMFR2: sysreg.DefaultMMFR2, ISAR2: sysreg.DefaultISAR2}
}

// AccessKind is the kind of memory access being translated.
type AccessKind uint8

// Access kinds.
const (
	Read AccessKind = iota
	Write
	Fetch // instruction fetch
)

// Access describes the access being translated: the pseudocode's
// AccessDescriptor, reduced to what the memory system reads.
type Access struct {
	Kind AccessKind
	// EL is the exception level whose permissions apply: 0 for EL0
	// (unprivileged, e.g. AT S1E0R), 1 or 2 for a privileged access.
	EL uint8
	// PAN applies the PSTATE.PAN check (set for PSTATE.PAN=1 accesses, and
	// for AT S1E1RP/WP when PSTATE.PAN=1).
	PAN bool
	// AT marks an address translation instruction: it does not update
	// dirty state (AArch64.S1Translate excludes AccessType_AT).
	AT bool
	// NoPerm skips permission checks (AT S1E1A, AT S1E2A: FEAT_ATS1A).
	NoPerm bool
}

// FaultKind is the kind of a translation fault.
type FaultKind uint8

// Fault kinds.
const (
	FaultNone FaultKind = iota
	FaultTranslation
	FaultAddressSize
	FaultAccessFlag
	FaultPermission
	// FaultSyncExternalOnWalk is a synchronous External abort on a
	// translation table walk (a descriptor read outside memory).
	FaultSyncExternalOnWalk
)

func (k FaultKind) String() string {
	switch k {
	case FaultNone:
		return "none"
	case FaultTranslation:
		return "translation"
	case FaultAddressSize:
		return "address size"
	case FaultAccessFlag:
		return "access flag"
	case FaultPermission:
		return "permission"
	case FaultSyncExternalOnWalk:
		return "synchronous external abort on walk"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Fault is the pseudocode's FaultRecord.
type Fault struct {
	Kind  FaultKind
	Level int8 // -1..3
	// Stage2 is set for a fault at stage 2 (secondstage).
	Stage2 bool
	// S1PTW is set for a stage-2 fault on a stage-1 table walk (s2fs1walk).
	S1PTW bool
	// IPA is the faulting intermediate physical address (Stage2 faults).
	IPA mem.IPA
	// Write is WnR: the access (or the hardware update) was a write.
	Write bool
}

// IsFault reports whether f records a fault.
func (f Fault) IsFault() bool { return f.Kind != FaultNone }

// FSC returns the fault status code as ESR_ELx.{D,I}FSC and PAR_EL1.FST
// encode it (DDI 0487, ISS encoding for Data Abort).
func (f Fault) FSC() uint8 {
	l := uint8(f.Level) & 3
	switch f.Kind {
	case FaultAddressSize:
		if f.Level < 0 {
			return 0b101001
		}
		return 0b000000 | l
	case FaultTranslation:
		if f.Level < 0 {
			return 0b101011
		}
		return 0b000100 | l
	case FaultAccessFlag:
		return 0b001000 | l
	case FaultPermission:
		return 0b001100 | l
	case FaultSyncExternalOnWalk:
		if f.Level < 0 {
			return 0b010011
		}
		return 0b010100 | l
	}
	return 0
}

// String describes the fault briefly, e.g. "translation level 3".
func (f Fault) String() string {
	if f.Kind == FaultNone {
		return "none"
	}
	s := fmt.Sprintf("%s level %d", f.Kind, f.Level)
	if f.Stage2 {
		if f.S1PTW {
			s = fmt.Sprintf("stage 2 %s on stage-1 walk (IPA %#x)", s, f.IPA)
		} else {
			s = fmt.Sprintf("stage 2 %s (IPA %#x)", s, f.IPA)
		}
	}
	return s
}

// MemType is Device or Normal memory.
type MemType uint8

// Memory types.
const (
	Device MemType = iota
	Normal
)

// Cacheability of one level (inner or outer) of Normal memory.
type Cacheability uint8

// Cacheability values, weakest first (MemAttr_NC, MemAttr_WT, MemAttr_WB).
const (
	NonCacheable Cacheability = iota
	WriteThrough
	WriteBack
)

// CacheAttrs is the pseudocode's MemAttrHints.
type CacheAttrs struct {
	Attrs     Cacheability
	Hints     uint8 // RW allocation hints: bit 1 read-allocate, bit 0 write-allocate
	Transient bool
}

// Device memory types, most restrictive first.
const (
	DevicenGnRnE uint8 = iota
	DevicenGnRE
	DevicenGRE
	DeviceGRE
)

// Shareability domains.
const (
	NonShareable   uint8 = 0
	OuterShareable uint8 = 2
	InnerShareable uint8 = 3
)

// MemAttrs is the pseudocode's MemoryAttributes.
type MemAttrs struct {
	Type         MemType
	Device       uint8 // DevicenGnRnE..DeviceGRE
	Inner, Outer CacheAttrs
	Shareability uint8
	XS           bool
	// Raw, when nonzero, is an UNPREDICTABLE MAIR encoding reported as read.
	Raw uint8
	// RawValid marks Raw as meaningful.
	RawValid bool
}

// Perms are the permissions a translation grants, for TLB reuse.
type Perms struct {
	R0, W0, X0 bool // EL0 (unprivileged)
	R1, W1, X1 bool // the regime's privileged EL
}

// Translation is the result of a translation: an AddressDescriptor plus the
// information a TLB needs to cache it.
type Translation struct {
	Fault Fault
	// OA is the physical output address. It is set when the translation
	// reached a PA: stage 2 was applied (S2), the regime has no stage 2
	// (EL2, EL2&0), or stage 2 is disabled for EL1&0, where the IPA is the
	// PA (AArch64.FullTranslate returns the stage-1 result unchanged). It
	// is zero when IPAOnly is set.
	OA mem.PA
	// IPA is the stage-1 output of an EL1&0 translation (whether or not
	// stage 2 was applied), or the input of Walker.TranslateS2; zero for
	// the EL2 and EL2&0 regimes.
	IPA mem.IPA
	// IPAOnly reports a translation that stopped at the IPA
	// (TranslateOptions.Stage1Only with stage 2 enabled): OA is not set.
	IPAOnly bool
	Attrs   MemAttrs
	// S1Attrs are the stage-1 attributes before combining with stage 2.
	S1Attrs MemAttrs
	// Level and BlockBits describe the stage-1 leaf (log2 of its size);
	// Level is -2 when stage 1 was disabled.
	Level     int8
	BlockBits uint8
	// ContigBits is log2 of the contiguous range when the contiguous bit is set.
	ContigBits uint8
	// S2Level and S2BlockBits describe the stage-2 leaf, when applied.
	S2Level     int8
	S2BlockBits uint8
	NG          bool
	ASID        uint16
	Perms       Perms
	// S1Perms are stage 1's own permissions when stage 2 translated the
	// result (Perms is then their intersection with stage 2's).
	S1Perms Perms
	// S2 reports that stage 2 translated the result.
	S2 bool
	// Desc is the final stage-1 descriptor (after hardware updates).
	Desc uint64
}

// Output returns the output address of the translation that was asked for,
// as PAR_EL1.PA reports it: the PA, or the IPA when the translation stopped
// at stage 1 with stage 2 enabled (IPAOnly). It is the one place where the
// two spaces meet, because the register field holds either.
func (t *Translation) Output() uint64 {
	if t.IPAOnly {
		return uint64(t.IPA)
	}
	return uint64(t.OA)
}
