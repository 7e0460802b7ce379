package sysreg

// Builders: each *Fields struct names a register's fields as the Arm ARM
// does, and its Value method packs them into the register view, so tests
// and library users write
//
//	sysreg.TCRFields{T0SZ: 16, TG0: sysreg.Granule4K, IPS: sysreg.PS48}.Value()
//
// instead of shifts. A zero field leaves its bits zero; Other is ORed in
// last for bits without a named field. Values are masked to the field's
// width. Builders never validate: a reserved encoding is packed as given.

// Physical address size encodings of TCR_ELx.{I}PS and VTCR_EL2.PS (the
// inverse of PASizeBits).
const (
	PS32 uint64 = 0 // 4 GB
	PS36 uint64 = 1 // 64 GB
	PS40 uint64 = 2 // 1 TB
	PS42 uint64 = 3 // 4 TB
	PS44 uint64 = 4 // 16 TB
	PS48 uint64 = 5 // 256 TB
	PS52 uint64 = 6 // 4 PB (FEAT_LPA, FEAT_LPA2)
)

// PSFor returns the {I}PS/PS encoding of an address size in bits (32, 36,
// 40, 42, 44, 48 or 52): the inverse of PASizeBits.
func PSFor(bits uint) (uint64, bool) {
	for enc := uint64(0); enc <= 6; enc++ {
		if b, _ := PASizeBits(enc); b == bits {
			return enc, true
		}
	}
	return 0, false
}

// Cacheability encodings of TCR_ELx.{I,O}RGNn and VTCR_EL2.{I,O}RGN0 (the
// attributes of table walks).
const (
	RGNNonCacheable uint = 0 // Normal, Non-cacheable
	RGNWBWA         uint = 1 // Write-Back, Read-Allocate, Write-Allocate
	RGNWT           uint = 2 // Write-Through, Read-Allocate, no Write-Allocate
	RGNWBnWA        uint = 3 // Write-Back, Read-Allocate, no Write-Allocate
)

// Shareability encodings of SHn fields (and of descriptor SH fields).
const (
	SHNon   uint = 0 // Non-shareable
	SHOuter uint = 2 // Outer Shareable
	SHInner uint = 3 // Inner Shareable
)

// MAIR attribute bytes for the common memory types (MAIR_ELx.Attr<n>).
const (
	MAIRDevicenGnRnE uint8 = 0x00
	MAIRDevicenGnRE  uint8 = 0x04
	MAIRDevicenGRE   uint8 = 0x08
	MAIRDeviceGRE    uint8 = 0x0c
	MAIRNormalNC     uint8 = 0x44 // Normal, Inner and Outer Non-cacheable
	MAIRNormalWT     uint8 = 0xbb // Normal, Write-Through non-transient, RW-allocate
	MAIRNormalWB     uint8 = 0xff // Normal, Write-Back non-transient, RW-allocate
)

func put(v uint64, hi, lo uint) uint64 { return (v & (1<<(hi-lo+1) - 1)) << lo }

func flag(b bool, n uint) uint64 {
	if b {
		return 1 << n
	}
	return 0
}

// encodeTG0 is the inverse of decodeTG0; GranuleInvalid encodes as 0.
func encodeTG0(g Granule) uint64 {
	switch g {
	case Granule64K:
		return 1
	case Granule16K:
		return 2
	}
	return 0
}

// encodeTG1 is the inverse of decodeTG1; GranuleInvalid encodes as 0
// (a reserved TG1 encoding).
func encodeTG1(g Granule) uint64 {
	switch g {
	case Granule16K:
		return 1
	case Granule4K:
		return 2
	case Granule64K:
		return 3
	}
	return 0
}

// TxSZ returns the TnSZ value for an input-address size in bits (64 - bits),
// e.g. TxSZ(48) = 16.
func TxSZ(bits uint) uint { return 64 - bits }

