package vmsa

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// The walk takes a leaf's output address from the masks newWalkGeom
// derives (leafBase); for every format and leaf level it must be what
// desc.Format.LeafOA and LeafBits (AArch64.LeafBase) give, OA[51:48]
// fields included.
func TestLeafBaseIsFormatLeafOA(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 3))
	for _, gr := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		for _, ds := range []bool{false, true} {
			for _, oa52 := range []bool{false, true} {
				format := desc.Format{Granule: gr, DS: ds, OA52: oa52}
				g := newWalkGeom(walkGeom{format: format, start: 0, ia: 48, ps: 52})
				for level := -1; level <= 3; level++ {
					for i := 0; i < 200; i++ {
						d := rng.Uint64()
						base, lb := g.leafBase(d, level)
						if want := format.LeafOA(d, level); base != want {
							t.Fatalf("%+v level %d d %#x: leafBase %#x, LeafOA %#x", format, level, d, base, want)
						}
						if want := format.LeafBits(level); lb != want || g.leafBits(level) != want {
							t.Fatalf("%+v level %d: leaf bits %d and %d, LeafBits %d", format, level, lb, g.leafBits(level), want)
						}
					}
				}
			}
		}
	}
}

// permBits and Perms are two spellings of the same six permissions.
func TestPermBitsRoundTrip(t *testing.T) {
	for b := permBits(0); b < 64; b++ {
		pm := b.asPerms()
		if got := permBitsOf(pm); got != b {
			t.Fatalf("%06b -> %+v -> %06b", b, pm, got)
		}
		want := Perms{R0: b&1 != 0, W0: b&2 != 0, X0: b&4 != 0, R1: b&8 != 0, W1: b&16 != 0, X1: b&32 != 0}
		if pm != want {
			t.Fatalf("%06b: %+v, want %+v", b, pm, want)
		}
	}
}

// A stage-2 leaf's permissions come from s2Params.perms, indexed by the
// five bits s2PermIndex takes; for any descriptor they must be what
// s2Permissions (AArch64.S2CheckPermissions) computes.
func TestS2PermTableIsS2Permissions(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 4))
	for _, xnx := range []bool{false, true} {
		for _, hd := range []bool{false, true} {
			f := &features{xnx: xnx}
			p := &s2Params{hd: hd}
			tab := s2PermTable(f, p)
			for i := 0; i < 2000; i++ {
				d := desc.S2(rng.Uint64())
				if got, want := tab[s2PermIndex(d)&31], s2Permissions(f, p, d); got != want {
					t.Fatalf("xnx=%v hd=%v d %#x: table %06b, s2Permissions %06b", xnx, hd, uint64(d), got, want)
				}
			}
		}
	}
}

// The walk masks each level's index shift to 6 bits; a shift of 64 or
// more (a level above the granule's first) must come with a zero mask.
func TestWalkGeomWideShiftsHaveZeroMask(t *testing.T) {
	for _, gr := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		for start := -1; start <= 3; start++ {
			for ia := uint(25); ia <= 52; ia++ {
				g := newWalkGeom(walkGeom{format: desc.Format{Granule: gr}, start: start, ia: ia, ps: 48})
				for i, sh := range g.shift {
					if sh >= 64 && g.imask[i] != 0 {
						t.Fatalf("granule %v start %d ia %d: level %d shift %d, mask %#x", gr, start, ia, i-1, sh, g.imask[i])
					}
				}
			}
		}
	}
}
