package cpu

import (
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// ReadHit is Read made cheap for its common case: an aligned load whose
// translation the TLB holds. done is false when the access needs anything
// else (a TLB miss or permission miss, a VA that fails the checks before
// the TLB, an unaligned access, stage 1 off, no TLB): nothing was counted
// or changed, and the caller goes on with Read, which decides the access
// exactly. When done is true the access is complete; e is nil, or the
// External abort taken if the PA has no memory (valid until the PE's next
// hit-path access). A pointer, not an Exception: a 64-byte result copied
// through every caller cost about as much as the hit itself.
//
// The translation context, the VA checks (as masks) and the TLB key are
// derived once per register state (ctx); a hit in the micro-TLB is a few
// loads (tlb.MicroHitPA, inlined; on a miss tlb.UnifiedHitPA, the rest of
// tlb.HitPA); the data comes from the memory's words when it gives them
// (WordMemory), with no call.
func (pe *PE) ReadHit(va mem.VA, size int) (v uint64, e *Exception, done bool) {
	c := &pe.c
	if !pe.hitOK(c, va, size) {
		if c.valid {
			return 0, nil, false
		}
		pe.ctx()
		return pe.ReadHit(va, size)
	}
	pa, ok := pe.TLB.MicroHitPA(&c.hitR, va)
	if !ok {
		if pa, ok = pe.TLB.UnifiedHitPA(&c.hitR, va); !ok {
			return 0, nil, false
		}
	}
	pe.Stats.Loads++
	pe.Stats.TLBHits++
	pe.LastPA = pa
	if i := uint64(pa-c.wbase) >> 3; i < uint64(len(c.words)) {
		c.checkFrame(pa, size)
		// An aligned access of at most 8 bytes lies in one word: a
		// single-copy atomic load of the word holds it.
		return atomic.LoadUint64(&c.words[i]) >> (8 * (uint64(pa) & 7)) & sizeMask(size), nil, true
	}
	if v, ok = pe.Mem.Read(pa, size); !ok {
		pe.hitAbort = pe.external(va, vmsa.Read, false)
		return 0, &pe.hitAbort, true
	}
	return v, nil, true
}

// WriteHit is Write made cheap for its common case, as ReadHit.
func (pe *PE) WriteHit(va mem.VA, size int, v uint64) (e *Exception, done bool) {
	c := &pe.c
	if !pe.hitOK(c, va, size) {
		if c.valid {
			return nil, false
		}
		pe.ctx()
		return pe.WriteHit(va, size, v)
	}
	pa, ok := pe.TLB.MicroHitPA(&c.hitW, va)
	if !ok {
		if pa, ok = pe.TLB.UnifiedHitPA(&c.hitW, va); !ok {
			return nil, false
		}
	}
	pe.Stats.Stores++
	pe.Stats.TLBHits++
	pe.LastPA = pa
	if i := uint64(pa-c.wbase) >> 3; i < uint64(len(c.words)) {
		c.checkFrame(pa, size)
		p := &c.words[i]
		if size == 8 {
			mem.StoreWord(p, v)
			return nil, true
		}
		storePart(p, pa, size, v)
		return nil, true
	}
	if !pe.Mem.Write(pa, size, v) {
		pe.hitAbort = pe.external(va, vmsa.Write, true)
		return &pe.hitAbort, true
	}
	return nil, true
}

// WordHit is the translation half of ReadHit (write false) or WriteHit
// (write true), for a batch that translates a group of accesses before
// performing them, so that their host cache misses overlap: when the
// access would complete on the hit path in the memory's words, it counts
// it as they do (the load or store, the TLB hit), sets LastPA and returns
// the word and the PA; otherwise it returns nil, nothing counted or
// changed, and the caller goes on with ReadHit or WriteHit. The caller
// performs the access with LoadHit or StoreHit, in program order, before
// anything can change the translation (the PE's next full-path access, a
// TLBI, a register write): a TLB hit changes no translation, so those of
// a group are the ones performing the accesses one at a time would use.
func (pe *PE) WordHit(va mem.VA, size int, write bool) (*uint64, mem.PA) {
	c := &pe.c
	if !pe.hitOK(c, va, size) {
		if c.valid {
			return nil, 0
		}
		pe.ctx()
		return pe.WordHit(va, size, write)
	}
	k := &c.hitR
	if write {
		k = &c.hitW
	}
	pa, micro := pe.TLB.MicroHitPA(k, va)
	if !micro {
		var ok bool
		if pa, ok = pe.TLB.UnifiedHitPA(k, va); !ok {
			return nil, 0
		}
	}
	i := uint64(pa-c.wbase) >> 3
	if i >= uint64(len(c.words)) {
		// Not in the words: undo the hit's counts (exactly those the
		// probe made), and ReadHit or WriteHit take the access.
		pe.TLB.Stats.Hits--
		if micro {
			pe.TLB.Stats.MicroHits--
		}
		return nil, 0
	}
	p := &c.words[i] // before the counters' stores, which would reload c.words
	if write {
		pe.Stats.Stores++
	} else {
		pe.Stats.Loads++
	}
	pe.Stats.TLBHits++
	pe.LastPA = pa
	return p, pa
}

// LoadHit performs a load that WordHit translated (p, pa): the
// freed-frame check and the single-copy atomic load of the word, as
// ReadHit.
func (pe *PE) LoadHit(p *uint64, pa mem.PA, size int) uint64 {
	pe.c.checkFrame(pa, size)
	return atomic.LoadUint64(p) >> (8 * (uint64(pa) & 7)) & sizeMask(size)
}

// StoreHit performs a store that WordHit translated (p, pa), as WriteHit.
func (pe *PE) StoreHit(p *uint64, pa mem.PA, size int, v uint64) {
	pe.c.checkFrame(pa, size)
	if size == 8 {
		mem.StoreWord(p, v)
		return
	}
	storePart(p, pa, size, v)
}

// storePart stores the low size bytes of v into the word p at pa's byte.
func storePart(p *uint64, pa mem.PA, size int, v uint64) {
	// The other bytes of the word may be written meanwhile.
	sh := 8 * (uint64(pa) & 7)
	m := sizeMask(size) << sh
	for {
		o := atomic.LoadUint64(p)
		if atomic.CompareAndSwapUint64(p, o, o&^m|v<<sh&m) {
			return
		}
	}
}

// hitOK is the part of translate a TLB hit takes before the TLB, with
// the context c (derived: c.valid): the VA checks. An aligned access of
// at most 8 bytes never crosses a page and is never checked for
// alignment (AArch64.CheckAlignment only checks unaligned ones), so
// nothing else applies.
func (pe *PE) hitOK(c *translationContext, va mem.VA, size int) bool {
	h := uint64(va) >> 55 & c.vaSel & 1
	return c.valid && c.hit && pe.TLB != nil && uint(size-1) < 8 && size&(size-1) == 0 && uint64(va)&uint64(size-1) == 0 &&
		uint64(va)&c.vaMask[h] == c.vaWant[h]
}

// sizeMask is the mask of the low size bytes (size 1 to 8).
func sizeMask(size int) uint64 { return ^uint64(0) >> ((64 - 8*uint(size)) & 63) }

// unchecked is the frame counts of memory without a frame check: one
// frame, never free, in which every word falls (shift 63), so that
// checkFrame needs no test for it.
var unchecked [1]atomic.Int32

func init() { unchecked[0].Store(1) }

// checkFrame is a FrameCheckedMemory's check of an aligned access of at
// most 8 bytes at pa (in the words: one word, so one frame).
func (c *translationContext) checkFrame(pa mem.PA, size int) {
	if c.refs[uint64(pa-c.wbase)>>c.fshift].Load() <= 0 {
		c.staleAccess(pa, size)
	}
}

// staleAccess reports an access to a freed frame (checkFrame's rare
// case, out of line so that checkFrame inlines).
//
//go:noinline
func (c *translationContext) staleAccess(pa mem.PA, size int) {
	c.stale.StaleAccess(pa, uint64(size))
}

// FetchHit is Fetch made cheap for its common case, as ReadHit is Read:
// done false when the fetch needs anything else (nothing was counted or
// changed; the caller goes on with Fetch), otherwise the fetch is
// complete, e nil or the External abort taken (valid until the PE's next
// hit-path access).
func (pe *PE) FetchHit(va mem.VA) (w uint32, e *Exception, done bool) {
	w, _, x, done := pe.fetchHit(va)
	if x.Taken() {
		pe.hitAbort = x
		return 0, &pe.hitAbort, true
	}
	return w, nil, done
}

// fetchHit is FetchPA's common case made cheap, as ReadHit is Read's: an
// aligned fetch whose translation the TLB holds. When done is false
// nothing was counted or changed and FetchPA decides the fetch in full;
// otherwise the fetch is complete (e the External abort it took, when the
// PA has no memory), counted as FetchPA counts it.
func (pe *PE) fetchHit(va mem.VA) (w uint32, pa mem.PA, e Exception, done bool) {
	c := &pe.c
	if !c.valid {
		pe.ctx()
	}
	if !c.hit || pe.TLB == nil || va&3 != 0 || c.check.FaultKind(va, vmsa.Access{Kind: vmsa.Fetch, EL: pe.EL}) != vmsa.FaultNone {
		return 0, 0, e, false
	}
	pa, ok := pe.TLB.MicroHitPA(&c.hitX, va)
	if !ok {
		if pa, ok = pe.TLB.UnifiedHitPA(&c.hitX, va); !ok {
			return 0, 0, e, false
		}
	}
	pe.Stats.Fetches++
	pe.Stats.TLBHits++
	if i := uint64(pa-c.wbase) >> 3; i < uint64(len(c.words)) {
		c.checkFrame(pa, 4)
		pe.LastPA = pa
		return uint32(atomic.LoadUint64(&c.words[i]) >> (8 * (uint64(pa) & 7))), pa, e, true
	}
	v, ok := pe.Mem.Read(pa, 4)
	if !ok {
		return 0, 0, pe.external(va, vmsa.Fetch, false), true
	}
	pe.LastPA = pa
	return uint32(v), pa, e, true
}
