package vmsa

import (
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// features are the implemented features the walk depends on, read from
// the ID registers.
type features struct {
	paMax  uint // AArch64.PAMax()
	lpa    bool // FEAT_LPA: 52-bit PA with 64K
	lva    bool // FEAT_LVA: 52-bit VA with 64K
	lpa2   bool // FEAT_LPA2 for some granule
	ttst   bool // FEAT_TTST
	hafdbs uint64
	hpds   bool
	pan    uint64
	xnx    bool
	e0pd   bool
	m0     sysreg.MMFR0
}

func featuresOf(r *Regs) features {
	pa, ok := sysreg.PASizeBits(r.MMFR0.PARange())
	if !ok {
		// A reserved PARange is an implementation error; behave as 48 bits.
		pa = 48
	}
	return features{
		paMax:  pa,
		lpa:    pa >= 52,
		lva:    r.MMFR2.VARange() == 1,
		lpa2:   r.MMFR0.TGran4() == 1 || r.MMFR0.TGran16() == 2,
		ttst:   r.MMFR2.ST() >= 1,
		hafdbs: r.MMFR1.HAFDBS(),
		hpds:   r.MMFR1.HPDS() >= 1,
		pan:    r.MMFR1.PAN(),
		xnx:    r.MMFR1.XNX() >= 1,
		e0pd:   r.MMFR2.E0PD() >= 1,
		m0:     r.MMFR0,
	}
}

// granuleImplemented reports stage-1 or stage-2 support for a granule.
func (f *features) granuleImplemented(g sysreg.Granule, stage2 bool) bool {
	return f.m0.GranuleSupported(g, stage2)
}

// granuleLPA2 reports FEAT_LPA2 support for a 4K or 16K granule.
func (f *features) granuleLPA2(g sysreg.Granule, stage2 bool) bool {
	return f.m0.GranuleLPA2(g, stage2)
}

// sanitizeGranule maps a reserved or unimplemented TGx to an implemented
// granule. The architecture leaves the choice IMPLEMENTATION DEFINED; like
// QEMU we take the smallest implemented one.
func (f *features) sanitizeGranule(g sysreg.Granule, stage2 bool) sysreg.Granule {
	if f.granuleImplemented(g, stage2) {
		return g
	}
	for _, c := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		if f.granuleImplemented(c, stage2) {
			return c
		}
	}
	return sysreg.Granule4K
}

// physicalAddressSize is AArch64.PhysicalAddressSize: the effective output
// size of a {I}PS/PS encoding (0b111 decodes as 56 and is then capped).
func (f *features) physicalAddressSize(enc uint64, g sysreg.Granule) uint {
	ps, ok := sysreg.PASizeBits(enc)
	if !ok {
		ps = 56
	}
	maxPS := min(48, f.paMax)
	if f.lpa && (g == sysreg.Granule64K || f.lpa2) {
		maxPS = min(52, f.paMax)
	}
	return min(ps, maxPS)
}

// maxTxSZ is AArch64.MaxTxSZ.
func (f *features) maxTxSZ(g sysreg.Granule) uint {
	if f.ttst {
		if g == sysreg.Granule64K {
			return 47
		}
		return 48
	}
	return 39
}

// s1Params is the pseudocode's S1TTWParams, with the TTBR already selected.
type s1Params struct {
	regime Regime
	tgx    sysreg.Granule
	txsz   uint
	ps     uint // effective output address size in bits
	psEnc  uint64
	upper  bool // the TTBR1 range
	tbi    bool
	tbid   bool
	epd    bool
	e0pd   bool
	hpd    bool
	ha, hd bool
	ds     bool
	ee     bool
	wxn    bool
	epan   bool
	sh     uint // shareability from TCR with DS=1
	ttbr   sysreg.TTBR
	asid   uint16
	mair   sysreg.MAIR
	sctlr  sysreg.SCTLR
	oa52   bool // 64K OA[51:48] in descriptor bits [15:12]
	// nv1: EL1&0 with HCR_EL2.{NV,NV1}={1,1} (FEAT_NV), whose descriptors
	// are read in the EL2 layout (see s1Permissions).
	nv1 bool
	// geom is the walk's geometry (s1Geom), and attrs[i] MAIR attribute i
	// decoded (DecodeMAIR), derived with the parameters a walk uses
	// (walkParams.stage1Params).
	geom  walkGeom
	attrs [8]MemAttrs
}

