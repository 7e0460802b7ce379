package te

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/guestos"
)

// benchEngine returns an engine in guest kernel mode whose guest TLB maps
// 63 pairs of 4K pages at 0x00400000 (all valid and dirty), each touched
// once so the GVA table holds them.
func benchEngine(b *testing.B, legacy bool) (*Engine, []uint32) {
	return benchEngineHost(b, legacy, 64)
}

func benchEngineHost(b *testing.B, legacy bool, hostEntries int) (*Engine, []uint32) {
	b.Helper()
	e, vas, err := NewRefillEngine(legacy, hostEntries)
	if err != nil {
		b.Fatal(err)
	}
	return e, vas
}

// BenchmarkRefill measures one host TLB refill of a page the guest still
// maps but the host TLB lost: through the GVA table (fast handler) and
// through the slow path with a linear guest TLB scan (pre-series). Each
// iteration invalidates the host entry, then loads.
func BenchmarkRefill(b *testing.B) {
	for _, mode := range []struct {
		name   string
		legacy bool
	}{{"gva-fast", false}, {"slow-linear-scan", true}} {
		b.Run(mode.name, func(b *testing.B) {
			e, vas := benchEngine(b, mode.legacy)
			op := cp0.Op{Kind: cp0.OpLoad, Size: 4, PC: 0x40001000}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				op.VA = vas[i%len(vas)]
				i++
				e.host.InvalidateVA(op.VA, e.hostASID)
				if r := e.Exec(op); r.Outcome != cp0.Done {
					b.Fatalf("%v", r)
				}
			}
			b.ReportMetric(float64(e.Stats.GuestScans)/float64(i), "scans/op")
			b.ReportMetric(float64(e.Stats.GuestCompared+e.Stats.TableReads)/float64(i), "refs/op")
		})
	}
}

// BenchmarkHostTLBHit is the cost of an access that hits the host TLB.
func BenchmarkHostTLBHit(b *testing.B) {
	e, vas := benchEngine(b, false)
	op := cp0.Op{Kind: cp0.OpLoad, Size: 4, PC: 0x40001000, VA: vas[0]}
	e.Exec(op)
	b.ReportAllocs()
	for b.Loop() {
		e.Exec(op)
	}
}

// BenchmarkWorkload runs the guest OS model (processes with a working set
// larger than the host TLB reaches) end to end; ns/op is per user access.
func BenchmarkWorkload(b *testing.B) {
	for _, hostEntries := range []int{16, 64} {
		for _, procs := range []int{1, 4} {
			for _, mode := range []struct {
				name   string
				legacy bool
			}{{"gva", false}, {"legacy", true}} {
				name := fmt.Sprintf("host%d/procs%d/%s", hostEntries, procs, mode.name)
				b.Run(name, func(b *testing.B) {
					e, err := New(Config{PageSize: 4096, RAMSize: 32 << 20, HostTLBEntries: hostEntries, Seed: 1, Legacy: mode.legacy})
					if err != nil {
						b.Fatal(err)
					}
					cfg := guestos.DefaultConfig()
					cfg.Processes = procs
					cfg.WorkingSet = 100 // 50 pairs: fits the guest TLB, not a 16- or 64-entry host TLB shared with the kernel
					cfg.Quantum = 2000
					s0 := benchGuest(b, e, cfg)
					n := float64(b.N)
					b.ReportMetric(float64(e.Stats.FastRefills-s0.FastRefills)/n, "fast/op")
					b.ReportMetric(float64(e.Stats.SlowRefills-s0.SlowRefills)/n, "slowrefill/op")
					b.ReportMetric(float64(e.Stats.GuestScans-s0.GuestScans)/n, "scans/op")
				})
			}
		}
	}
}