// TCRFields are the fields of TCR_EL1 (and of TCR_EL2 when HCR_EL2.E2H=1).
type TCRFields struct {
	T0SZ               uint
	EPD0               bool
	IRGN0, ORGN0, SH0  uint
	TG0                Granule
	T1SZ               uint
	A1, EPD1           bool
	IRGN1, ORGN1, SH1  uint
	TG1                Granule
	IPS                uint64
	AS, TBI0, TBI1     bool
	HA, HD, HPD0, HPD1 bool
	TBID0, TBID1       bool
	NFD0, NFD1         bool
	E0PD0, E0PD1       bool
	DS                 bool
	Other              uint64
}

// Value packs the fields.
func (f TCRFields) Value() TCR {
	v := put(uint64(f.T0SZ), 5, 0) | flag(f.EPD0, 7) |
		put(uint64(f.IRGN0), 9, 8) | put(uint64(f.ORGN0), 11, 10) | put(uint64(f.SH0), 13, 12) |
		encodeTG0(f.TG0)<<14 | put(uint64(f.T1SZ), 21, 16) | flag(f.A1, 22) | flag(f.EPD1, 23) |
		put(uint64(f.IRGN1), 25, 24) | put(uint64(f.ORGN1), 27, 26) | put(uint64(f.SH1), 29, 28) |
		encodeTG1(f.TG1)<<30 | put(f.IPS, 34, 32) | flag(f.AS, 36) | flag(f.TBI0, 37) | flag(f.TBI1, 38) |
		flag(f.HA, 39) | flag(f.HD, 40) | flag(f.HPD0, 41) | flag(f.HPD1, 42) |
		flag(f.TBID0, 51) | flag(f.TBID1, 52) | flag(f.NFD0, 53) | flag(f.NFD1, 54) |
		flag(f.E0PD0, 55) | flag(f.E0PD1, 56) | flag(f.DS, 59)
	return TCR(v | f.Other)
}

// TCR2Fields are the fields of TCR_EL2 when HCR_EL2.E2H=0 (one VA range).
// Value sets the RES1 bits 31 and 23.
type TCR2Fields struct {
	T0SZ              uint
	IRGN0, ORGN0, SH0 uint
	TG0               Granule
	PS                uint64
	TBI, HA, HD, HPD  bool
	TBID              bool
	DS                bool
	Other             uint64
}

// Value packs the fields.
func (f TCR2Fields) Value() TCR2 {
	v := put(uint64(f.T0SZ), 5, 0) | put(uint64(f.IRGN0), 9, 8) | put(uint64(f.ORGN0), 11, 10) |
		put(uint64(f.SH0), 13, 12) | encodeTG0(f.TG0)<<14 | put(f.PS, 18, 16) | flag(f.TBI, 20) |
		flag(f.HA, 21) | flag(f.HD, 22) | 1<<23 | flag(f.HPD, 24) | flag(f.TBID, 29) | 1<<31 | flag(f.DS, 32)
	return TCR2(v | f.Other)
}

// VTCRFields are the fields of VTCR_EL2. Value sets the RES1 bit 31.
type VTCRFields struct {
	T0SZ              uint
	SL0               uint
	IRGN0, ORGN0, SH0 uint
	TG0               Granule
	PS                uint64
	VS, HA, HD        bool
	NSW, NSA          bool
	DS, SL2           bool
	Other             uint64
}

// Value packs the fields.
func (f VTCRFields) Value() VTCR {
	v := put(uint64(f.T0SZ), 5, 0) | put(uint64(f.SL0), 7, 6) | put(uint64(f.IRGN0), 9, 8) |
		put(uint64(f.ORGN0), 11, 10) | put(uint64(f.SH0), 13, 12) | encodeTG0(f.TG0)<<14 |
		put(f.PS, 18, 16) | flag(f.VS, 19) | flag(f.HA, 21) | flag(f.HD, 22) |
		flag(f.NSW, 29) | flag(f.NSA, 30) | 1<<31 | flag(f.DS, 32) | flag(f.SL2, 33)
	return VTCR(v | f.Other)
}

