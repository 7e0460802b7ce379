package te_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/mips/randprog"
	"github.com/nestmmu/nestmmu/mips/te"
)

// TestEquivalenceCatchesMissingInvalidation switches off one invalidation
// rule at a time and checks that the equivalence test reports a difference:
// a stale GVA entry is a bug the test must be able to see.
func TestEquivalenceCatchesMissingInvalidation(t *testing.T) {
	cases := []struct {
		name   string
		faults te.Faults
	}{
		{"kernel-flush-on-asid-change", te.Faults{NoKernelFlushOnASIDChange: true}},
		{"user-lazy-flush", te.Faults{NoUserLazyFlush: true}},
		{"tlbw-pte-clear", te.Faults{NoTLBWInvalidate: true}},
		{"tlbw-host-invalidate", te.Faults{NoTLBWHostInvalidate: true}},
		{"full-flush-kseg0", te.Faults{NoFullFlushKSeg0: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := te.Config{PageSize: 4096, RAMSize: 4 << 20, HostTLBEntries: 64, Seed: 11, Faults: c.faults}
			m, e := newPair(t, cfg)
			g := randprog.New(cfg.PageSize, cfg.RAMSize, 11)
			n, mm := randprog.Run(m, e, g, 300_000)
			if mm == nil {
				t.Fatalf("no difference in %d operations with %+v", n, c.faults)
			}
			t.Logf("caught after %d operations: %v", n, mm)
		})
	}
}
