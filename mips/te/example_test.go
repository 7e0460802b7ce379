package te_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/te"
)

// Refill a MIPS TLB the way the GVA page-table series does. The guest
// kernel writes a TLB entry mapping the page pair at 0x00400000 to guest
// physical 0x10000/0x11000. The first load misses in the host TLB; the
// fast refill finds an empty GVA PTE, so the retry exits to the slow path,
// which finds the guest's entry and fills the GVA table. After the host
// TLB loses the entry, the fast refill alone restores it: no exit, no guest
// TLB scan. (The first access refills twice: once with the empty PTE,
// once more after the slow path filled it.)
func Example() {
	e, _ := te.New(te.Config{PageSize: 4096, RAMSize: 1 << 20})
	exec := func(op cp0.Op) cp0.Result { op.PC = 0x4000_1000; return e.Exec(op) }
	mtc0 := func(reg uint8, v uint32) { exec(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Value: v}) }
	mtc0(cp0.RegStatus, 0) // guest kernel mode
	mtc0(cp0.RegPageMask, 0)
	mtc0(cp0.RegEntryHi, 0x0040_0000)
	mtc0(cp0.RegEntryLo0, 0x10000>>12<<6|cp0.EntryLoV|cp0.EntryLoD)
	mtc0(cp0.RegEntryLo1, 0x11000>>12<<6|cp0.EntryLoV|cp0.EntryLoD)
	mtc0(cp0.RegIndex, 3)
	exec(cp0.Op{Kind: cp0.OpTLBWI})

	exec(cp0.Op{Kind: cp0.OpStore, VA: 0x0040_0010, Size: 4, Value: 0xcafe})
	s := e.Stats
	fmt.Printf("first access: fast refills %d (empty %d), guest TLB scans %d, slow-path maps %d\n",
		s.FastRefills, s.FastEmpty, s.GuestScans, s.Slow[te.SlowMapped])

	e.HostTLB().FlushAll()
	r := exec(cp0.Op{Kind: cp0.OpLoad, VA: 0x0040_0010, Size: 4})
	s = e.Stats
	fmt.Printf("after a host TLB flush: %v %#x; fast refills %d, guest TLB scans %d\n", r.Outcome, r.Value, s.FastRefills, s.GuestScans)
	// Output:
	// first access: fast refills 2 (empty 1), guest TLB scans 1, slow-path maps 1
	// after a host TLB flush: done 0xcafe; fast refills 3, guest TLB scans 1
}
