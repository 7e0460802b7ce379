package s2pt

import (
	"errors"
	"sync"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// TestMMULock: with Config.MMULock the caller's lock is the VM's one lock.
// Every method called without it held fails with an error and changes
// nothing, leaving the lock free; with it held, the methods (the one-leaf
// common cases of Map, Unmap and Lookup included) work and leave it held;
// a VM method called from a visitor is refused and the caller's lock stays
// held.
func TestMMULock(t *testing.T) {
	tm, err := NewFlatTables(tableBase, 4*mib)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	cfg := defaultCfg(40, sysreg.Granule4K)
	cfg.MMULock = &mu
	mu.Lock()
	vm, err := New(cfg, tm, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := vm.NewCache()
	mu.Unlock()
	if err := c.Topup(8); err != nil { // outside the lock, as a vCPU does
		t.Fatal(err)
	}
	const ipa, pa = 0x20_0000, 0x4000_0000
	notHeld := []struct {
		name string
		call func() error
	}{
		{"Map", func() error { return vm.Map(c, ipa, pa, 4096, ProtR, 0) }},
		{"Unmap", func() error { return vm.Unmap(ipa, 4096) }},
		{"UnmapExact", func() error { return vm.UnmapExact(c, ipa, 4096) }},
		{"Lookup", func() error { _, _, err := vm.Lookup(ipa); return err }},
		{"WriteProtect", func() error { return vm.WriteProtect(ipa, 4096) }},
		{"Trim", func() error { _, err := vm.Trim(); return err }},
	}
	check := func(when string) {
		t.Helper()
		for _, n := range notHeld {
			if err := n.call(); !errors.Is(err, errLockNotHeld) {
				t.Errorf("%s: %s without the MMU lock: %v, want %v", when, n.name, err, errLockNotHeld)
			}
			if !mu.TryLock() {
				t.Fatalf("%s: %s without the MMU lock left it locked", when, n.name)
			}
			mu.Unlock()
		}
	}
	check("empty")
	mu.Lock()
	// Twice each: the first map installs the tables (the walk), the second
	// is the one-leaf common case in the walk cache's table.
	for i := 0; i < 2; i++ {
		if err := vm.Map(c, ipa, pa, 4096, ProtR, 0); err != nil {
			t.Fatal(err)
		}
		if d, lvl, err := vm.Lookup(ipa); err != nil || lvl != 3 || d&desc.ValidBit == 0 {
			t.Fatalf("Lookup with the lock held: %#x level %d %v", d, lvl, err)
		}
		if err := vm.Unmap(ipa, 4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := vm.Map(c, ipa, pa, 4096, ProtR, 0); err != nil {
		t.Fatal(err)
	}
	// A visitor calling back into the VM is refused; the caller's lock
	// stays held and the VM usable.
	var inner error
	err = vm.Walk(ipa, ipa+4096, VisitorFunc(func(*Ctx, WalkFlags) error {
		inner = vm.Unmap(ipa, 4096)
		return nil
	}), VisitLeaf)
	if err != nil || inner == nil || errors.Is(inner, errLockNotHeld) {
		t.Errorf("Unmap from a visitor: %v (walk %v), want the re-entry refused", inner, err)
	}
	if mu.TryLock() {
		t.Fatal("the MMU lock was released by a refused re-entry")
	}
	if d, _, err := vm.Lookup(ipa); err != nil || d&desc.ValidBit == 0 {
		t.Fatalf("after the refused re-entry: Lookup %#x %v, want the page still mapped", d, err)
	}
	mu.Unlock()
	// Without the lock nothing changes: the page stays mapped.
	check("one page mapped")
	mu.Lock()
	if d, _, err := vm.Lookup(mem.IPA(ipa)); err != nil || d&desc.ValidBit == 0 {
		t.Errorf("after the calls without the lock: Lookup %#x %v, want the page still mapped", d, err)
	}
	if err := vm.Destroy(); err != nil {
		t.Error(err)
	}
	mu.Unlock()
}
