package atjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Regression tests for the hostile inputs of issue 9: each was accepted,
// mis-applied or badly reported before the parser was made strict.

const ram1 = `"ram": [{"base": "0x40000000", "size": "0x1000000"}]`

func parseString(s string) (*Document, error) { return ParseDocumentBytes([]byte(s)) }

func TestTrailingDataIsRejected(t *testing.T) {
	for _, tail := range []string{"}", "]]]", " {}", "\n\n  x", `"more"`, "0"} {
		_, err := parseString(`{` + ram1 + `}` + tail)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "trailing data") {
			t.Errorf("trailing %q: %v, want a syntax error about trailing data", tail, err)
		}
	}
	// Whitespace after the document is not data.
	if _, err := parseString(`{` + ram1 + "}\n \t\r\n"); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
}

func TestDuplicateKeysAreRejected(t *testing.T) {
	cases := []struct{ name, in, path string }{
		{"top level", `{` + ram1 + `, ` + ram1 + `}`, ``},
		{"regs", `{` + ram1 + `, "regs": {"TCR_EL1": "1", "TCR_EL1": "2"}}`, `regs: `},
		{"mem", `{` + ram1 + `, "mem": {"0x40000000": "1", "0x40000000": "2"}}`, `mem: `},
		{"pstate", `{` + ram1 + `, "pstate": {"el": 2, "el": 1}}`, `pstate: `},
		{"ops entry", `{` + ram1 + `, "ops": [{"op": "S1E1R", "va": "0", "va": "1"}]}`, `ops[0]: `},
		{"ram entry", `{"ram": [{"base": "0", "base": "8", "size": "8"}]}`, `ram[0]: `},
	}
	for _, c := range cases {
		_, err := parseString(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), c.path+"duplicate key") {
			t.Errorf("%s: %v, want %q...", c.name, err, c.path+"duplicate key")
		}
	}
}

// Two keys for one address in different notations used to be applied in
// string-sort order; now they are an error naming both.
func TestSameMemAddressTwoNotations(t *testing.T) {
	for _, pair := range [][2]string{{"0x40000000", "1073741824"}, {"0x40000008", "0X40000008"}, {"0x40000010", "0x0040000010"}} {
		in := fmt.Sprintf(`{%s, "mem": {%q: "0x1", %q: "0x2"}}`, ram1, pair[0], pair[1])
		_, err := parseString(in)
		if err == nil || !strings.Contains(err.Error(), pair[0]) || !strings.Contains(err.Error(), pair[1]) {
			t.Errorf("%v: %v, want an error naming both keys", pair, err)
		}
	}
}

// A huge bad value is named by its path and quoted as a short prefix.
func TestErrorsQuoteAShortPrefix(t *testing.T) {
	big := strings.Repeat("z", 10<<20)
	for _, in := range []string{
		`{` + ram1 + `, "regs": {"TCR_EL1": "` + big + `"}}`,
		`{` + ram1 + `, "regs": {"` + big + `": "1"}}`,
		`{` + ram1 + `, "mem": {"` + big + `": "1"}}`,
		`{` + ram1 + `, "ops": [{"op": "` + big + `", "va": "0"}]}`,
		`{` + ram1 + `, "` + big + `": 1}`,
	} {
		_, err := parseString(in)
		if err == nil {
			t.Fatal("accepted")
		}
		if len(err.Error()) > 400 || !strings.Contains(err.Error(), "(10485760 bytes)") {
			t.Errorf("error is %d bytes: %.200s", len(err.Error()), err)
		}
	}
}

