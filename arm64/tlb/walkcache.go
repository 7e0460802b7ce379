package tlb

// A walk cache: stage-2 table descriptors cached by the walks that used
// them (an IPA span of a VMID leads to a table), so that a later walk of
// an IPA in the span starts at that table instead of the root. Entries
// are removed by the TLBI operations whose scope covers stage-2 entries of
// any level for an IPA in the span (IPAS2E1, RIPAS2E1, VMALLS12E1, ALLE1,
// and the VMID-less ALLE1), never by the last-level forms (IPAS2LE1,
// RIPAS2LE1), which "need only invalidate entries from the final level of
// the walk" (Scope.LastLevel).

// wcEntry is one cached table: walks of IPAs in [base, base+1<<bits) of
// vmid with the granule of gbits reach the table at address table, at
// level.
type wcEntry struct {
	valid bool
	level int8
	gbits uint8
	bits  uint8
	vmid  uint16
	base  uint64
	table uint64
}

// wcLevels are the table levels a walk may start at (0..3; the root, at
// any level, is never cached).
const wcLevels = 4

func (t *TLB) wcInit() {
	if t.cfg.WalkCache > 0 {
		t.wc = make([]wcEntry, wcLevels*((t.cfg.WalkCache+wcLevels-1)/wcLevels))
	}
}

// spanBits is log2 of the IPA span of a table at level (the size of the
// entry one level up that points to it).
func spanBits(gbits uint, level int) uint { return gbits + (gbits-3)*uint(4-level) }

// wcSlot is the slot of the table at level covering ipa.
func (t *TLB) wcSlot(vmid uint16, gbits uint, ipa uint64, level int) *wcEntry {
	per := uint64(len(t.wc) / wcLevels)
	span := ipa >> spanBits(gbits, level)
	h := (span ^ uint64(vmid)<<32 ^ uint64(gbits)<<48) * 0x9e3779b97f4a7c15 >> 32
	return &t.wc[uint64(level)*per+h%per]
}

// LookupS2Table implements vmsa.S2TableCache: the deepest cached table
// (level 3 first) whose span holds ipa, for walks of vmid with a granule
// of 1<<gbits bytes.
func (t *TLB) LookupS2Table(vmid uint16, gbits uint, ipa uint64) (level int, table uint64, ok bool) {
	if len(t.wc) == 0 {
		return 0, 0, false
	}
	for l := wcLevels - 1; l >= 0; l-- {
		e := t.wcSlot(vmid, gbits, ipa, l)
		if e.valid && e.vmid == vmid && uint(e.gbits) == gbits && int(e.level) == l && ipa>>e.bits == e.base>>e.bits {
			t.Stats.WalkCacheHits++
			return l, e.table, true
		}
	}
	return 0, 0, false
}

// FillS2Table implements vmsa.S2TableCache: a walk of ipa in vmid reached
// the table at level through a table descriptor.
func (t *TLB) FillS2Table(vmid uint16, gbits uint, ipa uint64, level int, table uint64) {
	if len(t.wc) == 0 || level < 0 || level >= wcLevels {
		return
	}
	b := spanBits(gbits, level)
	*t.wcSlot(vmid, gbits, ipa, level) = wcEntry{valid: true, level: int8(level), gbits: uint8(gbits), bits: uint8(b), vmid: vmid, base: ipa >> b << b, table: table}
}

// invalidateWalkCache removes the cached tables in scope s: a stage-2
// scope that is not last-level, of the VMID (or any), overlapping the IPA
// range when addressed. Under StrictHints a hint of a leaf level at or
// above a table's level (no walk through the table ends there) or of
// another granule leaves the table.
func (t *TLB) invalidateWalkCache(s *Scope, strict bool) int {
	if len(t.wc) == 0 || !s.S2 || s.LastLevel || (s.ReservedTG && strict) {
		return 0
	}
	n := 0
	for i := range t.wc {
		e := &t.wc[i]
		if !e.valid || (!s.AnyVMID && e.vmid != s.VMID) {
			continue
		}
		if s.Addressed && !s.ReservedTG {
			end := e.base + (uint64(1)<<e.bits - 1)
			if end < s.Lo || e.base > s.Hi {
				continue
			}
		}
		if strict {
			if s.RangeGranule != 0 && e.gbits != s.RangeGranule {
				continue
			}
			if h := s.Hint; h.GranuleBits != 0 && (h.GranuleBits != e.gbits || int(h.Level) < int(e.level)) {
				continue
			}
		}
		*e = wcEntry{}
		n++
	}
	return n
}
