// Package sysreg provides typed, immutable views of the AArch64 system
// registers that the memory system reads: translation control (SCTLR, TCR,
// VTCR, TTBR, VTTBR, MAIR), hypervisor configuration (HCR_EL2), fault
// reporting (PAR_EL1, ESR_ELx, FAR, HPFAR_EL2) and the memory-model feature
// registers (ID_AA64MMFR0/1/2_EL1).
//
// Each view is a uint64 with accessor methods named after the architectural
// fields (DDI 0487, chapter D23/D24 register descriptions), so that
// TCR(v).TG0() reads like the manual. Views never validate: a reserved
// encoding is returned as read, and the translation core decides what it
// means.
//
// Values are built the same way, by field name: TCRFields, TCR2Fields,
// VTCRFields, SCTLRFields, HCRFields, TTBRFields and VTTBRFields pack their
// fields with Value, and MAIROf packs attribute bytes, e.g.
//
//	tcr := sysreg.TCRFields{T0SZ: sysreg.TxSZ(48), TG0: sysreg.Granule4K, IPS: sysreg.PS48}.Value()
package sysreg

// field extracts bits [hi:lo] of v.
func field(v uint64, hi, lo uint) uint64 {
	return (v >> lo) & (1<<(hi-lo+1) - 1)
}

func bit(v uint64, n uint) bool { return v>>n&1 == 1 }

// Granule is a translation granule size.
type Granule uint8

// Translation granules. GranuleInvalid marks a reserved TGx encoding.
const (
	GranuleInvalid Granule = iota
	Granule4K
	Granule16K
	Granule64K
)

// Bits returns log2 of the granule size in bytes (12, 14 or 16), 0 when invalid.
func (g Granule) Bits() uint {
	switch g {
	case Granule4K:
		return 12
	case Granule16K:
		return 14
	case Granule64K:
		return 16
	}
	return 0
}

func (g Granule) String() string {
	switch g {
	case Granule4K:
		return "4K"
	case Granule16K:
		return "16K"
	case Granule64K:
		return "64K"
	}
	return "invalid"
}

// decodeTG0 decodes TCR_ELx.TG0 / VTCR_EL2.TG0.
func decodeTG0(v uint64) Granule {
	switch v {
	case 0:
		return Granule4K
	case 1:
		return Granule64K
	case 2:
		return Granule16K
	}
	return GranuleInvalid
}

// decodeTG1 decodes TCR_ELx.TG1 (a different encoding from TG0).
func decodeTG1(v uint64) Granule {
	switch v {
	case 1:
		return Granule16K
	case 2:
		return Granule4K
	case 3:
		return Granule64K
	}
	return GranuleInvalid
}

// PASizeBits decodes a {I}PS/PS/PARange encoding into a number of address
// bits; ok is false for a reserved encoding.
func PASizeBits(enc uint64) (bits uint, ok bool) {
	switch enc {
	case 0:
		return 32, true
	case 1:
		return 36, true
	case 2:
		return 40, true
	case 3:
		return 42, true
	case 4:
		return 44, true
	case 5:
		return 48, true
	case 6:
		return 52, true
	}
	return 0, false
}

// SCTLR is SCTLR_EL1 or SCTLR_EL2 (the memory-system fields share positions).
type SCTLR uint64

// M is the stage-1 MMU enable.
func (r SCTLR) M() bool { return bit(uint64(r), 0) }

// A is the alignment check enable.
func (r SCTLR) A() bool { return bit(uint64(r), 1) }

// C is the stage-1 data cacheability control.
func (r SCTLR) C() bool { return bit(uint64(r), 2) }

// I is the stage-1 instruction cacheability control.
func (r SCTLR) I() bool { return bit(uint64(r), 12) }

// WXN forces write-implies-execute-never.
func (r SCTLR) WXN() bool { return bit(uint64(r), 19) }

// SPAN (EL1&0 and EL2&0 regimes): 0 sets PSTATE.PAN on exception entry.
func (r SCTLR) SPAN() bool { return bit(uint64(r), 23) }

// E0E is the endianness of explicit data accesses at EL0.
func (r SCTLR) E0E() bool { return bit(uint64(r), 24) }

// EE is the endianness of data accesses at the regime's EL and of its
// translation table walks.
func (r SCTLR) EE() bool { return bit(uint64(r), 25) }

