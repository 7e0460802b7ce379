package te_test

import (
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/mips/randprog"
	"github.com/nestmmu/nestmmu/mips/te"
)

// TestEquivalenceCatchesMissingInvalidation switches off one rule at a
// time and checks that the equivalence runner reports a difference: a
// stale GVA entry, a stale host TLB entry or a duplicate host TLB entry is
// a bug the test must be able to see. The ASID-change rule is split in two
// (flush the kernel table, take a new host ASID) so that each half is shown
// necessary on its own. want, when set, is text the report must contain.
func TestEquivalenceCatchesMissingInvalidation(t *testing.T) {
	cases := []struct {
		name   string
		faults te.Faults
		cfg    te.Config
		want   string
	}{
		{name: "kernel-flush-on-asid-change", faults: te.Faults{NoKernelFlushOnASIDChange: true}},
		{name: "new-host-asid-on-asid-change", faults: te.Faults{NoNewKernelASIDOnChange: true}},
		{name: "user-lazy-flush", faults: te.Faults{NoUserLazyFlush: true}},
		{name: "tlbw-pte-clear", faults: te.Faults{NoTLBWInvalidate: true}},
		{name: "tlbw-host-invalidate", faults: te.Faults{NoTLBWHostInvalidate: true}},
		{name: "full-flush-kseg0", faults: te.Faults{NoFullFlushKSeg0: true}},
		{name: "kernel-flush-on-asid-change/dirtylog", faults: te.Faults{NoKernelFlushOnASIDChange: true}, cfg: te.Config{DirtyLog: true}},
		{name: "new-host-asid-on-asid-change/dirtylog", faults: te.Faults{NoNewKernelASIDOnChange: true}, cfg: te.Config{DirtyLog: true}},
		{name: "new-host-asid-on-asid-change/legacy", faults: te.Faults{NoNewKernelASIDOnChange: true}, cfg: te.Config{Legacy: true}},
		// Without the invalidation before a slow-path fill, the pre-series
		// scheme writes a second host entry for a pair that still has an
		// invalid one: the per-operation duplicate check reports it.
		{name: "install-invalidate/legacy", faults: te.Faults{NoInstallInvalidate: true}, cfg: te.Config{Legacy: true}, want: "both match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.PageSize, cfg.RAMSize, cfg.HostTLBEntries, cfg.Seed = 4096, 4<<20, 64, 11
			m, e := newPair(t, cfg)
			e.SetFaults(c.faults)
			g := randprog.New(cfg.PageSize, cfg.RAMSize, 11)
			n, mm := randprog.RunChecked(m, e, g, 300_000, e.HostTLB().Duplicates)
			if mm == nil {
				t.Fatalf("no difference in %d operations with %+v", n, c.faults)
			}
			if !strings.Contains(mm.What, c.want) {
				t.Fatalf("caught after %d operations, but not as %q: %v", n, c.want, mm)
			}
			t.Logf("caught after %d operations: %v", n, mm)
		})
	}
}
