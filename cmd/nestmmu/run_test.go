package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `nestmmu run` with no file runs the default scenario (shortened here)
// and prints the report's sections with 0 violations.
func TestRunDefault(t *testing.T) {
	code, out, errs := run([]string{"run", "--accesses", "300K"}, "")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	for _, want := range []string{
		"nestmmu run: default", "million per second", "TLB hit", "l2a (L2)", "l2b (L2)",
		"L2 stage 1:", "shadow (L0):", "forwarded to L1", "L1 stage 2 (l1):", "L0 stage 2 (its memory):",
		"guest hypervisors", "l1 (L1, NV2, E2H=1, 2 vCPUs, reverse map on)", "exits to L0 from its virtual EL2",
		"emulated by L0: TLBIs", "reverse map:", "shadow leaves unmapped by host changes",
		"TLB invalidations", "page-table memory", "shadow stage 2s", "shadow stage-2 checks",
		"host memory pressure", "MIPS mips0", "descriptor reads per TLB miss", "0 violations", ": OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if errs != "" {
		t.Errorf("stderr (not a terminal: no progress bar) is %q", errs)
	}
}

func TestRunJSONAndPlots(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := run([]string{"run", "--json", "--plots", dir, "--seed", "3", "--accesses", "200K", "../../examples/trace-replay.yaml"}, "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Seed     uint64
		Accesses struct{ User, Total uint64 }
		Checks   struct {
			IntegrityChecks uint64 `json:"integrity_checks"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Seed != 3 || r.Accesses.User != 200_000 || r.Checks.IntegrityChecks == 0 {
		t.Errorf("report %+v", r)
	}
	for _, f := range []string{"faults", "walks", "cost"} {
		for _, ext := range []string{".svg", ".png"} {
			if st, err := os.Stat(filepath.Join(dir, f+ext)); err != nil || st.Size() < 1000 {
				t.Errorf("%s%s: %v", f, ext, err)
			}
		}
	}
}

// Bad arguments and invalid scenarios exit 2 with one line naming the
// problem (for a scenario: file, line and field).
func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("accesses: 1M\nvms:\n  - guest:\n      granule: 8K\n    processes:\n      - workload: random\n"), 0o644)
	nested := filepath.Join(dir, "nested.yaml")
	os.WriteFile(nested, []byte("accesses: 1M\nvms:\n  - kind: hypervisor\n    vms:\n      - vcpus: 2\n        processes:\n          - workload: random\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", bad}, "bad.yaml:4: vms[0].guest.granule: 8K is not 4K, 16K or 64K"},
		{[]string{"run", nested}, "nested.yaml:5: vms[0].vms[0].vcpus: 2: a VM of a guest hypervisor has one vCPU"},
		{[]string{"run", "a.yaml", "b.yaml"}, `unexpected argument "b.yaml"`},
		{[]string{"run", "--accesses", "lots"}, `--accesses "lots"`},
		{[]string{"run", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
	} {
		code, _, errs := run(c.args, "")
		if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", c.args, code, errs, c.want)
		}
	}
	if code, out, _ := run([]string{"run", "-h"}, ""); code != 0 {
		t.Errorf("-h: exit %d %s", code, out)
	}
}
