package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func run(args []string, stdin string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// The contract's own example and the values docs/AT-JSON.md states
// QEMU 10.0 gives (PAR.NS is UNKNOWN: QEMU's NS=1 is what we report).
func TestATSpecExample(t *testing.T) {
	code, out, errs := run([]string{"at", "--json", "../../testdata/spec-example.json"}, "")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var got struct {
		Results []struct{ Op, VA, PAR, Fault, Exception string }
		Mem     map[string]string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := []string{"0xff00000040001b80", "0x000000000000081f", "0xff00000040002b80", "0x000000000000080f"}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(got.Results), len(want))
	}
	for i, w := range want {
		if got.Results[i].PAR != w {
			t.Errorf("op %d (%s %s): par %s, want %s", i, got.Results[i].Op, got.Results[i].VA, got.Results[i].PAR, w)
		}
	}
	if got.Results[0].Fault != "" || got.Results[1].Fault == "" {
		t.Errorf("fault fields: %+v", got.Results)
	}
	if got.Mem["0x44002010"] != "0x0000000040002743" {
		t.Errorf("watched descriptor %q, want 0x0000000040002743 (AF set by HA)", got.Mem["0x44002010"])
	}
}

func TestInvalidInputExits2WithOneLine(t *testing.T) {
	cases := map[string]string{
		"unknown key":      `{"ram":[{"base":"0x0","size":"0x1000"}],"bogus":1}`,
		"unknown register": `{"ram":[{"base":"0x0","size":"0x1000"}],"regs":{"TCR_EL3":"0"}}`,
		"bad number":       `{"ram":[{"base":"0xzz","size":"0x1000"}]}`,
		"bad op":           `{"ram":[{"base":"0x0","size":"0x1000"}],"ops":[{"op":"S1E3R","va":"0"}]}`,
		"not json":         `{`,
		"nested mode":      `{"ram":[{"base":"0x0","size":"0x1000"}],"nested":{"mode":"NV3"}}`,
		"nested pstate":    `{"ram":[{"base":"0x0","size":"0x1000"}],"pstate":{"el":1},"nested":{}}`,
		// L1's HCR_EL2.TGE=1: the model cannot enter L2 (an illegal return).
		"nested TGE": `{"ram":[{"base":"0x0","size":"0x1000"}],"regs":{"HCR_EL2":"0x408000000"},"nested":{"accesses":[{"va":"0","access":"read"}]}}`,
	}
	for name, in := range cases {
		for _, cmd := range []string{"at", "explain"} {
			code, _, errs := run([]string{cmd, "--json", "-"}, in)
			if code != 2 {
				t.Errorf("%s %s: exit %d, want 2", cmd, name, code)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") != 0 || errs == "" {
				t.Errorf("%s %s: stderr is not one line: %q", cmd, name, errs)
			}
		}
	}
	if code, _, _ := run([]string{"at"}, ""); code != 2 {
		t.Errorf("at without --json: exit %d, want 2", code)
	}
	if code, _, _ := run([]string{"nosuch"}, ""); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestExplainShowsSteps(t *testing.T) {
	code, out, _ := run([]string{"explain", "--json", "../../testdata/spec-example.json"}, "")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"stage 1 level 1: descriptor at PA 0x44000000", "level 3: descriptor at PA 0x44002018 = 0x0000000000000000: invalid", "stopped: translation level 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q", want)
		}
	}
}

// Bad conform arguments are refused before QEMU is looked for, with one
// line naming the bad value.
func TestConformBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"conform", "--cases", "-3"}, "--cases -3"},
		{[]string{"conform", "--instances", "-1"}, "--instances -1"},
		{[]string{"conform", "extra"}, `"extra"`},
	} {
		code, _, errs := run(c.args, "")
		if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", c.args, code, errs, c.want)
		}
	}
}
