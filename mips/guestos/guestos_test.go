package guestos_test

import (
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
