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

// refillOp returns the refill operation on te.NewRefillEngine's engine
// (63 guest TLB pairs mapped, each page touched once).
func refillOp(name string, legacy bool) (Op, error) {
	e, vas, err := te.NewRefillEngine(legacy, 64)
	if err != nil {
		return Op{}, err
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