// EPAN (FEAT_PAN3) extends PAN to EL0-executable pages.
func (r SCTLR) EPAN() bool { return bit(uint64(r), 57) }

// TCR is TCR_EL1, or TCR_EL2 when HCR_EL2.E2H is 1 (same layout).
type TCR uint64

// T0SZ is the size offset of the TTBR0 region.
func (r TCR) T0SZ() uint { return uint(field(uint64(r), 5, 0)) }

// EPD0 disables TTBR0 walks.
func (r TCR) EPD0() bool { return bit(uint64(r), 7) }

// SH0 is the shareability of TTBR0 walks (and of output memory with DS=1).
func (r TCR) SH0() uint { return uint(field(uint64(r), 13, 12)) }

// TG0 is the TTBR0 granule.
func (r TCR) TG0() Granule { return decodeTG0(field(uint64(r), 15, 14)) }

// T1SZ is the size offset of the TTBR1 region.
func (r TCR) T1SZ() uint { return uint(field(uint64(r), 21, 16)) }

// A1 selects the ASID from TTBR1 (true) or TTBR0 (false).
func (r TCR) A1() bool { return bit(uint64(r), 22) }

// EPD1 disables TTBR1 walks.
func (r TCR) EPD1() bool { return bit(uint64(r), 23) }

// SH1 is the shareability of TTBR1 walks.
func (r TCR) SH1() uint { return uint(field(uint64(r), 29, 28)) }

// TG1 is the TTBR1 granule (TG1 encoding).
func (r TCR) TG1() Granule { return decodeTG1(field(uint64(r), 31, 30)) }

// IPS is the intermediate physical address size encoding.
func (r TCR) IPS() uint64 { return field(uint64(r), 34, 32) }

// AS selects 16-bit ASIDs.
func (r TCR) AS() bool { return bit(uint64(r), 36) }

// TBI0 is top-byte-ignore for the TTBR0 region.
func (r TCR) TBI0() bool { return bit(uint64(r), 37) }

// TBI1 is top-byte-ignore for the TTBR1 region.
func (r TCR) TBI1() bool { return bit(uint64(r), 38) }

// HA enables hardware Access flag updates.
func (r TCR) HA() bool { return bit(uint64(r), 39) }

// HD enables hardware dirty-state updates.
func (r TCR) HD() bool { return bit(uint64(r), 40) }

// HPD0 disables hierarchical permissions for TTBR0.
func (r TCR) HPD0() bool { return bit(uint64(r), 41) }

// HPD1 disables hierarchical permissions for TTBR1.
func (r TCR) HPD1() bool { return bit(uint64(r), 42) }

// TBID0 limits TBI0 to data accesses.
func (r TCR) TBID0() bool { return bit(uint64(r), 51) }

// TBID1 limits TBI1 to data accesses.
func (r TCR) TBID1() bool { return bit(uint64(r), 52) }

// E0PD0 faults EL0 accesses to the TTBR0 region (FEAT_E0PD).
func (r TCR) E0PD0() bool { return bit(uint64(r), 55) }

// E0PD1 faults EL0 accesses to the TTBR1 region (FEAT_E0PD).
func (r TCR) E0PD1() bool { return bit(uint64(r), 56) }

// DS selects the 52-bit (FEAT_LPA2) descriptor formats.
func (r TCR) DS() bool { return bit(uint64(r), 59) }

// TCR2 is TCR_EL2 when HCR_EL2.E2H is 0 (a single VA range).
type TCR2 uint64

// T0SZ is the size offset of the region.
func (r TCR2) T0SZ() uint { return uint(field(uint64(r), 5, 0)) }

// SH0 is the shareability of walks (and of output memory with DS=1).
func (r TCR2) SH0() uint { return uint(field(uint64(r), 13, 12)) }

// TG0 is the granule.
func (r TCR2) TG0() Granule { return decodeTG0(field(uint64(r), 15, 14)) }

// PS is the physical address size encoding.
func (r TCR2) PS() uint64 { return field(uint64(r), 18, 16) }

// TBI is top-byte-ignore.
func (r TCR2) TBI() bool { return bit(uint64(r), 20) }

// HA enables hardware Access flag updates.
func (r TCR2) HA() bool { return bit(uint64(r), 21) }

// HD enables hardware dirty-state updates.
func (r TCR2) HD() bool { return bit(uint64(r), 22) }

// HPD disables hierarchical permissions.
func (r TCR2) HPD() bool { return bit(uint64(r), 24) }

