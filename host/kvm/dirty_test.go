package kvm

import (
	"reflect"
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

func TestDirtyLog(t *testing.T) {
	for _, split := range []bool{false, true} {
		h := newHost(t, Config{})
		vm := newVM(t, h, 40)
		const gpa = 0x4000_0000
		addMem(t, vm, 0, gpa, 4*mib, 0, hostmm.MapHuge)
		v := loadedVCPU(t, vm, 0, 0)
		for off := uint64(0); off < 4*mib; off += 2 * mib {
			str(t, v, gpa+off, 1)
		}
		if vm.Stats().BlockMaps != 2 {
			t.Fatalf("blocks %d", vm.Stats().BlockMaps)
		}
		if err := vm.EnableDirtyLog(0, split); err != nil {
			t.Fatal(err)
		}
		if d, level, _ := vm.Stage2().Lookup(gpa + 5*pg); d>>7&1 != 0 || (split && level != 3) || (!split && level != 2) {
			t.Fatalf("split=%v: after enabling, %#x at level %d", split, d, level)
		}
		got, err := vm.GetDirtyLog(0)
		if err != nil || len(got) != 0 {
			t.Fatalf("fresh log %v %v", got, err)
		}
		for _, p := range []uint64{1, 5, 600, 5} {
			str(t, v, gpa+p*pg+8, p)
			ldr(t, v, gpa+(p+1)*pg) // reads do not dirty
		}
		got, _ = vm.GetDirtyLog(0)
		if want := []uint64{1, 5, 600}; !reflect.DeepEqual(got, want) {
			t.Fatalf("split=%v: dirty %v, want %v", split, got, want)
		}
		// Collected pages are write-protected again (and not in the TLB as
		// writable): the next write faults and is logged.
		if d, _, _ := vm.Stage2().Lookup(mem.IPA(gpa + 5*pg)); d>>7&1 != 0 {
			t.Fatalf("page 5 still writable after collection: %#x", d)
		}
		got, _ = vm.GetDirtyLog(0)
		if len(got) != 0 {
			t.Fatalf("second collection %v", got)
		}
		str(t, v, gpa+5*pg, 2)
		if got, _ = vm.GetDirtyLog(0); !reflect.DeepEqual(got, []uint64{5}) {
			t.Fatalf("rewrite: %v", got)
		}
		if err := vm.DisableDirtyLog(0); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.GetDirtyLog(0); err == nil {
			t.Fatal("log of a slot not logging")
		}
		destroy(t, vm, v)
	}
}
