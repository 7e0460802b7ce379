package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	pg  = 4096
	mib = 1 << 20
)

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func newVM(t testing.TB, h *Host, ipaBits uint) *VM {
	t.Helper()
	vm, err := h.NewVM(VMConfig{IPABits: ipaBits})
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return vm
}

// destroy puts every vCPU and destroys vm, failing on any error.
func destroy(t testing.TB, vm *VM, vcpus ...*VCPU) {
	t.Helper()
	for _, v := range vcpus {
		if v.CPU() >= 0 {
			if err := v.Put(); err != nil {
				t.Errorf("Put: %v", err)
			}
		}
	}
	if err := vm.Err(); err != nil {
		t.Errorf("VM error: %v", err)
	}
	if err := vm.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
}

func loadedVCPU(t testing.TB, vm *VM, id, cpu int) *VCPU {
	t.Helper()
	v, err := vm.NewVCPU(id)
	if err != nil {
		t.Fatalf("NewVCPU: %v", err)
	}
	if err := v.Load(cpu); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return v
}

func addMem(t testing.TB, vm *VM, id int, gpa, size uint64, f memslot.Flags, mf hostmm.MapFlags) hostmm.HVA {
	t.Helper()
	hva, err := vm.AddMemory(id, mem.IPA(gpa), size, f, mf)
	if err != nil {
		t.Fatalf("AddMemory(%d, %#x, %#x): %v", id, gpa, size, err)
	}
	return hva
}

// ldr loads va into X1 and returns it, failing on an exit.
func ldr(t testing.TB, v *VCPU, va uint64) uint64 {
	t.Helper()
	ex, err := v.Ldr(1, mem.VA(va), 8)
	if err != nil || ex.Reason != ExitNone {
		t.Fatalf("LDR X1, [%#x]: exit %v %v, err %v", va, ex.Reason, ex.Exception, err)
	}
	return v.Ctx().X[1]
}

// str stores val to va through X1, failing on an exit.
func str(t testing.TB, v *VCPU, va, val uint64) {
	t.Helper()
	v.Ctx().X[1] = val
	ex, err := v.Str(1, mem.VA(va), 8)
	if err != nil || ex.Reason != ExitNone {
		t.Fatalf("STR X1, [%#x]: exit %v %v, err %v", va, ex.Reason, ex.Exception, err)
	}
}

// tlbHas reports whether cpu's TLB holds an entry of vmid translating ipa
// (a stage-2-only entry, or a combined one whose IPA range covers it).
func tlbHas(h *Host, cpu int, vmid uint16, ipa uint64) bool {
	for _, e := range h.TLBEntries(cpu) {
		if e.VMID != vmid || !(e.Stage2Only || e.Combined) {
			continue
		}
		if i := mem.IPA(ipa); i >= e.IPA && i-e.IPA < 1<<e.SizeBits {
			return true
		}
	}
	return false
}

// s1TableGPA is where guestMMUOn puts the guest's level-1 table.
const s1TableGPA = 0x1000_0000

// guestMMUOn turns the vCPUs' stage 1 on with an identity map of IPA
// [0, 4G) by four 1G level-1 blocks (AF set, EL1 read/write, MAIR attr 0 =
// Normal write-back), the table in a one-page slot of its own. With stage
// 1 on, the TLB holds combined stage-1+2 entries that accesses hit.
func guestMMUOn(t testing.TB, vm *VM, vcpus ...*VCPU) {
	t.Helper()
	hva := addMem(t, vm, 99, s1TableGPA, pg, 0, 0)
	for i := uint64(0); i < 4; i++ {
		if err := vm.AddressSpace().Write(hva+hostmm.HVA(8*i), 8, i<<30|1<<10|1); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vcpus {
		v.PE().Regs.MAIR_EL1 = 0xff
		s1On(v, s1TableGPA)
	}
}

// twoCPUGuest builds a host with two CPUs, a VM with a 40-bit IPA space and
// a 4 MiB slot 0 at gpa (mapped with mf), and two vCPUs loaded on CPUs 0
// and 1 with stage 1 on (guestMMUOn).
func twoCPUGuest(t testing.TB, gpa uint64, mf hostmm.MapFlags) (*Host, *VM, hostmm.HVA, *VCPU, *VCPU) {
	t.Helper()
	h := newHost(t, Config{CPUs: 2})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, gpa, 4*mib, 0, mf)
	v0 := loadedVCPU(t, vm, 0, 0)
	v1 := loadedVCPU(t, vm, 1, 1)
	guestMMUOn(t, vm, v0, v1)
	return h, vm, hva, v0, v1
}

// lockedS2 is a VM's stage 2 for tests: each call under the VM's MMU lock,
// which s2pt requires of its caller (s2pt.Config.MMULock).
type lockedS2 struct{ vm *VM }

func (l lockedS2) Lookup(ipa mem.IPA) (uint64, int, error) {
	l.vm.mu.Lock()
	defer l.vm.mu.Unlock()
	return l.vm.s2.Lookup(ipa)
}

func (l lockedS2) TestYoung(ipa mem.IPA, size uint64) (bool, error) {
	l.vm.mu.Lock()
	defer l.vm.mu.Unlock()
	return l.vm.s2.TestYoung(ipa, size)
}

func (l lockedS2) Unmap(ipa mem.IPA, size uint64) error {
	l.vm.mu.Lock()
	defer l.vm.mu.Unlock()
	return l.vm.s2.Unmap(ipa, size)
}

func (l lockedS2) Walk(start, end mem.IPA, v s2pt.Visitor, flags s2pt.WalkFlags) error {
	l.vm.mu.Lock()
	defer l.vm.mu.Unlock()
	return l.vm.s2.Walk(start, end, v, flags)
}

func s2of(vm *VM) lockedS2 { return lockedS2{vm} }
