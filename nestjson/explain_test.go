package nestjson_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/nestjson"
)

// TestExplainExample: `nestmmu explain` of testdata/nested-example.json
// shows, for the state there (L1's stage 2: L2 IPA 0x80000000 is a 2 MiB
// block at L1 IPA 0x41000000, Normal WB, RW; 0x80200000 a read-only page;
// 0x80201000 a page at L1 IPA 0x10000000, where L1 has no memory;
// 0x80400000 unmapped. L2's stage 1: 4K, 39-bit, VA 0x1000-0x4fff to
// those, AP=00, MAIR 0xff. Host pages 4K), what the rules give:
func TestExplainExample(t *testing.T) {
	out := explain(t, "../testdata/nested-example.json")
	for _, want := range []string{
		// L1's ATs: stage 1 alone gives the L2 IPA with stage 1's
		// attributes (Normal WB 0xff, inner shareable); both stages the
		// L1 IPA (WB combined with WB); a write to the read-only page a
		// stage-2 Permission fault at level 3 (F, FST 0b001111, S); L1's
		// own regime with its MMU off the VA, Device-nGnRnE, outer
		// shareable.
		"op 0: AT S1E1R, VA 0x1008", "PAR_EL1 = 0xff00000080003b80",
		"op 1: AT S12E1R, VA 0x1008", "PAR_EL1 = 0xff00000041003b80",
		"PAR_EL1 = 0x0000000000000a1f", "stage 2 permission level 3 (IPA 0x80200000)",
		"regime EL2&0 (its registers L1's own", "PAR_EL1 = 0x0000000040001b00",
		// A read: each stage-1 table page and the data page shadow-fault
		// once; L1's leaf is a 2 MiB block but the host page is 4K, so the
		// shadow maps 4K, keeping L1's level (2) for TLBI.
		"shadow fault at L2 IPA 0x80100000 (L2's stage-1 walk",
		"=> L1 IPA 0x41100000: a 2M leaf at level 2, R W X(EL0) X(EL1)",
		"L2 IPA 0x80100000 +4K -> PA", "L1's leaf level 2 kept in descriptor bits [58:55]",
		"shadow fault at L2 IPA 0x80003008 (L2's access, read at EL1)",
		"=> the read completed: 0x1234",
		// A write to the read-only page: rule (a), L1 gets the Data Abort
		// from a lower EL with ISV (8 bytes, X1, 64-bit), WnR, DFSC
		// Permission level 3; HPFAR_EL2 UNKNOWN for a Permission fault not
		// on a stage-1 walk.
		"rule (a): L1's stage 2 faults", "ESR_EL2 0x93c1804f, FAR_EL2 0x2008, HPFAR_EL2 0xbadbadbad0",
		// A read where L1 has no memory: rule (c), an MMIO exit.
		"rule (c): no memslot holds L1 IPA 0x10000008", "MMIO exit to L0's VMM at L1 IPA 0x10000008",
		// A read of an unmapped L2 IPA: Translation fault level 2, HPFAR
		// the L2 IPA's page.
		"ESR_EL2 0x93c18006, FAR_EL2 0x4008, HPFAR_EL2 0x804000",
		// An EL0 read of an AP=00 page is L2's own Permission fault (EC
		// 0x24 from EL0 to EL1, DFSC level 3).
		"L2 takes data abort to its EL1: ESR_EL1 0x9200000f",
		// Its fetch at EL1 (PXN=0, XN 0b00 at stage 2) completes.
		"=> the fetch completed",
		"0x41102008 = 0x0000000080003703",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func explain(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := nestjson.New(parse(t, b))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var w bytes.Buffer
	if _, err := m.Explain(&w); err != nil {
		t.Fatal(err)
	}
	return w.String()
}