// Errors name JSON paths, never Go types.
func TestErrorsNameJSONPaths(t *testing.T) {
	cases := []struct{ in, prefix string }{
		{`{` + ram1 + `, "ops": [{"op": 5, "va": "0"}]}`, "ops[0].op: want a string, found a number"},
		{`{` + ram1 + `, "ops": [{"op": "S1E1R", "va": "0"}, {"op": "S1E1R", "va": true}]}`, "ops[1].va: want a number"},
		{`{` + ram1 + `, "ops": [{"op": "S1E1R"}]}`, `ops[0]: want both "op" and "va"`},
		{`{` + ram1 + `, "ops": {}}`, "ops: want an array, found an object"},
		{`{"ram": [{"base": [], "size": "8"}]}`, "ram[0].base: want a number"},
		{`{` + ram1 + `, "regs": {"TCR_EL1": {}}}`, "regs.TCR_EL1: want a number"},
		{`{` + ram1 + `, "mem": {"0x40000000": -1}}`, `mem["0x40000000"]: "-1" is not a non-negative integer`},
		{`{` + ram1 + `, "pstate": {"el": 1.5}}`, `pstate.el: "1.5" is not a non-negative integer`},
		{`{` + ram1 + `, "watch": ["0x40000000", "x"]}`, `watch[1]: "x" is not`},
		{`[]`, "the document want"},
		{`{"mem": {}}`, "ram: missing"},
	}
	for _, c := range cases {
		_, err := parseString(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), c.prefix) {
			t.Errorf("%s:\n got  %v\n want %s...", c.in, err, c.prefix)
			continue
		}
		for _, goName := range []string{"Go ", "struct", "OpIn", "json:", "RawMessage", "uint64"} {
			if strings.Contains(err.Error(), goName) {
				t.Errorf("error %q names a Go type (%s)", err, goName)
			}
		}
	}
}

func TestByteOrderMarkAccepted(t *testing.T) {
	data, err := os.ReadFile("../testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDocumentBytes(append([]byte{0xef, 0xbb, 0xbf}, data...))
	if err != nil {
		t.Fatalf("with a BOM: %v", err)
	}
	if len(d.Ops) != 4 {
		t.Errorf("%d ops", len(d.Ops))
	}
	// Only a leading BOM: one after the document is data.
	if _, err := ParseDocumentBytes(append(data, 0xef, 0xbb, 0xbf)); err == nil {
		t.Error("a trailing BOM was accepted")
	}
}

// Limits on ops, RAM ranges, memory words and watched words are enforced
// where the list is read (at the first element over), shown here with
// small limits; the real limits are the exported constants.
func TestLimits(t *testing.T) {
	lim := limits{input: 1 << 20, ram: 3, mem: 3, ops: 3, watch: 3}
	list := func(n int, f func(i int) string) string {
		var b []string
		for i := 0; i < n; i++ {
			b = append(b, f(i))
		}
		return strings.Join(b, ",")
	}
	ramN := func(n int) string {
		return `"ram": [` + list(n, func(i int) string { return fmt.Sprintf(`{"base": "%d", "size": "8"}`, 16*i) }) + `]`
	}
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"ram at limit", `{` + ramN(3) + `}`, "", true},
		{"ram over", `{` + ramN(4) + `}`, "ram: more than 3 RAM ranges (the limit)", false},
		{"mem over", `{` + ramN(1) + `, "mem": {"0": "1", "8": "1", "16": "1", "24": "1"}}`, "mem: more than 3 words (the limit)", false},
		{"ops over", `{` + ramN(1) + `, "ops": [` + list(4, func(int) string { return `{"op": "S1E1R", "va": "0"}` }) + `]}`, "ops: more than 3 operations (the limit)", false},
		{"watch over", `{` + ramN(3) + `, "watch": ["0", "16", "32", "0"]}`, "watch: more than 3 watched words (the limit)", false},
	}
	for _, c := range cases {
		_, err := parseDocument(strings.NewReader(c.in), lim)
		if c.ok != (err == nil) || err != nil && err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Input size: one byte over says so (it used to be truncated and
	// reported as "unexpected EOF").
	over := strings.NewReader(`{` + ramN(1) + `}` + strings.Repeat(" ", 1<<20))
	_, err := parseDocument(over, lim)
	if err == nil || !strings.Contains(err.Error(), "input exceeds the 1 MiB limit") {
		t.Errorf("oversized input: %v", err)
	}
}

// The real 256 MiB limit, with a reader that never holds the input.
func TestInputLimitReal(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 256 MiB")
	}
	r := io.MultiReader(strings.NewReader(`{`+ram1+`}`), io.LimitReader(spaces{}, MaxInputBytes))
	_, err := ParseDocument(r)
	if err == nil || !strings.Contains(err.Error(), "input exceeds the 256 MiB limit") {
		t.Errorf("%v", err)
	}
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// Memory use is in proportion to the input: parsing and running a
// document of n operations allocates a bounded number of bytes per input
// byte (3M operations used 2.25 GB before), and a document one over
// MaxOps is refused.
func TestMemoryInProportion(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	var b bytes.Buffer
	b.WriteString(`{` + ram1 + `, "ops": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"op":"S1E1R","va":"0x%x"}`, i*8)
	}
	b.WriteString(`]}`)
	in := b.Bytes()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := Parse(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Encode(io.Discard); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	perByte := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(in))
	t.Logf("%d ops, %d input bytes: %.1f bytes allocated per input byte", n, len(in), perByte)
	if perByte > 40 {
		t.Errorf("%.1f bytes allocated per input byte; want at most 40", perByte)
	}
	if len(m.Ops) != n {
		t.Errorf("%d ops", len(m.Ops))
	}
}

