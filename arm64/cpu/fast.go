package cpu

import (
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// ReadHit is Read made cheap for its common case: an aligned load whose
// translation the TLB holds. done is false when the access needs anything
// else (a TLB miss or permission miss, a VA that fails the checks before
// the TLB, an unaligned access, stage 1 off, no TLB): nothing was counted
// or changed, and the caller goes on with Read, which decides the access
// exactly. When done is true the access is complete; e is the External
// abort taken if the PA has no memory.
func (pe *PE) ReadHit(va mem.VA, size int) (v uint64, e Exception, done bool) {
	pa, ok := pe.hit(va, size, vmsa.Read)
	if !ok {
		return 0, Exception{}, false
	}
	pe.Stats.Loads++
	pe.Stats.TLBHits++
	v, ok = pe.Mem.Read(pa, size)
	if !ok {
		return 0, pe.external(va, vmsa.Read, false), true
	}
	return v, Exception{}, true
}

// WriteHit is Write made cheap for its common case, as ReadHit.
func (pe *PE) WriteHit(va mem.VA, size int, v uint64) (e Exception, done bool) {
	pa, ok := pe.hit(va, size, vmsa.Write)
	if !ok {
		return Exception{}, false
	}
	pe.Stats.Stores++
	pe.Stats.TLBHits++
	if !pe.Mem.Write(pa, size, v) {
		return pe.external(va, vmsa.Write, true), true
	}
	return Exception{}, true
}

// hit is the part of translate a TLB hit takes: the VA checks, then the
// TLB. An aligned access of at most 8 bytes never crosses a page and is
// never checked for alignment (AArch64.CheckAlignment only checks
// unaligned ones), so nothing else applies.
func (pe *PE) hit(va mem.VA, size int, k vmsa.AccessKind) (mem.PA, bool) {
	if pe.TLB == nil || (size != 1 && size != 2 && size != 4 && size != 8) || uint64(va)&uint64(size-1) != 0 {
		return 0, false
	}
	c := pe.ctx()
	if c.s2only {
		return 0, false
	}
	acc := vmsa.Access{Kind: k, EL: pe.EL, PAN: c.dataPAN}
	if c.check.Check(va, acc).IsFault() {
		return 0, false
	}
	return pe.TLB.Probe(c.regime, c.vmid, c.asid, va, acc)
}
