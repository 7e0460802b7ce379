// Package tlb is the modelled AArch64 TLB: a per-PE software TLB that
// caches completed translations of the vmsa translation core, tagged the
// way the architecture tags TLB entries (translation regime, VMID, ASID,
// global bit, VA and entry size), and every TLBI operation of the EL1&0,
// EL2 and EL2&0 regimes and of stage 2, decoded from the architectural
// operand format with its exact scope (DDI 0487, D8.16 "Translation
// Lookaside Buffers" and the TLBI instruction descriptions).
//
// A TLB has a small direct-mapped micro-TLB per access kind in front of a
// unified set-associative TLB with pseudo-LRU or random replacement.
// Several page sizes coexist: a lookup probes each size class currently
// present. The hit path is allocation-free. A Domain groups the TLBs of
// several PEs and broadcasts Inner and Outer Shareable operations.
//
// Entries are leaves (completed translations); an optional walk cache of
// stage-2 table descriptors (Config.WalkCache) serves vmsa.Walker and is
// left alone by the "last level" TLBI forms. Config.HoldPermissions lets a
// stale permission show, as hardware may. See docs/TLB.md.
package tlb

import (
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Result is the outcome of a lookup.
type Result uint8

// Lookup outcomes.
const (
	// Miss: no entry translates the address in this context.
	Miss Result = iota
	// Hit: an entry translates the address and permits the access.
	Hit
	// PermissionMiss: an entry translates the address but its cached
	// permissions do not certainly permit the access. The model reports
	// it instead of a fault: the caller walks again (as hardware
	// re-walks before reporting a permission fault on some cores) and
	// the walk decides.
	PermissionMiss
	// PermissionFault: with Config.HoldPermissions, an entry translates
	// the address and its cached permissions deny the access: the PE
	// takes the permission fault from the entry (Entry.PermissionFault)
	// without walking, so a stale permission shows.
	PermissionFault
)

func (r Result) String() string {
	switch r {
	case Miss:
		return "miss"
	case Hit:
		return "hit"
	case PermissionMiss:
		return "permission miss"
	case PermissionFault:
		return "permission fault"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// kindS2 is the slot kind of a stage-2-only entry; kinds 0..2 are the
// stage-1 regimes (vmsa.RegimeEL10, RegimeEL20, RegimeEL2).
const kindS2 = 3

// Entry is a cached translation. It covers 1<<SizeBits bytes of input
// addresses from its first byte: VA for stage-1 and combined entries, IPA
// for Stage2Only entries.
type Entry struct {
	// VA is VA[55:0] of the entry's first byte (stage-1 and combined
	// entries; zero for Stage2Only).
	VA mem.VA
	// IPA is the stage-1 output of VA for a Combined entry, and the input
	// address of the first byte for a Stage2Only entry.
	IPA mem.IPA
	// OA is the physical output address of the first byte (for a stage-1
	// entry of EL1&0 with stage 2 disabled the IPA, which is the PA).
	OA    mem.PA
	Perms vmsa.Perms
	// VMID tags EL1&0 and stage-2 entries (8 or 16 bits, as filled).
	VMID uint16
	// ASID tags non-global entries of the two-range regimes.
	ASID   uint16
	Regime vmsa.Regime
	// SizeBits is log2 of the entry's size.
	SizeBits uint8
	// Attr and SH are PAR_EL1.ATTR and PAR_EL1.SH of the result.
	Attr, SH uint8
	// Level and GranuleBits describe the leaf of the stage the entry is
	// looked up by (stage 1, or stage 2 for Stage2Only): TTL hints and
	// the "last level" forms compare against them.
	Level       int8
	GranuleBits uint8
	// S2Level and S2SizeBits describe the stage-2 leaf of a Combined entry.
	S2Level    int8
	S2SizeBits uint8
	// S1Perms are the stage-1 permissions of a Combined entry (Perms is
	// their intersection with stage 2's), to tell which stage a
	// permission fault taken from the entry belongs to.
	S1Perms vmsa.Perms
	// Stage2Only marks an IPA -> PA entry of stage 2 alone (tagged by
	// VMID). Otherwise the entry is a stage-1 entry of Regime, combined
	// with stage 2 when Combined is set.
	Stage2Only bool
	Global     bool
	Combined   bool
}

// PA returns the physical address that va (inside a stage-1 or combined
// entry) translates to.
func (e *Entry) PA(va mem.VA) mem.PA { return e.OA | mem.PA(va)&(1<<e.SizeBits-1) }

// PAOfIPA returns the physical address that ipa (inside a Stage2Only
// entry) translates to.
func (e *Entry) PAOfIPA(ipa mem.IPA) mem.PA { return e.OA | mem.PA(ipa)&(1<<e.SizeBits-1) }

// spanBits is log2 of the input range a TLBI by address must treat the
// entry as covering: its own size, except for a combined entry smaller than
// its stage-1 leaf (a stage-1 block cached as pieces because stage 2 maps it
// with smaller leaves), which is a cached copy of that whole stage-1 entry:
// a TLBI by VA "invalidates cached copies of translation table entries ...
// that would be required to translate the specified VA" (the TLBI VAE1,
// VAAE1, ... descriptions), so every piece goes when any address of the
// block is named.
func (e *Entry) spanBits() uint8 {
	if !e.Combined || e.Level < 0 || e.Level > 3 || e.GranuleBits < 12 {
		return e.SizeBits
	}
	return max(e.SizeBits, e.GranuleBits+(e.GranuleBits-3)*uint8(3-e.Level))
}

// input is the entry's first input address in the space it is looked up by.
func (e *Entry) input() uint64 {
	if e.Stage2Only {
		return uint64(e.IPA)
	}
	return uint64(e.VA)
}

// slot is one TLB entry with its packed tag.
type slot struct {
	// The fields HitPA tests, first (a zero slot never matches, its tag
	// lacking ctxValid): vtag is the entry's first input address, voff
	// its offset mask (size-1), tag its ctx with the ASID at asidShift,
	// tignore the tag bits an access need not match (the ASID of a
	// global entry).
	vtag, voff, tag, tignore uint64
	// key is the input page number at the entry's size, shifted left by
	// 8, with the size (log2 bytes) in the low byte.
	key uint64
	// ctx is valid<<63 | kind<<16 | VMID; zero for an empty slot.
	ctx uint64
	// perm has bit Kind+3*privileged set for each permitted access, and
	// bit 6 for a location PAN protects (EL0-accessible, two ranges).
	perm uint8
	e    Entry
}

// vmidMask keeps the VMID in the tag of EL1&0 and stage-2 entries only.
var vmidMask = [4]uint64{0xffff, 0, 0, 0xffff}

// permMask precomputes the permission bits of a slot.
func permMask(p *vmsa.Perms, kind uint8) uint8 {
	b := func(v bool, n uint) uint8 {
		if v {
			return 1 << n
		}
		return 0
	}
	m := b(p.R1, 3) | b(p.W1, 4) | b(p.X1, 5)
	switch kind {
	case uint8(vmsa.RegimeEL2):
		m |= m >> 3 // one privilege level
	default:
		m |= b(p.R0, 0) | b(p.W0, 1) | b(p.X0, 2)
	}
	if (kind == uint8(vmsa.RegimeEL10) || kind == uint8(vmsa.RegimeEL20)) && (p.R0 || p.X0) {
		m |= 1 << 6
	}
	return m
}

// permits checks an access against a slot's permission bits
// (AArch64.S1HasPermissionsFault, AArch64.S2HasPermissionsFault). PAN is
// answered conservatively: a privileged data access with PAN to an
// EL0-accessible (or EL0-executable: FEAT_PAN3 with EPAN) location is
// left to a walk.
func permits(perm uint8, acc vmsa.Access) bool {
	if acc.NoPerm {
		return true
	}
	i := uint(acc.Kind)
	if acc.EL != 0 {
		i += 3
		if acc.PAN && acc.Kind != vmsa.Fetch && perm&(1<<6) != 0 {
			return false
		}
	}
	return perm>>i&1 != 0
}

const ctxValid = 1 << 63

// asidShift places the ASID in a slot's tag, above the context's VMID
// (bits 15:0) and kind (17:16).
const asidShift = 24

// newSlot builds the slot of entry e of a kind, tagged ctx, whose input
// page number at its size is key.
func newSlot(key, ctx uint64, kind uint8, e *Entry) slot {
	s := slot{key: key, ctx: ctx, perm: permMask(&e.Perms, kind), e: *e}
	if e.Combined && kind != uint8(vmsa.RegimeEL2) {
		// PAN asks whether stage 1 gives EL0 access
		// (AArch64.S1DirectBasePermissions), which a combined entry's
		// permissions, intersected with stage 2's, can hide (a stage-2
		// write-only page hides a stage-1 EL0-readable one): the bit comes
		// from the stage-1 permissions. Every stage-1 leaf permits EL1
		// reads, so an entry without S1Perms.R1 has not recorded them (a
		// FillEntry caller's): PAN is left to a walk.
		s.perm &^= 1 << 6
		if p := &e.S1Perms; p.R0 || p.X0 || !p.R1 {
			s.perm |= 1 << 6
		}
	}
	s.voff = 1<<(key&0xff) - 1
	s.vtag = e.input() &^ s.voff
	s.tag = ctx | uint64(e.ASID)<<asidShift
	if e.Global {
		s.tignore = 0xffff << asidShift
	}
	return s
}

// makeCtx builds the context tag; EL2 and EL2&0 entries carry no VMID.
func makeCtx(kind uint8, vmid uint16) uint64 {
	return ctxValid | uint64(kind&3)<<16 | uint64(vmid)&vmidMask[kind&3]
}

// Replacement is a replacement policy of the set-associative TLB.
type Replacement uint8

// Replacement policies.
const (
	// PLRU is tree pseudo-LRU within a set.
	PLRU Replacement = iota
	// Random replaces a way chosen by a seeded xorshift generator.
	Random
)

// Config sizes a TLB.
type Config struct {
	// Sets and Ways of the unified TLB; Sets and Ways must be powers of
	// two, Ways at most 64. Zero means 256 sets of 4 ways (1024 entries).
	Sets, Ways int
	// Micro is the number of entries of each micro-TLB (one per access
	// kind: read, write, fetch), a power of two; zero means 16; -1
	// disables the micro-TLBs.
	Micro int
	// Replacement policy; Seed seeds Random.
	Replacement Replacement
	Seed        uint64
	// HoldPermissions makes a lookup whose entry's cached permissions
	// deny the access report PermissionFault instead of PermissionMiss:
	// the fault comes from the entry, as the architecture lets a PE use a
	// cached entry until it is invalidated. Relaxing a translation's
	// permissions without invalidating it then leaves the PE faulting on
	// the old ones, which a hypervisor must handle (KVM follows a
	// stage-2 relaxation with a local TLBI). A privileged data access
	// that PAN may forbid is still a PermissionMiss.
	HoldPermissions bool
	// WalkCache is the number of entries of a walk cache of stage-2
	// table descriptors (0: none): walks of vmsa.Walker with S2Tables set
	// to this TLB start at the deepest cached table, so a table freed
	// without the TLBI that removes it (a non-last-level operation over
	// its IPA range, VMALLS12E1, ALLE1) is walked after it is freed.
	WalkCache int
	// StrictHints makes TLBI act on only what the architecture requires
	// when the operand carries a hint: a TTL hint or range TG that does
	// not match an entry leaves it in place, and a reserved TG
	// invalidates nothing. Without it the hints are ignored, which always
	// invalidates a superset of the required entries.
	StrictHints bool
}

// Stats counts TLB events.
type Stats struct {
	Hits, MicroHits, Misses, PermissionMisses uint64
	// PermissionFaults are lookups answered PermissionFault.
	PermissionFaults uint64
	// WalkCacheHits are stage-2 walks started at a cached table;
	// WalkCacheInvalidated counts cached tables removed by TLBI.
	WalkCacheHits, WalkCacheInvalidated uint64
	Fills, Evictions                    uint64
	// Invalidations counts TLBI operations executed on this TLB by Op
	// (the issuing PE's op, including broadcasts received).
	Invalidations [NumOps]uint64
	// Invalidated counts entries removed by TLBI.
	Invalidated uint64
}

// TLB is one PE's TLB. It is not safe for concurrent use.
type TLB struct {
	slots   []slot
	plru    []uint64 // per-set tree bits
	setBits uint
	setMask uint64 // 1<<setBits - 1
	ways    int
	micro   [4][]slot // per access kind (index 3 unused)
	uMask   uint64
	microOn bool
	cfg     Config
	rng     uint64
	// sizes[kind] has bit n set when some unified-TLB entry of that kind
	// has size 1<<n; count tracks how many.
	sizes [4]uint64
	count [4][64]uint32
	wc    []wcEntry // the walk cache (walkcache.go)
	// pieces counts unified-TLB combined entries smaller than their
	// stage-1 leaf (spanBits > SizeBits): a TLBI by VA must find every
	// piece of the leaf it names, wherever in the leaf, so set probing
	// widens its range to the leaf's (probeRange).
	pieces int
	// spans has bit n set when some piece's stage-1 leaf has size 1<<n;
	// span[n] tracks those pieces.
	spans uint64
	span  [64]pieceSpan
	// miss is the last lookup HitPA found no entry for (RepeatMiss);
	// every fill and invalidation forgets it.
	miss missRecord
	// Stats counts events since creation (or the last ResetStats).
	Stats Stats
}

// New returns an empty TLB, or an error naming a bad configuration value.
func New(cfg Config) (*TLB, error) {
	if cfg.Sets == 0 {
		cfg.Sets = 256
	}
	if cfg.Ways == 0 {
		cfg.Ways = 4
	}
	if cfg.Micro == 0 {
		cfg.Micro = 16
	}
	if cfg.Sets < 0 || cfg.Sets&(cfg.Sets-1) != 0 || cfg.Sets > 1<<20 {
		return nil, fmt.Errorf("tlb: Sets %d is not a power of two up to 2^20", cfg.Sets)
	}
	if cfg.Ways < 0 || cfg.Ways&(cfg.Ways-1) != 0 || cfg.Ways > 64 {
		return nil, fmt.Errorf("tlb: Ways %d is not a power of two up to 64", cfg.Ways)
	}
	if cfg.Micro != -1 && (cfg.Micro < 0 || cfg.Micro&(cfg.Micro-1) != 0 || cfg.Micro > 4096) {
		return nil, fmt.Errorf("tlb: Micro %d is not -1 or a power of two up to 4096", cfg.Micro)
	}
	if cfg.Replacement > Random {
		return nil, fmt.Errorf("tlb: unknown Replacement %d", cfg.Replacement)
	}
	if cfg.WalkCache < 0 || cfg.WalkCache > 1<<16 {
		return nil, fmt.Errorf("tlb: WalkCache %d is not in 0..65536", cfg.WalkCache)
	}
	t := &TLB{
		slots:   make([]slot, cfg.Sets*cfg.Ways),
		plru:    make([]uint64, cfg.Sets),
		setBits: uint(bits.TrailingZeros(uint(cfg.Sets))),
		setMask: uint64(cfg.Sets - 1),
		ways:    cfg.Ways,
		cfg:     cfg,
		rng:     cfg.Seed | 1,
	}
	// A disabled micro-TLB is one slot per kind that is never filled,
	// so the fast path needs no test.
	for k := range t.micro {
		t.micro[k] = make([]slot, max(cfg.Micro, 1))
	}
	if cfg.Micro > 0 {
		t.uMask = uint64(cfg.Micro - 1)
		t.microOn = true
	}
	t.wcInit()
	return t, nil
}

// MustNew is New for a configuration known to be valid; it panics
// otherwise.
func MustNew(cfg Config) *TLB {
	t, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return t
}

// Config returns the configuration in use (defaults filled in).
func (t *TLB) Config() Config { return t.cfg }

// Capacity is the number of entries of the unified TLB.
func (t *TLB) Capacity() int { return len(t.slots) }

// setOf is the set index of a key in a context: a multiplicative hash of
// page number, size and context (the ASID is not hashed: global entries
// match every ASID).
func (t *TLB) setOf(key, ctx uint64) uint64 {
	// Shifts masked to 63 compile to one instruction; with one set
	// (setBits 0) setMask is 0 whatever the shift.
	return ((key ^ ctx<<40 ^ ctx>>16) * 0x9e3779b97f4a7c15) >> ((64 - t.setBits) & 63) & t.setMask
}

const va56 = 1<<56 - 1

// Lookup looks up va for an access in a stage-1 regime. vmid is the
// current VMID (ignored for EL2 and EL2&0), asid the current ASID.
// Bits [63:56] of va are not compared: the TBI and VA-range checks
// (AArch64.AddrTop, AArch64.VAIsOutOfRange) are made on the registers,
// before the TLB, by the caller. On Hit and PermissionMiss the entry is
// returned.
func (t *TLB) Lookup(regime vmsa.Regime, vmid, asid uint16, va mem.VA, acc vmsa.Access) (Entry, Result) {
	// Fast path: the access kind's micro-TLB.
	in := uint64(va) & va56
	ctx := makeCtx(uint8(regime), vmid)
	m := &t.micro[acc.Kind&3][in>>12&t.uMask]
	sz := m.key & 63 // sizes are at most 55 (an empty slot: 0)
	if m.ctx == ctx && m.key == (in>>sz)<<8|sz && (m.e.Global || m.e.ASID == asid) && permits(m.perm, acc) {
		t.Stats.Hits++
		t.Stats.MicroHits++
		return m.e, Hit
	}
	return t.lookup(uint8(regime)&3, ctx, asid, in, acc)
}

// LookupPA is Lookup returning only the output address of va: the
// hottest path, for callers that need nothing else of the entry.
func (t *TLB) LookupPA(regime vmsa.Regime, vmid, asid uint16, va mem.VA, acc vmsa.Access) (mem.PA, Result) {
	in := uint64(va) & va56
	ctx := makeCtx(uint8(regime), vmid)
	m := &t.micro[acc.Kind&3][in>>12&t.uMask]
	sz := m.key & 63 // sizes are at most 55 (an empty slot: 0)
	if m.ctx == ctx && m.key == (in>>sz)<<8|sz && (m.e.Global || m.e.ASID == asid) && permits(m.perm, acc) {
		t.Stats.Hits++
		t.Stats.MicroHits++
		return m.e.OA | mem.PA(in&(1<<sz-1)), Hit
	}
	e, r := t.lookup(uint8(regime)&3, ctx, asid, in, acc)
	return e.PA(va), r
}

// LookupS2 looks up a stage-2-only entry for ipa in the VMID.
func (t *TLB) LookupS2(vmid uint16, ipa mem.IPA, acc vmsa.Access) (Entry, Result) {
	ctx := makeCtx(kindS2, vmid)
	in := uint64(ipa) & va56
	m := &t.micro[acc.Kind&3][in>>12&t.uMask]
	sz := m.key & 63 // sizes are at most 55 (an empty slot: 0)
	if m.ctx == ctx && m.key == (in>>sz)<<8|sz && permits(m.perm, acc) {
		t.Stats.Hits++
		t.Stats.MicroHits++
		return m.e, Hit
	}
	return t.lookup(kindS2, ctx, 0, in, acc)
}

// lookup probes the unified TLB once per size class present.
func (t *TLB) lookup(kind uint8, ctx uint64, asid uint16, in uint64, acc vmsa.Access) (Entry, Result) {
	if s := t.find(kind, in, ctx|uint64(asid)<<asidShift, uint8(acc.Kind)); s != nil {
		if permits(s.perm, acc) {
			t.Stats.Hits++
			return s.e, Hit
		}
		return s.e, t.denied(s.perm, acc)
	}
	// A micro-TLB entry that denied the access is still a permission miss.
	m := &t.micro[acc.Kind&3][in>>12&t.uMask]
	sz := m.key & 63 // sizes are at most 55 (an empty slot: 0)
	if m.ctx == ctx && m.key == (in>>sz)<<8|sz && (m.e.Global || m.e.ASID == asid) {
		return m.e, t.denied(m.perm, acc)
	}
	t.Stats.Misses++
	return Entry{}, Miss
}

// find returns the unified-TLB slot of a kind translating in for tag (a
// context with the ASID at asidShift), probing one set per size class
// present, or nil. A slot found is touched (replacement) and copied to
// the micro-TLB of access kind micro.
func (t *TLB) find(kind uint8, in, tag uint64, micro uint8) *slot {
	ctx := tag &^ (0xffff << asidShift)
	for sizes := t.sizes[kind]; sizes != 0; sizes &= sizes - 1 {
		sz := uint64(bits.TrailingZeros64(sizes)) & 63 // sizes != 0; the mask spares the shifts a range check
		key := (in>>sz)<<8 | sz
		set := t.setOf(key, ctx)
		base := int(set) * t.ways
		ways := t.slots[base : base+t.ways]
		for w := range ways {
			s := &ways[w]
			if s.key != key || (tag^s.tag)&^s.tignore != 0 {
				continue
			}
			t.touch(set, w)
			if t.microOn {
				t.micro[micro&3][in>>12&t.uMask] = *s
			}
			return s
		}
	}
	return nil
}

// denied is the result of an entry whose cached permissions do not
// certainly permit acc: PermissionFault when they certainly deny it and
// Config.HoldPermissions is set, otherwise PermissionMiss.
func (t *TLB) denied(perm uint8, acc vmsa.Access) Result {
	i := uint(acc.Kind)
	if acc.EL != 0 {
		i += 3
	}
	if t.cfg.HoldPermissions && perm>>i&1 == 0 {
		t.Stats.PermissionFaults++
		return PermissionFault
	}
	t.Stats.PermissionMisses++
	return PermissionMiss
}

// PermissionFault is the permission fault an access takes from this entry
// (Result PermissionFault): in is the looked-up address (VA, or IPA for a
// Stage2Only entry). A Combined entry whose stage-1 permissions deny the
// access gives a stage-1 fault at the entry's level (stage 1's
// permission check comes first), else a stage-2 fault at its stage-2
// level with the IPA.
func (e *Entry) PermissionFault(in uint64, acc vmsa.Access) vmsa.Fault {
	f := vmsa.Fault{Kind: vmsa.FaultPermission, Level: e.Level, Write: acc.Kind == vmsa.Write}
	off := in & (1<<e.SizeBits - 1)
	switch {
	case e.Stage2Only:
		f.Stage2, f.IPA = true, e.IPA|mem.IPA(off)
	case e.Combined && permits(permMask(&e.S1Perms, uint8(e.Regime)), acc):
		f.Stage2, f.Level, f.IPA = true, e.S2Level, e.IPA|mem.IPA(off)
	}
	return f
}

// touch updates the set's tree pseudo-LRU bits to protect way w: each
// node on the path from the root is pointed away from w.
func (t *TLB) touch(set uint64, w int) {
	if t.cfg.Replacement != PLRU || t.ways == 1 {
		return
	}
	b := t.plru[set]
	node := uint(1) // unsigned: the shifts need no sign check
	for span := t.ways >> 1; span > 0; span >>= 1 {
		right := w&span != 0
		if right {
			b &^= 1 << node // point left (away from w)
			node = 2*node + 1
		} else {
			b |= 1 << node
			node = 2 * node
		}
	}
	t.plru[set] = b
}

// victim returns the way to replace in a full set.
func (t *TLB) victim(set uint64) int {
	if t.ways == 1 {
		return 0
	}
	if t.cfg.Replacement == Random {
		t.rng ^= t.rng << 13
		t.rng ^= t.rng >> 7
		t.rng ^= t.rng << 17
		return int(t.rng & uint64(t.ways-1))
	}
	b := t.plru[set]
	node, w := 1, 0
	for span := t.ways >> 1; span > 0; span >>= 1 {
		if b&(1<<node) != 0 {
			w |= span
			node = 2*node + 1
		} else {
			node = 2 * node
		}
	}
	return w
}

// Fill caches a stage-1 translation of va made by vmsa.Walker.Translate in
// the regime, with the current vmid (EL1&0). It reports whether an entry
// was made: faulting translations are never cached (translation,
// address size and access flag faults are never held in a TLB; a permission fault
// returns no translation), and an EL2/EL2&0 or stage-2-disabled EL1&0
// translation with stage 1 disabled is not cached. An EL1&0 translation
// with stage 1 disabled and stage 2 enabled is cached as the stage-2-only
// entry it is (IPA = VA).
//
// The entry covers the stage-1 leaf (or its contiguous run); a combined
// entry covers the smaller of that and the stage-2 leaf, since only there
// the two stages map linearly.
func (t *TLB) Fill(regime vmsa.Regime, vmid uint16, vaddr mem.VA, tr *vmsa.Translation) bool {
	if tr.Fault.IsFault() || tr.IPAOnly || regime > vmsa.RegimeEL2 {
		return false
	}
	if tr.Level < 0 {
		if regime == vmsa.RegimeEL10 && tr.S2 {
			return t.FillS2(vmid, tr.IPA, tr)
		}
		return false
	}
	va := uint64(vaddr) & va56
	size := tr.BlockBits
	if tr.ContigBits > size {
		size = tr.ContigBits
	}
	e := Entry{
		Regime:      regime,
		VMID:        vmid,
		ASID:        tr.ASID,
		Global:      !tr.NG,
		Attr:        vmsa.EncodePARAttrs(tr.Attrs),
		SH:          vmsa.PARShareability(tr.Attrs),
		Perms:       tr.Perms,
		Level:       tr.Level,
		GranuleBits: granuleOf(tr.Level, tr.BlockBits),
	}
	if regime != vmsa.RegimeEL10 {
		e.VMID = 0
	}
	if regime == vmsa.RegimeEL2 {
		e.ASID, e.Global = 0, true
	}
	if e.Global {
		e.ASID = 0
	}
	if tr.S2 {
		e.Combined = true
		e.S2Level, e.S2SizeBits, e.S1Perms = tr.S2Level, tr.S2BlockBits, tr.S1Perms
		if tr.S2BlockBits < size {
			size = tr.S2BlockBits
		}
		e.IPA = tr.IPA &^ (1<<size - 1)
	}
	if size < 12 || size > 55 {
		return false
	}
	e.SizeBits = size
	e.VA = mem.VA(va &^ (1<<size - 1))
	e.OA = tr.OA &^ (1<<size - 1)
	t.insert(uint8(regime), e, va)
	return true
}

// FillS2 caches a stage-2 translation of ipa made by
// vmsa.Walker.TranslateS2 (or a stage-1-disabled EL1&0 translation) as a
// stage-2-only entry of the VMID.
func (t *TLB) FillS2(vmid uint16, ipaddr mem.IPA, tr *vmsa.Translation) bool {
	if tr.Fault.IsFault() || !tr.S2 || tr.S2BlockBits < 12 || tr.S2BlockBits > 55 {
		return false
	}
	size := tr.S2BlockBits
	ipa := uint64(ipaddr) & va56
	e := Entry{
		Stage2Only:  true,
		VMID:        vmid,
		Global:      true,
		SizeBits:    size,
		OA:          tr.OA &^ (1<<size - 1),
		IPA:         mem.IPA(ipa &^ (1<<size - 1)),
		Attr:        vmsa.EncodePARAttrs(tr.Attrs),
		SH:          vmsa.PARShareability(tr.Attrs),
		Perms:       tr.Perms,
		Level:       tr.S2Level,
		GranuleBits: granuleOf(tr.S2Level, tr.S2BlockBits),
	}
	t.insert(kindS2, e, ipa)
	return true
}

// granuleOf recovers the granule from a leaf's level and size: a level-l
// leaf maps granule + (granule-3)*(3-l) bits.
func granuleOf(level int8, blockBits uint8) uint8 {
	if level < 0 || level > 3 {
		return 0
	}
	n := uint(3 - level)
	return uint8((uint(blockBits) + 3*n) / (n + 1))
}

// FillEntry inserts a prepared entry (for tests and for callers that
// build entries themselves); VA, OA and IPA are aligned to SizeBits.
// It reports false for an entry whose size is outside 4KB..2^55.
func (t *TLB) FillEntry(e Entry) bool {
	if e.SizeBits < 12 || e.SizeBits > 55 || e.Regime > vmsa.RegimeEL2 {
		return false
	}
	m := uint64(1)<<e.SizeBits - 1
	e.VA &= mem.VA(va56 &^ m)
	e.OA &^= mem.PA(m)
	e.IPA &^= mem.IPA(m)
	kind := uint8(e.Regime)
	if e.Stage2Only {
		kind = kindS2
		e.Regime, e.Global, e.ASID, e.Combined, e.VA = 0, true, 0, false, 0
	}
	if kind == uint8(vmsa.RegimeEL2) || kind == uint8(vmsa.RegimeEL20) {
		e.VMID = 0
	}
	if kind == uint8(vmsa.RegimeEL2) {
		e.Global = true
	}
	if e.Global {
		e.ASID = 0
	}
	t.insert(kind, e, e.input())
	return true
}

// insert puts e in the unified TLB. in is the address whose walk made
// it: a micro-TLB copy of the same tag at that address's index (the one
// that may just have reported a PermissionMiss) is replaced, so that a
// re-walk and refill always makes progress.
func (t *TLB) insert(kind uint8, e Entry, in uint64) {
	t.Stats.Fills++
	t.miss.ok = false
	ctx := makeCtx(kind, e.VMID)
	sz := uint64(e.SizeBits)
	key := (e.input()>>sz)<<8 | sz
	set := t.setOf(key, ctx)
	base := int(set) * t.ways
	ways := t.slots[base : base+t.ways]
	w := -1
	for i := range ways {
		s := &ways[i]
		if s.key == key && s.ctx == ctx && s.e.Global == e.Global && s.e.ASID == e.ASID {
			w = i // same tag: replace in place
			break
		}
	}
	if w < 0 {
		for i := range ways {
			if ways[i].ctx == 0 {
				w = i
				break
			}
		}
	}
	if w < 0 {
		w = t.victim(set)
		t.Stats.Evictions++
	}
	if old := &ways[w]; old.ctx != 0 {
		t.forget(old)
	}
	ns := newSlot(key, ctx, kind, &e)
	ways[w] = ns
	if t.microOn {
		i := in & va56 >> 12 & t.uMask
		for k := range t.micro {
			if m := &t.micro[k][i]; m.key == key && m.ctx == ctx && m.e.Global == e.Global && m.e.ASID == e.ASID {
				*m = ns
			}
		}
	}
	t.count[kind][sz]++
	t.sizes[kind] |= 1 << sz
	if span := e.spanBits(); span > e.SizeBits {
		t.addPiece(span, e.input(), ctx)
	}
	t.touch(set, w)
}

// forget drops a unified-TLB slot's contribution to the size classes.
func (t *TLB) forget(s *slot) {
	kind := uint8(s.ctx >> 16 & 3)
	sz := s.key & 0xff
	t.count[kind][sz]--
	if t.count[kind][sz] == 0 {
		t.sizes[kind] &^= 1 << sz
	}
	if span := s.e.spanBits(); span > s.e.SizeBits {
		t.pieces--
		p := &t.span[span]
		if p.n--; p.n == 0 {
			t.spans &^= 1 << span
		}
	}
}

// pieceSpan tracks the pieces whose stage-1 leaves have one size: how
// many, the input range their leaves cover, and their VMID, all since the
// count was last 0 (the range only grows until then).
type pieceSpan struct {
	lo, hi uint64
	n      uint32
	vmid   uint16
	// mixed: pieces of more than one VMID, or of a regime without one.
	mixed bool
}

// addPiece records a piece of a stage-1 leaf of size 1<<span at input
// address in, with packed context ctx.
func (t *TLB) addPiece(span uint8, in, ctx uint64) {
	lo := in &^ (uint64(1)<<span - 1)
	hi := lo + (uint64(1)<<span - 1)
	vmid, hasVMID := uint16(ctx), vmidMask[ctx>>16&3] != 0
	p := &t.span[span]
	if p.n == 0 {
		*p = pieceSpan{lo: lo, hi: hi, vmid: vmid, mixed: !hasVMID}
		t.spans |= 1 << span
	}
	p.lo, p.hi = min(p.lo, lo), max(p.hi, hi)
	if !hasVMID || vmid != p.vmid {
		p.mixed = true
	}
	p.n++
	t.pieces++
}

// Flush empties the TLB (a reset; not a TLBI).
func (t *TLB) Flush() {
	t.miss.ok = false
	clear(t.slots)
	clear(t.plru)
	for k := range t.micro {
		clear(t.micro[k])
	}
	t.sizes = [4]uint64{}
	t.count = [4][64]uint32{}
	t.pieces, t.spans = 0, 0
}

// Entries appends every entry of the unified TLB and the micro-TLBs to
// dst (an entry may appear twice: once in a micro-TLB) and returns it.
func (t *TLB) Entries(dst []Entry) []Entry {
	for i := range t.slots {
		if t.slots[i].ctx != 0 {
			dst = append(dst, t.slots[i].e)
		}
	}
	for k := range t.micro {
		for i := range t.micro[k] {
			if t.micro[k][i].ctx != 0 {
				dst = append(dst, t.micro[k][i].e)
			}
		}
	}
	return dst
}
