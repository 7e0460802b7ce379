package regfile_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

func TestParseValue(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0x10", 16, true}, {"0X10", 16, true}, {"10", 10, true}, {"0", 0, true}, {"0x0", 0, true},
		{"0xffffffffffffffff", ^uint64(0), true}, {"18446744073709551615", ^uint64(0), true},
		{"0x00000000000000001", 1, true}, // leading zeros beyond 16 digits are still 64 bits
		{"0x10000000000000000", 0, false}, {"18446744073709551616", 0, false},
		{"", 0, false}, {"0x", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"-1", 0, false}, {"+1", 0, false},
		{"0x1_0", 0, false}, {"1_000", 0, false}, {"0b101", 0, false}, {"0o17", 0, false}, {"1e3", 0, false},
		{"0xg", 0, false}, {"12abc", 0, false}, {"1.5", 0, false},
	}
	for _, c := range cases {
		got, err := regfile.ParseValue(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseValue(%q) = %#x, %v; want %#x ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// Every name sets exactly its own field of vmsa.Regs, and Get reads it back.
func TestSetGetEveryRegister(t *testing.T) {
	names := regfile.Names()
	if len(names) != 17 {
		t.Errorf("%d registers: %v", len(names), names)
	}
	for i, n := range names {
		var r vmsa.Regs
		v := uint64(0x1111_2222_3333_4444) + uint64(i)
		if err := regfile.Set(&r, n, v); err != nil {
			t.Fatal(err)
		}
		if got, err := regfile.Get(&r, n); err != nil || got != v {
			t.Errorf("%s: Get = %#x, %v", n, got, err)
		}
		// Exactly one field is non-zero.
		rv := reflect.ValueOf(r)
		set := 0
		for f := 0; f < rv.NumField(); f++ {
			if !rv.Field(f).IsZero() {
				set++
			}
		}
		if set != 1 {
			t.Errorf("%s set %d fields of vmsa.Regs", n, set)
		}
	}
	if err := regfile.Set(&vmsa.Regs{}, "TCR_EL3", 0); err == nil || !strings.Contains(err.Error(), "TCR_EL3") {
		t.Errorf("unknown register: %v", err)
	}
}

func TestParseFile(t *testing.T) {
	in := `# guest
tcr_el1 = 0x8580190019   # 39-bit VA
TTBR0_EL1=0x44000000

  SCTLR_EL1 0x30d00805
`
	as, err := regfile.ParseFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []regfile.Assignment{{"TCR_EL1", 0x8580190019, 2}, {"TTBR0_EL1", 0x44000000, 3}, {"SCTLR_EL1", 0x30d00805, 5}}
	if !reflect.DeepEqual(as, want) {
		t.Errorf("got %+v, want %+v", as, want)
	}
	var r vmsa.Regs
	if err := regfile.Apply(&r, as); err != nil || uint64(r.TCR_EL1) != 0x8580190019 {
		t.Errorf("Apply: %v, TCR_EL1 %#x", err, uint64(r.TCR_EL1))
	}
	bad := []struct{ in, want string }{
		{"TCR_EL1 = 0x1\nTCR_EL1 = 0x2\n", "line 2: TCR_EL1 is already set on line 1"},
		{"TCR_EL3 = 1", "line 1: unknown register"},
		{"TCR_EL1 = 0xzz", `line 1: TCR_EL1 = "0xzz"`},
		{"TCR_EL1 1 2", "line 1:"},
		{"TCR_EL1 = " + strings.Repeat("9", 5000), "(5000 bytes)"},
		{strings.Repeat("#", regfile.MaxFileBytes+1), "limit"},
	}
	for _, b := range bad {
		_, err := regfile.ParseFile(strings.NewReader(b.in))
		if err == nil || !strings.Contains(err.Error(), b.want) || len(err.Error()) > 400 && !strings.Contains(b.want, "unknown") {
			t.Errorf("ParseFile(%.30q): %v; want an error containing %q", b.in, err, b.want)
		}
	}
}

// FuzzParseFile: any file gives assignments of known registers, each
// once, or an error of one line; never a panic.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("TCR_EL1 = 0x8580190019\nTTBR0_EL1 0x44000000 # root\n"))
	f.Add([]byte("tcr_el1=1\nTCR_EL1=2"))
	f.Add([]byte("= \n#\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		as, err := regfile.ParseFile(strings.NewReader(string(data)))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, a := range as {
			if !regfile.Known(a.Name) || seen[a.Name] {
				t.Fatalf("assignment %+v", a)
			}
			seen[a.Name] = true
		}
	})
}
