package report

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() *Report {
	r := &Report{Scenario: "t", Seed: 3, Elapsed: 2,
		Accesses: Accesses{Target: 1000, User: 900, Kernel: 300, MIPS: 100, Total: 1300, PerSecond: 650, UserPerSecond: 500},
		VMs: []VM{{Name: "vm0", Level: 1, VCPUs: 2, Granule: 4096, Levels: 4, Stage2Levels: 3, UserAccesses: 900,
			TLBHits: 1100, Walks: 100, HitRate: 0.9166, UserWalks: 90, UserHitRate: 0.9, DescRead: 1900, ReadsPerWalk: 19,
			Guest:  GuestFaults{DemandZero: 3, DemandPage: 5, COWCopy: 2, Total: 10, Forks: 1},
			Stage2: S2Faults{Maps: 7, BlockMaps: 2, Total: 7}, MMIO: 1, Exits: 8,
			TLBIs: TLBIs{"VALE1IS": 2, "ASIDE1IS": 1}, PTBytes: PTBytes{Stage1: 16384, Stage1Peak: 20480, Stage2: 8192}}},
		MIPS:      []MIPS{{Name: "m", GVATables: true, UserAccesses: 100, Accesses: 130, FastRefills: 9}},
		Host:      Host{CPUs: 2, TLBIs: TLBIs{"IPAS2E1IS": 4}, Pressure: map[string]uint64{"swap_out": 2}},
		WalkReads: []uint64{0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 90},
		Checks:    Checks{IntegrityChecks: 500, InvariantChecks: 40},
		Timeline:  []Sample{{Seconds: 0}, {Seconds: 1, Accesses: 600, User: 400, Walks: 50, Reads: 900, Faults: 5}, {Seconds: 2, Accesses: 1300, User: 1000, Walks: 100, Reads: 1900, Faults: 10, S2Faults: 7}},
	}
	return r
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"1,300 guest accesses in 2.00 s", "vm0 (L1)", "90.0% / 91.7%", "demand 8 (zero page 3)", "map 7 (blocks 2)",
		"ASIDE1IS 1, VALE1IS 2", "guest stage 1 16K (peak 20K), L0 stage 2 8K", "MIPS m (GVA page tables",
		"    19 |########################################  90.0%  90", "     4 |####", "0 violations: OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	r := sample()
	r.Checks.IntegrityViolations, r.Checks.First = 1, []string{"pid 1 read 5, want 6"}
	b.Reset()
	r.WriteText(&b)
	if !strings.Contains(b.String(), "FAILED") || !strings.Contains(b.String(), "pid 1 read 5, want 6") {
		t.Errorf("a violation is not shown:\n%s", b.String())
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Accesses != sample().Accesses || back.VMs[0].Stage2 != sample().VMs[0].Stage2 || len(back.WalkReads) != 20 {
		t.Errorf("JSON round trip: %+v", back)
	}
}

// The plots are written as SVG and PNG files that decode.
func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	files, err := sample().WritePlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 6 {
		t.Fatalf("files %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(f) {
		case ".png":
			if _, err := png.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		case ".svg":
			if !bytes.Contains(data, []byte("<svg")) {
				t.Errorf("%s is not SVG", f)
			}
		}
	}
	// An empty report still draws.
	if _, err := (&Report{}).WritePlots(t.TempDir()); err != nil {
		t.Errorf("empty report: %v", err)
	}
}

func TestComparison(t *testing.T) {
	c := &Comparison{Variant: "v", Doc: "d", Sides: [2]string{"a", "b"}, Rows: []CompareRow{
		{"x", 10, 20, Ratio(10, 20)}, {"y", 0, 5, Ratio(0, 5)}}}
	if c.Rows[0].Ratio != 2 || !math.IsNaN(c.Rows[1].Ratio) {
		t.Fatalf("ratios %+v", c.Rows)
	}
	var b bytes.Buffer
	if err := c.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "b / a") || !strings.Contains(b.String(), "2.000") {
		t.Errorf("comparison text:\n%s", b.String())
	}
	files, err := WriteComparisonPlots([]*Comparison{c}, t.TempDir())
	if err != nil || len(files) != 2 {
		t.Errorf("plots %v %v", files, err)
	}
}

// The fault breakdown of a VM of a guest hypervisor: its stage-2 columns
// are L0's shadow faults, with those forwarded to the guest hypervisor and
// what it mapped beside them.
func TestFaultCountsNested(t *testing.T) {
	v := VM{MMIO: 3, Guest: GuestFaults{DemandPage: 5}, Nested: &NestedVM{
		L0:         ShadowFaults{Faults: 20, Installed: 11, Forwarded: 7, AccessFlag: 2},
		Hypervisor: HypervisorWork{Maps: 6}}}
	want := map[string]float64{"demand": 5, "S2 map": 11, "S2 AF": 2, "to hypervisor": 7, "its S2 map": 6, "MMIO": 3}
	c := v.faultCounts()
	if len(c) != len(faultKinds) {
		t.Fatalf("%d counts for %d kinds", len(c), len(faultKinds))
	}
	for i, k := range faultKinds {
		if c[i] != want[k] {
			t.Errorf("%s: %v, want %v", k, c[i], want[k])
		}
	}
}
