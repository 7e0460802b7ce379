package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// TestPANCombinedEntry: PSTATE.PAN is about stage 1's EL0 access, which
// a combined entry's intersected permissions can hide (found by the torture
// program: stage 1 RW at EL0 and EL1 over a stage-2 write-only page gives
// R0=false). A privileged store with PAN must not hit such an entry.
func TestPANCombinedEntry(t *testing.T) {
	tl := MustNew(Config{})
	e := Entry{VA: 0x1000, OA: 0x4000_1000, SizeBits: 12, Regime: vmsa.RegimeEL10, VMID: 1, Global: true,
		Combined: true, Perms: vmsa.Perms{W0: true, W1: true}}
	if !tl.FillEntry(e) {
		t.Fatal("FillEntry refused the entry")
	}
	for _, acc := range []vmsa.Access{{Kind: vmsa.Write, EL: 1, PAN: true}, {Kind: vmsa.Write, EL: 1}} {
		_, r := tl.Lookup(vmsa.RegimeEL10, 1, 0, 0x1008, acc)
		want := Hit
		if acc.PAN {
			want = PermissionMiss
		}
		if r != want {
			t.Errorf("write at EL1 with PAN=%v: %v, want %v", acc.PAN, r, want)
		}
	}
}
