package atjson

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary documents to the contract parser: it must
// never panic, and a document it accepts must run to one result per
// operation and one memory entry per watched address.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile("../testdata/spec-example.json"); err == nil {
		f.Add(ex)
	}
	f.Add([]byte(`{"ram":[{"base":"0x0","size":"0x1000"}],"ops":[{"op":"S1E2R","va":"0x10"}]}`))
	f.Add([]byte(`{"ram":[{"base":"1","size":"8"}]}`))
	f.Add([]byte(`{"ram":[{"base":"0x40000000","size":"0x1000"}],"regs":{"SCTLR_EL1":"1","TCR_EL1":"0x19"},"mem":{"0x40000000":"0x40000003"},"ops":[{"op":"S1E1W","va":"0"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(m.Ops) > 64 {
			return // keep executions short
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
		if len(out.Mem) > len(m.Watch) {
			t.Fatalf("%d watch addresses gave %d mem entries", len(m.Watch), len(out.Mem))
		}
	})
}