// getS1Params is AArch64.GetS1TTWParams.
func getS1Params(r *Regs, f *features, regime Regime, va uint64) s1Params {
	var p s1Params
	p.regime = regime
	upper := regime.twoRanges() && va>>55&1 == 1
	p.upper = upper
	switch regime {
	case RegimeEL10, RegimeEL20:
		tcr := r.TCR_EL1
		p.sctlr, p.mair = r.SCTLR_EL1, r.MAIR_EL1
		ttbr0, ttbr1 := r.TTBR0_EL1, r.TTBR1_EL1
		if regime == RegimeEL20 {
			tcr = sysreg.TCR(r.TCR_EL2)
			p.sctlr, p.mair = r.SCTLR_EL2, r.MAIR_EL2
			ttbr0, ttbr1 = r.TTBR0_EL2, r.TTBR1_EL2
		}
		if upper {
			p.tgx, p.txsz, p.tbi, p.tbid = tcr.TG1(), tcr.T1SZ(), tcr.TBI1(), tcr.TBID1()
			p.epd, p.e0pd, p.hpd, p.sh, p.ttbr = tcr.EPD1(), tcr.E0PD1(), tcr.HPD1(), tcr.SH1(), ttbr1
		} else {
			p.tgx, p.txsz, p.tbi, p.tbid = tcr.TG0(), tcr.T0SZ(), tcr.TBI0(), tcr.TBID0()
			p.epd, p.e0pd, p.hpd, p.sh, p.ttbr = tcr.EPD0(), tcr.E0PD0(), tcr.HPD0(), tcr.SH0(), ttbr0
		}
		p.ha, p.hd, p.ds = tcr.HA(), tcr.HD(), tcr.DS()
		asidTTBR := ttbr0
		if tcr.A1() {
			asidTTBR = ttbr1
		}
		p.asid = asidTTBR.ASID()
		if !tcr.AS() || f.m0.ASIDBits() != 2 {
			p.asid &= 0xff
		}
		p.ps = uint(tcr.IPS())
	case RegimeEL2:
		tcr := sysreg.TCR2(r.TCR_EL2)
		p.sctlr, p.mair = r.SCTLR_EL2, r.MAIR_EL2
		p.tgx, p.txsz, p.tbi, p.tbid = tcr.TG0(), tcr.T0SZ(), tcr.TBI(), tcr.TBID()
		p.hpd, p.sh, p.ttbr = tcr.HPD(), tcr.SH0(), r.TTBR0_EL2
		p.ha, p.hd, p.ds = tcr.HA(), tcr.HD(), tcr.DS()
		p.ps = uint(tcr.PS())
	}
	p.tgx = f.sanitizeGranule(p.tgx, false)
	p.psEnc = uint64(p.ps)
	// Features gate their control bits: an unimplemented feature's bit is RES0.
	p.ha = p.ha && f.hafdbs >= 1
	p.hd = p.hd && p.ha && f.hafdbs >= 2
	p.hpd = p.hpd && f.hpds
	p.e0pd = p.e0pd && f.e0pd
	p.ds = p.ds && p.tgx != sysreg.Granule64K && f.granuleLPA2(p.tgx, false)
	p.ps = f.physicalAddressSize(uint64(p.ps), p.tgx)
	p.ee = p.sctlr.EE()
	p.wxn = p.sctlr.WXN()
	p.epan = f.pan >= 3 && p.sctlr.EPAN()
	p.oa52 = p.tgx == sysreg.Granule64K && f.lpa
	p.nv1 = regime == RegimeEL10 && r.HCR_EL2.NV() && r.HCR_EL2.NV1() && r.MMFR2.NV() >= 1
	return p
}

// s1Geom is the walk geometry of stage-1 parameters: the start level
// (AArch64.S1StartLevel) and table (AArch64.S1TTBaseAddress, whose 52-bit
// BADDR form for 64K needs PS=0b110). Meaningful only for a TxSZ that
// passes AArch64.S1TxSZFaults.
func s1Geom(f *features, p *s1Params) walkGeom {
	f52 := p.tgx == sysreg.Granule64K && p.psEnc == 6 && f.lpa
	start := s1StartLevel(p)
	base := ttBaseAddress(uint64(p.ttbr), p.txsz, p.tgx, p.ds, f52, start)
	return newWalkGeom(walkGeom{format: desc.Format{Granule: p.tgx, DS: p.ds, OA52: p.oa52}, start: start, base: base, ia: 64 - p.txsz, ps: p.ps, ee: p.ee, stage: 1, hier: !p.hpd})
}

