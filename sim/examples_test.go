package sim

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/nestmmu/nestmmu/report"
	"github.com/nestmmu/nestmmu/scenario"
)

// shortRun loads an example and runs it shortened.
func shortRun(t *testing.T, path string, accesses uint64, edit func(*scenario.Scenario)) *report.Report {
	t.Helper()
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Accesses = scenario.Count(accesses)
	if edit != nil {
		edit(s)
	}
	r, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sane(t, path, r)
	return r
}

// sane checks what every report must satisfy.
func sane(t *testing.T, name string, r *report.Report) {
	t.Helper()
	if v := r.Checks.Violations(); v != 0 {
		t.Errorf("%s: %d violations: %v", name, v, r.Checks.First)
	}
	if len(r.Errors) > 0 {
		t.Errorf("%s: errors %v", name, r.Errors)
	}
	var mipsUser uint64
	for _, m := range r.MIPS {
		mipsUser += m.UserAccesses
	}
	// Each runner's budget is its share of the target, rounded down.
	if got := r.Accesses.User + mipsUser; got > r.Accesses.Target || got+16 < r.Accesses.Target {
		t.Errorf("%s: %d user accesses for a target of %d", name, got, r.Accesses.Target)
	}
	if r.Accesses.Total != r.Accesses.User+r.Accesses.Kernel+r.Accesses.MIPS || r.Accesses.PerSecond <= 0 {
		t.Errorf("%s: accesses %+v", name, r.Accesses)
	}
	if len(r.VMs) > 0 && (r.Checks.IntegrityChecks == 0 || r.Checks.InvariantChecks == 0) {
		t.Errorf("%s: checks %+v", name, r.Checks)
	}
	for _, v := range r.VMs {
		if v.HitRate <= 0 || v.HitRate >= 1 || v.Walks == 0 || v.UserHitRate < 0 || v.UserHitRate >= 1 || v.UserWalks > v.Walks {
			t.Errorf("%s/%s: TLB hit rate %v (user %v), %d walks (user %d)", name, v.Name, v.HitRate, v.UserHitRate, v.Walks, v.UserWalks)
		}
		// No walk reads more than a full two-dimensional walk:
		// (n+1)(m+1)-1 descriptors.
		if maxReads := (v.Levels+1)*(v.Stage2Levels+1) - 1; v.ReadsPerWalk > float64(maxReads) {
			t.Errorf("%s/%s: %.1f reads per walk, more than %d", name, v.Name, v.ReadsPerWalk, maxReads)
		}
		s2 := v.Stage2.Maps // L0's, or for a nested VM its shadow's entries
		if v.Nested != nil {
			s2 = v.Nested.L0.Installed
		}
		if v.Guest.Total == 0 || s2 == 0 || v.PTBytes.Stage1 == 0 || v.PTBytes.Stage2 == 0 {
			t.Errorf("%s/%s: guest faults %d, stage-2 maps %d, tables %+v", name, v.Name, v.Guest.Total, s2, v.PTBytes)
		}
	}
}

func accessesFor(t *testing.T, full, short uint64) uint64 {
	switch {
	case raceEnabled:
		return short / 4
	case testing.Short():
		return short
	}
	return full
}

// raceExamples are the examples run under the race detector: the default
// one has every kind of runner (vCPUs of two VMs, a MIPS guest, the host's
// pressure driver) at once, and TestChurn and TestPressure run theirs. The
// others add length, not concurrency.
var raceExamples = map[string]bool{"default": true, "mips": true}

// Every example runs (shortened), with sane figures.
func TestEveryExampleRuns(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 7 {
		t.Fatalf("%d examples", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			if raceEnabled && !raceExamples[name] {
				t.Skip("no concurrency beyond the default example's; run without -race")
			}
			shortRun(t, f, accessesFor(t, 400_000, 100_000), nil)
		})
	}
}

// A sequential workload reuses each translation for a page of accesses:
// its TLB hit rate exceeds a random workload's over the same working set.
func TestSequentialHitsMoreThanRandom(t *testing.T) {
	figuresOnly(t)
	r := shortRun(t, "../examples/tlb-reach.yaml", accessesFor(t, 1_000_000, 400_000), nil)
	seq, rnd := r.VMs[0], r.VMs[1]
	if seq.Name != "sequential" || rnd.Name != "random" {
		t.Fatalf("VMs %s, %s", seq.Name, rnd.Name)
	}
	if seq.UserHitRate <= rnd.UserHitRate+0.5 || seq.UserHitRate < 0.9 {
		t.Errorf("user TLB hit rate: sequential %.3f, random %.3f", seq.UserHitRate, rnd.UserHitRate)
	}
}

