package sim

import (
	"context"
	"testing"

	"github.com/nestmmu/nestmmu/scenario"
)

// The default scenario, shortened: every part of the report is there,
// the nested parts included.
func TestDefaultShort(t *testing.T) {
	s := scenario.Default()
	s.Accesses = scenario.Count(accessesFor(t, 1_000_000, 300_000))
	s.VMs[0].VMs[0].Guest.IOEvery = 5000
	// Short time slices: every process of each L2 runs (the trace replay
	// is l2b's fourth) even in the race detector's shortest run.
	for i := range s.VMs[0].VMs {
		s.VMs[0].VMs[i].Guest.Quantum = 4000
	}
	r, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sane(t, "default", r)
	if len(r.VMs) != 2 || len(r.Hypervisors) != 1 || len(r.MIPS) != 1 || len(r.Timeline) < 2 || len(r.WalkReads) == 0 {
		t.Fatalf("report: %d VMs, %d hypervisors, %d MIPS guests, %d samples, histogram %v", len(r.VMs), len(r.Hypervisors), len(r.MIPS), len(r.Timeline), r.WalkReads)
	}
	a, b, h := r.VMs[0], r.VMs[1], r.Hypervisors[0]
	if a.Level != 2 || a.Hypervisor != "l1" || a.Nested == nil || b.Nested == nil || h.Level != 1 || h.Mode != "NV2" || !h.ReverseMap {
		t.Fatalf("levels: %+v %+v", a, h)
	}
	if a.MMIO == 0 || a.Nested.L0.MMIO == 0 || b.TraceRecords == 0 || r.Host.Pressure["skipped"]+r.Host.Pressure["age"] == 0 {
		t.Errorf("MMIO %d, trace records %d, pressure %v", a.MMIO, b.TraceRecords, r.Host.Pressure)
	}
	// L1's stage 2 faults on first touch of each block of its VMs' memory
	// (forwarded by L0), and it maps them.
	for _, v := range r.VMs {
		nv := v.Nested
		if nv.L0.Faults == 0 || nv.L0.Forwarded == 0 || nv.L0.Installed == 0 || nv.Hypervisor.Faults < nv.L0.Forwarded || nv.Hypervisor.Maps == 0 {
			t.Errorf("%s: shadow faults %+v, L1's work %+v", v.Name, nv.L0, nv.Hypervisor)
		}
		if nv.Entries == 0 || nv.ShadowBytes == 0 || nv.Stage2Bytes == 0 || v.Stage2Levels == 0 {
			t.Errorf("%s: nested %+v, shadow levels %d", v.Name, nv, v.Stage2Levels)
		}
	}
	// Every timer tick of an L2 goes through L1 (an exit to its vEL2 and an
	// ERET back), and NV2 still traps L1's ERETs.
	if h.Exits.ERET == 0 || h.VEL2Entries == 0 || h.Entries < h.VEL2Entries || h.Exits.Total < h.Exits.ERET {
		t.Errorf("L1's exits %+v, entries %d/%d", h.Exits, h.Entries, h.VEL2Entries)
	}
	if h.Rmap == nil || !h.Rmap.Enabled || h.Rmap.Inserts == 0 || h.ShadowBytes == 0 || h.Stage2Bytes == 0 || h.Stage2 == nil || h.Stage2.Maps == 0 {
		t.Errorf("L1: %+v", h)
	}
	// The timeline's stage-2 faults (the cost plot's) count the nested
	// VMs' shadow faults: at the end, at least those L0 took.
	var shadowFaults uint64
	for _, v := range r.VMs {
		shadowFaults += v.Nested.L0.Faults
	}
	if last := r.Timeline[len(r.Timeline)-1]; last.S2Faults < shadowFaults {
		t.Errorf("timeline: %d stage-2 faults at the end, fewer than the %d shadow faults", last.S2Faults, shadowFaults)
	}
	if r.Checks.ShadowChecks == 0 || r.Checks.ShadowLeavesChecked == 0 {
		t.Errorf("checks %+v", r.Checks)
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
