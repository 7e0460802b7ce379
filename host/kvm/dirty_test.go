package kvm

import (
	"reflect"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/s2pt"
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
		if d, level, _ := s2of(vm).Lookup(gpa + 5*pg); d>>7&1 != 0 || (split && level != 3) || (!split && level != 2) {
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
		if d, _, _ := s2of(vm).Lookup(mem.IPA(gpa + 5*pg)); d>>7&1 != 0 {
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

// TestDirtyLogWithoutMemory is issue 14's item 5: clearing the dirty log
// and write-protecting its pages again must not fail for lack of memory,
// or a later write to a collected page is never logged. With the host out
// of frames and the caches empty: enabling logging over 2 MiB blocks
// write-protects them whole, and GetDirtyLog returns the pages with no
// error. Once memory is back, the pages written again (inside the
// write-protected block too) are in the next log.
func TestDirtyLogWithoutMemory(t *testing.T) {
	const gpa = 0x4000_0000
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, gpa, 4*mib, 0, hostmm.MapHuge)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	str(t, v, gpa, 1)
	str(t, v, gpa+2*mib, 1)
	if vm.Stats().BlockMaps != 2 {
		t.Fatalf("%d blocks mapped, want 2", vm.Stats().BlockMaps)
	}
	emptyCaches(t, vm)
	give := exhaust(t, h)
	if err := vm.EnableDirtyLog(0, false); err != nil {
		t.Fatalf("enabling dirty logging with no free memory: %v", err)
	}
	if d, level, _ := s2of(vm).Lookup(gpa + 2*mib + 5*pg); level != 2 || d>>7&1 != 0 {
		t.Fatalf("after enabling, GPA %#x is %#x at level %d: want a read-only block", uint64(gpa+2*mib+5*pg), d, level)
	}
	give()
	str(t, v, gpa+3*pg, 2)       // splits the first block with the vCPU's cache
	str(t, v, gpa+2*mib+5*pg, 2) // and the second
	emptyCaches(t, vm)
	give = exhaust(t, h)
	got, err := vm.GetDirtyLog(0)
	if want := []uint64{3, 512 + 5}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GetDirtyLog with no free memory: %v, %v; want %v", got, err, want)
	}
	give()
	str(t, v, gpa+3*pg, 3)
	str(t, v, gpa+2*mib+6*pg, 3)
	if got, err := vm.GetDirtyLog(0); err != nil || !reflect.DeepEqual(got, []uint64{3, 512 + 6}) {
		t.Fatalf("writes after the collection: log %v, %v; want [3 518]", got, err)
	}
}

// TestDirtyLogKeepsBitsOnError: should write-protection fail (here a
// stage-2 descriptor corrupted behind the manager's back), GetDirtyLog says
// so, returns only the pages it protected, and leaves the others marked
// dirty for the next call.
func TestDirtyLogKeepsBitsOnError(t *testing.T) {
	const gpa = 0x4000_0000
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, gpa, 4*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	if err := vm.EnableDirtyLog(0, false); err != nil {
		t.Fatal(err)
	}
	str(t, v, gpa+pg, 1)
	str(t, v, gpa+2*mib+pg, 1)
	// The level-2 entry of the second 2 MiB becomes a table descriptor
	// pointing at a table the manager did not make.
	var pte mem.PA
	var old uint64
	_ = s2of(vm).Walk(gpa+2*mib, gpa+2*mib+pg, s2pt.VisitorFunc(func(c *s2pt.Ctx, at s2pt.WalkFlags) error {
		if c.Level == 2 {
			pte, old = c.PTE, c.Old
		}
		return nil
	}), s2pt.VisitTablePre)
	if pte == 0 {
		t.Fatal("no level-2 table entry found")
	}
	h.arena.Write64(pte, old+0x10_0000)
	got, err := vm.GetDirtyLog(0)
	if err == nil || !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("GetDirtyLog over a corrupt table: %v, %v; want [1] and an error", got, err)
	}
	h.arena.Write64(pte, old)
	if got, err := vm.GetDirtyLog(0); err != nil || !reflect.DeepEqual(got, []uint64{513}) {
		t.Fatalf("next GetDirtyLog: %v, %v; want the page not protected, [513]", got, err)
	}
}

