package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
)

// loadPages loads n pages from base so that the TLB of CPU 0 holds them.
func loadPages(t *testing.T, h *Host, vm *VM, v *VCPU, base, n uint64) {
	t.Helper()
	for i := uint64(0); i < n; i++ {
		ldr(t, v, base+i*h.pageSize)
	}
	for i := uint64(0); i < n; i++ {
		if !tlbHas(h, 0, vm.VMID(), base+i*h.pageSize) {
			t.Fatalf("page %d not in the TLB after its load (the default TLB holds more than the test loads)", i)
		}
	}
}

// checkRangeInvalidated checks that the TLB of CPU 0 holds pages
// [first, n) and none of [0, first), and that the host issued it as one
// batch of range operations: one to four IPA operations (RIPAS2* NUM and
// SCALE cover far more than n pages), one VMALLE1IS and no VMALLS12E1IS.
func checkRangeInvalidated(t *testing.T, h *Host, vm *VM, base, first, n uint64, before, after HostStats) {
	t.Helper()
	for i := uint64(0); i < n; i++ {
		if got, want := tlbHas(h, 0, vm.VMID(), base+i*h.pageSize), i >= first; got != want {
			t.Errorf("page %d: in the TLB %v after invalidating pages 0-%d", i, got, first-1)
		}
	}
	if d := after.VMALLS12E1IS - before.VMALLS12E1IS; d != 0 {
		t.Errorf("%d VMALLS12E1IS for a %d-page range, want range operations", d, first)
	}
	if d := after.IPAS2E1IS - before.IPAS2E1IS; d == 0 || d > 4 {
		t.Errorf("%d IPA invalidations for a %d-page range, want 1 to 4", d, first)
	}
	if d := after.VMALLE1IS - before.VMALLE1IS; d != 1 {
		t.Errorf("%d VMALLE1IS, want 1", d)
	}
}

// TestNotifierUnmapRange: an MMU-notifier invalidation of 150 pages removes
// their TLB entries, and only theirs, with one batch of range operations.
func TestNotifierUnmapRange(t *testing.T) {
	const base, pages, unmapped = 0x4000_0000, 200, 150
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, base, 8*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	loadPages(t, h, vm, v, base, pages)
	before := h.Stats()
	r := hostmm.Range{Start: hva, End: hva + hostmm.HVA(unmapped*h.pageSize)}
	notifier{vm}.InvalidateRangeStart(r)
	notifier{vm}.InvalidateRangeEnd(r)
	checkRangeInvalidated(t, h, vm, base, unmapped, pages, before, h.Stats())
	if err := vm.Err(); err != nil {
		t.Fatal(err)
	}
}

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
	loadPages(t, h, vm, v, base, pages)
	before := h.Stats()
	if !(notifier{vm}).ClearFlushYoung(hva, hva+hostmm.HVA(aged*h.pageSize)) {
		t.Fatal("ClearFlushYoung: no page was young")
	}
	checkRangeInvalidated(t, h, vm, base, aged, pages, before, h.Stats())
}
