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

// TestThreeStageWalkerFallback: where L0's stage 2 for the guest
// hypervisor does not map a page (here: all of it unmapped, the host pages
// kept), the walker finds each page through the memslot and the host's
// page tables and counts the walk of the mapping L0's fault would make:
// from the start level to a page, four reads with a 48-bit IPA and 4K
// pages. Each three-stage walk makes (4+1)(4+1) = 25 translations by L0's
// stage 2 beside 20 of the guest hypervisor's descriptors and 4 of L2's,
// so it still reads 25*4+20+4 = 124 descriptors and ends at the same host
// PA as through L0's stage 2.
func TestThreeStageWalkerFallback(t *testing.T) {
	r := fourLevelRig(t)
	w := r.v.ThreeStage()
	vas := []mem.VA{l2RAM, l2RAM + 0x5018, l2RAM + l2Mapped - 8}
	want := make([]mem.PA, len(vas))
	for i, va := range vas {
		r.store(t, va, uint64(i)+0x40)
		pa, reads, ok := w.Walk(va, vmsa.Read)
		if !ok || reads != 124 {
			t.Fatalf("VA %#x through L0's stage 2: %#x, %d reads (%v); want 124", uint64(va), uint64(pa), reads, ok)
		}
		want[i] = pa
	}
	r.kvm.LockMMU()
	err := r.kvm.Stage2().Unmap(l1RAM, l1Size)
	r.kvm.UnlockMMU()
	if err != nil {
		t.Fatal(err)
	}
	for i, va := range vas {
		pa, reads, ok := w.Walk(va, vmsa.Read)
		if !ok || pa != want[i] || reads != 124 {
			t.Errorf("VA %#x without L0's stage 2: %#x, %d reads (%v); want %#x, 124 reads", uint64(va), uint64(pa), reads, ok, uint64(want[i]))
		}
		if v, _ := r.host.Arena().Read64(pa &^ 7); v != uint64(i)+0x40 {
			t.Errorf("VA %#x: host PA %#x holds %#x, L2 stored %#x", uint64(va), uint64(pa), v, uint64(i)+0x40)
		}
	}
	// A page the host swapped out has no host PA until L0 faults it in:
	// the walk fails at its last translation, after the other 120 reads
	// and the 1 to 4 descriptors L0's stage-2 walk read to find no entry.
	// (L2's stage 1 maps the VA to the same L2 IPA, L1 maps l2RAM at l1VMA.)
	l1 := mem.IPA(l1VMA + uint64(vas[0]) - l2RAM)
	if err := r.kvm.AddressSpace().SwapOut(r.kvm.Lookup(l1).HVAOf(l1)); err != nil {
		t.Fatal(err)
	}
	if pa, reads, ok := w.Walk(vas[0], vmsa.Read); ok || reads <= 120 || reads > 124 {
		t.Errorf("VA %#x swapped out: %#x, %d reads (%v); want a failed walk after 121 to 124 reads", uint64(vas[0]), uint64(pa), reads, ok)
	}
}
