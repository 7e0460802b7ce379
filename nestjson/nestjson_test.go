package nestjson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/conform/qemu"
	"github.com/nestmmu/nestmmu/nestjson"
)

// nestedDoc is the at-json document of a generated case with the nested
// key: L1's memory the case RAM, its registers the case's.
type nestedDoc struct {
	conform.Doc
	Nested map[string]any `json:"nested"`
}

func caseDoc(c *qemu.Case) conform.Doc {
	d := conform.ToDoc(c)
	r := qemu.CaseRAM()
	d.RAM = []conform.DocRange{{Base: fmt.Sprintf("%#x", r.Base), Size: fmt.Sprintf("%#x", r.Size)}}
	return d
}

func parse(t *testing.T, b []byte) *atjson.Document {
	t.Helper()
	d, err := atjson.ParseDocumentBytes(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return d
}

// TestNestedMatchesPlain: for generated states, `nestmmu at` on the
// nested document (L1's ATs emulated by L0) prints exactly what it prints
// for the same document without "nested" and with the ID registers L1
// reads (a real EL2 running the same software): the contract's claim.
func TestNestedMatchesPlain(t *testing.T) {
	n := 80
	if testing.Short() {
		n = 16
	}
	for i := range n {
		c := conform.GenerateOne(11, i)
		d := caseDoc(&c.Q)
		bits := 40
		if i%2 == 1 {
			bits = 52
		}
		mode := []string{"NV", "NV2"}[i/2%2]
		nb, _ := json.Marshal(nestedDoc{Doc: d, Nested: map[string]any{"mode": mode, "l1_ipa_bits": bits}})
		m, err := nestjson.New(parse(t, nb))
		if err != nil {
			t.Fatalf("case %s: %v", c.ID, err)
		}
		ids := m.VM.IDRegs()
		d.Regs["ID_AA64MMFR0_EL1"] = fmt.Sprintf("%#x", uint64(ids.MMFR0))
		d.Regs["ID_AA64MMFR1_EL1"] = fmt.Sprintf("%#x", uint64(ids.MMFR1))
		d.Regs["ID_AA64MMFR2_EL1"] = fmt.Sprintf("%#x", uint64(ids.MMFR2))
		pb, _ := json.Marshal(d)
		var got, want bytes.Buffer
		if err := m.Encode(&got); err != nil {
			t.Fatalf("case %s: %v", c.ID, err)
		}
		m.Close()
		pm, err := atjson.NewMachine(parse(t, pb))
		if err != nil {
			t.Fatal(err)
		}
		if err := pm.Encode(&want); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("case %s (%s, %s, IPA %d): nested output\n%s\nplain output\n%s\nnested document\n%s", c.ID, c.Kind, mode, bits, got.String(), want.String(), nb)
		}
	}
}

// TestWriteOutputIsEncode: the output of a nested run is written as
// atjson.Machine.Encode writes a plain one.
func TestWriteOutputIsEncode(t *testing.T) {
	c := conform.GenerateOne(11, 3)
	d := caseDoc(&c.Q)
	b, _ := json.Marshal(d)
	m, err := atjson.NewMachine(parse(t, b))
	if err != nil {
		t.Fatal(err)
	}
	var enc, wr bytes.Buffer
	if err := m.Encode(&enc); err != nil {
		t.Fatal(err)
	}
	m2, _ := atjson.NewMachine(parse(t, b))
	out, _ := m2.Run(nil)
	if err := atjson.WriteOutput(&wr, out); err != nil {
		t.Fatal(err)
	}
	if enc.String() != wr.String() || !strings.Contains(enc.String(), `"results"`) {
		t.Fatalf("Encode\n%s\nWriteOutput\n%s", enc.String(), wr.String())
	}
}
