package te

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mips/cp0"
)

// NewRefillEngine returns an engine in guest kernel mode whose guest TLB
// maps 63 pairs of 4K pages at 0x00400000 (all valid and dirty), each
// touched once so the GVA table holds them, and those pages' VAs: the
// setup of the refill measurements (this package's benchmarks and
// `nestmmu bench`). legacy selects the linear guest-TLB slow path.
func NewRefillEngine(legacy bool, hostEntries int) (*Engine, []uint32, error) {
	e, err := New(Config{PageSize: 4096, RAMSize: 8 << 20, HostTLBEntries: hostEntries, Seed: 1, Legacy: legacy})
	if err != nil {
		return nil, nil, err
	}
	run := func(op cp0.Op) cp0.Result { op.PC = 0x40001000; return e.Exec(op) }
	mtc0 := func(reg uint8, v uint32) { run(cp0.Op{Kind: cp0.OpMTC0, Reg: reg, Value: v}) }
	mtc0(cp0.RegStatus, 0)
	var vas []uint32
	for i := 1; i < cp0.Entries; i++ {
		va := 0x00400000 + uint32(i)*0x2000
		mtc0(cp0.RegEntryHi, va)
		mtc0(cp0.RegEntryLo0, uint32(0x100+2*i)<<6|cp0.EntryLoV|cp0.EntryLoD)
		mtc0(cp0.RegEntryLo1, uint32(0x101+2*i)<<6|cp0.EntryLoV|cp0.EntryLoD)
		mtc0(cp0.RegIndex, uint32(i))
		run(cp0.Op{Kind: cp0.OpTLBWI})
		vas = append(vas, va, va+0x1000)
	}
	mtc0(cp0.RegEntryHi, 0)
	for _, va := range vas {
		if r := run(cp0.Op{Kind: cp0.OpStore, VA: va, Size: 4, Value: va}); r.Outcome != cp0.Done {
			return nil, nil, fmt.Errorf("te: refill setup store %#x: %v", va, r)
		}
	}
	return e, vas, nil
}