// TestSlotFlagChangesAreAtomic is issue 14's item 2: EnableDirtyLog and
// DisableDirtyLog change one flag and keep the others, SetSlotFlags sets
// them all; racing, the final flags must be the result of some serial
// order of the calls. (Reading the flags outside the lock once lost a
// concurrent SetSlotFlags(ReadOnly): the slot ended logging only.)
func TestSlotFlagChangesAreAtomic(t *testing.T) {
	const ro, log = memslot.ReadOnly, memslot.LogDirty
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, 0x4000_0000, 2*mib, 0, 0)
	defer destroy(t, vm)
	rounds := 3000
	if testing.Short() {
		rounds = 500
	}
	for _, c := range []struct {
		name  string
		start memslot.Flags
		a     func() error
		b     func() error
		// serial outcomes: a then b, b then a
		want []memslot.Flags
	}{
		{"EnableDirtyLog vs SetSlotFlags(ReadOnly)", 0,
			func() error { return vm.EnableDirtyLog(0, false) },
			func() error { return vm.SetSlotFlags(0, ro) },
			[]memslot.Flags{ro, ro | log}},
		{"DisableDirtyLog vs SetSlotFlags(ReadOnly|LogDirty)", log,
			func() error { return vm.DisableDirtyLog(0) },
			func() error { return vm.SetSlotFlags(0, ro|log) },
			[]memslot.Flags{ro | log, ro}},
		{"EnableDirtyLog vs DisableDirtyLog from read-only", ro,
			func() error { return vm.EnableDirtyLog(0, false) },
			func() error { return vm.DisableDirtyLog(0) },
			[]memslot.Flags{ro, ro | log}},
	} {
		bad := 0
		for i := 0; i < rounds; i++ {
			if err := vm.SetSlotFlags(0, c.start); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var ea, eb error
			wg.Add(2)
			go func() { defer wg.Done(); ea = c.a() }()
			go func() { defer wg.Done(); eb = c.b() }()
			wg.Wait()
			if ea != nil || eb != nil {
				t.Fatal(ea, eb)
			}
			got := vm.Slots()[0].Flags
			if got != c.want[0] && got != c.want[1] {
				if bad++; bad <= 3 {
					t.Errorf("%s: flags %#x, want %#x or %#x", c.name, uint8(got), uint8(c.want[0]), uint8(c.want[1]))
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d rounds ended in no serial outcome", c.name, bad, rounds)
		}
	}
}

// TestRelaxWithHeldPermissions runs dirty logging on CPUs whose TLBs hold
// a stale permission as hardware may (tlb.Config.HoldPermissions: the
// write permission fault comes from the cached read-only entry, without a
// walk). Relaxing a page needs no broadcast TLBI, but without the local
// TLBI that follows it the faulting CPU would keep faulting on its cached
// entry and the store would make no progress.
func TestRelaxWithHeldPermissions(t *testing.T) {
	h := newHost(t, Config{TLB: tlb.Config{HoldPermissions: true}})
	vm := newVM(t, h, 40)
	const gpa = 0x4000_0000
	addMem(t, vm, 0, gpa, 2*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	for p := uint64(0); p < 8; p++ {
		str(t, v, gpa+p*pg, p)
	}
	if err := vm.EnableDirtyLog(0, false); err != nil {
		t.Fatal(err)
	}
	before := h.Stats().LocalIPAS2E1
	for p := uint64(0); p < 8; p++ {
		ldr(t, v, gpa+p*pg)     // cached read-only (write-protected for logging)
		str(t, v, gpa+p*pg, 10) // faults on the cached entry, relaxed
	}
	if got, _ := vm.GetDirtyLog(0); len(got) != 8 {
		t.Fatalf("dirty pages %v, want 8", got)
	}
	if n := h.Stats().LocalIPAS2E1 - before; n < 8 {
		t.Errorf("%d local invalidations after 8 relaxations", n)
	}
	if n := h.TLBStats(0).PermissionFaults; n == 0 {
		t.Error("no permission fault came from a TLB entry: the test shows nothing")
	}
}
