package guestos_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/guestos"
	"github.com/nestmmu/nestmmu/mips/te"
)

// execOnly hides the engine's ExecInto: the guest then runs every
// operation through Exec.
type execOnly struct{ cp0.Machine }

// TestExecIntoSameAsExec: the guest run through the engine's ExecInto
// (results stored in place) and through Exec alone ends with the same
// guest statistics, the same engine statistics apart from flush times,
// and the same registers and TLB.
func TestExecIntoSameAsExec(t *testing.T) {
	cfg := guestos.DefaultConfig()
	newEngine := func() *te.Engine {
		e, err := te.New(te.Config{PageSize: cfg.PageSize, RAMSize: cfg.RAMSize, HostTLBEntries: 64, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := newEngine(), newEngine()
	if _, ok := cp0.Machine(a).(cp0.ResultWriter); !ok {
		t.Fatal("the engine is not a cp0.ResultWriter")
	}
	sa, sb := run(t, a, cfg, 30000), run(t, execOnly{b}, cfg, 30000)
	if sa != sb {
		t.Errorf("guest stats: ExecInto %+v, Exec %+v", sa, sb)
	}
	ea, eb := a.Stats, b.Stats
	for k := range ea.Flush {
		ea.Flush[k].Time, eb.Flush[k].Time = 0, 0
	}
	if ea != eb {
		t.Errorf("engine stats differ:\nExecInto %+v\nExec     %+v", ea, eb)
	}
	for reg := uint8(0); reg < 32; reg++ {
		for sel := uint8(0); sel < 8; sel++ {
			if x, y := a.CP0(reg, sel), b.CP0(reg, sel); x != y {
				t.Errorf("CP0 %d,%d: %#x and %#x", reg, sel, x, y)
			}
		}
	}
	for i := 0; i < cp0.Entries; i++ {
		if a.TLBEntry(i) != b.TLBEntry(i) {
			t.Errorf("TLB entry %d: %+v and %+v", i, a.TLBEntry(i), b.TLBEntry(i))
		}
	}
}
