package sim

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/guestos"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/workload"
)

// checkRun is a vCPU run with only what verify uses: the integrity check
// on, one process with region 0 of size bytes at base.
func checkRun(base, size uint64) (*vcpuRun, *proc) {
	s := &scenario.Scenario{Checks: scenario.Checks{Integrity: true}}
	vr := &vmRun{cfg: &scenario.VM{Name: "vm0"}}
	r := &vcpuRun{m: &machine{s: s}, vm: vr}
	p := &proc{gp: &guestos.Proc{PID: 7}, sh: newShadow(newPagePool(12))}
	p.regions[0] = region{base, size}
	p.sh.mapRegion(0, size)
	return r, p
}

// batchOf is the batch the driver builds for acc, with the loads' results
// taken from got (by index).
func batchOf(p *proc, acc []workload.Access, got map[int]uint64) []kvm.BatchAccess {
	b := make([]kvm.BatchAccess, len(acc))
	for i := range acc {
		a := &acc[i]
		b[i] = kvm.BatchAccess{VA: mem.VA(p.va(a)), Val: a.Val, Size: a.Size, Write: a.Kind == workload.Store, Hint: p.sh.hint(a)}
		if a.Kind == workload.Load {
			b[i].Val = got[i]
		}
	}
	return b
}

// TestBatchCheckReportsInOrder: the batch names the shadow words of its
// accesses as hints (loaded beside the accesses, before the check), but
// every load is still checked against the
// value the last store before it in program order wrote, stores of the
// batch included, and each violation names its own access (address, size,
// value read, value expected), in the batch's order.
func TestBatchCheckReportsInOrder(t *testing.T) {
	const base = 0x10_0000
	r, p := checkRun(base, 4<<12)
	p.sh.store(0, 2, 0x10, 8, 0x55) // stored by an earlier batch
	acc := []workload.Access{
		{Off: 0x2010, Size: 8, Kind: workload.Load},               // 0: reads 0x55: right
		{Off: 0x2010, Size: 8, Kind: workload.Load},               // 1: reads 0x56: wrong
		{Off: 0x1008, Val: 0xaabb, Size: 8, Kind: workload.Store}, // 2
		{Off: 0x1008, Size: 8, Kind: workload.Load},               // 3: reads 0xaabb: right
		{Off: 0x1009, Size: 1, Kind: workload.Load},               // 4: reads 0xaa: right
		{Off: 0x3000, Size: 4, Kind: workload.Load},               // 5: reads 1: wrong (never stored)
		{Off: 0x2010, Val: 0x1234, Size: 2, Kind: workload.Store}, // 6
		{Off: 0x2010, Size: 8, Kind: workload.Load},               // 7: reads 0x55: wrong (the store before it)
		{Off: 0x2010, Size: 8, Kind: workload.Load},               // 8: reads 0x1234: right
	}
	got := map[int]uint64{0: 0x55, 1: 0x56, 3: 0xaabb, 4: 0xaa, 5: 1, 7: 0x55, 8: 0x1234}
	b := batchOf(p, acc, got)
	if b[2].Hint != nil || b[0].Hint == nil {
		t.Fatalf("hints %p (a page never stored to), %p (a stored page)", b[2].Hint, b[0].Hint)
	}
	r.verify(p, acc, b)
	want := []string{
		fmt.Sprintf(`vm "vm0" pid 7: load of 8 bytes at %#x read 0x56, the last store there wrote 0x55`, base+0x2010),
		fmt.Sprintf(`vm "vm0" pid 7: load of 4 bytes at %#x read 0x1, the last store there wrote 0x0`, base+0x3000),
		fmt.Sprintf(`vm "vm0" pid 7: load of 8 bytes at %#x read 0x55, the last store there wrote 0x1234`, base+0x2010),
	}
	c := &r.m.checks
	if c.IntegrityViolations != uint64(len(want)) || len(c.First) != len(want) {
		t.Fatalf("%d violations %q, want %d", c.IntegrityViolations, c.First, len(want))
	}
	for i := range want {
		if c.First[i] != want[i] {
			t.Errorf("violation %d: %q, want %q", i, c.First[i], want[i])
		}
	}
	if r.checks != 7 {
		t.Errorf("%d loads checked, want 7", r.checks)
	}
}

// TestHint: the hint is the word the check will read, and nil for what
// it cannot find (a page never stored to, absolute addresses, a region
// not mapped, an offset beyond the region), without a panic.
func TestHint(t *testing.T) {
	_, p := checkRun(0x10_0000, 2<<12)
	p.sh.store(0, 1, 0x18, 8, 9)
	if h := p.sh.hint(&workload.Access{Off: 0x101c, Size: 4, Kind: workload.Load}); h == nil || *h != 9 {
		t.Errorf("hint of a stored word: %v", h)
	}
	for _, a := range []workload.Access{
		{Off: 0x0, Size: 8, Kind: workload.Load},
		{Off: 0x9000, Size: 8, Kind: workload.Store},
		{Off: 0x40_0000, Region: -1, Size: 8, Kind: workload.Load},
		{Off: 0, Region: 1, Size: 8, Kind: workload.Load},
		{Off: 0, Region: 5, Size: 8, Kind: workload.Load},
	} {
		if h := p.sh.hint(&a); h != nil {
			t.Errorf("hint of %+v: %p, want nil", a, h)
		}
	}
	a := workload.Access{Off: 0x1000, Size: 8, Kind: workload.Load}
	if n := testing.AllocsPerRun(100, func() { _ = p.sh.hint(&a) }); n != 0 {
		t.Errorf("hint allocates %v times", n)
	}
}
