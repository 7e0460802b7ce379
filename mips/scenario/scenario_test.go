package scenario

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	c := Default()
	c.Accesses = 5000
	var b bytes.Buffer
	if err := Report(c, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"refills by path", "fast (GVA table walk)", "exceptions injected", "TLBL", "flushes", "asid-change(kernel)", "pre-series", "identical behaviour"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	c := Default()
	c.Guest.Processes = 0
	if _, err := Run(c, false); err == nil {
		t.Error("0 processes accepted")
	}
	c = Default()
	c.Guest.PageSize = 8192
	if _, err := Run(c, false); err == nil || !strings.Contains(err.Error(), "8192") {
		t.Errorf("page size 8192: %v", err)
	}
}

// FuzzRun feeds arbitrary workload parameters (user input of the nestmmu
// mips command) to Run: it must return a result or an error naming the bad
// value, never panic or hang.
func FuzzRun(f *testing.F) {
	f.Add(4, 96, uint32(4096), uint32(32<<20), 64, 500, 30, 30)
	f.Add(0, 0, uint32(0), uint32(0), 0, 0, 0, 0)
	f.Add(250, 100000, uint32(65536), uint32(64<<20), 1, 1, 100, 100)
	f.Add(1, 1, uint32(16384), uint32(16384*7), -5, 1, -1, 200)
	f.Fuzz(func(t *testing.T, procs, ws int, page, ram uint32, host, quantum, stores, random int) {
		c := Default()
		c.Accesses = 200
		c.Compare = false
		c.Guest.Processes, c.Guest.WorkingSet = procs, ws
		c.Guest.PageSize, c.Guest.RAMSize = page, ram%(96<<20)
		c.HostTLBEntries, c.Guest.Quantum = host, quantum
		c.Guest.StorePercent, c.Guest.RandomPercent = stores, random
		if _, err := Run(c, false); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
