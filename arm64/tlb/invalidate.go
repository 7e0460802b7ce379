package tlb

import (
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// Context is the state of the issuing PE that a TLBI reads.
type Context struct {
	// EL is the exception level executing the TLBI (1 or 2).
	EL uint8
	// VMID is the current VMID: VTTBR_EL2.VMID, 8 or 16 bits per
	// VTCR_EL2.VS.
	VMID uint16
	// HCR is HCR_EL2: E2H selects EL2&0 for the *E2 forms' ASID, and
	// {E2H,TGE}={1,1} makes the *E1 forms executed at EL2 act on EL2&0.
	HCR sysreg.HCR
	// ASID16 and DS are TCR_EL1.AS and TCR_EL1.DS, for operations on the
	// EL1&0 regime; EL2ASID16 and EL2DS are TCR_EL2.AS (E2H=1) and
	// TCR_EL2.DS, for operations on EL2&0 or EL2. With 8-bit ASIDs the
	// operand's ASID[15:8] are RES0 and ignored; with DS=1 (LPA2) range
	// bases are in 64KB units.
	ASID16, DS       bool
	EL2ASID16, EL2DS bool
	// VDS is VTCR_EL2.DS, for the stage-2 range forms.
	VDS bool
	// LPA2 reports FEAT_LPA2 (it defines the level-0 TTL encodings).
	LPA2 bool
}

// ContextFromRegs builds the Context of a TLBI executed at el with the
// given registers.
func ContextFromRegs(r *vmsa.Regs, el uint8) Context {
	c := Context{
		EL: el,
		// VTCR_EL2.VS and TCR_ELx.AS are RES0 without FEAT_VMID16 and
		// 16-bit ASIDs (ID_AA64MMFR1_EL1.VMIDBits, ID_AA64MMFR0_EL1.ASIDBits).
		VMID: r.VTTBR_EL2.VMID(r.VTCR_EL2.VS() && r.MMFR1.VMIDBits() == 2),
		HCR:  r.HCR_EL2,
		VDS:  r.VTCR_EL2.DS(),
		LPA2: r.MMFR0.TGran4() == 1 || r.MMFR0.TGran16() == 2, // FEAT_LPA2
	}
	asid16 := r.MMFR0.ASIDBits() == 2
	c.ASID16, c.DS = r.TCR_EL1.AS() && asid16, r.TCR_EL1.DS()
	if r.HCR_EL2.E2H() {
		c.EL2ASID16, c.EL2DS = sysreg.TCR(r.TCR_EL2).AS() && asid16, sysreg.TCR(r.TCR_EL2).DS()
	} else {
		c.EL2DS = sysreg.TCR2(r.TCR_EL2).DS()
	}
	return c
}

// UndefinedError reports a TLBI that is UNDEFINED at the issuing EL (an
// EL2 operation at EL1 traps to EL2 with HCR_EL2.NV, else is UNDEFINED:
// the caller decides).
type UndefinedError struct {
	Op Op
	EL uint8
}

func (e *UndefinedError) Error() string {
	return fmt.Sprintf("tlb: TLBI %v is UNDEFINED at EL%d", e.Op, e.EL)
}

// Scope is the set of entries an operation must invalidate. It is
// exported so that callers (a shadow stage-2 manager, tests) can apply
// the same decoding; Matches is the predicate.
type Scope struct {
	// S1Regimes is a bit mask of vmsa.Regime whose stage-1 (and combined)
	// entries are in scope; S2 selects stage-2-only entries.
	S1Regimes uint8
	S2        bool
	// AnyVMID, else entries of EL1&0 and stage 2 must carry VMID.
	AnyVMID bool
	VMID    uint16
	// ASID rules for non-global entries of two-range regimes:
	// AnyASID matches all; otherwise ASID must match. NonGlobalOnly
	// excludes global entries (ASIDE1).
	AnyASID       bool
	ASID          uint16
	NonGlobalOnly bool
	// ASIDRegimes limits the ASID rule to these regimes (EL2&0 entries
	// under VAE2 with E2H=0 match any ASID).
	ASIDRegimes uint8
	// Addressed: only entries overlapping [Lo, Hi] are in scope: input
	// addresses, inclusive, VA[55:0] for the stage-1 forms and IPA for
	// the stage-2 forms (a scope holds one or the other).
	Addressed bool
	Lo, Hi    uint64
	// LastLevel: the "L" forms, which need only remove entries from the
	// final level of the walk: they leave the walk cache's table entries.
	LastLevel bool
	// Hint, when GranuleBits != 0, is the operand's TTL (or range TG
	// with TTL): under StrictHints entries that do not match it are
	// out of scope. RangeGranule is the TG of a range form.
	Hint         Hint
	RangeGranule uint8
	// ReservedTG: a range form with TG=0b00. Under StrictHints nothing
	// is invalidated; otherwise the address is ignored and the whole
	// non-address scope goes.
	ReservedTG bool
}

const (
	bitEL10 = 1 << vmsa.RegimeEL10
	bitEL20 = 1 << vmsa.RegimeEL20
	bitEL2  = 1 << vmsa.RegimeEL2
)

// ScopeOf decodes op and its operand xt in ctx into the scope it must
// invalidate (the TLBI instruction descriptions of DDI 0487 and
// the TLB maintenance section). It returns an *UndefinedError for an EL2
// operation issued at EL1 and an error naming a bad op.
func ScopeOf(op Op, xt uint64, ctx Context) (Scope, error) {
	if !op.Valid() {
		return Scope{}, fmt.Errorf("tlb: invalid TLBI op %#x", uint8(op))
	}
	if ctx.EL < op.opEL() || ctx.EL > 2 {
		return Scope{}, &UndefinedError{Op: op, EL: ctx.EL}
	}
	var s Scope
	s.LastLevel = op.lastLevel()
	// The ASID size and LPA2 setting are those of the targeted regime.
	asid16, ds := ctx.ASID16, ctx.DS
	if op.opEL() == 2 || (ctx.EL == 2 && ctx.HCR.E2H() && ctx.HCR.TGE()) {
		asid16, ds = ctx.EL2ASID16, ctx.EL2DS
	}
	// EL1 forms: EL1&0 with the current VMID, or EL2&0 when executed at
	// EL2 with HCR_EL2.{E2H,TGE}={1,1} (TLBI VMALLE1 et al., "If
	// HCR_EL2.{E2H, TGE} is {1, 1} ... the EL2&0 translation regime").
	el1Target := func() {
		if ctx.EL == 2 && ctx.HCR.E2H() && ctx.HCR.TGE() {
			s.S1Regimes = bitEL20
		} else {
			s.S1Regimes, s.VMID = bitEL10, ctx.VMID
		}
		s.ASIDRegimes = bitEL10 | bitEL20
	}
	asid := func() uint16 {
		a := uint16(xt >> 48)
		if !asid16 {
			a &= 0xff // ASID[15:8] RES0 with 8-bit ASIDs
		}
		return a
	}
	byVA := func() {
		v := DecodeVA(xt, ctx.LPA2)
		s.Addressed, s.Lo, s.Hi = true, uint64(v.VA), uint64(v.VA)|0xfff
		s.Hint = v.TTL
	}
	byRange := func(ds, signExt bool) {
		r := DecodeRange(xt, ds, signExt, ctx.LPA2)
		if r.GranuleBits == 0 {
			// TG=0b00 is reserved: no entries are required to be
			// invalidated (RVAE1 et al., TG field).
			s.ReservedTG = true
			return
		}
		s.Addressed = true
		end := r.Start + r.Length - 1
		if end < r.Start {
			end = ^uint64(0)
		}
		s.Lo, s.Hi = r.Start&va56, end&va56
		if r.Start>>56 != end>>56 {
			s.Hi = va56 // the range leaves the 56-bit input space: clamp
		}
		s.RangeGranule = r.GranuleBits
		s.Hint = r.TTL
	}
	switch op.Base() {
	case OpVMALLE1:
		el1Target()
		s.AnyASID = true
	case OpVAE1, OpVALE1:
		el1Target()
		s.ASID = asid()
		byVA()
	case OpVAAE1, OpVAALE1:
		el1Target()
		s.AnyASID = true
		byVA()
	case OpASIDE1:
		el1Target()
		s.ASID, s.NonGlobalOnly = asid(), true
	case OpRVAE1, OpRVALE1:
		el1Target()
		s.ASID = asid()
		byRange(ds, true)
	case OpRVAAE1, OpRVAALE1:
		el1Target()
		s.AnyASID = true
		byRange(ds, true)
	case OpALLE1:
		// Every EL1&0 entry, stage 1, stage 2 and combined, any VMID.
		s.S1Regimes, s.S2, s.AnyVMID, s.AnyASID = bitEL10, true, true, true
	case OpVMALLS12E1:
		// Stage 1 and stage 2 entries of EL1&0 with the current VMID; not
		// redirected by {E2H,TGE}.
		s.S1Regimes, s.S2, s.VMID, s.AnyASID = bitEL10, true, ctx.VMID, true
	case OpALLE2:
		// "the EL2 or EL2&0 translation regime": both.
		s.S1Regimes, s.AnyASID = bitEL2|bitEL20, true
	case OpVAE2, OpVALE2, OpRVAE2, OpRVALE2:
		s.S1Regimes = bitEL2 | bitEL20
		if ctx.HCR.E2H() {
			// With E2H=1 the ASID field applies to EL2&0 non-global entries.
			s.ASID, s.ASIDRegimes = asid(), bitEL20
		} else {
			s.AnyASID = true // ASID field RES0: no ASID to match
		}
		if op.Base() == OpVAE2 || op.Base() == OpVALE2 {
			byVA()
		} else {
			byRange(ds, ctx.HCR.E2H())
		}
	case OpIPAS2E1, OpIPAS2LE1:
		// Stage-2-only entries of the current VMID; combined entries
		// need not be invalidated (software follows with VMALLE1).
		s.S2, s.VMID = true, ctx.VMID
		v := DecodeIPA(xt, ctx.LPA2)
		s.Addressed, s.Lo, s.Hi = true, uint64(v.IPA), uint64(v.IPA)|0xfff
		s.Hint = v.TTL
	case OpRIPAS2E1, OpRIPAS2LE1:
		s.S2, s.VMID = true, ctx.VMID
		byRange(ctx.VDS, false)
	}
	return s, nil
}

// Matches reports whether the scope covers e. strict applies the TTL/TG
// hints and the reserved TG as the architecture permits (Config.StrictHints).
func (s *Scope) Matches(e *Entry, strict bool) bool {
	if s.ReservedTG && strict {
		return false
	}
	if e.Stage2Only {
		if !s.S2 {
			return false
		}
	} else if s.S1Regimes&(1<<e.Regime) == 0 {
		return false
	}
	if (e.Stage2Only || e.Regime == vmsa.RegimeEL10) && !s.AnyVMID && e.VMID != s.VMID {
		return false
	}
	if !e.Stage2Only && e.Regime != vmsa.RegimeEL2 {
		if s.NonGlobalOnly && e.Global {
			return false
		}
		if !s.AnyASID && !e.Global && s.ASIDRegimes&(1<<e.Regime) != 0 && e.ASID != s.ASID {
			return false
		}
	}
	if s.Addressed && !s.ReservedTG {
		span := e.spanBits()
		base := e.input() &^ (uint64(1)<<span - 1)
		end := base + (uint64(1)<<span - 1)
		if end < s.Lo || base > s.Hi {
			return false
		}
	}
	if strict {
		if s.RangeGranule != 0 && e.GranuleBits != s.RangeGranule {
			return false // "the architecture does not require ... any entries"
		}
		if s.Hint.GranuleBits != 0 && (e.GranuleBits != s.Hint.GranuleBits || e.Level != s.Hint.Level) {
			return false // incorrect TTL: no entries required to be invalidated
		}
	}
	return true
}

// Invalidate executes TLBI op with operand xt, issued in ctx, on this TLB
// alone (the Domain broadcasts the shareable forms). It returns the
// number of entries removed, or the error of ScopeOf.
func (t *TLB) Invalidate(op Op, xt uint64, ctx Context) (int, error) {
	s, err := ScopeOf(op, xt, ctx)
	if err != nil {
		return 0, err
	}
	t.Stats.Invalidations[op]++
	return t.InvalidateScope(&s), nil
}

// InvalidateScope removes every entry in the scope and returns how many.
func (t *TLB) InvalidateScope(s *Scope) int {
	t.miss.ok = false
	strict := t.cfg.StrictHints
	if s.ReservedTG && strict {
		return 0
	}
	n := 0
	var kinds uint64
	for k := uint8(0); k < 4; k++ {
		if s.hasKind(k) {
			kinds |= 1 << k
		}
	}
	// mayMatch filters on the packed tag before the full predicate.
	mayMatch := func(ctx uint64) bool {
		k := ctx >> 16 & 3
		return ctx != 0 && kinds>>k&1 != 0 && (s.AnyVMID || vmidMask[k] == 0 || uint16(ctx) == s.VMID)
	}
	if t.microOn {
		for k := range t.micro {
			for i := range t.micro[k] {
				m := &t.micro[k][i]
				if mayMatch(m.ctx) && s.Matches(&m.e, strict) {
					*m = slot{}
				}
			}
		}
	}
	if lo, hi, ok := t.probeRange(s); ok {
		n = t.invalidateProbed(s, lo, hi, strict)
	} else {
		for i := range t.slots {
			sl := &t.slots[i]
			if !mayMatch(sl.ctx) {
				continue
			}
			if s.Matches(&sl.e, strict) {
				t.forget(sl)
				*sl = slot{}
				n++
			}
		}
	}
	t.Stats.Invalidated += uint64(n)
	t.Stats.WalkCacheInvalidated += uint64(t.invalidateWalkCache(s, strict))
	return n
}

// probeRange reports a scope whose entries can only be in a few sets: a
// known VMID and a small address range, so each size class present is
// probed at its few pages from lo to hi instead of scanning the TLB. The
// range is the scope's, widened to the whole stage-1 leaf of any piece it
// may name: the pieces of a leaf sit in the sets of their own pages,
// and a TLBI of any address in the leaf removes them all. Pieces of
// another VMID, or whose leaves lie outside the scope, do not widen it.
func (t *TLB) probeRange(s *Scope) (lo, hi uint64, ok bool) {
	if !s.Addressed || s.ReservedTG || s.AnyVMID {
		return 0, 0, false
	}
	lo, hi = s.Lo, s.Hi
	if s.S1Regimes != 0 {
		for spans := t.spans; spans != 0; spans &= spans - 1 {
			sp := uint(bits.TrailingZeros64(spans))
			p := &t.span[sp]
			if s.Lo > p.hi || s.Hi < p.lo || !p.mixed && p.vmid != s.VMID {
				continue
			}
			m := uint64(1)<<sp - 1
			lo, hi = min(lo, s.Lo&^m), max(hi, s.Hi|m)
		}
	}
	var sizes uint64
	for k := uint8(0); k < 4; k++ {
		if s.hasKind(k) {
			sizes |= t.sizes[k]
		}
	}
	if sizes == 0 {
		return lo, hi, true
	}
	minSz := uint(bits.TrailingZeros64(sizes))
	return lo, hi, hi>>minSz-lo>>minSz < 16
}

// hasKind reports whether slot kind k can be in the scope.
func (s *Scope) hasKind(k uint8) bool {
	if k == kindS2 {
		return s.S2
	}
	return s.S1Regimes&(1<<k) != 0
}

func (t *TLB) invalidateProbed(s *Scope, lo, hi uint64, strict bool) int {
	n := 0
	for k := uint8(0); k < 4; k++ {
		if !s.hasKind(k) {
			continue
		}
		ctx := makeCtx(k, s.VMID)
		for sizes := t.sizes[k]; sizes != 0; sizes &= sizes - 1 {
			sz := uint64(bits.TrailingZeros64(sizes))
			for p := lo >> sz; ; p++ {
				key := p<<8 | sz
				set := t.setOf(key, ctx)
				base := int(set) * t.ways
				for w := base; w < base+t.ways; w++ {
					sl := &t.slots[w]
					if sl.key == key && sl.ctx == ctx && s.Matches(&sl.e, strict) {
						t.forget(sl)
						*sl = slot{}
						n++
					}
				}
				if p >= hi>>sz {
					break
				}
			}
		}
	}
	return n
}

// Domain is a set of PEs' TLBs with their shareability domains: an Inner
// Shareable form acts on every TLB in the issuing PE's Inner Shareable
// domain, an Outer Shareable form on every TLB of the Domain (one Outer
// Shareable domain), and a non-shareable form on the issuing PE's TLB
// only. A Domain is not safe for concurrent use.
type Domain struct {
	// TLBs are the PEs' TLBs, indexed by PE number.
	TLBs []*TLB
	// Inner[pe] is the Inner Shareable domain of each PE.
	Inner []int
}

// NewDomain returns a Domain of n PEs, each with a TLB of cfg, all in one
// Inner Shareable domain.
func NewDomain(n int, cfg Config) (*Domain, error) {
	if n <= 0 || n > 4096 {
		return nil, fmt.Errorf("tlb: domain size %d is not in 1..4096", n)
	}
	d := &Domain{TLBs: make([]*TLB, n), Inner: make([]int, n)}
	for i := range d.TLBs {
		t, err := New(cfg)
		if err != nil {
			return nil, err
		}
		d.TLBs[i] = t
	}
	return d, nil
}

// Invalidate executes TLBI op issued by PE pe and returns the number of
// entries removed over all the TLBs it reached.
func (d *Domain) Invalidate(pe int, op Op, xt uint64, ctx Context) (int, error) {
	if pe < 0 || pe >= len(d.TLBs) {
		return 0, fmt.Errorf("tlb: PE %d is not in the domain of %d PEs", pe, len(d.TLBs))
	}
	s, err := ScopeOf(op, xt, ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, t := range d.TLBs {
		switch {
		case i == pe:
		case op.OuterShareable():
		case op.InnerShareable() && d.inner(i) == d.inner(pe):
		default:
			continue
		}
		t.Stats.Invalidations[op]++
		n += t.InvalidateScope(&s)
	}
	return n, nil
}

func (d *Domain) inner(pe int) int {
	if pe < len(d.Inner) {
		return d.Inner[pe]
	}
	return 0
}
