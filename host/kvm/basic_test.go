package kvm

import (
	"testing"
)

// TestBasicReadWrite: a guest store is visible to the VMM at the slot's HVA
// and the load after it reads it back; one fault mapped the page.
func TestBasicReadWrite(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, 0x8000_0000, 4*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	str(t, v, 0x8000_1008, 0xdeadbeef)
	if got := ldr(t, v, 0x8000_1008); got != 0xdeadbeef {
		t.Fatalf("read back %#x", got)
	}
	got, err := vm.AddressSpace().Read(hva+0x1008, 8)
	if err != nil || got != 0xdeadbeef {
		t.Fatalf("host view %#x %v", got, err)
	}
	if st := vm.Stats(); st.Maps != 1 {
		t.Fatalf("one page, %d maps", st.Maps)
	}
}