// TBID limits TBI to data accesses.
func (r TCR2) TBID() bool { return bit(uint64(r), 29) }

// DS selects the 52-bit (FEAT_LPA2) descriptor formats.
func (r TCR2) DS() bool { return bit(uint64(r), 32) }

// VTCR is VTCR_EL2, the stage-2 translation control.
type VTCR uint64

// T0SZ is the size offset of the IPA space.
func (r VTCR) T0SZ() uint { return uint(field(uint64(r), 5, 0)) }

// SL0 is the starting level encoding.
func (r VTCR) SL0() uint { return uint(field(uint64(r), 7, 6)) }

// SH0 is the shareability of walks (and of output memory with DS=1).
func (r VTCR) SH0() uint { return uint(field(uint64(r), 13, 12)) }

// TG0 is the granule.
func (r VTCR) TG0() Granule { return decodeTG0(field(uint64(r), 15, 14)) }

// PS is the physical address size encoding.
func (r VTCR) PS() uint64 { return field(uint64(r), 18, 16) }

// VS selects 16-bit VMIDs.
func (r VTCR) VS() bool { return bit(uint64(r), 19) }

// HA enables hardware Access flag updates at stage 2.
func (r VTCR) HA() bool { return bit(uint64(r), 21) }

// HD enables hardware dirty-state updates at stage 2.
func (r VTCR) HD() bool { return bit(uint64(r), 22) }

// DS selects the 52-bit (FEAT_LPA2) descriptor formats.
func (r VTCR) DS() bool { return bit(uint64(r), 32) }

// SL2 extends SL0 to start at level -1 (4K granule with DS=1).
func (r VTCR) SL2() bool { return bit(uint64(r), 33) }

// TTBR is TTBR0/1_EL1 or TTBR0/1_EL2.
type TTBR uint64

// CnP is the common-not-private bit.
func (r TTBR) CnP() bool { return bit(uint64(r), 0) }

// BADDR returns bits [47:1] of the table base, in place.
func (r TTBR) BADDR() uint64 { return uint64(r) & 0x0000_ffff_ffff_fffe }

// BADDRHigh returns base address bits [51:48], held in bits [5:2] when
// the 52-bit formats are in use.
func (r TTBR) BADDRHigh() uint64 { return field(uint64(r), 5, 2) }

// ASID returns bits [63:48]; with 8-bit ASIDs only the low 8 bits count.
func (r TTBR) ASID() uint16 { return uint16(field(uint64(r), 63, 48)) }

// VTTBR is VTTBR_EL2.
type VTTBR uint64

// CnP is the common-not-private bit.
func (r VTTBR) CnP() bool { return bit(uint64(r), 0) }

// BADDR returns bits [47:1] of the table base, in place.
func (r VTTBR) BADDR() uint64 { return uint64(r) & 0x0000_ffff_ffff_fffe }

// BADDRHigh returns base address bits [51:48] (held in bits [5:2]).
func (r VTTBR) BADDRHigh() uint64 { return field(uint64(r), 5, 2) }

// VMID returns the VMID: bits [63:48] when sixteen, else bits [55:48].
func (r VTTBR) VMID(sixteen bool) uint16 {
	if sixteen {
		return uint16(field(uint64(r), 63, 48))
	}
	return uint16(field(uint64(r), 55, 48))
}

// WithVMID returns r with bits [63:48] set to vmid (an 8-bit VMID leaves
// bits [63:56] zero, which the architecture requires when VTCR_EL2.VS=0).
func (r VTTBR) WithVMID(vmid uint16) VTTBR {
	return VTTBR(uint64(r)&^(0xffff<<48) | uint64(vmid)<<48)
}

// MAIR is MAIR_EL1 or MAIR_EL2.
type MAIR uint64

// Attr returns Attr<n> (n in 0..7).
func (r MAIR) Attr(n uint) uint8 { return uint8(uint64(r) >> (8 * (n & 7))) }

// HCR is HCR_EL2.
type HCR uint64

