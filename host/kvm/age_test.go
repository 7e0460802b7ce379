package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
)

// TestClearFlushYoungRange: aging a range longer than 64 pages removes
// every TLB entry of the range, keeps the entries outside it, and does so
// with range invalidations (RIPAS2LE1IS then VMALLE1IS), not a flush of
// the whole VMID (VMALLS12E1IS).
func TestClearFlushYoungRange(t *testing.T) {
	const base, pages, aged = 0x4000_0000, 200, 150
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, base, 8*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	pg := h.pageSize
	for i := uint64(0); i < pages; i++ {
		ldr(t, v, base+i*pg)
	}
	for i := uint64(0); i < pages; i++ {
		if !tlbHas(h, 0, vm.VMID(), base+i*pg) {
			t.Skipf("page %d not in the TLB after its load (TLB too small for the test)", i)
		}
	}
	before := h.Stats()
	if !(notifier{vm}).ClearFlushYoung(hva, hva+hostmm.HVA(aged*pg)) {
		t.Fatal("ClearFlushYoung: no page was young")
	}
	after := h.Stats()
	for i := uint64(0); i < pages; i++ {
		if got, want := tlbHas(h, 0, vm.VMID(), base+i*pg), i >= aged; got != want {
			t.Errorf("page %d: in the TLB %v after aging pages 0-%d", i, got, aged-1)
		}
	}
	if d := after.VMALLS12E1IS - before.VMALLS12E1IS; d != 0 {
		t.Errorf("%d VMALLS12E1IS for a %d-page range, want range operations", d, aged)
	}
	// 150 pages are at most a few range operands (TLBI RIPAS2LE1IS:
	// NUM and SCALE), and one VMALLE1IS.
	if d := after.IPAS2E1IS - before.IPAS2E1IS; d == 0 || d > 4 {
		t.Errorf("%d IPA invalidations for a %d-page range, want 1 to 4", d, aged)
	}
	if d := after.VMALLE1IS - before.VMALLE1IS; d != 1 {
		t.Errorf("%d VMALLE1IS, want 1", d)
	}
}
