package conform

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// TestGenerateDeterministic checks that a case depends only on the seed
// and its index.
func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(7, 40), Generate(7, 40)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Generate(7, 40) differs between two calls")
	}
	if one := GenerateOne(7, 33); !reflect.DeepEqual(one, a[33]) {
		t.Errorf("GenerateOne(7, 33) differs from Generate(7, 40)[33]")
	}
	if reflect.DeepEqual(Generate(8, 5), a[:5]) {
		t.Errorf("seeds 7 and 8 give the same cases")
	}
}

// walkReads runs c on the model with tracing and calls f for every
// descriptor read.
func walkReads(t *testing.T, c *qemu.Case, f func(op int, s vmsa.Step)) {
	t.Helper()
	m, err := atjson.Parse(bytes.NewReader(MarshalCase(c)))
	if err != nil {
		t.Fatalf("model rejects generated case: %v", err)
	}
	m.Run(func(i int, _ atjson.Op, _ at.Result, tr *vmsa.Trace) {
		for _, s := range tr.Steps {
			f(i, s)
		}
	})
}

// TestGeneratedCasesKeepTheOracleMemoryMap checks the oracle's rules for
// every generated case: words and watched words are aligned words of case
// RAM, and every descriptor any walk reads is in case RAM or in an abort
// range (never flash, devices, or the runner's reserved RAM). It also
// checks that operations never change a protected word and that a case
// with SCTLR_EL2.M=1 maps RunnerCodePage as the contract requires.
func TestGeneratedCasesKeepTheOracleMemoryMap(t *testing.T) {
	cr := qemu.CaseRAM()
	n := 600
	if testing.Short() {
		n = 150
	}
	kinds := map[string]int{}
	for _, c := range Generate(11, n) {
		kinds[c.Kind]++
		for a := range c.Q.Mem {
			if a%8 != 0 || !cr.Contains(a, 8) {
				t.Fatalf("case %s: word %#x outside case RAM", c.ID, a)
			}
		}
		for _, a := range c.Q.Watch {
			if a%8 != 0 || !cr.Contains(a, 8) || c.Protected[a] {
				t.Fatalf("case %s: watched word %#x not allowed", c.ID, a)
			}
		}
		walkReads(t, &c.Q, func(op int, s vmsa.Step) {
			ok := cr.Contains(s.PA, 8)
			for _, r := range qemu.AbortRanges() {
				ok = ok || r.Contains(s.PA, 8)
			}
			if !ok {
				t.Fatalf("case %s op %d: walk reads %#x, outside case RAM and the abort ranges", c.ID, op, s.PA)
			}
		})
		mr, err := RunModel(&c.Q)
		if err != nil {
			t.Fatal(err)
		}
		_ = mr
		if c.Q.Regs["SCTLR_EL2"]&sctlrM == 0 {
			continue
		}
		if len(c.Protected) == 0 {
			t.Fatalf("case %s: SCTLR_EL2.M=1 without a protected runner mapping", c.ID)
		}
		// The runner's fetch: AT S1E2R on RunnerCodePage gives the
		// identity, Normal memory, with AF already set.
		probe := cloneCase(&c.Q)
		probe.Ops = []qemu.Op{{Name: "S1E2R", VA: qemu.RunnerCodePage}, {Name: "S1E2R", VA: qemu.RunnerCodePage + 0xffc}}
		probe.Ops = append(c.Q.Ops, probe.Ops...)
		pr, err := RunModel(&probe)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pr.Results[len(c.Q.Ops):] {
			if r.Taken || r.PAR&1 != 0 || r.PAR.PA() != qemu.RunnerCodePage || r.PAR.ATTR()>>4 == 0 {
				t.Fatalf("case %s: runner page translates to %#x (%s)", c.ID, uint64(r.PAR), describeModelFull(r))
			}
		}
		after, err := atjson.Parse(bytes.NewReader(MarshalCase(&probe)))
		if err != nil {
			t.Fatal(err)
		}
		after.Run(nil)
		for a := range c.Protected {
			if v, _ := after.Mem.Read64(memPA(a)); v != c.Q.Mem[a] {
				t.Fatalf("case %s: protected word %#x changed from %#x to %#x", c.ID, a, c.Q.Mem[a], v)
			}
		}
	}
	for _, k := range []string{"el10-s1", "el10-s12", "el2", "el20"} {
		if kinds[k] == 0 {
			t.Errorf("no %s case in %d", k, n)
		}
	}
}

// TestCaseRoundTrip checks MarshalCase and ParseCase against each other.
func TestCaseRoundTrip(t *testing.T) {
	for _, c := range Generate(3, 30) {
		got, err := ParseCase(bytes.NewReader(MarshalCase(&c.Q)))
		if err != nil {
			t.Fatalf("case %s: %v", c.ID, err)
		}
		want := c.Q
		if len(want.Watch) == 0 {
			want.Watch = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %s: round trip\n got %+v\nwant %+v", c.ID, got, want)
		}
	}
}

// TestParseCaseErrors checks that documents the oracle cannot run are
// rejected with the bad value named.
func TestParseCaseErrors(t *testing.T) {
	base := `"mem": {}, "regs": {}, "ops": [{"op": "S1E1R", "va": "0x0"}]`
	for _, tc := range []struct{ doc, want string }{
		{`{"ram": [{"base": "0x0", "size": "0x1000"}], ` + base + `}`, "not QEMU's"},
		{`{"ram": [{"base": "0x40000000", "size": "0x10000000"}], "pstate": {"el": 1}, ` + base + `}`, "EL2 only"},
		{`{"ram": [{"base": "0x40000000", "size": "0x10000000"}], "regs": {"FOO": "1"}, "ops": []}`, "FOO"},
		{`{"ram": [], "ops": []}`, "ram"},
		{`not json`, "JSON"},
	} {
		_, err := ParseCase(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCase(%s) = %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

// FuzzParseCase checks that ParseCase never panics and that what it
// accepts survives MarshalCase.
func FuzzParseCase(f *testing.F) {
	for _, c := range Generate(5, 4) {
		f.Add(MarshalCase(&c.Q))
	}
	f.Add([]byte(`{"ram":[{"base":"0x40000000","size":"0x10000000"}],"ops":[{"op":"at s1e1r","va":"12"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCase(bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, err := ParseCase(bytes.NewReader(MarshalCase(&c))); err != nil {
			t.Fatalf("re-parsing an accepted case: %v", err)
		}
	})
}

// BenchmarkGenerate measures case generation.
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		GenerateOne(1, i)
	}
}

// BenchmarkRunModel measures the model side of a comparison (at-json
// round trip and evaluation).
func BenchmarkRunModel(b *testing.B) {
	cs := Generate(1, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := RunModel(&cs[i%len(cs)].Q); err != nil {
			b.Fatal(err)
		}
	}
}
