// Package bench runs the comparisons `nestmmu bench` reports: nestmmu's
// parts against other implementations of the same job (gVisor's page
// tables through the peers module, QEMU 10's AT instructions) and against
// their own alternatives and goals, as ratios measured in one run.
//
// Two sides of a comparison are measured interleaved (Compare): rounds of
// a batch of one side, then a batch of the other, each timed with the
// thread's CPU clock, so that both see the same machine load and time the
// thread spends descheduled is not counted; the ratio is the median of
// the rounds' ratios.
package bench

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Op is one side of a comparison: Run performs n operations. Prepare,
// when set, runs before each timed batch of n, untimed (to restore the
// state the operations consume).
type Op struct {
	Name    string
	Prepare func(n int) error
	Run     func(n int) error
}

// Config sizes a measurement.
type Config struct {
	// Rounds is the number of interleaved rounds (0: 9).
	Rounds int
	// Batch is the target CPU time of one side's batch in a round (0:
	// 20 ms).
	Batch time.Duration
}

func (c Config) rounds() int {
	if c.Rounds <= 0 {
		return 9
	}
	return c.Rounds
}

func (c Config) batch() time.Duration {
	if c.Batch <= 0 {
		return 20 * time.Millisecond
	}
	return c.Batch
}

// Timing is one side's result: the median over the rounds of the CPU time
// per operation, and the spread of the rounds.
type Timing struct {
	Name     string  `json:"name"`
	NsPerOp  float64 `json:"ns_per_op"`
	MinNs    float64 `json:"min_ns_per_op"`
	MaxNs    float64 `json:"max_ns_per_op"`
	OpsBatch int     `json:"ops_per_batch"`
}

// Pair is a comparison's result: Ratio is A's time over B's, the median
// of the per-round ratios.
type Pair struct {
	A, B  Timing
	Ratio float64
}

// Compare measures a against b interleaved.
func Compare(a, b Op, cfg Config) (Pair, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	na, err := calibrate(a, cfg.batch())
	if err != nil {
		return Pair{}, err
	}
	nb, err := calibrate(b, cfg.batch())
	if err != nil {
		return Pair{}, err
	}
	r := cfg.rounds()
	ta, tb, ratios := make([]float64, r), make([]float64, r), make([]float64, r)
	for i := 0; i < r; i++ {
		// Alternate which side goes first, so neither always follows
		// the other's cache footprint.
		first, second := &ta[i], &tb[i]
		x, y, nx, ny := a, b, na, nb
		if i%2 == 1 {
			first, second, x, y, nx, ny = second, first, b, a, nb, na
		}
		if *first, err = timeBatch(x, nx); err != nil {
			return Pair{}, err
		}
		if *second, err = timeBatch(y, ny); err != nil {
			return Pair{}, err
		}
		ratios[i] = ta[i] / tb[i]
	}
	return Pair{A: timing(a.Name, ta, na), B: timing(b.Name, tb, nb), Ratio: median(ratios)}, nil
}

// Measure times one operation alone (rounds of batches, CPU time).
func Measure(a Op, cfg Config) (Timing, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := calibrate(a, cfg.batch())
	if err != nil {
		return Timing{}, err
	}
	t := make([]float64, cfg.rounds())
	for i := range t {
		if t[i], err = timeBatch(a, n); err != nil {
			return Timing{}, err
		}
	}
	return timing(a.Name, t, n), nil
}

// calibrate finds the batch size whose CPU time is about target.
func calibrate(o Op, target time.Duration) (int, error) {
	n := 1
	for {
		ns, err := timeBatch(o, n)
		if err != nil {
			return 0, err
		}
		total := ns * float64(n)
		if total >= float64(target)/4 || n >= 1<<30 {
			want := int(float64(n) * float64(target) / max(total, 1))
			return max(1, min(want, 1<<30)), nil
		}
		n *= 4
	}
}

// timeBatch runs n operations and returns the CPU time per operation.
func timeBatch(o Op, n int) (float64, error) {
	if o.Prepare != nil {
		if err := o.Prepare(n); err != nil {
			return 0, fmt.Errorf("bench: %s: %w", o.Name, err)
		}
	}
	t0 := threadCPU()
	if err := o.Run(n); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", o.Name, err)
	}
	d := threadCPU() - t0
	if d <= 0 {
		d = 1
	}
	return float64(d) / float64(n), nil
}

func timing(name string, ns []float64, n int) Timing {
	return Timing{Name: name, NsPerOp: median(ns), MinNs: slices.Min(ns), MaxNs: slices.Max(ns), OpsBatch: n}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ErrUnavailable is returned (wrapped, with the reason) for a comparison
// whose other side cannot run here (no QEMU, no peers module).
var ErrUnavailable = errors.New("bench: unavailable")
