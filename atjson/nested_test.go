package atjson

import (
	"strings"
	"testing"
)

// TestNestedKey: the nested form is accepted only as documented
// (docs/AT-JSON.md, "Nested documents"): its values and defaults, and an
// error naming the JSON path of every bad value.
func TestNestedKey(t *testing.T) {
	const ram = `"ram": [{"base": "0x40000000", "size": "0x200000"}]`
	d, err := parseString(`{` + ram + `, "nested": {}}`)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Nested; n == nil || n.Mode != "NV2" || n.L1IPABits != 40 || n.HostPage != 4096 || len(n.Accesses) != 0 {
		t.Fatalf("defaults: %+v", d.Nested)
	}
	d, err = parseString(`{` + ram + `, "nested": {"mode": "NV", "l1_ipa_bits": "52", "host_page": "0x10000",
		"accesses": [{"va": "0x1000", "access": "write", "value": "7"}, {"access": "fetch", "va": 4096, "el": 0}, {"va": "8", "access": "read", "el": "1"}]}}`)
	if err != nil {
		t.Fatal(err)
	}
	n := d.Nested
	want := []Access{{VA: 0x1000, Kind: "write", EL: 1, Value: 7}, {VA: 4096, Kind: "fetch"}, {VA: 8, Kind: "read", EL: 1}}
	if n.Mode != "NV" || n.L1IPABits != 52 || n.HostPage != 0x10000 || len(n.Accesses) != 3 {
		t.Fatalf("%+v", n)
	}
	for i, a := range want {
		if n.Accesses[i] != a {
			t.Errorf("accesses[%d] = %+v, want %+v", i, n.Accesses[i], a)
		}
	}
	if _, err := NewMachine(d); err == nil || !strings.HasPrefix(err.Error(), "nested: ") {
		t.Errorf("NewMachine of a nested document: %v", err)
	}
	for _, c := range []struct{ in, err string }{
		{`"nested": []`, `nested: want an object, found an array`},
		{`"nested": null`, `nested: want an object, found null`},
		{`"nested": {"modes": "NV"}`, `nested: unknown key "modes"`},
		{`"nested": {"mode": "nv2"}`, `nested.mode: "nv2" is not NV or NV2`},
		{`"nested": {"mode": 2}`, `nested.mode: want a string, found a number`},
		{`"nested": {"l1_ipa_bits": 41}`, `nested.l1_ipa_bits: 41 is not an IPA size`},
		{`"nested": {"host_page": "8192"}`, `nested.host_page: 0x2000 is not a page size`},
		{`"nested": {"host_page": "0x10000"}, "ram": [{"base": "0x40008000", "size": "0x10000"}]`, `ram[0]: 0x40008000+0x10000 is not a multiple of the host page`},
		{`"nested": {"l1_ipa_bits": 32}, "ram": [{"base": "0xfffff000", "size": "0x2000"}]`, `ram[0]: 0xfffff000+0x2000 is beyond the guest hypervisor's 32-bit IPA space`},
		{`"nested": {"mode": "NV", "mode": "NV2"}`, `nested: duplicate key "mode"`},
		{`"nested": {"accesses": [{"va": "0"}]}`, `nested.accesses[0]: want both "va" and "access"`},
		{`"nested": {"accesses": [{"va": "0", "access": "exec"}]}`, `nested.accesses[0].access: "exec" is not read, write or fetch`},
		{`"nested": {"accesses": [{"va": "0", "access": "read", "value": "1"}]}`, `nested.accesses[0].value: only a write has a value`},
		{`"nested": {"accesses": [{"va": "0", "access": "read", "el": 2}]}`, `nested.accesses[0].el: 2 is not 0 or 1`},
		{`"nested": {"accesses": [{"va": "-1", "access": "read"}]}`, `nested.accesses[0].va: "-1" is`},
		{`"nested": {"accesses": [{"va": "0", "access": "read", "pc": "0"}]}`, `nested.accesses[0]: unknown key "pc"`},
		{`"nested": {}, "pstate": {"el": 1}`, `pstate.el: 1: a nested document's operations are executed by the guest hypervisor`},
	} {
		in := `{` + ram + `, ` + c.in + `}`
		if strings.Contains(c.in, `"ram"`) {
			in = `{` + c.in + `}`
		}
		_, err := parseString(in)
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q...", c.in, err, c.err)
		}
	}
}
