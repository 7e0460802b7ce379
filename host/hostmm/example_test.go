package hostmm_test

import (
	"fmt"
	"sync"

	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// stage2 is the smallest secondary MMU: one map from guest page to host
// PA, its MMU lock and its invalidation sequence.
type stage2 struct {
	mu  sync.Mutex
	inv hostmm.Invalidation
	pte map[hostmm.HVA]mem.PA
}

func (s *stage2) InvalidateRangeStart(r hostmm.Range) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inv.Begin(r.Start, r.End)
	for hva := range s.pte {
		if hva >= r.Start && hva < r.End {
			delete(s.pte, hva) // unmap, then TLBI
		}
	}
}

func (s *stage2) InvalidateRangeEnd(r hostmm.Range) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inv.End(r.Start, r.End)
}

func (s *stage2) ChangePTE(hostmm.HVA, mem.PA)                {}
func (s *stage2) ClearYoung(hostmm.HVA, hostmm.HVA) bool      { return false }
func (s *stage2) ClearFlushYoung(hostmm.HVA, hostmm.HVA) bool { return false }
func (s *stage2) TestYoung(hostmm.HVA, hostmm.HVA) bool       { return false }
func (s *stage2) Release()                                    {}

// A stage-2 fault: read the sequence, resolve the HVA, install under the
// MMU lock unless an invalidation got in between.
func Example() {
	arena, _ := hostmem.New(hostmem.Config{Size: 8 << 20}) // host PAs from 0x4000_0000
	defer arena.Close()
	k, _ := hostmm.NewKernel(arena, hostmm.Config{})
	vmm := k.NewAddressSpace()
	guestRAM, _ := vmm.Mmap(1<<20, hostmm.MapMergeable) // memslot backing
	s2 := &stage2{pte: map[hostmm.HVA]mem.PA{}}
	vmm.RegisterNotifier(s2)

	hva := guestRAM + 0x3000 // from the memslot: GPA -> HVA
	var m hostmm.Mapping
	s2.inv.Fault(&s2.mu, hva,
		func() (err error) { m, err = vmm.FaultIn(hva, true); return err },
		func() error { s2.pte[hva] = m.PA; return nil })
	arena.Write64(s2.pte[hva], 42) // the guest stores through stage 2
	fmt.Printf("mapped %#x writable=%v\n", uint64(s2.pte[hva]), m.Writable)

	vmm.SwapOut(hva) // host reclaim: stage 2 is told first
	_, still := s2.pte[hva]
	v, _ := vmm.Read(hva, 8) // the VMM touches it: swapped back in
	fmt.Println("stage-2 entry after swap-out:", still, "value:", v)
	// Output:
	// mapped 0x40000000 writable=true
	// stage-2 entry after swap-out: false value: 42
}
