package sim

import (
	"context"
	"testing"

	"github.com/nestmmu/nestmmu/scenario"
)

// The default scenario, shortened: every part of the report is there.
func TestDefaultShort(t *testing.T) {
	s := scenario.Default()
	s.Accesses = scenario.Count(accessesFor(t, 2_000_000, 600_000))
	s.VMs[0].Guest.IOEvery = 5000
	r, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sane(t, "default", r)
	if len(r.VMs) != 2 || len(r.MIPS) != 1 || len(r.Timeline) < 2 || len(r.WalkReads) == 0 {
		t.Errorf("report: %d VMs, %d MIPS guests, %d samples, histogram %v", len(r.VMs), len(r.MIPS), len(r.Timeline), r.WalkReads)
	}
	if r.VMs[0].MMIO == 0 || r.VMs[1].TraceRecords == 0 || r.Host.Pressure["skipped"]+r.Host.Pressure["age"] == 0 {
		t.Errorf("MMIO %d, trace records %d, pressure %v", r.VMs[0].MMIO, r.VMs[1].TraceRecords, r.Host.Pressure)
	}
}

// A cancelled run stops early and reports what ran, marked interrupted.
func TestInterrupted(t *testing.T) {
	s := scenario.Default()
	s.Accesses = 1 << 30
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := Run(ctx, s, Options{Progress: func(done, _ uint64) {
		if done > 50_000 {
			cancel() // as Ctrl-C does
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Accesses.User == 0 || r.Accesses.User >= uint64(s.Accesses) || r.Checks.Violations() != 0 {
		t.Errorf("interrupted %v after %d user accesses, %d violations", r.Interrupted, r.Accesses.User, r.Checks.Violations())
	}
}
