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

// ErrTooFew is ATThroughput's error when the cases are too few to measure
// QEMU's time per AT against the variation of its boot time.
var ErrTooFew = errors.New("bench: too few AT cases")

// ATThroughput is comparison 2: AT instructions per second of the model
// (arm64/at through the at-json machine state) against QEMU 10 (TCG,
// the conformance runner, one instance) on the same generated cases. The
// time per AT is that of a run of n cases minus a run with none, so the
// boot of QEMU (and the model's nothing) cancels; the model runs the
// parsed machines (parsing is not timed: QEMU's case tables are written
// before it boots). Wall time: QEMU is another process. Goal: the model
// at least 5 times as fast. ErrUnavailable without QEMU. Each side's time
// includes its result reporting (QEMU's runner prints each result on the
// serial line; the model composes the at-json output).
func ATThroughput(ctx context.Context, n int, seed int64) (Comparison, error) {
	c := Comparison{Title: "AT instructions: the model against QEMU 10 on the same generated cases",
		Method: fmt.Sprintf("%d conform cases (seed %d); (run of n cases - run of none) / ATs; one QEMU instance; QEMU the median of 3 runs, the model of 9; wall time", n, seed)}
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
	var docs [][]byte
	ats, dropped := 0, 0
	for i, r := range first {
		if r.Err != nil {
			dropped++
			continue
		}
		cases, docs = append(cases, all[i]), append(docs, conform.MarshalCase(&all[i]))
		ats += len(all[i].Ops)
	}
	// A machine runs once (its hardware updates change its memory): fresh
	// ones for every round, parsed before the timing.
	parse := func() ([]*atjson.Machine, error) {
		ms := make([]*atjson.Machine, len(docs))
		for i, d := range docs {
			var err error
			if ms[i], err = atjson.Parse(bytes.NewReader(d)); err != nil {
				return nil, err
			}
		}
		return ms, nil
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
		// The model's runs are short next to QEMU's: three per QEMU round,
		// so its median is over nine.
		for i := 0; i < 3; i++ {
			machines, err := parse()
			if err != nil {
				return c, err
			}
			t0 = time.Now()
			for _, m := range machines {
				m.Run(nil)
			}
			modelNs = append(modelNs, float64(time.Since(t0))/float64(ats))
		}
	}
	q, m := median(qemuNs), median(modelNs)
	if q <= 0 {
		return c, fmt.Errorf("%w: QEMU's run of %d cases took no longer than its run of none (its boot time varies more than the cases take: give more cases)", ErrTooFew, len(cases))
	}
	r := Row{Name: "one AT instruction", A: "model", ANs: m, B: "QEMU 10", BNs: q, Unit: "ns/AT", Ratio: q / m,
		Note: fmt.Sprintf("%d ATs in %d cases (%d cases QEMU cannot run left out); the ratio is QEMU's time over the model's: how many times faster the model is", ats, len(cases), dropped)}
	atLeast(&r, 5)
	c.Rows = append(c.Rows, r)
	return c, nil
}
