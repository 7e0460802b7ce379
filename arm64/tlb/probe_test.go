package tlb_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// A probe that misses leaves the counters alone, so that the Lookup the
// caller makes next counts the miss once; a probe that hits counts as a
// LookupPA hit and returns the same output address.
func TestProbeCountsOnlyHits(t *testing.T) {
	tl := tlb.MustNew(tlb.Config{})
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
	const va, pa = 0x12345000, 0x8765_4000
	if _, ok := tl.Probe(vmsa.RegimeEL10, 1, 2, va+8, acc); ok {
		t.Fatal("probe of an empty TLB hit")
	}
	if tl.Stats != (tlb.Stats{}) {
		t.Fatalf("miss changed the counters: %+v", tl.Stats)
	}
	tr := vmsa.Translation{OA: pa, Level: 3, BlockBits: 12, NG: true, ASID: 2, Perms: vmsa.Perms{R1: true}}
	if !tl.Fill(vmsa.RegimeEL10, 1, va, &tr) {
		t.Fatal("fill refused")
	}
	for _, c := range []struct {
		name string
		acc  vmsa.Access
		asid uint16
		hit  bool
	}{
		{"read", acc, 2, true},
		{"write without permission", vmsa.Access{Kind: vmsa.Write, EL: 1}, 2, false},
		{"other ASID", acc, 3, false},
	} {
		before := tl.Stats
		got, ok := tl.Probe(vmsa.RegimeEL10, 1, c.asid, va+8, c.acc)
		if ok != c.hit {
			t.Errorf("%s: hit %v, want %v", c.name, ok, c.hit)
			continue
		}
		if !ok {
			if tl.Stats != before {
				t.Errorf("%s: counters changed from %+v to %+v", c.name, before, tl.Stats)
			}
			continue
		}
		if got != pa+8 || tl.Stats.Hits != before.Hits+1 {
			t.Errorf("%s: PA %#x hits %d, want %#x and one more hit", c.name, got, tl.Stats.Hits, pa+8)
		}
	}
}

// TestHitPASameAsProbe: on two TLBs filled alike with entries of every
// kind (sizes, global and ASID-tagged, regimes, VMIDs, permissions),
// HitPA with the key of a lookup gives what Probe gives, for random
// lookups (access kinds, EL0 and EL1, PAN, NoPerm), the counters and the
// replacement state staying equal.
func TestHitPASameAsProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, b := tlb.MustNew(tlb.Config{Sets: 16, Ways: 2, Micro: 8}), tlb.MustNew(tlb.Config{Sets: 16, Ways: 2, Micro: 8})
	regimes := []vmsa.Regime{vmsa.RegimeEL10, vmsa.RegimeEL20, vmsa.RegimeEL2}
	hits, repeats := 0, 0
	for i := 0; i < 20000; i++ {
		regime := regimes[rng.IntN(len(regimes))]
		vmid, asid := uint16(rng.IntN(3)), uint16(rng.IntN(3))
		va := mem.VA(rng.Uint64N(1<<22)) &^ 7
		if rng.IntN(4) == 0 {
			bits := []uint8{12, 16, 21}[rng.IntN(3)]
			p := vmsa.Perms{R1: rng.IntN(4) != 0, W1: rng.IntN(2) == 0, X1: rng.IntN(2) == 0, R0: rng.IntN(2) == 0, W0: rng.IntN(3) == 0, X0: rng.IntN(3) == 0}
			tr := vmsa.Translation{OA: mem.PA(rng.Uint64N(1<<30)) &^ (1<<bits - 1), Level: int8(3 - (bits-12)/9), BlockBits: bits, NG: rng.IntN(2) == 0, ASID: asid, Perms: p}
			a.Fill(regime, vmid, va, &tr)
			b.Fill(regime, vmid, va, &tr)
			continue
		}
		acc := vmsa.Access{Kind: vmsa.AccessKind(rng.IntN(3)), EL: uint8(rng.IntN(2)), PAN: rng.IntN(3) == 0, NoPerm: rng.IntN(20) == 0}
		k := tlb.NewHitKey(regime, vmid, asid, acc)
		pa, ok := a.Probe(regime, vmid, asid, va, acc)
		pb, okb := b.HitPA(&k, va)
		if ok != okb || pa != pb {
			t.Fatalf("step %d: %v %d/%d %#x %+v: Probe %#x %v, HitPA %#x %v", i, regime, vmid, asid, va, acc, pa, ok, pb, okb)
		}
		if ok {
			hits++
		} else {
			// The walk's lookup after the miss: Lookup on one,
			// RepeatMiss (or Lookup) on the other.
			ea, ra := a.Lookup(regime, vmid, asid, va, acc)
			if b.RepeatMiss(regime, vmid, asid, va, acc) {
				repeats++
				if ra != tlb.Miss {
					t.Fatalf("step %d: RepeatMiss after HitPA where Lookup gives %v", i, ra)
				}
			} else if eb, rb := b.Lookup(regime, vmid, asid, va, acc); ra != rb || ea != eb {
				t.Fatalf("step %d: Lookup %v %+v and %v %+v", i, ra, ea, rb, eb)
			}
		}
		if a.Stats != b.Stats {
			t.Fatalf("step %d: counters %+v and %+v", i, a.Stats, b.Stats)
		}
		if i%64 == 0 && !reflect.DeepEqual(a.Entries(nil), b.Entries(nil)) {
			t.Fatalf("step %d: the TLBs' entries differ", i)
		}
	}
	if hits < 1000 || repeats < 1000 {
		t.Fatalf("%d hits, %d repeated misses: the test exercises too few", hits, repeats)
	}
}