// A 4-level stage 1 over a 4-level stage 2 (4K granules, 48-bit IPA, no
// stage-2 blocks) reads at most (4+1)(4+1)-1 = 24 descriptors per TLB miss,
// and a full walk reads exactly that many.
func TestFourOverFourWalks(t *testing.T) {
	figuresOnly(t)
	r := shortRun(t, "../examples/tlb-reach.yaml", accessesFor(t, 300_000, 150_000), func(s *scenario.Scenario) {
		s.Host.THP = false
		s.VMs = s.VMs[1:] // the random one: mostly full walks
		s.VMs[0].IPABits = 48
		s.VMs[0].Guest.LinearMapBlocks = false
	})
	v := r.VMs[0]
	if v.Levels != 4 || v.Stage2Levels != 4 {
		t.Fatalf("levels %d over %d", v.Levels, v.Stage2Levels)
	}
	if len(r.WalkReads) != 25 || r.WalkReads[24] == 0 {
		t.Fatalf("histogram %v: want walks of 24 reads and none longer", r.WalkReads)
	}
	var total uint64
	for _, n := range r.WalkReads {
		total += n
	}
	if float64(r.WalkReads[24]) < 0.5*float64(total) {
		t.Errorf("only %d of %d walks read 24 descriptors", r.WalkReads[24], total)
	}
}

// Block mappings (host huge pages as stage-2 blocks) reduce stage-2 faults
// and the walk length.
func TestBlocksReduceStage2Faults(t *testing.T) {
	figuresOnly(t)
	v, _ := FindVariant("blocks")
	var rs [2]*report.Report
	for side := 0; side < 2; side++ {
		rs[side] = shortRun(t, "../examples/blocks.yaml", accessesFor(t, 600_000, 200_000), func(s *scenario.Scenario) {
			if err := v.Apply(s, side); err != nil {
				t.Fatal(err)
			}
		})
	}
	b, p := rs[0].VMs[0], rs[1].VMs[0]
	if b.Stage2.Total*10 > p.Stage2.Total || b.Stage2.BlockMaps == 0 || p.Stage2.BlockMaps != 0 {
		t.Errorf("stage-2 faults with blocks %d (%d blocks), without %d", b.Stage2.Total, b.Stage2.BlockMaps, p.Stage2.Total)
	}
	if b.ReadsPerWalk >= p.ReadsPerWalk {
		t.Errorf("reads per walk with blocks %.2f, without %.2f", b.ReadsPerWalk, p.ReadsPerWalk)
	}
	if b.PTBytes.Stage2 >= p.PTBytes.Stage2 {
		t.Errorf("stage-2 tables with blocks %d bytes, without %d", b.PTBytes.Stage2, p.PTBytes.Stage2)
	}
}

// Process churn: forks, execs, exits, copy-on-write, munmaps with TLBI by
// ASID and VA, and (full length) ASID rollovers with 8-bit ASIDs.
func TestChurn(t *testing.T) {
	r := shortRun(t, "../examples/churn.yaml", accessesFor(t, 1_500_000, 300_000), nil)
	g := r.VMs[0].Guest
	if g.Forks == 0 || g.Execs == 0 || g.Exits == 0 || g.Munmaps == 0 || g.COWCopy+g.COWReuse == 0 {
		t.Errorf("guest %+v", g)
	}
	if r.VMs[0].TLBIs["VALE1IS"] == 0 && r.VMs[0].TLBIs["VAE1IS"] == 0 {
		t.Errorf("no TLBI by VA: %v", r.VMs[0].TLBIs)
	}
	if !testing.Short() && !raceEnabled && g.ASIDRollovers == 0 { // the race run is a quarter of the short one
		t.Errorf("no ASID rollover in %d processes", r.VMs[0].Spawned)
	}
}

// Host pressure: events applied, stage 2 unmapped by the notifiers, and
// still no violation.
func TestPressure(t *testing.T) {
	r := shortRun(t, "../examples/pressure.yaml", accessesFor(t, 1_000_000, 300_000), nil)
	var unmaps uint64
	for _, v := range r.VMs {
		unmaps += v.Stage2.NotifierUnmaps
	}
	if r.Host.Pressure["swap_out"]+r.Host.Pressure["migrate"] == 0 || unmaps == 0 {
		t.Errorf("pressure %v, notifier unmaps %d", r.Host.Pressure, unmaps)
	}
}

