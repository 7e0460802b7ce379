package te_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/nestmmu/nestmmu/mips/cp0"
	"github.com/nestmmu/nestmmu/mips/randprog"
	"github.com/nestmmu/nestmmu/mips/refmodel"
	"github.com/nestmmu/nestmmu/mips/te"
)

func newPair(t testing.TB, cfg te.Config) (*refmodel.Model, *te.Engine) {
	t.Helper()
	m, e := newPairNoT(cfg)
	if m == nil || e == nil {
		t.Fatalf("cannot build machines for %+v", cfg)
	}
	return m, e
}

func newPairNoT(cfg te.Config) (*refmodel.Model, *te.Engine) {
	refDev := &cp0.ScratchDevice{Base: 0x1f000000, Regs: make([]byte, 64)}
	dutDev := &cp0.ScratchDevice{Base: 0x1f000000, Regs: make([]byte, 64)}
	cfg.MMIO = dutDev
	e, err := te.New(cfg)
	if err != nil {
		return nil, nil
	}
	m, err := refmodel.New(cfg.PageSize, cfg.RAMSize, refDev)
	if err != nil {
		return nil, nil
	}
	return m, e
}

// equivConfigs together run more than 10^6 operations, under the series'
// semantics and with DirtyLog.
var equivConfigs = []struct {
	name string
	cfg  te.Config
	ops  int
}{
	{"4K-dirtylog", te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 64, Seed: 1, DirtyLog: true}, 300_000},
	{"4K", te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 64, Seed: 6}, 120_000},
	{"4K-smallhost", te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 8, Seed: 2}, 220_000},
	{"16K", te.Config{PageSize: 16384, RAMSize: 8 << 20, HostTLBEntries: 32, Seed: 3}, 100_000},
	{"16K-dirtylog", te.Config{PageSize: 16384, RAMSize: 8 << 20, HostTLBEntries: 32, Seed: 7, DirtyLog: true}, 100_000},
	{"64K", te.Config{PageSize: 65536, RAMSize: 16 << 20, HostTLBEntries: 16, Seed: 4}, 40_000},
	{"4K-legacy", te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 32, Seed: 5, Legacy: true}, 100_000},
	{"4K-legacy-dirtylog", te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 32, Seed: 8, Legacy: true, DirtyLog: true}, 60_000},
}

// TestEquivalence runs randomized guest programs on the reference model and
// the engine in several configurations (page sizes, host TLB sizes, the
// pre-series scheme): more than 10^6 operations with no difference in any
// result, register, TLB entry or dirty log, and no duplicate host TLB
// entries after any operation. NESTMMU_SOAK=n multiplies the operation
// counts by n and runs other seeds.
func TestEquivalence(t *testing.T) {
	total := 0
	scale, seedOff := 1, uint64(0)
	if v, err := strconv.Atoi(os.Getenv("NESTMMU_SOAK")); err == nil && v > 0 {
		scale, seedOff = v, uint64(v)*1000
	}
	for _, c := range equivConfigs {
		c.ops *= scale
		c.cfg.Seed += seedOff
		t.Run(c.name, func(t *testing.T) {
			m, e := newPair(t, c.cfg)
			g := randprog.New(c.cfg.PageSize, c.cfg.RAMSize, c.cfg.Seed)
			n, mm := randprog.RunChecked(m, e, g, c.ops, e.HostTLB().Duplicates)
			total += n
			if mm != nil {
				t.Fatal(mm)
			}
			if e.Stats.Livelocks != 0 {
				t.Errorf("%d livelocks", e.Stats.Livelocks)
			}
			t.Logf("%d ops; fast refills %d (empty %d), slow refills %d, injected TLBL %d TLBS %d Mod %d",
				n, e.Stats.FastRefills, e.Stats.FastEmpty, e.Stats.SlowRefills,
				e.Stats.Injected[cp0.ExcTLBL], e.Stats.Injected[cp0.ExcTLBS], e.Stats.Injected[cp0.ExcMod])
		})
	}
	if total < 1_000_000 && !t.Failed() {
		t.Errorf("only %d operations compared, want at least 10^6", total)
	}
}