// s1MinTxSZ is AArch64.S1MinTxSZ (64-bit descriptors).
func s1MinTxSZ(f *features, p *s1Params) uint {
	if (f.lva && p.tgx == sysreg.Granule64K) || p.ds {
		return 12
	}
	return 16
}

// s2Params is the pseudocode's S2TTWParams.
type s2Params struct {
	tgx    sysreg.Granule
	txsz   uint
	sl0    uint
	sl2    bool
	ps     uint
	psEnc  uint64
	ha, hd bool
	ds     bool
	ee     bool
	ptw    bool
	fwb    bool
	cd     bool
	vttbr  sysreg.VTTBR
	oa52   bool
	sh     uint

	// Derived once per translation (s2Prepare): the TxSZ and start-level
	// checks, the start level, the input size, the table base and whether
	// it is beyond the output size, and the descriptor format.
	setupFault bool
	start      int
	ia         uint
	base       uint64
	baseBad    bool
	format     desc.Format
	vmid       uint16 // VTTBR_EL2.VMID (16 bits with VS and FEAT_VMID16): the walk cache's tag
	geom       walkGeom
	// perms[s2PermIndex(d)] is s2Permissions of a leaf d: the permissions
	// depend on five descriptor bits only.
	perms [32]permBits
}

// getS2Params is AArch64.GetS2TTWParams.
func getS2Params(r *Regs, f *features) s2Params {
	v := r.VTCR_EL2
	p := s2Params{
		tgx:   f.sanitizeGranule(v.TG0(), true),
		txsz:  v.T0SZ(),
		sl0:   v.SL0(),
		sl2:   v.SL2(),
		ha:    v.HA() && f.hafdbs >= 1,
		ds:    v.DS(),
		ee:    r.SCTLR_EL2.EE(),
		ptw:   r.HCR_EL2.PTW(),
		fwb:   r.HCR_EL2.FWB() && r.MMFR2.FWB() >= 1,
		cd:    r.HCR_EL2.CD(),
		vttbr: r.VTTBR_EL2,
		sh:    v.SH0(),
		vmid:  r.VTTBR_EL2.VMID(v.VS() && r.MMFR1.VMIDBits() == 2),
	}
	p.hd = v.HD() && p.ha && f.hafdbs >= 2
	p.ds = p.ds && p.tgx != sysreg.Granule64K && f.granuleLPA2(p.tgx, true)
	p.sl2 = p.sl2 && p.ds && p.tgx == sysreg.Granule4K
	p.psEnc = v.PS()
	p.ps = f.physicalAddressSize(v.PS(), p.tgx)
	p.oa52 = p.tgx == sysreg.Granule64K && f.lpa
	s2Prepare(f, &p)
	p.perms = s2PermTable(f, &p)
	return p
}

// s2PermTable is s2Params.perms: s2Permissions for each combination of
// the bits s2PermIndex takes.
func s2PermTable(f *features, p *s2Params) (t [32]permBits) {
	for i := range t {
		u := uint64(i)
		d := desc.S2(u&3<<6 | u>>2&3<<53 | u>>4&1<<51) // S2AP, XN, DBM
		t[i] = s2Permissions(f, p, d)
	}
	return t
}

// s2PermIndex is the index of leaf d's permissions in s2Params.perms: its
// S2AP[1:0], XN[1:0] and DBM bits.
func s2PermIndex(d desc.S2) uint {
	u := uint64(d)
	return uint(u>>6&3 | u>>53&3<<2 | u>>51&1<<4)
}

// s2Prepare makes the register checks of AArch64.S2Translate that do not
// depend on the IPA: AArch64.S2TxSZFaults (below the minimum faults with
// FEAT_LPA; above the maximum is IMPLEMENTATION DEFINED: we fault, as QEMU
// does), AArch64.S2InvalidSL and AArch64.S2InconsistentSL, and computes the
// start table's base (AArch64.S2TTBaseAddress) and its address-size check.
func s2Prepare(f *features, p *s2Params) {
	if p.txsz < s2MinTxSZ(f, p) || p.txsz > f.maxTxSZ(p.tgx) {
		p.setupFault = true
		return
	}
	p.start = s2StartLevel(p)
	if s2InvalidSL(f, p) || s2InconsistentSL(p, p.start) {
		p.setupFault = true
		return
	}
	p.ia = 64 - p.txsz
	f52 := p.tgx == sysreg.Granule64K && p.psEnc == 6 && f.lpa
	p.base = ttBaseAddress(uint64(p.vttbr), p.txsz, p.tgx, p.ds, f52, p.start)
	p.baseBad = p.base>>p.ps != 0
	p.format = desc.Format{Granule: p.tgx, DS: p.ds, OA52: p.oa52}
	p.geom = newWalkGeom(walkGeom{format: p.format, start: p.start, base: p.base, ia: p.ia, ps: p.ps, ee: p.ee, stage: 2})
}

