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
