package atjson_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/atjson"
)

// TestSpecExample runs the contract's own example (docs/AT-JSON.md)
// and checks the values the spec text gives: PAR 0xff00000040001b80 (ATTR
// 0xff, inner shareable, NS=1), 0x81f (permission fault level 3), 0xff00000040002b80
// (AF set by HA), 0x80f (translation fault level 3); watched descriptor 0x40002743.
func TestSpecExample(t *testing.T) {
	f, err := os.Open("../testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := atjson.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := m.Run(nil)
	want := []struct{ op, va, par, fault string }{
		{"S1E1R", "0x0000000000001234", "0xff00000040001b80", ""},
		{"S1E0R", "0x0000000000001234", "0x000000000000081f", "permission level 3"},
		{"S1E1R", "0x0000000000002010", "0xff00000040002b80", ""},
		{"S1E1W", "0x0000000000003000", "0x000000000000080f", "translation level 3"},
	}
	if len(out.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(out.Results), len(want))
	}
	for i, w := range want {
		r := out.Results[i]
		if r.Op != w.op || r.VA != w.va || r.PAR != w.par || r.Fault != w.fault || r.Exception != "" {
			t.Errorf("result %d = %+v, want %+v", i, r, w)
		}
	}
	if got := out.Mem["0x44002010"]; got != "0x0000000040002743" {
		t.Errorf("watched word = %q, want 0x0000000040002743", got)
	}
	// The output is the contract's JSON shape.
	js, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"results"`, `"mem"`, `"par"`, `"op"`, `"va"`, `"fault"`} {
		if !bytes.Contains(js, []byte(key)) {
			t.Errorf("output JSON lacks %s: %s", key, js)
		}
	}
}

func TestExplain(t *testing.T) {
	data, err := os.ReadFile("../testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := atjson.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	out := m.Explain(&b)
	s := b.String()
	for _, frag := range []string{"stage 1 level 1", "stage 1 level 3", "0x44002010", "permission", "translation"} {
		if !strings.Contains(s, frag) {
			t.Errorf("explanation lacks %q:\n%s", frag, s)
		}
	}
	if len(out.Results) != 4 {
		t.Errorf("%d results", len(out.Results))
	}
}

const base = `{"ram": [{"base": "0x40000000", "size": "0x1000000"}], %s "ops": [{"op": "S1E1R", "va": "0x1000"}]}`

func doc(extra string) string { return strings.Replace(base, "%s", extra, 1) }

func TestInvalidInputs(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // must appear in the error
	}{
		{"unknown key", doc(`"regz": {},`), "regz"},
		{"unknown register", doc(`"regs": {"TCR_EL3": "0x0"},`), "TCR_EL3"},
		{"misaligned mem address", doc(`"mem": {"0x40000004": "0x1"},`), "0x40000004"},
		{"mem outside RAM", doc(`"mem": {"0x80000000": "0x1"},`), "0x80000000"},
		{"bad number in mem", doc(`"mem": {"0x40000000": "0xzz"},`), "0xzz"},
		{"bad mem key", doc(`"mem": {"forty": "0x1"},`), "forty"},
		{"bad register value", doc(`"regs": {"TCR_EL1": "12abc"},`), "12abc"},
		{"number too large", doc(`"regs": {"TCR_EL1": "0x10000000000000000"},`), "0x10000000000000000"},
		{"pstate.el=3", doc(`"pstate": {"el": 3},`), "3"},
		{"pstate.el=0", doc(`"pstate": {"el": "0"},`), "0"},
		{"pstate.pan=2", doc(`"pstate": {"pan": 2},`), "2"},
		{"unknown op", `{"ram": [{"base": "0x40000000", "size": "0x1000"}], "ops": [{"op": "S1E3R", "va": "0x0"}]}`, "S1E3R"},
		{"bad va", `{"ram": [{"base": "0x40000000", "size": "0x1000"}], "ops": [{"op": "S1E1R", "va": "-1"}]}`, "-1"},
		{"watch outside RAM", doc(`"watch": ["0x50000000"],`), "0x50000000"},
		{"watch misaligned", doc(`"watch": ["0x40000001"],`), "0x40000001"},
		{"no RAM", `{"ram": [], "ops": []}`, "ram"},
		{"RAM misaligned", `{"ram": [{"base": "0x40000004", "size": "0x1000"}]}`, "0x40000004"},
		{"trailing data", doc(``) + `{}`, "trailing data after the document"},
		{"not JSON", `{"ram": [`, "JSON"},
		{"unknown key in pstate", doc(`"pstate": {"el": 2, "sp": 1},`), "sp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := atjson.Parse(strings.NewReader(c.in))
			if err == nil {
				t.Fatalf("accepted %s", c.in)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

// TestStateCarriesAcrossOps: PAR_EL1 given in regs is the value before the
// first op; an op that takes an exception leaves PAR as it was, and HA
// updates of one op are seen by the next.
func TestStateCarriesAcrossOps(t *testing.T) {
	in := `{"ram": [{"base": "0x40000000", "size": "0x1000000"}],
	 "mem": {"0x40000000": "0x40001003", "0x40001000": "0x40002003", "0x40002008": "0x40003303"},
	 "regs": {"HCR_EL2": "0x80000000", "SCTLR_EL1": "0x5", "TCR_EL1": "0x8000000019", "TTBR0_EL1": "0x40000000", "MAIR_EL1": "0xff"},
	 "pstate": {"el": 1},
	 "ops": [{"op": "S1E2R", "va": "0x1000"}, {"op": "S1E1R", "va": "0x1000"}, {"op": "S1E1R", "va": "0x1000"}],
	 "watch": ["0x40002008"]}`
	m, err := atjson.Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	out, res := m.Run(nil)
	if out.Results[0].Exception == "" || out.Results[0].PAR != "" || !res[0].Taken {
		t.Errorf("S1E2R at EL1: %+v, want an exception", out.Results[0])
	}
	// HA=1 (TCR bit 39): the first S1E1R sets AF; both succeed. 4K, T0SZ=25,
	// start level 1: L1[0] -> L2[0] -> L3[1] page 0x40003000 SH=11.
	for i := 1; i < 3; i++ {
		if out.Results[i].PAR != "0xff00000040003b80" {
			t.Errorf("result %d = %+v", i, out.Results[i])
		}
	}
	if out.Mem["0x40002008"] != "0x0000000040003703" {
		t.Errorf("watched = %s, want AF set", out.Mem["0x40002008"])
	}
	// Every register the contract names is accepted, and the list is sorted.
	names := atjson.RegisterNames()
	have := map[string]bool{}
	for i, n := range names {
		have[n] = true
		if i > 0 && names[i-1] >= n {
			t.Errorf("RegisterNames not sorted: %v", names)
		}
	}
	for _, n := range []string{"HCR_EL2", "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1", "VTCR_EL2", "VTTBR_EL2",
		"SCTLR_EL2", "TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2", "ID_AA64MMFR0_EL1", "ID_AA64MMFR1_EL1", "ID_AA64MMFR2_EL1"} {
		if !have[n] {
			t.Errorf("RegisterNames lacks %s: %v", n, names)
		}
	}
}
