package cpu

import "github.com/nestmmu/nestmmu/mem"

// FetchHitPA and FetchFull expose FetchPA's two halves to the external
// tests: the hit path and the full path.
func (pe *PE) FetchHitPA(va mem.VA) (uint32, mem.PA, Exception, bool) { return pe.fetchHit(va) }
func (pe *PE) FetchFull(va mem.VA) (uint32, mem.PA, Exception)        { return pe.fetchFull(va) }