// TestRepeatMiss: RepeatMiss answers only the lookup HitPA has just found
// nothing for, and only until the TLB changes; a micro-TLB entry that
// denied the access leaves it to Lookup (a permission miss).
func TestRepeatMiss(t *testing.T) {
	const va = 0x7000_1000
	rd := vmsa.Access{Kind: vmsa.Read, EL: 1}
	wr := vmsa.Access{Kind: vmsa.Write, EL: 1}
	tr := vmsa.Translation{OA: 0x8000_0000, Level: 3, BlockBits: 12, NG: true, ASID: 2, Perms: vmsa.Perms{R1: true}}
	for _, c := range []struct {
		name    string
		between func(tl *tlb.TLB) // after the missing HitPA
		va      mem.VA
		acc     vmsa.Access
		asid    uint16
		want    bool
	}{
		{"same lookup", nil, va + 8, rd, 2, true},
		{"another page", nil, va + 0x1000, rd, 2, false},
		{"another byte", nil, va + 16, rd, 2, false},
		{"another access", nil, va + 8, wr, 2, false},
		{"another ASID", nil, va + 8, rd, 3, false},
		{"a fill between", func(tl *tlb.TLB) { tl.Fill(vmsa.RegimeEL10, 1, va+0x5000, &tr) }, va + 8, rd, 2, false},
		{"a TLBI between", func(tl *tlb.TLB) {
			if _, err := tl.Invalidate(tlb.OpVMALLE1, 0, tlb.Context{EL: 1, VMID: 1}); err != nil {
				t.Fatal(err)
			}
		}, va + 8, rd, 2, false},
	} {
		tl := tlb.MustNew(tlb.Config{})
		k := tlb.NewHitKey(vmsa.RegimeEL10, 1, 2, rd)
		if _, ok := tl.HitPA(&k, va+8); ok {
			t.Fatal("hit in an empty TLB")
		}
		if c.between != nil {
			c.between(tl)
		}
		before := tl.Stats
		got := tl.RepeatMiss(vmsa.RegimeEL10, 1, c.asid, c.va, c.acc)
		if got != c.want {
			t.Errorf("%s: RepeatMiss %v, want %v", c.name, got, c.want)
		}
		want := before
		if got {
			want.Misses++
		}
		if tl.Stats != want {
			t.Errorf("%s: counters %+v, want %+v", c.name, tl.Stats, want)
		}
		if got && tl.RepeatMiss(vmsa.RegimeEL10, 1, c.asid, c.va, c.acc) {
			t.Errorf("%s: a second RepeatMiss for one HitPA", c.name)
		}
	}

	// A write to a read-only page: HitPA misses on permission, Lookup
	// gives PermissionMiss, so RepeatMiss must not answer.
	k := tlb.NewHitKey(vmsa.RegimeEL10, 1, 2, wr)
	denied := func(tl *tlb.TLB, what string) {
		t.Helper()
		if _, ok := tl.HitPA(&k, va+8); ok {
			t.Fatalf("%s: a write hit a read-only entry", what)
		}
		if tl.RepeatMiss(vmsa.RegimeEL10, 1, 2, va+8, wr) {
			t.Errorf("%s: RepeatMiss after a permission miss", what)
		}
		if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 2, va+8, wr); r != tlb.PermissionMiss {
			t.Errorf("%s: Lookup %v, want PermissionMiss", what, r)
		}
	}
	tl := tlb.MustNew(tlb.Config{})
	tl.Fill(vmsa.RegimeEL10, 1, va, &tr)
	denied(tl, "entry in the unified TLB")
	// The entry evicted from the unified TLB (one slot) but still in the
	// write micro-TLB (HitPA copied it there): HitPA finds nothing in the
	// unified TLB, Lookup the micro-TLB's copy denying the write.
	tl = tlb.MustNew(tlb.Config{Sets: 1, Ways: 1})
	tl.Fill(vmsa.RegimeEL10, 1, va, &tr)
	if _, ok := tl.HitPA(&k, va+8); ok {
		t.Fatal("a write hit a read-only entry")
	}
	tl.Fill(vmsa.RegimeEL10, 1, va+0x1000, &tr) // evicts it; another micro-TLB index
	denied(tl, "entry only in the micro-TLB")
}
