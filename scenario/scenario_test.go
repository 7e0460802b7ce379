package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	s := Default()
	if len(s.VMs) != 2 || len(s.MIPS) != 1 || !s.Host.Pressure.Enabled {
		t.Fatalf("default scenario: %d VMs, %d MIPS guests, pressure %v", len(s.VMs), len(s.MIPS), s.Host.Pressure.Enabled)
	}
	if s.VMs[0].Guest.Granule != 4096 || s.VMs[1].Guest.Granule != 16384 || s.VMs[0].Guest.ASIDBits != 8 {
		t.Errorf("guests: %+v %+v", s.VMs[0].Guest, s.VMs[1].Guest)
	}
	// Defaults fill what the file leaves out.
	if s.VMs[1].Guest.ASIDBits != 16 || s.VMs[0].Procs[0].Count != 1 || s.VMs[0].Guest.Quantum != 20000 || s.MIPS[0].RAM != 32<<20 {
		t.Errorf("defaults not applied: %+v %+v %+v", s.VMs[1].Guest, s.VMs[0].Procs[0], s.Host.TLB)
	}
}

// Every error names the line and the field.
func TestErrorsNameFieldAndLine(t *testing.T) {
	base := "accesses: 1M\nvms:\n  - name: a\n    processes:\n      - workload: random\n"
	for _, c := range []struct {
		name, yaml string
		line       int
		field, msg string
	}{
		{"unknown top-level field", "acceses: 5\n" + base, 1, "acceses", "unknown field"},
		{"unknown field in a list", base + "        writez: 10%\n", 6, "vms[0].processes[0].writez", "unknown field"},
		{"bad size", "host:\n  memory: lots\n" + base, 2, "host.memory", "not a byte size"},
		{"bad page size", "host:\n  page_size: 8K\n" + base, 2, "host.page_size", "8K is not 4K, 16K or 64K"},
		{"bad count", "accesses: -3\nvms:\n  - processes:\n      - workload: random\n", 1, "accesses", "not a count"},
		{"bad fraction", base + "        writes: 130%\n", 6, "vms[0].processes[0].writes", "not a fraction"},
		{"unknown workload", "accesses: 1M\nvms:\n  - name: a\n    processes:\n      - workload: chaos\n", 5, "vms[0].processes[0].workload", "unknown pattern"},
		{"working set beyond memory", "accesses: 1M\nvms:\n  - memory: 16M\n    processes:\n      - workload: random\n        working_set: 64M\n", 6, "vms[0].processes[0].working_set", "more than the VM's memory"},
		{"granule", "accesses: 1M\nvms:\n  - guest:\n      granule: 32K\n    processes:\n      - workload: random\n", 4, "vms[0].guest.granule", "not 4K, 16K or 64K"},
		{"no process", "accesses: 1M\nvms:\n  - name: a\n", 3, "vms[0].processes", "no process"},
		{"trace without file", "accesses: 1M\nvms:\n  - processes:\n      - workload: trace\n", 4, "vms[0].processes[0].trace", "needs a trace file"},
		{"list where a mapping belongs", "host: [1, 2]\n" + base, 1, "host", "want a mapping"},
		{"vcpu out of range", base + "        vcpu: 3\n", 6, "vms[0].processes[0].vcpu", "out of range"},
		{"nested VM kind", "accesses: 1M\nvms:\n  - kind: hypervisor\n    processes:\n      - workload: random\n", 3, "vms[0].kind", "not have yet"},
		{"nested VMs", base + "    vms:\n      - name: l2\n", 6, "vms[0].vms", "not have yet"},
		{"duplicate field", "seed: 1\nseed: 2\n" + base, 2, "seed", "given twice"},
		{"mips ram", "accesses: 1M\nmips:\n  - ram: 64K\n", 3, "mips[0].ram", "want 1M to 512M"},
	} {
		_, err := Parse([]byte(c.yaml), "s.yaml")
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v is not a scenario.Error", c.name, err)
			continue
		}
		if e.Line != c.line || e.Field != c.field || !strings.Contains(e.Msg, c.msg) || e.File != "s.yaml" {
			t.Errorf("%s: %q (line %d, field %q), want line %d field %q containing %q", c.name, err, e.Line, e.Field, c.line, c.field, c.msg)
		}
		if strings.Contains(c.name, "nested") && !errors.Is(err, ErrNotYetAvailable) {
			t.Errorf("%s: not ErrNotYetAvailable", c.name)
		}
	}
}

func TestScalars(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{{"4096", 4096}, {"4K", 4096}, {"4KiB", 4096}, {"256M", 256 << 20}, {"1G", 1 << 30}, {"1_024", 1024}, {"0.5K", 512}} {
		var s Size
		if err := s.parse(c.in); err != nil || uint64(s) != c.want {
			t.Errorf("Size %q: %d %v, want %d", c.in, s, err, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want uint64
	}{{"20000000", 20e6}, {"20M", 20e6}, {"2.5M", 2.5e6}, {"1G", 1e9}, {"3K", 3000}} {
		var n Count
		if err := n.parse(c.in); err != nil || uint64(n) != c.want {
			t.Errorf("Count %q: %d %v, want %d", c.in, n, err, c.want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5", "K", "1e30"} {
		var n Count
		if err := n.parse(bad); err == nil {
			t.Errorf("Count %q accepted", bad)
		}
	}
	for _, c := range []struct {
		in   string
		want float64
	}{{"0.3", 0.3}, {"30%", 0.3}, {"0", 0}, {"100%", 1}} {
		var f Fraction
		if err := f.parse(c.in); err != nil || float64(f) != c.want {
			t.Errorf("Fraction %q: %v %v", c.in, f, err)
		}
	}
}

// Every example in examples/ parses, and the default example is the
// embedded default scenario.
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 4 {
		t.Fatalf("%d examples", len(files))
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	ex, err := os.ReadFile("../examples/default.yaml")
	if err != nil || string(ex) != string(DefaultYAML()) {
		t.Errorf("examples/default.yaml differs from the embedded default (%v)", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("accesses: 1M\nvms:\n  - processes:\n      - workload: zipf\n        zipf_s: 1.2\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("host: {cpus: 1e9}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Parse(in, "f.yaml")
		if err != nil {
			if s != nil {
				t.Fatal("scenario and error")
			}
			if !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if s.Accesses == 0 || (len(s.VMs) == 0 && len(s.MIPS) == 0) {
			t.Fatalf("accepted a scenario that runs nothing: %+v", s)
		}
	})
}
