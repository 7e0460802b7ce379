package qemu

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// throughputCases returns n cases of 4 ops each over the at-json example's
// tables, with random VAs, operations and PSTATE.PAN.
func throughputCases(n int) []Case {
	rng := rand.New(rand.NewPCG(7, 8))
	ops := []string{"S1E0R", "S1E0W", "S1E1R", "S1E1W", "S1E1RP", "S1E1WP"}
	cs := make([]Case, n)
	for i := range cs {
		c := atJSONExample()
		c.PAN = rng.IntN(2) == 1
		for j := range c.Ops {
			c.Ops[j] = Op{ops[rng.IntN(len(ops))], rng.Uint64N(0x5000)}
		}
		cs[i] = c
	}
	return cs
}

// TestThroughput runs NESTMMU_QEMU_CASES (default 5000) cases of 4 ops and
// logs cases per second; every case must produce a result.
//
//	go test -run TestThroughput -v ./conform/qemu/
func TestThroughput(t *testing.T) {
	n := 5000
	if s := os.Getenv("NESTMMU_QEMU_CASES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("NESTMMU_QEMU_CASES=%q is not a positive count", s)
		}
	}
	if testing.Short() {
		n = 500
	}
	o := newOracle(t, Options{})
	cs := throughputCases(n)
	t0 := time.Now()
	res, err := o.Run(context.Background(), cs)
	d := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("case %d: %v", i, r.Err)
		}
		if r.Watch[0]&^(1<<10) != 0x40002343 {
			t.Fatalf("case %d: watched descriptor %#x", i, r.Watch[0])
		}
	}
	t.Logf("%d cases x 4 AT in %v with %d QEMU instances: %.0f cases/s, %.0f AT/s",
		n, d.Round(time.Millisecond), o.opts.Instances, float64(n)/d.Seconds(), float64(4*n)/d.Seconds())
}

// BenchmarkRun measures one Run of 1000 cases of 4 ops (one QEMU instance).
func BenchmarkRun(b *testing.B) {
	o := newOracle(b, Options{Instances: 1})
	cs := throughputCases(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Run(context.Background(), cs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(cs))/b.Elapsed().Seconds(), "cases/s")
}
