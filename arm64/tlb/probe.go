package tlb

import (
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Probe is LookupPA for a caller that goes on to Lookup when the probe
// does not hit: a hit is counted and updates the replacement state exactly
// as LookupPA's; after a miss or a permission miss the counters are as they
// were (the caller's Lookup counts it once).
func (t *TLB) Probe(regime vmsa.Regime, vmid, asid uint16, va mem.VA, acc vmsa.Access) (mem.PA, bool) {
	pa, r := t.LookupPA(regime, vmid, asid, va, acc)
	switch r {
	case Hit:
		return pa, true
	case PermissionMiss:
		t.Stats.PermissionMisses--
	default:
		t.Stats.Misses--
	}
	return 0, false
}

// HitKey is what HitPA needs of a lookup context and access, computed once
// (NewHitKey) for as long as they stay the same.
type HitKey struct {
	tag        uint64 // the context tag, with the ASID at asidShift
	micro      uint8  // the access kind's micro-TLB
	need, flip uint8  // permits: (perm^flip)&need == need
	regime     vmsa.Regime
	vmid, asid uint16
	acc        vmsa.Access
}

// NewHitKey returns the key of lookups by Probe's arguments in a stage-1
// regime (not for acc.NoPerm).
func NewHitKey(regime vmsa.Regime, vmid, asid uint16, acc vmsa.Access) HitKey {
	k := HitKey{tag: makeCtx(uint8(regime), vmid) | uint64(asid)<<asidShift, micro: uint8(acc.Kind) & 3,
		regime: regime, vmid: vmid, asid: asid, acc: acc}
	i := uint(acc.Kind)
	if acc.EL != 0 {
		i += 3
		if acc.PAN && acc.Kind != vmsa.Fetch {
			k.need, k.flip = 1<<6, 1<<6 // PAN: the entry must not be EL0-accessible (permits)
		}
	}
	k.need |= 1 << i
	if acc.NoPerm {
		k.need, k.flip = 0, 0
	}
	return k
}

// HitPA is Probe for the key's context and access: a hit in the micro-TLB
// is a few loads and compares (MicroHitPA), anything else is Probe's.
func (t *TLB) HitPA(k *HitKey, va mem.VA) (mem.PA, bool) {
	if pa, ok := t.MicroHitPA(k, va); ok {
		return pa, true
	}
	return t.UnifiedHitPA(k, va)
}

// UnifiedHitPA is HitPA's unified-TLB part, for a caller whose
// MicroHitPA has just missed: Probe's for a key, without the entry
// copied out or the counters undone. The slot lookup would find (find,
// which touches it and copies it to the micro-TLB) answers a hit or
// (permission miss) nothing.
func (t *TLB) UnifiedHitPA(k *HitKey, va mem.VA) (mem.PA, bool) {
	in := uint64(va) & va56
	if s := t.find(uint8(k.regime&3), in, k.tag, k.micro); s != nil {
		if (s.perm^k.flip)&k.need != k.need {
			return 0, false
		}
		t.Stats.Hits++
		return s.e.OA | mem.PA(in&s.voff), true
	}
	// Nothing translates in for the key. Unless the micro-TLB holds an
	// entry for it that denied the access (a permission miss), Lookup
	// would now count a Miss and change nothing else: RepeatMiss may say
	// so until the TLB's next fill.
	m := &t.micro[k.micro&3][in>>12&t.uMask]
	if (k.tag^m.tag)&^m.tignore != 0 || in&^m.voff != m.vtag {
		t.miss = missRecord{ok: true, tag: k.tag, in: in, acc: k.acc}
	}
	return 0, false
}

// missRecord is the last lookup HitPA found nothing for (RepeatMiss).
type missRecord struct {
	ok  bool
	tag uint64 // the key's context and ASID
	in  uint64
	acc vmsa.Access
}

// RepeatMiss is Lookup for a caller that has just had HitPA miss the same
// lookup: when HitPA found no entry translating va (nor a micro-TLB entry
// that denied the access) and nothing was filled since, it counts the
// Miss that Lookup would count and reports true; the caller walks.
// Otherwise it changes nothing and reports false, and the caller goes on
// with Lookup.
func (t *TLB) RepeatMiss(regime vmsa.Regime, vmid, asid uint16, va mem.VA, acc vmsa.Access) bool {
	r := &t.miss
	if !r.ok || r.in != uint64(va)&va56 || r.acc != acc || r.tag != makeCtx(uint8(regime), vmid)|uint64(asid)<<asidShift {
		return false
	}
	r.ok = false
	t.Stats.Misses++
	return true
}

// MicroHitPA is HitPA's micro-TLB part, small enough to inline: on a hit
// it counts it and returns the output address; otherwise it changes
// nothing and the caller goes on with Probe (HitPA).
func (t *TLB) MicroHitPA(k *HitKey, va mem.VA) (mem.PA, bool) {
	in := uint64(va) & va56
	m := &t.micro[k.micro&3][in>>12&t.uMask]
	if (k.tag^m.tag)&^m.tignore != 0 || in&^m.voff != m.vtag || (m.perm^k.flip)&k.need != k.need {
		return 0, false
	}
	t.Stats.Hits++
	t.Stats.MicroHits++
	return m.e.OA | mem.PA(in&m.voff), true
}
