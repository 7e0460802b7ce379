package tlb

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mem"
)

// Op is a TLBI operation: a base operation (the low five bits) and a
// shareability qualifier (bits 5-6). OpVAE1 is TLBI VAE1,
// OpVAE1.IS() is TLBI VAE1IS and OpVAE1.OS() is TLBI VAE1OS.
type Op uint8

// Base TLBI operations (non-shareable forms).
const (
	OpVMALLE1 Op = iota
	OpVAE1
	OpVALE1
	OpVAAE1
	OpVAALE1
	OpASIDE1
	OpALLE1
	OpALLE2
	OpVAE2
	OpVALE2
	OpVMALLS12E1
	OpIPAS2E1
	OpIPAS2LE1
	OpRVAE1
	OpRVALE1
	OpRVAAE1
	OpRVAALE1
	OpRVAE2
	OpRVALE2
	OpRIPAS2E1
	OpRIPAS2LE1
	numBaseOps
)

// Shareability qualifiers of an Op.
const (
	shNone  Op = 0
	shInner Op = 1 << 5
	shOuter Op = 2 << 5
	shMask  Op = 3 << 5
)

// NumOps bounds Op values: every valid Op is below it (Stats.ByOp is
// indexed by Op).
const NumOps = 3 << 5

var baseNames = [numBaseOps]string{
	"VMALLE1", "VAE1", "VALE1", "VAAE1", "VAALE1", "ASIDE1", "ALLE1", "ALLE2",
	"VAE2", "VALE2", "VMALLS12E1", "IPAS2E1", "IPAS2LE1", "RVAE1", "RVALE1",
	"RVAAE1", "RVAALE1", "RVAE2", "RVALE2", "RIPAS2E1", "RIPAS2LE1",
}

// Base returns the operation without its shareability qualifier.
func (o Op) Base() Op { return o &^ shMask }

// IS returns the Inner Shareable form (TLBI <op>IS).
func (o Op) IS() Op { return o.Base() | shInner }

// OS returns the Outer Shareable form (TLBI <op>OS, FEAT_TLBIOS).
func (o Op) OS() Op { return o.Base() | shOuter }

// InnerShareable reports an IS form.
func (o Op) InnerShareable() bool { return o&shMask == shInner }

// OuterShareable reports an OS form.
func (o Op) OuterShareable() bool { return o&shMask == shOuter }

// Valid reports whether o names a TLBI operation.
func (o Op) Valid() bool { return o.Base() < numBaseOps && o&shMask != shMask && o < NumOps }

// String is the operation's assembler name, e.g. "VAE1IS".
func (o Op) String() string {
	if !o.Valid() {
		return fmt.Sprintf("Op(%#x)", uint8(o))
	}
	s := baseNames[o.Base()]
	switch o & shMask {
	case shInner:
		s += "IS"
	case shOuter:
		s += "OS"
	}
	return s
}

// opEL is the lowest exception level that may execute the operation:
// the *E2, *S12E1, IPAS2*, ALLE1 forms are EL2 operations (op1=0b100).
func (o Op) opEL() uint8 {
	switch o.Base() {
	case OpALLE1, OpALLE2, OpVAE2, OpVALE2, OpVMALLS12E1, OpIPAS2E1, OpIPAS2LE1,
		OpRVAE2, OpRVALE2, OpRIPAS2E1, OpRIPAS2LE1:
		return 2
	}
	return 1
}

// lastLevel reports the "L" forms, which need only remove entries from the
// final level of the walk.
func (o Op) lastLevel() bool {
	switch o.Base() {
	case OpVALE1, OpVAALE1, OpVALE2, OpIPAS2LE1, OpRVALE1, OpRVAALE1, OpRVALE2, OpRIPAS2LE1:
		return true
	}
	return false
}

// sysKey packs the SYS encoding fields op1, CRm, op2 (CRn is always 8).
type sysKey struct{ op1, crm, op2 uint8 }