// HCR_EL2 bits used by the memory system.
const (
	HCR_VM   HCR = 1 << 0
	HCR_PTW  HCR = 1 << 2
	HCR_DC   HCR = 1 << 12
	HCR_TTLB HCR = 1 << 25
	HCR_TVM  HCR = 1 << 26
	HCR_TGE  HCR = 1 << 27
	HCR_RW   HCR = 1 << 31
	HCR_CD   HCR = 1 << 32
	HCR_ID   HCR = 1 << 33
	HCR_E2H  HCR = 1 << 34
	HCR_TEA  HCR = 1 << 37
	HCR_NV   HCR = 1 << 42
	HCR_NV1  HCR = 1 << 43
	HCR_AT   HCR = 1 << 44
	HCR_NV2  HCR = 1 << 45
	HCR_FWB  HCR = 1 << 46
	// HCR_TTLBIS and HCR_TTLBOS trap Inner/Outer Shareable TLBIs (FEAT_EVT).
	HCR_TTLBIS HCR = 1 << 54
	HCR_TTLBOS HCR = 1 << 55
)

// Has reports whether every bit of mask is set.
func (r HCR) Has(mask HCR) bool { return r&mask == mask }

// VM enables stage 2 for the EL1&0 regime.
func (r HCR) VM() bool { return r.Has(HCR_VM) }

// PTW makes a stage-1 walk that hits stage-2 Device memory a permission fault.
func (r HCR) PTW() bool { return r.Has(HCR_PTW) }

// DC is the default-cacheable bit.
func (r HCR) DC() bool { return r.Has(HCR_DC) }

// TGE traps general exceptions: EL0 runs under EL2.
func (r HCR) TGE() bool { return r.Has(HCR_TGE) }

// RW makes EL1 AArch64.
func (r HCR) RW() bool { return r.Has(HCR_RW) }

// CD disables stage-2 data cacheability.
func (r HCR) CD() bool { return r.Has(HCR_CD) }

// ID disables stage-2 instruction cacheability.
func (r HCR) ID() bool { return r.Has(HCR_ID) }

// TEA routes synchronous External aborts from EL0 and EL1 to EL2 (FEAT_RAS).
func (r HCR) TEA() bool { return r.Has(HCR_TEA) }

// E2H enables the Virtualization Host Extensions.
func (r HCR) E2H() bool { return r.Has(HCR_E2H) }

// AT traps EL1 AT S1E0*/S1E1* to EL2 (FEAT_NV).
func (r HCR) AT() bool { return r.Has(HCR_AT) }

// NV enables nested virtualization traps.
func (r HCR) NV() bool { return r.Has(HCR_NV) }

// NV1 is the nested virtualization VHE-guest control.
func (r HCR) NV1() bool { return r.Has(HCR_NV1) }

// NV2 enables enhanced nested virtualization (register memory redirection).
func (r HCR) NV2() bool { return r.Has(HCR_NV2) }

// FWB selects stage-2 forced write-back attribute combining.
func (r HCR) FWB() bool { return r.Has(HCR_FWB) }

// TTLB traps EL1 TLB maintenance instructions.
func (r HCR) TTLB() bool { return r.Has(HCR_TTLB) }

// PAR is PAR_EL1.
type PAR uint64

// F reports a failed translation.
func (r PAR) F() bool { return bit(uint64(r), 0) }

// FST is the fault status code (F=1).
func (r PAR) FST() uint8 { return uint8(field(uint64(r), 6, 1)) }

// PTW reports a stage-2 fault during a stage-1 walk (F=1).
func (r PAR) PTW() bool { return bit(uint64(r), 8) }

// S reports a stage-2 fault (F=1).
func (r PAR) S() bool { return bit(uint64(r), 9) }

// SH is the shareability of the result (F=0).
func (r PAR) SH() uint { return uint(field(uint64(r), 8, 7)) }

// NS is the non-secure bit of the result (F=0).
func (r PAR) NS() bool { return bit(uint64(r), 9) }

// PA returns the output address bits [51:12] in place (F=0).
func (r PAR) PA() uint64 { return uint64(r) & 0x000f_ffff_ffff_f000 }

// ATTR is the memory attribute byte in MAIR encoding (F=0).
func (r PAR) ATTR() uint8 { return uint8(field(uint64(r), 63, 56)) }

// ESR is ESR_EL1 or ESR_EL2.
type ESR uint64

// Exception classes used by the memory system.
const (
	ECInstrAbortLower uint8 = 0x20
	ECInstrAbortSame  uint8 = 0x21
	ECDataAbortLower  uint8 = 0x24
	ECDataAbortSame   uint8 = 0x25
	ECSysRegTrap      uint8 = 0x18
	ECUnknown         uint8 = 0x00
)

