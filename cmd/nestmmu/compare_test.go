package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCompareBlocks(t *testing.T) {
	code, out, errs := run([]string{"compare", "--json", "--variants", "blocks", "--accesses", "150K", "../../examples/blocks.yaml"}, "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var cs []struct {
		Variant string
		Rows    []struct {
			Metric string
			A, B   float64
			Ratio  *float64
		}
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(cs) != 1 || cs[0].Variant != "blocks" {
		t.Fatalf("comparisons %+v", cs)
	}
	seen := false
	for _, r := range cs[0].Rows {
		if strings.HasPrefix(r.Metric, "stage-2 faults") && (r.Ratio == nil || *r.Ratio <= 1) {
			t.Errorf("pages over blocks: stage-2 faults %v -> %v: blocks should need fewer", r.A, r.B)
		}
		seen = seen || strings.HasPrefix(r.Metric, "stage-2 faults")
	}
	if !seen {
		t.Errorf("no stage-2 faults row in %+v", cs[0].Rows)
	}
}

func TestCompareBadVariants(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", "--variants", "nope"}, `unknown variant "nope"`},
		{[]string{"compare", "--variants", "mips-gva", "../../examples/blocks.yaml"}, "no MIPS guest"},
	} {
		code, _, errs := run(c.args, "")
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q", c.args, code, errs)
		}
	}
}
