package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestThreeStageWalker: the exported three-stage walker (what the
// simulator's three-stage mode counts per L2 TLB miss) agrees with the
// test's reference on the four-level rig: the same host PA and 124
// descriptor reads per full walk; off L2 it walks nothing.
func TestThreeStageWalker(t *testing.T) {
	r := fourLevelRig(t)
	ref := newThreeStage(r, l2S1Regs)
	w := r.v.ThreeStage()
	for i, va := range []mem.VA{l2RAM, l2RAM + 0x2010, l2RAM + l2Mapped - 8} {
		r.store(t, va, uint64(i)+7)
		want, n, ok := ref.translate(va)
		got, reads, gok := w.Walk(va, vmsa.Read)
		if !ok || !gok || got != want || reads != 124 || n != 124 {
			t.Errorf("VA %#x: walker %#x %d reads (%v), reference %#x %d reads (%v); want 124 reads", uint64(va), uint64(got), reads, gok, uint64(want), n, ok)
		}
	}
	if _, reads, ok := w.Walk(l2RAM+l2Mapped+0x10_0000, vmsa.Read); ok || reads == 0 || reads > 124 {
		t.Errorf("unmapped VA: ok %v after %d reads", ok, reads)
	}
	if err := r.v.InterruptToVEL2(); err != nil {
		t.Fatal(err)
	}
	if _, reads, ok := w.Walk(l2RAM, vmsa.Read); ok || reads != 0 {
		t.Errorf("at vEL2: ok %v, %d reads", ok, reads)
	}
}
