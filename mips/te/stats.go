package te

import (
	"fmt"
	"io"
	"time"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

// Slow is a reason for an exit to KVM's slow path (C code in the series).
type Slow uint8

// Slow-path exits.
const (
	SlowCommpage     Slow = iota // commpage mapped into the kernel table
	SlowKSeg0                    // guest KSeg0 page and buddy mapped
	SlowMapped                   // guest TLB hit: pair mapped into the GVA table
	SlowGuestRefill              // no guest TLB match: TLB refill injected
	SlowGuestInvalid             // guest TLB match with V=0: TLB invalid injected
	SlowTLBModInject             // store to a guest D=0 page: TLB modified injected
	SlowDirty                    // store to a clean page: logged dirty, remapped writable
	SlowAddrErr                  // address error injected (user access to kernel segment, unaligned)
	SlowMMIO                     // emulated MMIO access
	SlowInternal                 // cannot emulate
	NumSlow
)

var slowNames = [...]string{"commpage", "kseg0", "mapped", "guest-refill", "guest-invalid", "tlbmod-inject", "dirty-log", "addr-error", "mmio", "internal"}

// String names the slow-path reason.
func (s Slow) String() string {
	if int(s) < len(slowNames) {
		return slowNames[s]
	}
	return fmt.Sprintf("slow%d", uint8(s))
}

// FlushKind is why GVA tables (or host TLB entries) were invalidated.
type FlushKind uint8

// Flush kinds, one per invalidation rule.
const (
	FlushASID  FlushKind = iota // guest ASID change: kernel table at once, new host ASID
	FlushUser                   // lazy user-table flush on entry to guest user mode
	FlushTLBW                   // old entry's PTEs cleared on TLBWI/TLBWR
	FlushAll                    // full flush request (both tables, KSeg0 too)
	FlushDirty                  // dirty-log harvest: write-protect both tables
	NumFlush
)

var flushNames = [...]string{"asid-change(kernel)", "user-lazy", "tlbw", "full", "dirty-harvest"}

// String names the flush kind.
func (k FlushKind) String() string {
	if int(k) < len(flushNames) {
		return flushNames[k]
	}
	return fmt.Sprintf("flush%d", uint8(k))
}

// FlushStats is the accumulated cost of one kind of invalidation.
type FlushStats struct {
	Count       uint64        // invalidations performed
	PTEsCleared uint64        // non-empty PTEs cleared (or write-protected)
	PagesFreed  uint64        // fully covered PTE pages freed
	HostEntries uint64        // host TLB entries invalidated one by one
	Time        time.Duration // wall time spent in the invalidation
}

// Stats counts what the engine did.
type Stats struct {
	Ops         [cp0.NumOpKinds]uint64
	Accesses    uint64 // hardware loads, stores and fetches
	HostTLBHits uint64 // accesses that hit a valid host TLB entry first time
	// FastRefills are host TLB refills by the fast handler; FastEmpty of
	// them loaded an empty PTE (the access retried into the slow path).
	FastRefills, FastEmpty uint64
	// SlowRefills are host TLB refills through the slow path (Legacy).
	SlowRefills uint64
	GuestScans  uint64 // linear guest TLB lookups
	// GuestCompared is the number of guest TLB entries those scans
	// examined; TableReads the pgd and PTE words the fast refill read.
	// Both are machine-independent costs.
	GuestCompared, TableReads uint64
	Slow                      [NumSlow]uint64
	Injected                  [32]uint64 // exceptions injected, by ExcCode
	RefillVector              uint64     // of which delivered at the refill vector
	KVMAccesses               uint64     // KVM's own accesses to guest memory
	KVMFaults                 uint64     // of which faulted and went to the GVA fault path
	Flush                     [NumFlush]FlushStats
	HostASIDs                 uint64 // host ASIDs allocated
	Rollovers                 uint64 // host ASID version rollovers (full host TLB flush)
	Livelocks                 uint64 // accesses that did not settle (a bug if non-zero)
}

// Report writes a readable summary of the statistics.
func (s *Stats) Report(w io.Writer) {
	fmt.Fprintf(w, "operations:\n")
	for k := cp0.OpKind(0); k < cp0.NumOpKinds; k++ {
		if s.Ops[k] != 0 {
			fmt.Fprintf(w, "  %-13s %d\n", k, s.Ops[k])
		}
	}
	fmt.Fprintf(w, "host TLB:\n")
	fmt.Fprintf(w, "  accesses      %d (hit first time %d)\n", s.Accesses, s.HostTLBHits)
	fmt.Fprintf(w, "  host ASIDs    %d allocated, %d rollovers\n", s.HostASIDs, s.Rollovers)
	fmt.Fprintf(w, "refills by path:\n")
	fmt.Fprintf(w, "  fast (GVA table walk)         %d\n", s.FastRefills)
	fmt.Fprintf(w, "    of which empty PTE -> slow  %d\n", s.FastEmpty)
	fmt.Fprintf(w, "  slow (exit, guest TLB scan)   %d\n", s.SlowRefills)
	fmt.Fprintf(w, "  guest TLB linear scans        %d (%d entries compared)\n", s.GuestScans, s.GuestCompared)
	fmt.Fprintf(w, "  GVA table words read          %d\n", s.TableReads)
	fmt.Fprintf(w, "slow-path exits:\n")
	for k := Slow(0); k < NumSlow; k++ {
		if s.Slow[k] != 0 {
			fmt.Fprintf(w, "  %-14s %d\n", k, s.Slow[k])
		}
	}
	fmt.Fprintf(w, "exceptions injected:\n")
	for c, n := range s.Injected {
		if n != 0 {
			fmt.Fprintf(w, "  %-5v %d\n", cp0.ExcCode(c), n)
		}
	}
	fmt.Fprintf(w, "  (at the refill vector: %d)\n", s.RefillVector)
	fmt.Fprintf(w, "KVM accesses to guest memory: %d (faulted %d)\n", s.KVMAccesses, s.KVMFaults)
	fmt.Fprintf(w, "flushes:\n")
	fmt.Fprintf(w, "  %-20s %8s %12s %10s %12s %12s %10s\n", "kind", "count", "PTEs", "pages", "host-entries", "time", "per-flush")
	for k := FlushKind(0); k < NumFlush; k++ {
		f := s.Flush[k]
		per := time.Duration(0)
		if f.Count > 0 {
			per = f.Time / time.Duration(f.Count)
		}
		fmt.Fprintf(w, "  %-20s %8d %12d %10d %12d %12v %10v\n", k, f.Count, f.PTEsCleared, f.PagesFreed, f.HostEntries, f.Time, per)
	}
	if s.Livelocks != 0 {
		fmt.Fprintf(w, "LIVELOCKS: %d\n", s.Livelocks)
	}
}
