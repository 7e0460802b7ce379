package nestjson_test

import (
	"io"
	"os"
	"testing"

	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/nestjson"
)

// FuzzNestedDocument: any input the strict reader accepts as a nested
// document either is refused by New with an error or runs (ops, accesses,
// the explanation) to an output or an error naming the operation or
// access: never a panic or a hang. Run longer with
// go test ./nestjson -run XXX -fuzz FuzzNestedDocument -fuzztime 60s
func FuzzNestedDocument(f *testing.F) {
	b, err := os.ReadFile("../testdata/nested-example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"ram":[{"base":"0x40000000","size":"0x200000"}],"nested":{}}`))
	f.Add([]byte(`{"ram":[{"base":"0x40000000","size":"0x10000"}],"regs":{"HCR_EL2":"0x80000001"},"ops":[{"op":"S12E1R","va":"0x40000000"}],"nested":{"mode":"NV","host_page":"0x10000","accesses":[{"va":"0x40000000","access":"fetch","el":0}]}}`))
	f.Add([]byte(`{"ram":[{"base":"0x0","size":"0x1000"}],"regs":{"HCR_EL2":"0x80000001","VTCR_EL2":"0x80023558","VTTBR_EL2":"0x0"},"mem":{"0x0":"0x3"},"nested":{"l1_ipa_bits":52,"accesses":[{"va":"0x0","access":"write","value":"1"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := atjson.ParseDocumentBytes(data)
		if err != nil || d.Nested == nil || len(d.Ops)+len(d.Nested.Accesses) > 32 {
			return
		}
		m, err := nestjson.New(d)
		if err != nil {
			return
		}
		defer m.Close()
		_, _ = m.Explain(io.Discard)
	})
}
