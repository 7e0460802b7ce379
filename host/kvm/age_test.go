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

// TestRangeInvalidations: an MMU-notifier invalidation and an aging
// (ClearFlushYoung) of 150 pages, more than the 64 pages once flushed one
// by one, remove their TLB entries and only theirs, with one batch of
// range operations (RIPAS2E1IS/RIPAS2LE1IS, then VMALLE1IS), not a flush
// of the whole VMID (VMALLS12E1IS).
func TestRangeInvalidations(t *testing.T) {
	const base, pages, changed = 0x4000_0000, 200, 150
	for _, c := range []struct {
		name string
		op   func(t *testing.T, n notifier, start, end hostmm.HVA)
	}{
		{"notifier unmap", func(t *testing.T, n notifier, start, end hostmm.HVA) {
			r := hostmm.Range{Start: start, End: end}
			n.InvalidateRangeStart(r)
			n.InvalidateRangeEnd(r)
		}},
		{"ClearFlushYoung", func(t *testing.T, n notifier, start, end hostmm.HVA) {
			if !n.ClearFlushYoung(start, end) {
				t.Fatal("ClearFlushYoung: no page was young")
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, Config{})
			vm := newVM(t, h, 40)
			hva := addMem(t, vm, 0, base, 8*mib, 0, 0)
			v := loadedVCPU(t, vm, 0, 0)
			defer destroy(t, vm, v)
			loadPages(t, h, vm, v, base, pages)
			before := h.Stats()
			c.op(t, notifier{vm}, hva, hva+hostmm.HVA(changed*h.pageSize))
			checkRangeInvalidated(t, h, vm, base, changed, pages, before, h.Stats())
			if err := vm.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
