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

// TestPANCombinedStage1Perms: the PAN check of a combined entry reads its
// stage-1 permissions (AArch64.S1DirectBasePermissions: PSTATE.PAN removes
// privileged data access where stage 1 gives EL0 access), not their
// intersection with stage 2's. A kernel page (stage 1 EL1-only) hits for a
// privileged access with PAN; a user page (stage 1 EL0-readable) does not,
// even where stage 2 hides the EL0 read; an entry that records no stage-1
// permissions (FillEntry's) leaves PAN to a walk.
func TestPANCombinedStage1Perms(t *testing.T) {
	rw := vmsa.Perms{R0: true, W0: true, R1: true, W1: true}
	for _, c := range []struct {
		name      string
		s1, perms vmsa.Perms
		want      Result
	}{
		{"kernel page", vmsa.Perms{R1: true, W1: true}, vmsa.Perms{R1: true, W1: true}, Hit},
		{"kernel page, EL0-executable", vmsa.Perms{R1: true, W1: true, X0: true}, vmsa.Perms{R1: true, W1: true, X0: true}, PermissionMiss},
		{"user page", rw, rw, PermissionMiss},
		{"user page over stage-2 write-only", rw, vmsa.Perms{W0: true, W1: true}, PermissionMiss},
		{"no stage-1 permissions recorded", vmsa.Perms{}, vmsa.Perms{R1: true, W1: true}, PermissionMiss},
	} {
		tl := MustNew(Config{})
		e := Entry{VA: 0x1000, OA: 0x4000_1000, SizeBits: 12, Regime: vmsa.RegimeEL10, VMID: 1, Global: true,
			Combined: true, Perms: c.perms, S1Perms: c.s1}
		if !tl.FillEntry(e) {
			t.Fatal("FillEntry refused the entry")
		}
		for _, k := range []vmsa.AccessKind{vmsa.Read, vmsa.Write} {
			acc := vmsa.Access{Kind: k, EL: 1, PAN: true}
			if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 0, 0x1008, acc); r != c.want {
				t.Errorf("%s: %v at EL1 with PAN: %v, want %v", c.name, k, r, c.want)
			}
			// The hit path's key answers as Lookup does.
			k := NewHitKey(vmsa.RegimeEL10, 1, 0, acc)
			if _, ok := tl.HitPA(&k, 0x1008); ok != (c.want == Hit) {
				t.Errorf("%s: HitPA %v, want %v", c.name, ok, c.want == Hit)
			}
		}
	}
}
