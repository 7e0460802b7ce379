package atjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse compares the contract reader's strictness with encoding/json:
//   - it reports a syntax error exactly when json.Valid rejects the input
//     (after a leading byte order mark), so it accepts no trailing data and
//     nothing encoding/json would not;
//   - a document it accepts has no duplicate key at any level (checked with
//     json.Decoder's tokens), and encoding/json decodes it to the same
//     number of RAM ranges, memory words, registers, operations and
//     watched words, with the same register values;
//   - errors are one short line; an accepted document runs to one result
//     per operation.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile("../testdata/spec-example.json"); err == nil {
		f.Add(ex)
		f.Add(append([]byte{0xef, 0xbb, 0xbf}, ex...))
		f.Add(append(ex, '}'))
	}
	f.Add([]byte(`{"ram":[{"base":"0x0","size":"0x1000"}],"ops":[{"op":"S1E2R","va":"0x10"}]}`))
	f.Add([]byte(`{"ram":[{"base":"1","size":"8"}]}`))
	f.Add([]byte(`{"ram":[{"base":"0x40000000","size":"0x1000"}],"regs":{"SCTLR_EL1":"1","TCR_EL1":"0x19"},"mem":{"0x40000000":"0x40000003"},"ops":[{"op":"S1E1W","va":"0"}]}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}],"mem":{"0x8":"1","8":"2"}}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}],"regs":{"TCR_EL1":"1","TCR_EL1":"2"}}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}],"regs":{"TCR_EL1":"1","\u0054CR_EL1":"2"}}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}],"ops":null,"watch":null,"mem":null,"regs":null,"pstate":null}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}],"pstate":{"el":1.0,"pan":1e0}}`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"16"}]}]]]`))
	f.Add([]byte(`{"ram":[{"base":"0","size":"0x1000"}],"nested":{"mode":"NV","accesses":[{"va":"8","access":"write","value":"1","el":0}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		d, err := ParseDocumentBytes(data)
		body := bytes.TrimPrefix(data, bom)
		valid := json.Valid(body)
		var se *SyntaxError
		if errors.As(err, &se) == valid {
			t.Fatalf("json.Valid = %v but the error is %v", valid, err)
		}
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.Contains(msg, "\n") || len(msg) > 1000 {
				t.Fatalf("bad error message %q", msg)
			}
			return
		}
		if k, dup := duplicateKey(body); dup {
			t.Fatalf("accepted a document with duplicate key %q", k)
		}
		compareWithEncodingJSON(t, body, d)
		if len(d.Ops) > 64 || d.Nested != nil {
			return // keep executions short; nestjson runs nested documents
		}
		m, err := NewMachine(d)
		if err != nil {
			t.Fatalf("a validated document does not build: %v", err)
		}
		out, res := m.Run(nil)
		if len(out.Results) != len(m.Ops) || len(res) != len(m.Ops) {
			t.Fatalf("%d ops gave %d results", len(m.Ops), len(out.Results))
		}
		for i, r := range out.Results {
			if (r.PAR == "") == (r.Exception == "") {
				t.Fatalf("result %d has par %q and exception %q: exactly one is required", i, r.PAR, r.Exception)
			}
		}
		if len(out.Mem) != len(m.Watch) {
			t.Fatalf("%d watch addresses gave %d mem entries", len(m.Watch), len(out.Mem))
		}
	})
}

// duplicateKey walks the document with json.Decoder's tokens and reports
// the first key given twice in one object.
func duplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.expect
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].expect = true
			}
			continue
		}
		if isKey {
			k := tok.(string)
			if top.keys[k] {
				return k, true
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		if top != nil && top.obj {
			top.expect = true // a value was read
		}
		if d, ok := tok.(json.Delim); ok {
			if top != nil && top.obj {
				top.expect = false // the value is a container: key after it closes
			}
			stack = append(stack, &frame{obj: d == '{', keys: map[string]bool{}, expect: d == '{'})
		}
	}
}

// simpleNumber is an independent reading of the contract's number syntax.
func simpleNumber(raw json.RawMessage) (uint64, bool) {
	s := string(raw)
	if uq, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
		s = uq
	} else if strings.HasPrefix(s, `"`) {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return 0, false
		}
		s = str
	}
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, false
	}
	v, err := strconv.ParseUint(s, base, 64)
	return v, err == nil
}

func compareWithEncodingJSON(t *testing.T, body []byte, d *Document) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("accepted, but encoding/json cannot decode the document as an object: %v", err)
	}
	var ram, ops, watch []json.RawMessage
	var memm, regs map[string]json.RawMessage
	for _, x := range []struct {
		key string
		dst any
	}{{"ram", &ram}, {"ops", &ops}, {"watch", &watch}, {"mem", &memm}, {"regs", &regs}} {
		if raw, ok := top[x.key]; ok {
			if err := json.Unmarshal(raw, x.dst); err != nil {
				t.Fatalf("%s: encoding/json: %v", x.key, err)
			}
		}
	}
	if len(ram) != len(d.RAM) || len(ops) != len(d.Ops) || len(watch) != len(d.Watch) ||
		len(memm) != len(d.Words) || len(regs) != len(d.Registers) {
		t.Fatalf("counts differ: encoding/json ram %d ops %d watch %d mem %d regs %d; parser %d %d %d %d %d",
			len(ram), len(ops), len(watch), len(memm), len(regs), len(d.RAM), len(d.Ops), len(d.Watch), len(d.Words), len(d.Registers))
	}
	for _, r := range d.Registers {
		v, ok := simpleNumber(regs[r.Name])
		if !ok || v != r.Value {
			t.Fatalf("regs.%s: parser %#x, independent reading %#x (ok=%v) of %s", r.Name, r.Value, v, ok, regs[r.Name])
		}
	}
	for i, a := range d.Watch {
		if v, ok := simpleNumber(watch[i]); !ok || v != a {
			t.Fatalf("watch[%d]: parser %#x, independent reading of %s", i, a, watch[i])
		}
	}
}

// The fuzz oracle's duplicate-key walk finds duplicates at every depth.
func TestDuplicateKeyOracle(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":1,"b":{"c":1,"c":2}}`:       true,
		`{"a":[{"x":1},{"x":1,"x":2}]}`:   true,
		`{"a":1,"a":2}`:                   true,
		`{"a":{"b":1},"b":{"a":1}}`:       false,
		`{"a":[1,{"a":1}],"b":[{"b":2}]}`: false,
	} {
		if _, got := duplicateKey([]byte(in)); got != want {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
}