// BenchmarkASIDChange is the cost the series accepted: a guest ASID change
// walks and clears the kernel GVA table (which held n mapped pages) and
// takes a new host ASID; the pre-series scheme only takes new host ASIDs.
// Refilling the table between changes is not timed.
func BenchmarkASIDChange(b *testing.B) {
	for _, n := range []int{0, 16, 126} {
		for _, mode := range []struct {
			name   string
			legacy bool
		}{{"gva", false}, {"legacy", true}} {
			b.Run(fmt.Sprintf("mapped%d/%s", n, mode.name), func(b *testing.B) {
				e, vas := benchEngine(b, mode.legacy)
				vas = vas[:n]
				ld := cp0.Op{Kind: cp0.OpLoad, Size: 4, PC: 0x40001000}
				hi := func(asid uint32) cp0.Op {
					return cp0.Op{Kind: cp0.OpMTC0, Reg: cp0.RegEntryHi, Value: asid, PC: 0x40001000}
				}
				var cleared uint64
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					e.Exec(hi(0))
					// Global entries would survive: the guest entries are per-ASID
					// so remap them for ASID 0 by touching under it.
					for _, va := range vas {
						ld.VA = va
						e.Exec(ld)
					}
					before := e.Stats.Flush[FlushASID].PTEsCleared
					b.StartTimer()
					e.Exec(hi(1))
					cleared += e.Stats.Flush[FlushASID].PTEsCleared - before
				}
				b.ReportMetric(float64(cleared)/float64(b.N), "PTEs/flush")
			})
		}
	}
}

// BenchmarkSweep is the end-to-end access cost on a working set (126 pages,
// 63 pairs, all mapped by the guest TLB) that exceeds a 32-entry host TLB
// (a host TLB is shared with the host's own mappings): loads sweep the
// pages in order, so most miss the host TLB while the guest still maps
// them. ns/op is per access.
func BenchmarkSweep(b *testing.B) {
	for _, mode := range []struct {
		name   string
		legacy bool
	}{{"gva", false}, {"legacy", true}} {
		b.Run(mode.name, func(b *testing.B) {
			e, vas := benchEngineHost(b, mode.legacy, 32)
			op := cp0.Op{Kind: cp0.OpLoad, Size: 4, PC: 0x40001000}
			s0 := e.Stats
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				op.VA = vas[i%len(vas)] + uint32(i/len(vas)%1024)*4
				i++
				if r := e.Exec(op); r.Outcome != cp0.Done {
					b.Fatalf("%v", r)
				}
			}
			n := float64(i)
			b.ReportMetric(float64(e.Stats.FastRefills+e.Stats.SlowRefills-s0.FastRefills-s0.SlowRefills)/n, "refills/op")
			b.ReportMetric(float64(e.Stats.GuestScans-s0.GuestScans)/n, "scans/op")
			b.ReportMetric(float64(e.Stats.GuestCompared+e.Stats.TableReads-s0.GuestCompared-s0.TableReads)/n, "refs/op")
		})
	}
}

// BenchmarkDefaultRunGuest is the MIPS guest of the default scenario
// (`nestmmu run`: 4 processes of 96 pages, a 64-entry host TLB, a quantum
// of 500, 30% stores and random pages, KVM reading each trapped
// instruction); ns/op is per user access, the kernel's work included.
func BenchmarkDefaultRunGuest(b *testing.B) {
	e, err := New(Config{PageSize: 4096, RAMSize: 32 << 20, HostTLBEntries: 64, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	s0 := benchGuest(b, e, guestos.Config{PageSize: 4096, RAMSize: 32 << 20, Processes: 4, WorkingSet: 96, Quantum: 500,
		StorePercent: 30, RandomPercent: 30, Seed: 1, KVMReads: true})
	n := float64(b.N)
	b.ReportMetric(float64(e.Stats.Accesses-s0.Accesses)/n, "accesses/op")
	b.ReportMetric(float64(e.Stats.GuestScans-s0.GuestScans)/n, "scans/op")
}

// benchGuest boots the guest OS model with cfg on e, warms it up and times
// b.N user accesses; it returns the engine's statistics before them.
func benchGuest(b *testing.B, e *Engine, cfg guestos.Config) Stats {
	o, err := guestos.New(e, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := o.Run(20000); err != nil { // warm up
		b.Fatal(err)
	}
	s0 := e.Stats
	b.ReportAllocs()
	b.ResetTimer()
	if err := o.Run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	return s0
}