// s2MinTxSZ is AArch64.S2MinTxSZ for an AArch64 stage 1.
func s2MinTxSZ(f *features, p *s2Params) uint {
	ips := min(52, f.paMax)
	if f.lpa && p.tgx != sysreg.Granule64K && !p.ds {
		ips = min(48, f.paMax)
	}
	return 64 - ips
}

// s2StartLevel is AArch64.S2StartLevel.
func s2StartLevel(p *s2Params) int {
	switch p.tgx {
	case sysreg.Granule4K:
		if p.sl2 {
			if p.sl0 == 0 {
				return -1
			}
			return 99 // reserved; rejected by s2InvalidSL
		}
		return [...]int{2, 1, 0, 3}[p.sl0]
	default:
		return 3 - int(p.sl0)
	}
}

// s2InvalidSL is AArch64.S2InvalidSL.
func s2InvalidSL(f *features, p *s2Params) bool {
	switch p.tgx {
	case sysreg.Granule4K:
		switch {
		case p.sl2 && p.sl0 != 0:
			return true
		case p.sl2:
			return f.paMax < 52
		case p.sl0 == 2:
			return f.paMax < 44
		case p.sl0 == 3:
			return !f.ttst
		}
	case sysreg.Granule16K:
		switch p.sl0 {
		case 3:
			return !p.ds || f.paMax < 52
		case 2:
			return f.paMax < 42
		}
	case sysreg.Granule64K:
		switch p.sl0 {
		case 3:
			return true
		case 2:
			return f.paMax < 44
		}
	}
	return false
}

// s2InconsistentSL is AArch64.S2InconsistentSL.
func s2InconsistentSL(p *s2Params, start int) bool {
	gb := int(p.tgx.Bits())
	stride := gb - 3
	levels := 3 - start
	slMin := levels*stride + gb + 1
	slMax := slMin + (stride - 1) + 4
	ia := 64 - int(p.txsz)
	return ia < slMin || ia > slMax
}

// s1StartLevel is AArch64.S1StartLevel.
func s1StartLevel(p *s1Params) int {
	gb := int(p.tgx.Bits())
	stride := gb - 3
	ia := 64 - int(p.txsz)
	return 3 - (ia-1-gb)/stride
}

// blockDescSupported is AArch64.BlockDescSupported (64-bit descriptors).
func blockDescSupported(f *features, g sysreg.Granule, ds bool, level int) bool {
	switch g {
	case sysreg.Granule4K:
		return level == 1 || level == 2 || (level == 0 && ds)
	case sysreg.Granule16K:
		return level == 2 || (level == 1 && ds)
	case sysreg.Granule64K:
		return level == 2 || (level == 1 && f.lpa)
	}
	return false
}

// ttBaseAddress is AArch64.S1TTBaseAddress / AArch64.S2TTBaseAddress for
// 64-bit descriptors: the table base aligned to the start table's size.
func ttBaseAddress(ttb uint64, txsz uint, g sysreg.Granule, ds, ps52 bool, start int) uint64 {
	gb := int(g.Bits())
	stride := gb - 3
	ia := 64 - int(txsz)
	tsize := ia - ((3-start)*stride + gb) + 3
	var base uint64
	if ds || (g == sysreg.Granule64K && ps52) {
		tsize = max(tsize, 6) // bits [5:2] hold BADDR[51:48]: cleared below
		base = sysreg.TTBR(ttb).BADDRHigh()<<48 | sysreg.TTBR(ttb).BADDR()
	} else {
		base = sysreg.TTBR(ttb).BADDR()
	}
	if tsize > 0 {
		base &^= 1<<uint(tsize) - 1
	}
	return base
}

// contiguousBits is log2 of the number of entries the contiguous bit
// groups (AArch64.ContiguousSize).
func contiguousBits(g sysreg.Granule, level int) uint8 {
	switch g {
	case sysreg.Granule4K:
		return 4
	case sysreg.Granule16K:
		if level == 3 {
			return 7
		}
		if level == 2 {
			return 5
		}
		return 4
	case sysreg.Granule64K:
		if level == 1 {
			return 4
		}
		return 5
	}
	return 0
}
