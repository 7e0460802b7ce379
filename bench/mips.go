package bench

import (
	"fmt"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/te"
)

// MIPSRefill is comparison 5: one host TLB refill of a page the guest
// still maps, through the GVA page table (the fast handler) against the
// pre-series slow path that scans the guest TLB linearly; each operation
// invalidates the host entry, then loads (so both include the common
// invalidate and lookup).
func MIPSRefill(cfg Config) (Comparison, error) {
	c := Comparison{Title: "MIPS trap-and-emulate: host TLB refill through the GVA table against the linear guest-TLB path",
		Method: "mips/te engines with 63 guest TLB pairs mapped; interleaved batches, thread CPU time"}
	a, err := refillOp("GVA table", false)
	if err != nil {
		return c, err
	}
	b, err := refillOp("linear guest-TLB scan", true)
	if err != nil {
		return c, err
	}
	p, err := Compare(a, b, cfg)
	if err != nil {
		return c, err
	}
	c.Rows = append(c.Rows, Row{Name: "refill of a guest-mapped page", A: p.A.Name, ANs: p.A.NsPerOp, B: p.B.Name, BNs: p.B.NsPerOp,
		Unit: "ns/op", Ratio: p.Ratio, Met: true, Note: "the seed's claim: the GVA table avoids the guest TLB scan"})
	return c, nil
}

// refillOp builds an engine in guest kernel mode whose guest TLB maps 63
// pairs of 4K pages, each touched once, and returns the refill operation.
func refillOp(name string, legacy bool) (Op, error) {
	e, err := te.New(te.Config{PageSize: 4096, RAMSize: 8 << 20, HostTLBEntries: 64, Seed: 1, Legacy: legacy})
	if err != nil {
		return Op{}, err
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
			return Op{}, fmt.Errorf("mips setup store %#x: %v", va, r)
		}
	}
	kernASID, _ := e.HostASIDs()
	op := cp0.Op{Kind: cp0.OpLoad, Size: 4, PC: 0x40001000}
	i := 0
	return Op{Name: name, Run: func(n int) error {
		for k := 0; k < n; k++ {
			op.VA = vas[i%len(vas)]
			i++
			e.HostTLB().InvalidateVA(op.VA, kernASID)
			if r := e.Exec(op); r.Outcome != cp0.Done {
				return fmt.Errorf("refill load %#x: %v", op.VA, r)
			}
		}
		return nil
	}}, nil
}
