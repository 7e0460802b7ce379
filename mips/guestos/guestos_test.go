package guestos_test

import (
	"github.com/nestmmu/nestmmu/mips/cp0"
	"testing"

	"github.com/nestmmu/nestmmu/mips/guestos"
	"github.com/nestmmu/nestmmu/mips/refmodel"
	"github.com/nestmmu/nestmmu/mips/te"
)

// TestWorkloadSameOnEngineAndReference runs the guest kernel on the
// reference model and on the engine (new and legacy schemes, each with the
// series' semantics and with DirtyLog, three page sizes): every loaded value is checked by the guest, and the guest's own
// counters must be identical on every machine since it sees the same
// architecture.
func TestWorkloadSameOnEngineAndReference(t *testing.T) {
	for _, ps := range []uint32{4096, 16384, 65536} {
		cfg := guestos.DefaultConfig()
		cfg.PageSize = ps
		cfg.RAMSize = 64 << 20
		cfg.WorkingSet = 40
		ref, err := refmodel.New(ps, cfg.RAMSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := run(t, ref, cfg, 20000)
		for _, mode := range []te.Config{{}, {DirtyLog: true}, {Legacy: true}, {Legacy: true, DirtyLog: true}} {
			tc := mode
			tc.PageSize, tc.RAMSize, tc.HostTLBEntries, tc.Seed = ps, cfg.RAMSize, 32, 9
			e, err := te.New(tc)
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, e, cfg, 20000)
			if got != want {
				t.Errorf("page size %d %+v: guest stats %+v, reference %+v", ps, mode, got, want)
			}
			if e.Stats.Livelocks != 0 {
				t.Errorf("livelocks: %d", e.Stats.Livelocks)
			}
		}
		if want.Refills == 0 || want.PageFaults == 0 || want.ModFaults == 0 || want.ContextSwitches == 0 {
			t.Errorf("page size %d: workload did not exercise every handler: %+v", ps, want)
		}
	}
}

func run(t *testing.T, m interface {
	guestos.Machine
}, cfg guestos.Config, n int) guestos.Stats {
	t.Helper()
	o, err := guestos.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Run(n); err != nil {
		t.Fatal(err)
	}
	return o.Stats
}

// corrupting is a machine that flips bit 0 of one completed user load's
// value: the guest's check must report it.
type corrupting struct {
	cp0.Machine
	loads, at int
}

func (c *corrupting) Exec(op cp0.Op) cp0.Result {
	r := c.Machine.Exec(op)
	if op.Kind == cp0.OpLoad && op.VA < cp0.GuestKSeg0 && r.Outcome == cp0.Done {
		if c.loads++; c.loads == c.at {
			r.Value ^= 1
		}
	}
	return r
}

// TestWrongLoadReported: the guest checks every user load against the
// last value it stored to the word (negative control: one wrong value
// stops the run with an error; the unchanged machine passes the same run).
func TestWrongLoadReported(t *testing.T) {
	cfg := guestos.DefaultConfig()
	for _, at := range []int{0, 5000} {
		ref, err := refmodel.New(cfg.PageSize, cfg.RAMSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := guestos.New(&corrupting{Machine: ref, at: at}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = o.Run(20000)
		if at == 0 && (err != nil || o.Stats.Verified < 5000) {
			t.Errorf("unchanged machine: %v, %d loads verified", err, o.Stats.Verified)
		}
		if at != 0 && (err == nil || o.Stats.Errors == 0) {
			t.Errorf("load %d corrupted: no error (%+v)", at, o.Stats)
		}
	}
}
