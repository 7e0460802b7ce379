package vmsa

import (
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// Stats counts the memory references a Walker made.
type Stats struct {
	// DescReads counts translation-table descriptor reads (both stages).
	DescReads uint64
	// DescWrites counts hardware descriptor updates (AF / dirty state).
	DescWrites uint64
	// Walks counts translations started.
	Walks uint64
}

// Walker performs translations against a physical memory. It is not safe
// for concurrent use; give each modelled PE its own Walker over a shared
// Memory.
type Walker struct {
	Mem mem.Memory
	// Trace, when non-nil, records every step of each translation.
	Trace *Trace
	// S2Tables, when non-nil, is a walk cache of stage-2 table
	// descriptors (a modelled PE's TLB): stage-2 walks start at the
	// deepest cached table for the IPA and record the tables they reach.
	S2Tables S2TableCache
	Stats    Stats
	// wp caches the walk parameters derived from the registers of the
	// last translation (walkParamsOf).
	wp walkParams
	// ttw is the stage 2 of the table address a stage-1 walk under stage
	// 2 reads last (walkTables; not nested: stage-2 walks have no stage 2).
	ttw s2Result
}

// walkParams are the parameters AArch64.GetS1TTWParams and
// AArch64.GetS2TTWParams derive from the registers, kept for as long as
// the registers stay the same: a translation with any register of Regs
// changed derives them again (TestWalkParamsFollowRegs).
type walkParams struct {
	valid bool
	regs  Regs // the registers they were derived from
	f     features
	s2ok  bool
	s2    s2Params
	// s1[regime][upper] for each stage-1 regime and VA range (TTBR0,
	// TTBR1), derived when first needed.
	s1ok [3][2]bool
	s1   [3][2]s1Params
	// other holds the parameters of a Regime value that names no regime.
	other s1Params
}

// walkParamsOf returns the walk parameters of r, derived again when r is
// not the register state they were derived from.
func (w *Walker) walkParamsOf(r *Regs) *walkParams {
	p := &w.wp
	if !p.valid || p.regs != *r {
		p.valid, p.regs, p.f = true, *r, featuresOf(r)
		p.s2ok, p.s1ok = false, [3][2]bool{}
	}
	return p
}

// stage2Params returns the stage-2 parameters of p's registers.
func (p *walkParams) stage2Params() *s2Params {
	if !p.s2ok {
		p.s2, p.s2ok = getS2Params(&p.regs, &p.f), true
	}
	return &p.s2
}

// stage1Params returns the stage-1 parameters of p's registers for va in
// the regime.
func (p *walkParams) stage1Params(regime Regime, va uint64) *s1Params {
	upper := 0
	if regime.twoRanges() && va>>55&1 == 1 {
		upper = 1
	}
	if regime > RegimeEL2 {
		p.other = getS1Params(&p.regs, &p.f, regime, va) // not a stage-1 regime: not kept
		p.other.derive(&p.f)
		return &p.other
	}
	i := regime
	if !p.s1ok[i][upper] {
		q := &p.s1[i][upper]
		*q, p.s1ok[i][upper] = getS1Params(&p.regs, &p.f, regime, va), true
		q.derive(&p.f)
	}
	return &p.s1[i][upper]
}

// derive completes the parameters a walk uses with what is derived from
// them once: the geometry (s1Geom) and each MAIR attribute decoded.
func (q *s1Params) derive(f *features) {
	q.geom = s1Geom(f, q)
	for i := range q.attrs {
		q.attrs[i] = DecodeMAIR(q.mair.Attr(uint(i)))
	}
}

// S2TableCache caches stage-2 table descriptors: which table a walk of an
// IPA in a VMID reaches at a level, for a granule of 1<<gbits bytes.
// arm64/tlb's TLB implements it with the TLBI rules for such entries.
type S2TableCache interface {
	// LookupS2Table returns the deepest cached table for ipa: its level
	// and address.
	LookupS2Table(vmid uint16, gbits uint, ipa uint64) (level int, table uint64, ok bool)
	// FillS2Table records that a walk of ipa reached the table at level
	// (address table) through a table descriptor.
	FillS2Table(vmid uint16, gbits uint, ipa uint64, level int, table uint64)
}

// maxRestarts bounds the walks restarted because a hardware update found
// its descriptor changed (the pseudocode's repeat ... until, which has no
// bound: only a descriptor rewritten on every attempt reaches it). After
// the last one the update is not made and the translation is that of the
// descriptor the last walk read and checked: output address, permissions
// and attributes all come from it (as the pseudocode derives them from the
// walk state, never from the value found in memory), and the permissions
// a TLB may cache are those of that unchanged descriptor.
const maxRestarts = 16

// read fetches a descriptor at pa with the walk's endianness.
func (w *Walker) read(pa uint64, ee bool) (v uint64, ok bool) {
	w.Stats.DescReads++
	v, ok = w.Mem.Read64(mem.PA(pa))
	if ee {
		v = bits.ReverseBytes64(v)
	}
	return
}

// S1Enabled is AArch64.S1Enabled for data accesses.
func S1Enabled(r *Regs, regime Regime) bool {
	switch regime {
	case RegimeEL2, RegimeEL20:
		return r.SCTLR_EL2.M()
	}
	// HCR_EL2.{DC,TGE} disable EL1&0 stage 1.
	return !r.HCR_EL2.DC() && !r.HCR_EL2.TGE() && r.SCTLR_EL1.M()
}

// S2Enabled reports whether stage 2 applies to the EL1&0 regime: the
// Effective value of HCR_EL2.VM, which DC forces to 1 and TGE to 0.
func S2Enabled(r *Regs) bool {
	return !r.HCR_EL2.TGE() && (r.HCR_EL2.VM() || r.HCR_EL2.DC())
}

// TranslateOptions select how much of AArch64.FullTranslate runs.
type TranslateOptions struct {
	// Stage1Only stops after stage 1: the output is the IPA even when
	// stage 2 is enabled (stage-1 table walks still go through stage 2).
	Stage1Only bool
}

// Translate runs AArch64.FullTranslate for va in the given stage-1 regime.
func (w *Walker) Translate(r *Regs, regime Regime, va mem.VA, acc Access, opt TranslateOptions) (t Translation) {
	w.TranslateInto(&t, r, regime, va, acc, opt)
	return t
}

// TranslateInto is Translate leaving the translation in *t, for a caller
// that keeps it (a PE's TLB fill): returned, the Translation was copied
// whole right after the walk wrote its fields one by one.
func (w *Walker) TranslateInto(t *Translation, r *Regs, regime Regime, va mem.VA, acc Access, opt TranslateOptions) {
	w.Stats.Walks++
	if w.Trace != nil {
		w.Trace.begin(uint64(va))
	}
	wp := w.walkParamsOf(r)
	f := &wp.f
	s2on := regime == RegimeEL10 && S2Enabled(r)
	var s2p *s2Params
	if s2on {
		s2p = wp.stage2Params()
	}
	out := w.s1Translate(t, wp, regime, uint64(va), acc, s2on, s2p)
	if t.Fault.Kind == FaultNone {
		switch {
		case regime != RegimeEL10:
			t.OA = mem.PA(out) // no stage 2: the stage-1 output is the PA
		case !s2on:
			// Stage 2 disabled: the IPA is the PA (AArch64.FullTranslate).
			t.IPA, t.OA = mem.IPA(out), mem.PA(out)
		default:
			t.IPA, t.IPAOnly = mem.IPA(out), true
		}
	}
	if t.Fault.Kind == FaultNone && s2on && !opt.Stage1Only {
		w.stage2(f, s2p, t, acc)
	}
	if w.Trace != nil {
		w.Trace.end(*t)
	}
}

// stage2 is the second half of AArch64.FullTranslate: stage 2 for the IPA
// of a stage-1 result, attributes combined and permissions intersected.
func (w *Walker) stage2(f *features, p *s2Params, t *Translation, acc Access) {
	var s2 s2Result
	w.s2Translate(&s2, f, p, uint64(t.IPA), acc, false)
	if s2.Fault.Kind != FaultNone {
		t.Fault = s2.Fault
		t.IPAOnly = false
		return
	}
	t.OA, t.IPAOnly = mem.PA(s2.OA), false
	t.S1Attrs = t.Attrs
	t.Attrs = combineS1S2(p, t.Attrs, s2MemAttrs(p, s2.s2desc), s2.s2desc)
	t.S2 = true
	t.S2Level, t.S2BlockBits = s2.level, s2.blockBits
	t.S1Perms = t.Perms
	t.Perms = (permBitsOf(t.Perms) & s2.perms).asPerms()
}

// ApplyStage2 completes a stage-1 translation that stopped at the IPA (as
// TranslateOptions.Stage1Only leaves one, or one rebuilt from PAR_EL1 by a
// hypervisor emulating AT S12*) with the stage 2 of r: the walk of t.IPA
// for acc, the attributes combined with t.Attrs (S2CombineS1MemAttrs, or
// FWB) and the permissions intersected, as Translate does. A stage-2 fault
// replaces the result's fault. t must have no fault; r's stage 2 is used
// whether or not HCR_EL2.VM enables it.
func (w *Walker) ApplyStage2(r *Regs, t Translation, acc Access) Translation {
	wp := w.walkParamsOf(r)
	w.stage2(&wp.f, wp.stage2Params(), &t, acc)
	if w.Trace != nil {
		w.Trace.end(t)
	}
	return t
}

// TranslateS2 runs stage 2 alone for an IPA, with the registers' stage-2
// configuration (AArch64.S2Translate). The result's Attrs are stage 2's own.
func (w *Walker) TranslateS2(r *Regs, ipa mem.IPA, acc Access) Translation {
	w.Stats.Walks++
	wp := w.walkParamsOf(r)
	p := wp.stage2Params()
	if w.Trace != nil {
		w.Trace.begin(uint64(ipa))
	}
	var s2 s2Result
	w.s2Translate(&s2, &wp.f, p, uint64(ipa), acc, false)
	var attrs MemAttrs
	if s2.Fault.Kind == FaultNone {
		attrs = s2MemAttrs(p, s2.s2desc)
	}
	t := Translation{Fault: s2.Fault, OA: mem.PA(s2.OA), IPA: ipa, Attrs: attrs, Level: -2,
		S2Level: s2.level, S2BlockBits: s2.blockBits, Perms: s2.perms.asPerms(), S2: true}
	if w.Trace != nil {
		w.Trace.end(t)
	}
	return t
}

// addrTop is AArch64.AddrTop.
func addrTop(tbi, tbid bool, acc Access) uint {
	if tbi && !(tbid && acc.Kind == Fetch) {
		return 55
	}
	return 63
}

// bitsClear reports whether va<hi:lo> is all zeros (hi >= lo).
func bitsClear(va uint64, hi, lo uint) bool {
	if lo > hi {
		return true
	}
	m := (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
	return va&m == 0
}

func bitsSet(va uint64, hi, lo uint) bool {
	if lo > hi {
		return true
	}
	m := (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
	return va&m == m
}

// s1Translate is AArch64.S1Translate (and AArch64.S1Walk). It leaves the
// translation in t and returns its stage-1 output address (an IPA for
// EL1&0, a PA for the EL2 regimes), which the caller types.
func (w *Walker) s1Translate(t *Translation, wp *walkParams, regime Regime, va uint64, acc Access, s2on bool, s2p *s2Params) uint64 {
	*t = Translation{Level: -2}
	r, f := &wp.regs, &wp.f
	if !S1Enabled(r, regime) {
		return w.s1DisabledOutput(t, r, f, regime, va, acc)
	}
	p := wp.stage1Params(regime, va)
	fault := func(k FaultKind, level int) uint64 {
		t.Fault = Fault{Kind: k, Level: int8(level), Write: acc.Kind == Write}
		w.stop(k, level)
		return 0
	}
	// AArch64.S1TxSZFaults: below the minimum faults (required with
	// FEAT_LVA); above the maximum is IMPLEMENTATION DEFINED: we fault, as QEMU.
	if p.txsz < s1MinTxSZ(f, p) || p.txsz > f.maxTxSZ(p.tgx) {
		return fault(FaultTranslation, 0)
	}
	// AArch64.VAIsOutOfRange.
	top := addrTop(p.tbi, p.tbid, acc)
	lo := 64 - p.txsz
	if p.upper {
		if !bitsSet(va, top, lo) {
			return fault(FaultTranslation, 0)
		}
	} else if !bitsClear(va, top, lo) {
		return fault(FaultTranslation, 0)
	}
	if p.epd {
		return fault(FaultTranslation, 0)
	}
	if acc.EL == 0 && p.e0pd {
		return fault(FaultTranslation, 0) // FEAT_E0PD: same timing as a level 0 fault
	}

	// The start table (AArch64.S1TTBaseAddress), derived with the
	// parameters (s1Geom).
	g := &p.geom
	if g.base>>p.ps != 0 {
		return fault(FaultAddressSize, 0)
	}
	var ttw *s2Params // stage 2 for the table addresses
	if s2on {
		ttw = s2p
	}
	var ws walkState
	for attempt := 0; ; attempt++ {
		fk := w.walkTables(&ws, f, g, va, ttw, acc.AT, false)
		if fk == faultTableS2 {
			t.Fault = w.ttw.Fault
			return 0
		}
		if fk != FaultNone {
			return fault(fk, ws.level)
		}
		level, d := ws.level, ws.d
		oa, fk := leafOutput(g, p.ps, p.ha, d, level, va)
		if fk != FaultNone {
			return fault(fk, level)
		}
		sd := desc.S1(d)
		perms, ux := s1Permissions(f, p, sd, ws.apTable, ws.uxnTable, ws.pxnTable)
		if !acc.NoPerm && !s1Allowed(p, f, perms, ux, acc) {
			return fault(FaultPermission, level)
		}
		// Hardware updates, after the permission check (AArch64.S1Translate).
		nd := d
		if p.ha {
			nd |= desc.AFBit
		}
		if p.hd && sd.DBM() && acc.Kind == Write && !acc.AT {
			nd &^= desc.S1AP2Bit // dirty
		}
		inMem := d // the descriptor memory holds once the walk is done
		if nd != d {
			pa := ws.descAddr
			if s2on {
				// The update is a write at stage 2 (CreateAccDescTTEUpdate).
				var s2 s2Result
				w.s2Translate(&s2, f, s2p, ws.descAddr, Access{Kind: Write}, true)
				if s2.Fault.Kind != FaultNone {
					t.Fault = s2.Fault
					return 0
				}
				pa = s2.OA
			}
			var restart, abort bool
			if inMem, restart, abort = w.update(pa, d, nd, p.ee, attempt); abort {
				return fault(FaultSyncExternalOnWalk, level)
			} else if restart {
				continue
			}
		}
		leafBits := g.leafBits(level)
		t.Level = int8(level)
		t.BlockBits = uint8(leafBits)
		if sd.Contiguous() {
			t.ContigBits = uint8(leafBits) + contiguousBits(p.tgx, level)
		}
		t.NG = regime.twoRanges() && sd.NG()
		if regime.twoRanges() {
			t.ASID = p.asid
		}
		// A TLB may cache only what the descriptor in memory grants: a
		// writable-clean (DBM) page stays read-only in the cached
		// permissions, so that a later write walks again and marks it dirty.
		if m := desc.S1(inMem); p.hd && m.DBM() && inMem&desc.S1AP2Bit != 0 {
			q := *p
			q.hd = false
			perms, _ = s1Permissions(f, &q, m, ws.apTable, ws.uxnTable, ws.pxnTable)
		}
		t.Perms = perms.asPerms()
		t.Desc = inMem
		t.Attrs = s1MemAttrs(p, sd, acc)
		return oa
	}
}

// walkGeom is what the descriptor-fetch loop needs of a stage's walk
// parameters.
type walkGeom struct {
	format desc.Format
	start  int
	base   uint64 // the start-level table
	// cached, from and fromBase: the walk starts at the table at fromBase,
	// level from (below the start level; from the walk cache).
	cached   bool
	from     int
	fromBase uint64
	// cache, when set, records the stage-2 tables the walk reaches.
	cache S2TableCache
	vmid  uint16
	ia    uint // input address size
	ps    uint // output address size
	ee    bool
	stage uint8 // 1 or 2, for the trace
	hier  bool  // stage 1 without HPD: accumulate the hierarchical controls
	// Derived by newWalkGeom: the granule's bits, and for each level
	// l (-1..3) at [l+1] the shift and mask of its table index
	// (tableIndex); plain when a table descriptor's next-level address is
	// its bits [47:granule] alone (no OA[51:48] fields), tmask those bits.
	gb           uint
	shift, imask [5]uint64
	plain        bool
	tmask        uint64
	// lbits and lmask at [l+1]: log2 of the size a leaf at level l maps
	// (desc.Format.LeafBits) and the mask of its output address bits
	// [47:lbits]; hiShift, hiMask and hiKeep place the format's OA[51:48]
	// fields (leafBase; all zero when plain). [5:8] are unused, so that
	// an index masked to 3 bits needs no bounds check.
	lbits   [8]uint8
	lmask   [8]uint64
	hiShift uint
	hiMask  uint64
	hiKeep  uint64
}

// newWalkGeom completes g's derived fields.
func newWalkGeom(g walkGeom) walkGeom {
	g.gb = g.format.Granule.Bits()
	for l := -1; l <= 3; l++ {
		stride := g.gb - 3
		lsb := g.gb + stride*uint(3-l)
		msb := lsb + stride - 1
		if l == g.start {
			msb = g.ia - 1
		}
		g.shift[l+1] = uint64(lsb)
		if msb >= lsb && msb < 64 {
			g.imask[l+1] = 1<<(msb-lsb+1) - 1
		}
	}
	g.plain = !(g.format.Granule == sysreg.Granule64K && g.format.OA52) && !(g.format.DS && g.format.Granule != sysreg.Granule64K)
	g.tmask = uint64(0x0000_ffff_ffff_ffff) &^ (1<<g.gb - 1)
	for l := -1; l <= 3; l++ {
		lb := g.format.LeafBits(l)
		g.lbits[l+1] = uint8(lb)
		g.lmask[l+1] = uint64(0x0000_ffff_ffff_ffff) &^ (1<<lb - 1)
	}
	switch {
	case g.format.Granule == sysreg.Granule64K && g.format.OA52:
		g.hiShift, g.hiMask = 12, 0xf // OA[51:48] in bits [15:12]
	case g.format.DS && g.format.Granule != sysreg.Granule64K:
		g.hiShift, g.hiMask, g.hiKeep = 6, 0xc, 3<<48 // OA[51:50] in bits [9:8], OA[49:48] in place
	}
	return g
}

// leafBits is g.format.LeafBits(level).
func (g *walkGeom) leafBits(level int) uint {
	if i := uint(level + 1); i <= 4 {
		return uint(g.lbits[i])
	}
	return g.format.LeafBits(level)
}

// walkState is where the descriptor-fetch loop stopped: the leaf (or the
// faulting descriptor) and the hierarchical controls met on the way.
type walkState struct {
	level    int
	d        uint64
	descAddr uint64 // in the stage's table address space (an IPA for stage-1 tables under stage 2)
	apTable  uint
	uxnTable bool
	pxnTable bool
}

// faultTableS2 is what walkTables returns when the stage 2 of a table
// address faults (a stage-1 walk under stage 2): the fault is in w.ttw.
// It is never the kind of a Fault.
const faultTableS2 FaultKind = 0xff

// walkTables is the descriptor-fetch loop AArch64.S1Walk and
// AArch64.S2Walk share: from the start-level table, read the descriptor for
// in at each level (translating each descriptor address through stage 2
// first when ttw is non-nil, as a stage-1 table walk under stage 2 does)
// and follow table descriptors to the leaf. It leaves in ws the leaf, or
// the fault at ws.level (returned), or returns faultTableS2 for the
// stage-2 fault of a table address (w.ttw.Fault).
func (w *Walker) walkTables(ws *walkState, f *features, g *walkGeom, in uint64, ttw *s2Params, at, s1ptw bool) (fk FaultKind) {
	// The loop keeps its state in locals, stored in ws when it stops.
	level, tbase := g.start, g.base
	if g.cached {
		tbase, level = g.fromBase, g.from
	}
	var apTable uint
	var uxnTable, pxnTable bool
	var descAddr, d uint64
	for {
		if l := uint(level + 1); l < uint(len(g.shift)) {
			// &63: a shift of 64 or more (64K level -1) has a zero mask.
			descAddr = tbase | (in>>(g.shift[l]&63)&g.imask[l])<<3
		} else {
			descAddr = tbase | tableIndex(in, level, g.start, g.gb, g.ia)<<3
		}
		pa := descAddr
		if ttw != nil {
			w.s2Translate(&w.ttw, f, ttw, descAddr, Access{Kind: Read, AT: at}, true)
			if w.ttw.Fault.Kind != FaultNone {
				fk = faultTableS2
				break
			}
			pa = w.ttw.OA
		}
		var ok bool
		if d, ok = w.read(pa, g.ee); !ok {
			if w.Trace != nil {
				w.step(g, level, descAddr, pa, 0, desc.Invalid, s1ptw)
				w.markFailed()
			}
			fk = FaultSyncExternalOnWalk
			break
		}
		var kind desc.Kind
		var next uint64
		switch {
		case d&3 != 3:
			kind, next, fk = decodeLevel(f, g.format, g.format.DS, g.ps, d, level)
		case level == 3:
			kind = desc.Page // decodeLevel's: a page is always supported
		case g.plain:
			// A table descriptor (decodeLevel's common case).
			kind, next = desc.Table, d&g.tmask
			if next>>g.ps != 0 {
				fk = FaultAddressSize
			}
		default:
			kind, next, fk = decodeLevel(f, g.format, g.format.DS, g.ps, d, level)
		}
		if w.Trace != nil {
			w.step(g, level, descAddr, pa, d, kind, s1ptw)
		}
		if fk != FaultNone || kind != desc.Table {
			break
		}
		if g.hier {
			sd := desc.S1(d)
			apTable |= sd.APTable()
			uxnTable = uxnTable || sd.UXNTable()
			pxnTable = pxnTable || sd.PXNTable()
		}
		tbase = next
		level++
		if g.cache != nil {
			g.cache.FillS2Table(g.vmid, g.gb, in, level, next)
		}
	}
	ws.level, ws.d, ws.descAddr = level, d, descAddr
	ws.apTable, ws.uxnTable, ws.pxnTable = apTable, uxnTable, pxnTable
	return fk
}

// update is the hardware update of the leaf d a walk read, made after the
// permission check by both stages: nd (d with the Access flag and dirty
// state the hardware sets) compare-and-swapped in at pa
// (AArch64.MemSwapTableDesc). It returns the descriptor memory holds once
// the walk is done: nd, or d when nothing changes or the update is given
// up (see maxRestarts); restart when memory no longer held d and the walk
// runs again to use the new descriptor (I_YZSVV); abort when the update's
// memory access failed.
func (w *Walker) update(pa, d, nd uint64, ee bool, attempt int) (inMem uint64, restart, abort bool) {
	if nd == d {
		return d, false, false
	}
	w.Stats.DescWrites++
	o, n := d, nd
	if ee {
		o, n = bits.ReverseBytes64(d), bits.ReverseBytes64(nd)
	}
	swapped, ok := w.Mem.CompareAndSwap64(mem.PA(pa), o, n)
	switch {
	case !ok:
		return d, false, true
	case !swapped:
		return d, attempt < maxRestarts, false
	}
	return nd, false, false
}

// s1DisabledOutput is AArch64.S1DisabledOutput (data accesses): the
// translation, left in t (as s1Translate left it), and its output address.
func (w *Walker) s1DisabledOutput(t *Translation, r *Regs, f *features, regime Regime, va uint64, acc Access) uint64 {
	var tbi, tbid bool
	switch regime {
	case RegimeEL2:
		tcr := sysreg.TCR2(r.TCR_EL2)
		tbi, tbid = tcr.TBI(), tcr.TBID()
	default:
		tcr := r.TCR_EL1
		if regime == RegimeEL20 {
			tcr = sysreg.TCR(r.TCR_EL2)
		}
		if va>>55&1 == 1 {
			tbi, tbid = tcr.TBI1(), tcr.TBID1()
		} else {
			tbi, tbid = tcr.TBI0(), tcr.TBID0()
		}
	}
	top := addrTop(tbi, tbid, acc)
	if !bitsClear(va, top, f.paMax) {
		t.Fault = Fault{Kind: FaultAddressSize, Level: 0, Write: acc.Kind == Write}
		w.stop(FaultAddressSize, 0)
		return 0
	}
	out := va & (1<<52 - 1)
	t.Perms = Perms{true, true, true, true, true, true}
	switch {
	case regime == RegimeEL10 && r.HCR_EL2.DC() && !r.HCR_EL2.TGE():
		// HCR_EL2.DC: Normal Write-Back Read/Write-Allocate, Non-shareable.
		wb := CacheAttrs{Attrs: WriteBack, Hints: 3}
		t.Attrs = MemAttrs{Type: Normal, Inner: wb, Outer: wb, Shareability: NonShareable}
	case acc.Kind == Fetch:
		sctlr := r.SCTLR_EL1
		if regime != RegimeEL10 {
			sctlr = r.SCTLR_EL2
		}
		ca := CacheAttrs{Attrs: NonCacheable}
		if sctlr.I() {
			ca = CacheAttrs{Attrs: WriteThrough, Hints: 2}
		}
		t.Attrs = MemAttrs{Type: Normal, Inner: ca, Outer: ca, Shareability: OuterShareable}
	default:
		t.Attrs = MemAttrs{Type: Device, Device: DevicenGnRnE, Shareability: OuterShareable, XS: true}
	}
	return out
}

// tableIndex returns the index into the table at level of input address in
// (AArch64.TTEntryAddress, AArch64.S1SLTTEntryAddress,
// AArch64.S2SLTTEntryAddress): the start level takes every bit up to the
// input size, which is how concatenated stage-2 start tables are indexed.
func tableIndex(in uint64, level, start int, gb, iasize uint) uint64 {
	stride := gb - 3
	lsb := gb + stride*uint(3-level)
	msb := lsb + stride - 1
	if level == start {
		msb = iasize - 1
	}
	return (in >> lsb) & (1<<(msb-lsb+1) - 1)
}

// decodeLevel is the descriptor-type step of AArch64.S1Walk and
// AArch64.S2Walk: an invalid or reserved descriptor, or a block at a level
// where AArch64.BlockDescSupported says no, is a Translation fault; a
// table's next-level address beyond the output size is an Address size
// fault at this level. For a table it returns the next table's base.
func decodeLevel(f *features, format desc.Format, ds bool, ps uint, d uint64, level int) (desc.Kind, uint64, FaultKind) {
	kind := desc.KindAt(d, level)
	switch kind {
	case desc.Invalid, desc.Reserved:
		return kind, 0, FaultTranslation
	case desc.Block:
		if !blockDescSupported(f, format.Granule, ds, level) {
			return kind, 0, FaultTranslation
		}
	case desc.Table:
		next := format.TableOA(d)
		if next>>ps != 0 {
			return kind, 0, FaultAddressSize
		}
		return kind, next, FaultNone
	}
	return kind, 0, FaultNone
}

// leafOutput returns the output address of a block or page descriptor for
// input address in, or the fault the leaf takes before permissions:
// Address size when the leaf base is beyond the output size
// (AArch64.OAOutOfRange on AArch64.LeafBase), then Access flag when AF=0
// and hardware updates of it are off.
func leafOutput(g *walkGeom, ps uint, ha bool, d uint64, level int, in uint64) (uint64, FaultKind) {
	base, lb := g.leafBase(d, level)
	if base>>ps != 0 {
		return 0, FaultAddressSize
	}
	if d&desc.AFBit == 0 && !ha {
		return 0, FaultAccessFlag
	}
	return base | in&(1<<lb-1), FaultNone
}

// leafBase is desc.Format.LeafOA and LeafBits of g's format for a leaf d
// at level (-1..3), from the masks newWalkGeom derives
// (TestLeafBaseIsFormatLeafOA).
func (g *walkGeom) leafBase(d uint64, level int) (uint64, uint) {
	i := uint(level+1) & 7
	return d&g.lmask[i] | (d>>g.hiShift&g.hiMask)<<48 | d&g.hiKeep, uint(g.lbits[i])
}