// sysOps is the encoding table of TLBI (SYS #op1, C8, Cm, #op2) for the
// operations modelled (DDI 0487, "TLB maintenance instructions" encodings).
var sysOps = map[sysKey]Op{
	{0, 7, 0}: OpVMALLE1, {0, 3, 0}: OpVMALLE1 | shInner, {0, 1, 0}: OpVMALLE1 | shOuter,
	{0, 7, 1}: OpVAE1, {0, 3, 1}: OpVAE1 | shInner, {0, 1, 1}: OpVAE1 | shOuter,
	{0, 7, 2}: OpASIDE1, {0, 3, 2}: OpASIDE1 | shInner, {0, 1, 2}: OpASIDE1 | shOuter,
	{0, 7, 3}: OpVAAE1, {0, 3, 3}: OpVAAE1 | shInner, {0, 1, 3}: OpVAAE1 | shOuter,
	{0, 7, 5}: OpVALE1, {0, 3, 5}: OpVALE1 | shInner, {0, 1, 5}: OpVALE1 | shOuter,
	{0, 7, 7}: OpVAALE1, {0, 3, 7}: OpVAALE1 | shInner, {0, 1, 7}: OpVAALE1 | shOuter,
	{0, 6, 1}: OpRVAE1, {0, 2, 1}: OpRVAE1 | shInner, {0, 5, 1}: OpRVAE1 | shOuter,
	{0, 6, 3}: OpRVAAE1, {0, 2, 3}: OpRVAAE1 | shInner, {0, 5, 3}: OpRVAAE1 | shOuter,
	{0, 6, 5}: OpRVALE1, {0, 2, 5}: OpRVALE1 | shInner, {0, 5, 5}: OpRVALE1 | shOuter,
	{0, 6, 7}: OpRVAALE1, {0, 2, 7}: OpRVAALE1 | shInner, {0, 5, 7}: OpRVAALE1 | shOuter,
	{4, 7, 0}: OpALLE2, {4, 3, 0}: OpALLE2 | shInner, {4, 1, 0}: OpALLE2 | shOuter,
	{4, 7, 1}: OpVAE2, {4, 3, 1}: OpVAE2 | shInner, {4, 1, 1}: OpVAE2 | shOuter,
	{4, 7, 4}: OpALLE1, {4, 3, 4}: OpALLE1 | shInner, {4, 1, 4}: OpALLE1 | shOuter,
	{4, 7, 5}: OpVALE2, {4, 3, 5}: OpVALE2 | shInner, {4, 1, 5}: OpVALE2 | shOuter,
	{4, 7, 6}: OpVMALLS12E1, {4, 3, 6}: OpVMALLS12E1 | shInner, {4, 1, 6}: OpVMALLS12E1 | shOuter,
	{4, 4, 1}: OpIPAS2E1, {4, 0, 1}: OpIPAS2E1 | shInner, {4, 4, 0}: OpIPAS2E1 | shOuter,
	{4, 4, 5}: OpIPAS2LE1, {4, 0, 5}: OpIPAS2LE1 | shInner, {4, 4, 4}: OpIPAS2LE1 | shOuter,
	{4, 4, 2}: OpRIPAS2E1, {4, 0, 2}: OpRIPAS2E1 | shInner, {4, 4, 3}: OpRIPAS2E1 | shOuter,
	{4, 4, 6}: OpRIPAS2LE1, {4, 0, 6}: OpRIPAS2LE1 | shInner, {4, 4, 7}: OpRIPAS2LE1 | shOuter,
	{4, 6, 1}: OpRVAE2, {4, 2, 1}: OpRVAE2 | shInner, {4, 5, 1}: OpRVAE2 | shOuter,
	{4, 6, 5}: OpRVALE2, {4, 2, 5}: OpRVALE2 | shInner, {4, 5, 5}: OpRVALE2 | shOuter,
}

// OpFromSys decodes the system-instruction fields of a trapped TLBI (the
// ISS of an EC=0x18 trap: Op0=1, Op1, CRn=8, CRm, Op2). It reports false
// for an encoding that is not one of the modelled TLBI operations
// (EL3 forms, nXS forms and other SYS instructions).
func OpFromSys(op0, op1, crn, crm, op2 uint8) (Op, bool) {
	if op0 != 1 || crn != 8 {
		return 0, false
	}
	o, ok := sysOps[sysKey{op1, crm, op2}]
	return o, ok
}

// Sys returns the encoding fields op1, CRm, op2 of o (op0=1, CRn=8).
func (o Op) Sys() (op1, crm, op2 uint8, ok bool) {
	for k, v := range sysOps {
		if v == o {
			return k.op1, k.crm, k.op2, true
		}
	}
	return 0, 0, 0, false
}

// Hint is a decoded TTL hint: the granule (log2 of its size) and leaf
// level of the entries being invalidated. GranuleBits 0 means no hint.
type Hint struct {
	GranuleBits uint8 // 12, 14, 16; 0: no information
	Level       int8  // -1: any level
}

// noHint is TTL=0b0000: hardware must assume any level.
var noHint = Hint{Level: -1}

// DecodeTTL decodes the four-bit FEAT_TTL field (Xt[47:44] of the
// non-range forms). TTL[3:2] is the granule (01 4K, 10 16K, 11 64K; 00 no
// information) and TTL[1:0] the leaf level. The reserved level encodings
// are treated as if TTL[3:2] were 0b00: 4K level 0 and 16K level 1 are
// reserved unless FEAT_LPA2 is implemented, 16K and 64K level 0 always.
func DecodeTTL(ttl uint8, lpa2 bool) Hint {
	lvl := int8(ttl & 3)
	var g uint8
	switch ttl >> 2 & 3 {
	case 0:
		return noHint
	case 1:
		g = 12
		if lvl == 0 && !lpa2 {
			return noHint
		}
	case 2:
		g = 14
		if lvl == 0 || (lvl == 1 && !lpa2) {
			return noHint
		}
	case 3:
		g = 16
		if lvl == 0 {
			return noHint
		}
	}
	return Hint{GranuleBits: g, Level: lvl}
}