// EC is the exception class.
func (r ESR) EC() uint8 { return uint8(field(uint64(r), 31, 26)) }

// IL is the instruction length bit (32-bit instruction when set).
func (r ESR) IL() bool { return bit(uint64(r), 25) }

// ISS is the instruction-specific syndrome.
func (r ESR) ISS() uint32 { return uint32(field(uint64(r), 24, 0)) }

// ISV reports a valid instruction syndrome (data abort).
func (r ESR) ISV() bool { return bit(uint64(r), 24) }

// SAS is the access size as log2 bytes (data abort, ISV=1).
func (r ESR) SAS() uint { return uint(field(uint64(r), 23, 22)) }

// SSE requests sign extension (data abort, ISV=1).
func (r ESR) SSE() bool { return bit(uint64(r), 21) }

// SRT is the transfer register (data abort, ISV=1).
func (r ESR) SRT() uint { return uint(field(uint64(r), 20, 16)) }

// SF reports a 64-bit transfer register (data abort, ISV=1).
func (r ESR) SF() bool { return bit(uint64(r), 15) }

// AR reports acquire/release semantics (data abort, ISV=1).
func (r ESR) AR() bool { return bit(uint64(r), 14) }

// FnV reports that FAR is not valid.
func (r ESR) FnV() bool { return bit(uint64(r), 10) }

// EA is the external abort type.
func (r ESR) EA() bool { return bit(uint64(r), 9) }

// CM reports a cache maintenance operation.
func (r ESR) CM() bool { return bit(uint64(r), 8) }

// S1PTW reports a stage-2 fault on a stage-1 table walk.
func (r ESR) S1PTW() bool { return bit(uint64(r), 7) }

// WnR reports a write.
func (r ESR) WnR() bool { return bit(uint64(r), 6) }

// FSC is the data/instruction fault status code.
func (r ESR) FSC() uint8 { return uint8(field(uint64(r), 5, 0)) }

// FAR is FAR_EL1 or FAR_EL2: the faulting virtual address.
type FAR uint64

// HPFAR is HPFAR_EL2: the faulting IPA for stage-2 faults.
type HPFAR uint64

// IPA returns the faulting IPA page address (FIPA << 12), bits [51:12].
func (r HPFAR) IPA() uint64 { return field(uint64(r), 43, 4) << 12 }

// HPFARFor returns the HPFAR_EL2 value that reports ipa (NS clear).
func HPFARFor(ipa uint64) HPFAR { return HPFAR(field(ipa, 51, 12) << 4) }

// MMFR0 is ID_AA64MMFR0_EL1.
type MMFR0 uint64

// PARange is the physical address range encoding.
func (r MMFR0) PARange() uint64 { return field(uint64(r), 3, 0) }

// ASIDBits is 0 (8-bit) or 2 (16-bit).
func (r MMFR0) ASIDBits() uint64 { return field(uint64(r), 7, 4) }

// BigEnd reports mixed-endian support.
func (r MMFR0) BigEnd() uint64 { return field(uint64(r), 11, 8) }

// TGran16 is the stage-1 16K granule support (0 no, 1 yes, 2 with LPA2).
func (r MMFR0) TGran16() uint64 { return field(uint64(r), 23, 20) }

// TGran64 is the stage-1 64K granule support (0 yes, 0xf no).
func (r MMFR0) TGran64() uint64 { return field(uint64(r), 27, 24) }

// TGran4 is the stage-1 4K granule support (0 yes, 1 with LPA2, 0xf no).
func (r MMFR0) TGran4() uint64 { return field(uint64(r), 31, 28) }

// TGran16_2 is the stage-2 16K support (0 as stage 1, 1 no, 2 yes, 3 with LPA2).
func (r MMFR0) TGran16_2() uint64 { return field(uint64(r), 35, 32) }

// TGran64_2 is the stage-2 64K support (0 as stage 1, 1 no, 2 yes).
func (r MMFR0) TGran64_2() uint64 { return field(uint64(r), 39, 36) }

// TGran4_2 is the stage-2 4K support (0 as stage 1, 1 no, 2 yes, 3 with LPA2).
func (r MMFR0) TGran4_2() uint64 { return field(uint64(r), 43, 40) }