// SCTLRFields are the memory-system fields of SCTLR_EL1 (and of SCTLR_EL2,
// which has them at the same positions). Other bits (the RES1 bits of an
// implementation without the features that own them, traps, pointer
// authentication, ...) go in Other.
type SCTLRFields struct {
	M, A, C, SA, SA0 bool
	I                bool
	WXN              bool
	SPAN             bool
	E0E, EE          bool
	EPAN             bool
	Other            uint64
}

// Value packs the fields.
func (f SCTLRFields) Value() SCTLR {
	v := flag(f.M, 0) | flag(f.A, 1) | flag(f.C, 2) | flag(f.SA, 3) | flag(f.SA0, 4) |
		flag(f.I, 12) | flag(f.WXN, 19) | flag(f.SPAN, 23) | flag(f.E0E, 24) | flag(f.EE, 25) |
		flag(f.EPAN, 57)
	return SCTLR(v | f.Other)
}

// HCRFields are fields of HCR_EL2: those the memory system and the
// hypervisor model read, and the common interrupt routing and trap bits.
type HCRFields struct {
	VM, SWIO, PTW    bool
	FMO, IMO, AMO    bool
	DC               bool
	TWI, TWE         bool
	TSC              bool
	TTLB, TVM, TGE   bool
	TRVM, RW         bool
	CD, ID, E2H      bool
	NV, NV1, AT, NV2 bool
	FWB              bool
	TTLBIS, TTLBOS   bool
	Other            HCR
}

// Value packs the fields.
func (f HCRFields) Value() HCR {
	v := flag(f.VM, 0) | flag(f.SWIO, 1) | flag(f.PTW, 2) | flag(f.FMO, 3) | flag(f.IMO, 4) |
		flag(f.AMO, 5) | flag(f.DC, 12) | flag(f.TWI, 13) | flag(f.TWE, 14) | flag(f.TSC, 19) |
		flag(f.TTLB, 25) | flag(f.TVM, 26) | flag(f.TGE, 27) | flag(f.TRVM, 30) | flag(f.RW, 31) |
		flag(f.CD, 32) | flag(f.ID, 33) | flag(f.E2H, 34) | flag(f.NV, 42) | flag(f.NV1, 43) |
		flag(f.AT, 44) | flag(f.NV2, 45) | flag(f.FWB, 46) | flag(f.TTLBIS, 54) | flag(f.TTLBOS, 55)
	return HCR(v) | f.Other
}

// TTBRFields are the fields of TTBR0/1_ELx. BADDR is the table's address
// (bits [47:1] in place); with the 52-bit formats its bits [51:48] are
// placed in BADDR[5:2] as the architecture requires.
type TTBRFields struct {
	BADDR uint64
	ASID  uint16
	CnP   bool
}

// Value packs the fields.
func (f TTBRFields) Value() TTBR {
	return TTBR(f.BADDR&0x0000_ffff_ffff_fffe | put(f.BADDR>>48, 5, 2) | uint64(f.ASID)<<48 | flag(f.CnP, 0))
}

// VTTBRFields are the fields of VTTBR_EL2 (BADDR as in TTBRFields).
type VTTBRFields struct {
	BADDR uint64
	VMID  uint16
	CnP   bool
}

// Value packs the fields.
func (f VTTBRFields) Value() VTTBR {
	return VTTBR(f.BADDR&0x0000_ffff_ffff_fffe | put(f.BADDR>>48, 5, 2) | uint64(f.VMID)<<48 | flag(f.CnP, 0))
}

// MAIROf returns the MAIR value whose Attr<n> is attrs[n] (at most eight;
// the rest are Device-nGnRnE, 0x00).
func MAIROf(attrs ...uint8) MAIR {
	var v uint64
	for i, a := range attrs {
		if i == 8 {
			break
		}
		v |= uint64(a) << (8 * i)
	}
	return MAIR(v)
}