// decodeRangeTTL decodes the two-bit TTL of the range forms (Xt[38:37]):
// 00 any level, 01 level 1 (reserved for 16K without FEAT_LPA2), 10 level
// 2, 11 level 3, for the granule given by TG.
func decodeRangeTTL(ttl uint8, granuleBits uint8, lpa2 bool) Hint {
	if ttl == 0 || granuleBits == 0 || (ttl == 1 && granuleBits == 14 && !lpa2) {
		return noHint
	}
	return Hint{GranuleBits: granuleBits, Level: int8(ttl)}
}

// VAOperand is the decoded operand of TLBI VAE1, VALE1, VAAE1, VAALE1,
// VAE2, VALE2 and ASIDE1.
type VAOperand struct {
	ASID uint16 // Xt[63:48] (ASIDE1, VAE1, VALE1, VAE2/VALE2 with E2H=1)
	VA   mem.VA // Xt[43:0] is VA[55:12]; VA is that value shifted into place
	TTL  Hint   // Xt[47:44], FEAT_TTL
}

// DecodeVA decodes the operand of a by-VA operation. VA[55:12] is held in
// Xt[43:0] whatever the granule; the bits below the granule are ignored
// by the match, since an entry matches when it translates the VA.
func DecodeVA(xt uint64, lpa2 bool) VAOperand {
	return VAOperand{
		ASID: uint16(xt >> 48),
		VA:   mem.VA((xt & (1<<44 - 1)) << 12),
		TTL:  DecodeTTL(uint8(xt>>44&0xf), lpa2),
	}
}

// IPAOperand is the decoded operand of TLBI IPAS2E1 and IPAS2LE1.
type IPAOperand struct {
	IPA mem.IPA // Xt[39:0] is IPA[51:12] (IPA[51:48] needs FEAT_LPA)
	TTL Hint    // Xt[47:44], the stage-2 leaf
	NS  bool    // Xt[63]: only meaningful in Secure state; ignored here
}

// DecodeIPA decodes the operand of IPAS2E1/IPAS2LE1.
func DecodeIPA(xt uint64, lpa2 bool) IPAOperand {
	return IPAOperand{
		IPA: mem.IPA((xt & (1<<40 - 1)) << 12),
		TTL: DecodeTTL(uint8(xt>>44&0xf), lpa2),
		NS:  xt>>63 == 1,
	}
}

// RangeOperand is the decoded operand of a FEAT_TLBIRANGE operation.
type RangeOperand struct {
	ASID uint16 // Xt[63:48] (RVAE1, RVALE1, RVAE2/RVALE2 with E2H=1)
	// GranuleBits is log2 of the TG granule (Xt[47:46]); 0 for the
	// reserved TG=0b00.
	GranuleBits uint8
	Scale, Num  uint8 // Xt[45:44], Xt[43:39]
	TTL         Hint  // Xt[38:37]
	BaseADDR    uint64
	// Start and Length are the byte range [Start, Start+Length): Length
	// is (NUM+1) * 2^(5*SCALE+1) granules; Start is BaseADDR in units of
	// the granule, or of 64KB when TCR_ELx.DS (VTCR_EL2.DS) is 1, and is
	// sign-extended from BaseADDR[36] for a two-range regime's VA.
	Start, Length uint64
}

// DecodeRange decodes a range operand. ds is the DS bit of the regime
// whose entries are targeted (LPA2 formats), signExtend selects
// sign-extension of a VA base (TTBR1 half of two-range regimes), lpa2
// reports FEAT_LPA2 (for the TTL encodings). With TG=0b00 GranuleBits,
// Start and Length are 0.
func DecodeRange(xt uint64, ds, signExtend, lpa2 bool) RangeOperand {
	r := RangeOperand{
		ASID:     uint16(xt >> 48),
		Scale:    uint8(xt >> 44 & 3),
		Num:      uint8(xt >> 39 & 0x1f),
		BaseADDR: xt & (1<<37 - 1),
	}
	switch xt >> 46 & 3 {
	case 1:
		r.GranuleBits = 12
	case 2:
		r.GranuleBits = 14
	case 3:
		r.GranuleBits = 16
	}
	r.TTL = decodeRangeTTL(uint8(xt>>37&3), r.GranuleBits, lpa2)
	if r.GranuleBits == 0 {
		return r
	}
	shift := uint(r.GranuleBits)
	if ds {
		shift = 16 // LPA2: BaseADDR is VA[52:16] (IPA[52:16]) for every granule
	}
	base := r.BaseADDR
	if signExtend && base>>36 == 1 {
		base |= ^uint64(1<<37 - 1)
	}
	r.Start = base << shift
	r.Length = (uint64(r.Num) + 1) << (5*uint(r.Scale) + 1 + uint(r.GranuleBits))
	return r
}
