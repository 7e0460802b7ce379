package mmio

// ESR is the value of ESR_EL2 for an exception taken to EL2. Only the fields
// of a Data Abort syndrome are given accessors; the stage-2 fault handler's
// register views may later replace this type.
type ESR uint64

// Exception classes (ESR_ELx.EC, bits 31:26) this package cares about.
const (
	// ECDataAbortLowerEL is a Data Abort from a lower Exception level, the
	// class a guest's stage-2 fault is reported with.
	ECDataAbortLowerEL = 0x24
	// ECDataAbortSameEL is a Data Abort taken without a change in Exception
	// level. It never reports a guest access.
	ECDataAbortSameEL = 0x25
)

// EC returns ESR_ELx.EC, bits 31:26.
func (e ESR) EC() uint8 { return uint8(e>>26) & 0x3f }

// IL returns ESR_ELx.IL, bit 25: true for a 32-bit instruction.
func (e ESR) IL() bool { return e>>25&1 != 0 }

// ISS returns ESR_ELx.ISS, bits 24:0.
func (e ESR) ISS() uint32 { return uint32(e) & (1<<25 - 1) }

// ISV returns ISS bit 24: the instruction syndrome (SAS, SSE, SRT, SF, AR)
// is valid.
func (e ESR) ISV() bool { return e>>24&1 != 0 }

// SAS returns ISS bits 23:22, the log2 of the access size in bytes.
func (e ESR) SAS() uint8 { return uint8(e>>22) & 3 }

// SSE returns ISS bit 21: the loaded item must be sign-extended.
func (e ESR) SSE() bool { return e>>21&1 != 0 }

// SRT returns ISS bits 20:16, the transfer register (31 is XZR/WZR).
func (e ESR) SRT() uint8 { return uint8(e>>16) & 0x1f }

// SF returns ISS bit 15: the transfer register is 64 bits wide.
func (e ESR) SF() bool { return e>>15&1 != 0 }

// AR returns ISS bit 14: the instruction has acquire/release semantics.
func (e ESR) AR() bool { return e>>14&1 != 0 }

// VNCR returns ISS bit 13: the abort came from a VNCR_EL2-relative access
// of a guest hypervisor (FEAT_NV2).
func (e ESR) VNCR() bool { return e>>13&1 != 0 }

// FnV returns ISS bit 10: FAR is not valid.
func (e ESR) FnV() bool { return e>>10&1 != 0 }

// EA returns ISS bit 9: external abort type (IMPLEMENTATION DEFINED
// classification of an external abort).
func (e ESR) EA() bool { return e>>9&1 != 0 }

// CM returns ISS bit 8: the abort came from a cache maintenance or address
// translation instruction.
func (e ESR) CM() bool { return e>>8&1 != 0 }

// S1PTW returns ISS bit 7: the stage-2 fault was on a stage-1 translation
// table walk.
func (e ESR) S1PTW() bool { return e>>7&1 != 0 }

// WnR returns ISS bit 6: the abort was caused by a write.
func (e ESR) WnR() bool { return e>>6&1 != 0 }

// DFSC returns ISS bits 5:0, the data fault status code.
func (e ESR) DFSC() uint8 { return uint8(e) & 0x3f }

// Data fault status code groups (ESR_ELx.DFSC). The low two bits of each
// group hold the lookup level, except for level -1 (FEAT_LPA2).
const (
	DFSCAddressSize  = 0x00 // 0b0000LL
	DFSCTranslation  = 0x04 // 0b0001LL
	DFSCAccessFlag   = 0x08 // 0b0010LL
	DFSCPermission   = 0x0c // 0b0011LL
	DFSCTranslationM = 0x2b // 0b101011: translation fault, level -1
)

// mmioFault reports whether a DFSC is a fault an MMIO access can legitimately
// produce at stage 2: no mapping (translation or access flag) or a write to a
// read-only mapping (permission).
func mmioFault(dfsc uint8) bool {
	switch dfsc &^ 3 {
	case DFSCTranslation, DFSCAccessFlag, DFSCPermission:
		return true
	}
	return dfsc == DFSCTranslationM
}

// FaultIPA returns the faulting IPA of a stage-2 Data Abort: the page from
// HPFAR_EL2.FIPA (bits 43:4, IPA[51:12]) and the byte offset from FAR_EL2
// bits 11:0. The page offset is taken from FAR because HPFAR only holds
// the page. Only where HPFAR_EL2 is valid (pseudocode IPAValid:
// Translation, Access flag and Address size faults, Permission faults
// with S1PTW); for a Permission fault of the access itself it is UNKNOWN
// and the IPA must come from FAR (AT S1E1R), as host/kvm does.
func FaultIPA(hpfar, far uint64) uint64 {
	return (hpfar>>4&(1<<40-1))<<12 | far&0xfff
}