func TestTooManyOpsReal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 27 MB document")
	}
	var b bytes.Buffer
	b.WriteString(`{` + ram1 + `, "ops": [`)
	for i := 0; i <= MaxOps; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"op":"S1E1R","va":"0"}`)
	}
	b.WriteString(`]}`)
	start := time.Now()
	_, err := ParseDocumentBytes(b.Bytes())
	if err == nil || err.Error() != "ops: more than 1000000 operations (the limit)" {
		t.Errorf("%v", err)
	}
	t.Logf("refused %d ops in %v", MaxOps+1, time.Since(start))
}

// 100,000 RAM ranges and as many watched words parse in well under a
// second now that InRAM is a binary search (it took 15 s).
func TestManyRAMRanges(t *testing.T) {
	n := MaxRAMRanges
	if testing.Short() {
		n = 10_000
	}
	var b bytes.Buffer
	b.WriteString(`{"ram": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"base":"0x%x","size":"0x1000"}`, i*0x2000)
	}
	b.WriteString(`], "watch": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"0x%x"`, i*0x2000+0x8)
	}
	b.WriteString(`]}`)
	start := time.Now()
	d, err := ParseDocumentBytes(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ranges and watched words in %v", n, time.Since(start))
	if len(d.RAM) != n || len(d.Watch) != n {
		t.Errorf("%d ranges, %d watched", len(d.RAM), len(d.Watch))
	}
}

// Encode writes byte for byte what json.Encoder writes for Run's Output.
func TestEncodeMatchesRun(t *testing.T) {
	spec, err := os.ReadFile("../testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{
		string(spec),
		`{` + ram1 + `}`,
		`{` + ram1 + `, "ops": [{"op": "S1E2R", "va": "0x10"}], "pstate": {"el": 1}}`,
		`{` + ram1 + `, "watch": ["0x40000010", "0x40000008"], "mem": {"0x40000008": "0x7"}}`,
		`{` + ram1 + `, "ops": [{"op": "S1E1R", "va": "0x10"}, {"op": "S12E1W", "va": "0xffff000000000000"}]}`,
	}
	for _, d := range docs {
		m1, err := Parse(strings.NewReader(d))
		if err != nil {
			t.Fatal(err)
		}
		m2, _ := Parse(strings.NewReader(d))
		out, _ := m1.Run(nil)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := m2.Encode(&got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("Encode differs from json.Encoder:\n got:\n%s\n want:\n%s", got.String(), want.String())
		}
	}
}
