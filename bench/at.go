package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/conform"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

// ATThroughput is comparison 2: AT instructions per second of the model
// (arm64/at through the at-json machine state) against QEMU 10 (TCG,
// the conformance runner, one instance) on the same generated cases. The
// time per AT is that of a run of n cases minus a run with none, so the
// boot of QEMU (and the model's nothing) cancels; the model runs the
// parsed machines (parsing is not timed: QEMU's case tables are written
// before it boots). Wall time: QEMU is another process. Goal: the model
// at least 5 times as fast. ErrUnavailable without QEMU.
func ATThroughput(ctx context.Context, n int, seed int64) (Comparison, error) {
	c := Comparison{Title: "AT instructions: the model against QEMU 10 on the same generated cases",
		Method: fmt.Sprintf("%d conform cases (seed %d); (run of n cases - run of none) / ATs; one QEMU instance; median of 3; wall time", n, seed)}
	o, err := qemu.New(qemu.Options{Instances: 1})
	if err != nil {
		if errors.Is(err, qemu.ErrNotFound) {
			c.Unavailable = err.Error()
			return c, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return c, err
	}
	defer o.Close()
	gen := conform.Generate(seed, n)
	all := make([]qemu.Case, n)
	for i := range gen {
		all[i] = gen[i].Q
	}
	// The cases QEMU cannot run (its known crashes, docs/CONFORMANCE.md)
	// would add launches: a first pass leaves them out of both sides.
	first, err := o.Run(ctx, all)
	if err != nil {
		return c, err
	}
	var cases []qemu.Case
	var machines []*atjson.Machine
	ats, dropped := 0, 0
	for i, r := range first {
		if r.Err != nil {
			dropped++
			continue
		}
		m, err := atjson.Parse(bytes.NewReader(conform.MarshalCase(&all[i])))
		if err != nil {
			return c, fmt.Errorf("case %s: %w", gen[i].ID, err)
		}
		cases, machines = append(cases, all[i]), append(machines, m)
		ats += len(all[i].Ops)
	}
	if len(cases) == 0 {
		return c, errors.New("bench: QEMU ran none of the cases")
	}
	var qemuNs, modelNs []float64
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		if err := o.RunEmpty(ctx); err != nil {
			return c, err
		}
		empty := time.Since(t0)
		t0 = time.Now()
		res, err := o.Run(ctx, cases)
		full := time.Since(t0)
		if err != nil {
			return c, err
		}
		for i, r := range res {
			if r.Err != nil {
				return c, fmt.Errorf("QEMU case %d of the second pass: %w", i, r.Err)
			}
		}
		qemuNs = append(qemuNs, float64(full-empty)/float64(ats))
		t0 = time.Now()
		for _, m := range machines {
			m.Run(nil)
		}
		modelNs = append(modelNs, float64(time.Since(t0))/float64(ats))
	}
	q, m := median(qemuNs), median(modelNs)
	r := Row{Name: "one AT instruction", A: "model", ANs: m, B: "QEMU 10", BNs: q, Unit: "ns/AT", Ratio: q / m,
		Note: fmt.Sprintf("%d ATs in %d cases (%d cases QEMU cannot run left out); the ratio is QEMU's time over the model's: how many times faster the model is", ats, len(cases), dropped)}
	atLeast(&r, 5)
	c.Rows = append(c.Rows, r)
	return c, nil
}