// GranuleSupported reports whether granule g is implemented at stage 1
// (TGran4/16/64) or at stage 2 (TGran*_2, where 0 defers to the stage-1
// field).
func (r MMFR0) GranuleSupported(g Granule, stage2 bool) bool {
	var s1 bool
	var s2 uint64
	switch g {
	case Granule4K:
		s1, s2 = r.TGran4() != 0xf, r.TGran4_2()
	case Granule16K:
		s1, s2 = r.TGran16() != 0, r.TGran16_2()
	case Granule64K:
		s1, s2 = r.TGran64() != 0xf, r.TGran64_2()
	default:
		return false
	}
	if !stage2 || s2 == 0 {
		return s1
	}
	return s2 >= 2
}

// GranuleLPA2 reports FEAT_LPA2 (52-bit addresses with TCR.DS/VTCR.DS)
// for the 4K or 16K granule at stage 1 or stage 2.
func (r MMFR0) GranuleLPA2(g Granule, stage2 bool) bool {
	switch g {
	case Granule4K:
		if stage2 && r.TGran4_2() != 0 {
			return r.TGran4_2() == 3
		}
		return r.TGran4() == 1
	case Granule16K:
		if stage2 && r.TGran16_2() != 0 {
			return r.TGran16_2() == 3
		}
		return r.TGran16() == 2
	}
	return false
}

// MMFR1 is ID_AA64MMFR1_EL1.
type MMFR1 uint64

// HAFDBS is hardware AF (1) and dirty-state (2) management support.
func (r MMFR1) HAFDBS() uint64 { return field(uint64(r), 3, 0) }

// VMIDBits is 0 (8-bit) or 2 (16-bit).
func (r MMFR1) VMIDBits() uint64 { return field(uint64(r), 7, 4) }

// VH reports the Virtualization Host Extensions.
func (r MMFR1) VH() uint64 { return field(uint64(r), 11, 8) }

// HPDS is hierarchical permission disable support (1), with PBHA (2).
func (r MMFR1) HPDS() uint64 { return field(uint64(r), 15, 12) }

// PAN is PAN (1), PAN2 AT S1E1RP/WP (2), PAN3 EPAN (3).
func (r MMFR1) PAN() uint64 { return field(uint64(r), 23, 20) }

// XNX reports stage-2 EL0/EL1 execute-never distinction.
func (r MMFR1) XNX() uint64 { return field(uint64(r), 31, 28) }

// MMFR2 is ID_AA64MMFR2_EL1.
type MMFR2 uint64

// CnP reports common-not-private translations.
func (r MMFR2) CnP() uint64 { return field(uint64(r), 3, 0) }

// VARange is 1 when 52-bit VAs with the 64K granule are supported (FEAT_LVA).
func (r MMFR2) VARange() uint64 { return field(uint64(r), 19, 16) }

// NV is nested virtualization support (1 NV, 2 NV2).
func (r MMFR2) NV() uint64 { return field(uint64(r), 27, 24) }

// ST is the small-translation-table support (FEAT_TTST).
func (r MMFR2) ST() uint64 { return field(uint64(r), 31, 28) }

// FWB reports stage-2 forced write-back.
func (r MMFR2) FWB() uint64 { return field(uint64(r), 43, 40) }

// TTL reports TLBI translation-table-level hints.
func (r MMFR2) TTL() uint64 { return field(uint64(r), 51, 48) }

// BBM is the break-before-make level support.
func (r MMFR2) BBM() uint64 { return field(uint64(r), 55, 52) }

// E0PD reports FEAT_E0PD.
func (r MMFR2) E0PD() uint64 { return field(uint64(r), 63, 60) }

// ISAR2 is ID_AA64ISAR2_EL1.
type ISAR2 uint64

// ATS1A reports FEAT_ATS1A (AT S1E1A, AT S1E2A).
func (r ISAR2) ATS1A() uint64 { return field(uint64(r), 63, 60) }

// QEMU 10.0 -cpu max ID register values: the defaults of the at-json format (docs/AT-JSON.md).
const (
	DefaultMMFR0 MMFR0 = 0x2100032310201126
	DefaultMMFR1 MMFR1 = 0x0110112010312122
	DefaultMMFR2 MMFR2 = 0x1221011112011011
	// DefaultISAR2 has ATS1A=0: QEMU 10.0.2 does not implement FEAT_ATS1A
	// (AT S1E1A/S1E2A are UNDEFINED there; docs/QEMU-ORACLE.md). Only the
	// ATS1A field is modelled.
	DefaultISAR2 ISAR2 = 0
)
