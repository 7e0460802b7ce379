package sim

import (
	"testing"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
)

// variantRuns runs an example both ways of variant name (once for a
// variant that measures both sides in one run) and returns side A's and
// side B's reports.
func variantRuns(t *testing.T, name, example string, accesses uint64) [2]*report.Report {
	t.Helper()
	v, ok := FindVariant(name)
	if !ok {
		t.Fatalf("no variant %q", name)
	}
	var rs [2]*report.Report
	for side := 0; side < 2; side++ {
		if v.OneRun && side == 0 {
			continue
		}
		rs[side] = shortRun(t, example, accesses, func(s *scenario.Scenario) {
			if err := v.Apply(s, side); err != nil {
				t.Fatal(err)
			}
		})
	}
	if v.OneRun {
		rs[0] = rs[1]
	}
	return rs
}

// metric reads a variant's figure for a side, by name.
func metric(t *testing.T, name, metric string, r *report.Report, side int) float64 {
	t.Helper()
	v, _ := FindVariant(name)
	for _, m := range v.Metrics {
		if m.Name == metric {
			return m.Get(r, side)
		}
	}
	t.Fatalf("variant %s has no metric %q", name, metric)
	return 0
}

// Shadow stage 2 against the three-stage walk, four levels everywhere:
// through the shadow a TLB miss reads at most (4+1)(4+1)-1 = 24
// descriptors; the three stages read more for the same misses, at most
// (4+1)(4+1)(4+1)-1 = 124.
func TestThreeStageVariant(t *testing.T) {
	figuresOnly(t)
	const v = "three-stage"
	rs := variantRuns(t, v, "../examples/three-stage.yaml", accessesFor(t, 300_000, 100_000))
	r := rs[1]
	walks := metric(t, v, "L2 TLB misses walked", r, 0)
	if walks == 0 || metric(t, v, "L2 TLB misses walked", r, 1) != walks {
		t.Fatalf("misses walked: shadow %v, three-stage %v", walks, metric(t, v, "L2 TLB misses walked", r, 1))
	}
	shadow, three := metric(t, v, "descriptor reads per miss", r, 0), metric(t, v, "descriptor reads per miss", r, 1)
	if shadow <= 0 || shadow > 24 || three <= shadow*2 {
		t.Errorf("reads per miss: shadow %.1f (want at most 24), three-stage %.1f (want well above)", shadow, three)
	}
	if l := metric(t, v, "longest walk (descriptor reads)", r, 0); l > 24 {
		t.Errorf("longest shadow walk %v reads, more than 24", l)
	}
	if l := metric(t, v, "longest walk (descriptor reads)", r, 1); l > 124 || l <= 24 {
		t.Errorf("longest three-stage walk %v reads, want in (24, 124]", l)
	}
}

// Under host pressure, L0's reverse map sends each host change to the
// shadow leaves derived from it: fewer leaves unmapped than emptying every
// shadow whole, and no whole shadow emptied.
func TestRmapVariant(t *testing.T) {
	figuresOnly(t)
	const v = "rmap"
	rs := variantRuns(t, v, "../examples/rmap.yaml", accessesFor(t, 400_000, 300_000))
	on, off := metric(t, v, "shadow leaves unmapped by host changes", rs[0], 0), metric(t, v, "shadow leaves unmapped by host changes", rs[1], 1)
	if off == 0 || on >= off {
		t.Errorf("shadow leaves unmapped: with the reverse map %v, without %v", on, off)
	}
	if c := metric(t, v, "whole shadows emptied by host changes", rs[0], 0); c != 0 {
		t.Errorf("%v whole shadows emptied with the reverse map", c)
	}
	if c := metric(t, v, "whole shadows emptied by host changes", rs[1], 1); c == 0 {
		t.Error("no whole shadow emptied without the reverse map")
	}
	if b := metric(t, v, "reverse-map bytes", rs[0], 0); b == 0 {
		t.Error("reverse map of 0 bytes")
	}
}

// FEAT_NV traps every EL2 register access of the guest hypervisor, NV2
// turns most into loads and stores of the VNCR page: fewer exits per world
// switch, and ERETs trap in both.
func TestNVNV2Variant(t *testing.T) {
	figuresOnly(t)
	const v = "nv-nv2"
	rs := variantRuns(t, v, "../examples/nested-nv.yaml", accessesFor(t, 300_000, 100_000))
	nv, nv2 := metric(t, v, "exits per world switch", rs[0], 0), metric(t, v, "exits per world switch", rs[1], 1)
	if nv2 <= 0 || nv <= 2*nv2 {
		t.Errorf("exits per world switch: NV %.1f, NV2 %.1f", nv, nv2)
	}
	if s := metric(t, v, "  register-access traps", rs[0], 0); s <= metric(t, v, "  register-access traps", rs[1], 1) {
		t.Errorf("register-access traps: NV %v, NV2 %v", s, metric(t, v, "  register-access traps", rs[1], 1))
	}
	for side := 0; side < 2; side++ {
		if metric(t, v, "  ERET traps", rs[side], side) == 0 {
			t.Errorf("%s: no ERET trap", [2]string{"NV", "NV2"}[side])
		}
	}
}
