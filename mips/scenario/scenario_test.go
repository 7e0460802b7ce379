package scenario

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/mips/te"
)

func TestReport(t *testing.T) {
	for _, dirty := range []bool{false, true} {
		c := Default()
		c.Accesses = 5000
		c.DirtyLog = dirty
		var b bytes.Buffer
		if err := Report(c, &b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		semantics := "the series' own"
		if dirty {
			semantics = "Linux 4.11 with dirty logging"
		}
		for _, want := range []string{semantics, "refills by path", "fast (GVA table walk)", "exceptions injected", "TLBL", "flushes", "asid-change(kernel)", "pre-series", "dirty-logging exits", "identical behaviour"} {
			if !strings.Contains(out, want) {
				t.Errorf("dirty-log=%v: report lacks %q:\n%s", dirty, want, out)
			}
		}
	}
}

// TestSeriesSemanticsHaveNoDirtyExits: under the series' own semantics
// (the default) neither scheme takes a dirty-logging exit, so the
// comparison measures only what the series changed; with DirtyLog both
// schemes take them. The guest sees the same in all four runs.
func TestSeriesSemanticsHaveNoDirtyExits(t *testing.T) {
	var guests []Result
	exits := map[bool]uint64{}
	for _, dirty := range []bool{false, true} {
		for _, legacy := range []bool{false, true} {
			c := Default()
			c.Accesses = 20000
			c.DirtyLog = dirty
			r, err := Run(c, legacy)
			if err != nil {
				t.Fatal(err)
			}
			d := r.Stats.Slow[te.SlowDirty]
			if dirty != (d > 0) {
				t.Errorf("dirty-log=%v legacy=%v: %d dirty-logging exits", dirty, legacy, d)
			}
			if !legacy {
				for _, n := range r.Stats.Slow {
					exits[dirty] += n
				}
			}
			guests = append(guests, r)
		}
	}
	t.Logf("GVA scheme slow-path exits: series semantics %d (one page per guest-TLB fill), dirty logging %d (pair per fill)", exits[false], exits[true])
	for _, r := range guests[1:] {
		if r.Guest.Refills != guests[0].Guest.Refills || r.Guest.PageFaults != guests[0].Guest.PageFaults || r.Guest.Verified != guests[0].Guest.Verified {
			t.Errorf("guest saw different behaviour: %+v vs %+v", r.Guest, guests[0].Guest)
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