// MIPS: the GVA tables refill the host TLB on the fast path, the linear
// scheme on the slow path with guest TLB scans.
func TestMIPSSchemes(t *testing.T) {
	r := shortRun(t, "../examples/mips.yaml", accessesFor(t, 400_000, 100_000), nil)
	gva, lin := r.MIPS[0], r.MIPS[1]
	if gva.SlowRefills != 0 || gva.FastRefills == 0 || lin.SlowRefills == 0 || lin.FastRefills != 0 || lin.TableReads != 0 {
		t.Errorf("gva %+v\nlinear %+v", gva, lin)
	}
}

// The granules: 4-level 4K and 16K, 3-level 64K stage 1 for 48-bit VAs.
func TestGranules(t *testing.T) {
	figuresOnly(t)
	r := shortRun(t, "../examples/granules.yaml", accessesFor(t, 300_000, 100_000), nil)
	for i, want := range []int{4, 4, 3} {
		if r.VMs[i].Levels != want {
			t.Errorf("%s: %d levels, want %d", r.VMs[i].Name, r.VMs[i].Levels, want)
		}
	}
}

// A trace replay counts its records.
func TestTraceReplay(t *testing.T) {
	figuresOnly(t)
	n := accessesFor(t, 200_000, 200_000)
	r := shortRun(t, "../examples/trace-replay.yaml", n, nil)
	if r.VMs[0].TraceRecords == 0 || r.VMs[0].TraceRecords > n {
		t.Errorf("%d trace records for %d accesses", r.VMs[0].TraceRecords, n)
	}
}

// A ChampSim trace (xz-compressed 64-byte records) replays in a guest
// process: each instruction a fetch and its memory operands, every load
// checked.
func TestChampSimReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.champsim.xz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := xz.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	var rec [64]byte
	for i := uint64(0); i < 4000; i++ {
		clear(rec[:])
		binary.LittleEndian.PutUint64(rec[0:], 0x400000+4*(i%300))       // ip
		binary.LittleEndian.PutUint64(rec[16:], 0x7f0000+8*(i*7%2000))   // destination_memory[0]
		binary.LittleEndian.PutUint64(rec[32:], 0x600000+64*(i*13%1000)) // source_memory[0]
		binary.LittleEndian.PutUint64(rec[40:], 0x7f0000+8*(i*11%2000))  // source_memory[1]
		w.Write(rec[:])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	yaml := "accesses: 20000\nhost: {cpus: 1, memory: 128M, pressure: {enabled: false}}\nvms:\n  - memory: 32M\n    processes:\n      - {workload: trace, format: champsim, trace: " + path + "}\n"
	s, err := scenario.Parse([]byte(yaml), "champsim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sane(t, "champsim", r)
	// Each instruction is 4 records (a fetch, 2 loads, a store), each one
	// access: 20000 accesses replay 20000 records, 5000 instructions (the
	// trace looped once).
	if got := r.VMs[0].TraceRecords; got != 20000 {
		t.Errorf("%d trace records replayed, want 20000", got)
	}
}

// figuresOnly skips a test that compares single-threaded figures under the
// race detector: it finds nothing there the concurrent tests do not, and
// its runs would need their full length to keep the figures apart.
func figuresOnly(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("compares figures only; run without -race")
	}
}

// L3's timer interrupts go the way of the hardware's: to L0, on to L1,
// from L1 to the guest hypervisor whose timer it is (L2), which saves L3's
// state and returns to it. Each of L3's ticks is a world switch of L2's
// back to it (VEL2Entries) and into L3 again (Entries); the guest kernel
// switches process on each (2 processes).
func TestL3TicksThroughHypervisors(t *testing.T) {
	r := shortRun(t, "../examples/l3.yaml", accessesFor(t, 400_000, 200_000), nil)
	var l3 *report.VM
	for i := range r.VMs {
		if r.VMs[i].Level == 3 {
			l3 = &r.VMs[i]
		}
	}
	var l2 *report.Hypervisor
	for i := range r.Hypervisors {
		if r.Hypervisors[i].Level == 2 {
			l2 = &r.Hypervisors[i]
		}
	}
	if l3 == nil || l2 == nil {
		t.Fatalf("no L3 VM or L2 hypervisor in %+v", r.Hypervisors)
	}
	ticks := l3.Guest.ContextSwitches
	if ticks == 0 || l2.VEL2Entries < ticks || l2.Entries < ticks {
		t.Errorf("L3's %d ticks, L2's world switches: %d back to it, %d into L3", ticks, l2.VEL2Entries, l2.Entries)
	}
}
