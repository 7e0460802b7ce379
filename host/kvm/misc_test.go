package kvm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// TestLastRanFlush: when a different vCPU of the same VM is loaded on a
// CPU, the CPU's entries of the VMID are dropped (the vCPUs' stage-1
// contexts may share ASIDs); reloading the same vCPU keeps them.
func TestLastRanFlush(t *testing.T) {
	h := newHost(t, Config{CPUs: 1})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, 0x4000_0000, mib, 0, 0)
	v0, _ := vm.NewVCPU(0)
	v1, _ := vm.NewVCPU(1)
	if err := v0.Load(0); err != nil {
		t.Fatal(err)
	}
	guestMMUOn(t, vm, v0, v1)
	ldr(t, v0, 0x4000_0000)
	if err := v1.Load(0); err == nil {
		t.Fatal("two vCPUs loaded on one CPU")
	}
	_ = v0.Put()
	_ = v0.Load(0)
	if !tlbHas(h, 0, vm.VMID(), 0x4000_0000) {
		t.Fatal("reloading the same vCPU flushed its entries")
	}
	_ = v0.Put()
	if err := v1.Load(0); err != nil {
		t.Fatal(err)
	}
	if tlbHas(h, 0, vm.VMID(), 0x4000_0000) {
		t.Fatal("vCPU 1 loaded where vCPU 0 ran, entries kept")
	}
	if err := vm.Destroy(); err == nil {
		t.Fatal("destroyed with a vCPU loaded")
	}
	destroy(t, vm, v1)
	if _, err := v1.Ldr(1, 0x4000_0000, 8); err != ErrNotLoaded {
		t.Fatalf("access after put: %v", err)
	}
}

// TestYoungNotifiers: the host's aging sees the guest's accesses through
// the stage-2 Access flags.
func TestYoungNotifiers(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, 0x4000_0000, mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	guestMMUOn(t, vm, v)
	as := vm.AddressSpace()
	ldr(t, v, 0x4000_0000)
	if y, _ := as.Age(hva, true); !y {
		t.Fatal("page accessed by the guest is not young")
	}
	if y, _ := as.TestYoung(hva); y {
		t.Fatal("young right after aging")
	}
	ldr(t, v, 0x4000_0000) // Access flag fault: AF set again
	if y, _ := as.TestYoung(hva); !y {
		t.Fatal("guest access after aging not seen")
	}
	if st := vm.Stats(); st.AccessFlagFaults != 1 {
		t.Fatalf("%+v", st)
	}
	// ClearYoung (no flush): the AF is cleared, the TLB entry kept.
	if y, _ := as.Age(hva, false); !y {
		t.Fatal("not young")
	}
	if !tlbHas(h, 0, vm.VMID(), 0x4000_0000) {
		t.Fatal("ClearYoung flushed the TLB")
	}
}

// Example shows a VM with one memslot, a vCPU, a RAM access and an MMIO
// exit completed by the VMM.
func Example() {
	h, _ := NewHost(Config{CPUs: 1})
	defer h.Close()
	vm, _ := h.NewVM(VMConfig{IPABits: 40})
	// 2 MiB of RAM at GPA 1 GiB, backed by huge pages of the VMM.
	_, _ = vm.AddMemory(0, 1<<30, 2<<20, 0, hostmm.MapHuge)
	v, _ := vm.NewVCPU(0)
	_ = v.Load(0)

	v.Ctx().X[1] = 42
	_, _ = v.Str(1, 1<<30+0x100, 8) // STR X1, [1 GiB + 0x100]: stage-2 fault, block mapped, retried
	_, _ = v.Ldr(2, 1<<30+0x100, 8) // LDR X2: TLB hit
	fmt.Println("X2 =", v.Ctx().X[2], "blocks mapped:", vm.Stats().BlockMaps)

	ex, _ := v.Ldr(3, 0x900_0000, 4) // LDR W3 from a device: MMIO exit
	fmt.Printf("%v exit: IPA %#x, %d bytes, register X%d\n", ex.Reason, ex.MMIO.IPA, ex.MMIO.Size, ex.MMIO.Reg)
	_ = v.CompleteMMIO([2]uint64{0x1234})
	fmt.Printf("X3 = %#x\n", v.Ctx().X[3])

	_ = v.Put()
	_ = vm.Destroy()
	// Output:
	// X2 = 42 blocks mapped: 1
	// mmio exit: IPA 0x9000000, 4 bytes, register X3
	// X3 = 0x1234
}

// TestGuestSystemInstructions: the guest's MSR reaches the PE's register;
// its AT S1E1R takes a stage-2 fault on the stage-1 walk to EL2 (the table
// page is not mapped yet), which is handled before the AT is retried.
func TestGuestSystemInstructions(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	addMem(t, vm, 0, 0x4000_0000, mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	guestMMUOn(t, vm, v)
	v.Ctx().X[3] = 0x44ff
	if ex, err := v.MSR(cpu.MAIR_EL1, 3); err != nil || ex.Reason != ExitNone || v.PE().Regs.MAIR_EL1 != 0x44ff {
		t.Fatalf("MSR: %v %v MAIR %#x", ex.Reason, err, uint64(v.PE().Regs.MAIR_EL1))
	}
	if ex, err := v.MRS(cpu.MAIR_EL1, 4); err != nil || ex.Reason != ExitNone || v.Ctx().X[4] != 0x44ff {
		t.Fatalf("MRS: %v %v X4 %#x", ex.Reason, err, v.Ctx().X[4])
	}
	v.Ctx().X[5] = 0x4000_1234
	pc := v.PE().PC
	if ex, err := v.AT(at.S1E1R, 5); err != nil || ex.Reason != ExitNone {
		t.Fatalf("AT: %v %v", ex.Reason, err)
	}
	par := v.PE().PAR
	if par.F() || par.PA() != 0x4000_1000 || v.PE().PC != pc+4 {
		t.Fatalf("PAR_EL1 %#x, PC %#x", uint64(par), v.PE().PC)
	}
	if st := vm.Stats(); st.Maps != 1 {
		t.Fatalf("the stage-1 table page was not mapped by the S1PTW fault: %+v", st)
	}
}

// TestAPIFriction covers issue 14's item 7 on the hypervisor's API: a
// negative vCPU number is refused; a host whose memory lies beyond PARange
// is refused by NewHost, naming Base and PARange; Destroy after the VMM
// closed its address space succeeds; a destroyed VM lists no slots; every
// notifier error is counted and the last one kept. (Collapse's sentinel,
// KSM frames freed on exit and the all-or-nothing crossing host write are
// host/hostmm's, tested there.)
func TestAPIFriction(t *testing.T) {
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	if _, err := vm.NewVCPU(-1); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("NewVCPU(-1): %v, want an error naming -1", err)
	}

	id := vmsa.DefaultRegs()
	id.MMFR0 = id.MMFR0&^0xf | 2 // PARange 40 bits
	if _, err := NewHost(Config{ID: &id, Base: 1 << 40}); err == nil || !strings.Contains(err.Error(), "0x10000000000") || !strings.Contains(err.Error(), "40-bit") {
		t.Errorf("NewHost with Base 2^40 and a 40-bit PARange: %v, want an error naming both", err)
	}
	if h2, err := NewHost(Config{ID: &id, Base: 1<<40 - 64*mib}); err != nil {
		t.Errorf("NewHost just below 2^40: %v", err)
	} else {
		_ = h2.Close()
	}

	addMem(t, vm, 0, 0x4000_0000, 4*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	str(t, v, 0x4000_0000, 1)
	str(t, v, 0x4020_0000, 1)
	// Two notifier errors: the level-2 entries of both 2 MiB regions become
	// table descriptors the manager did not make, and two pages are
	// swapped out.
	var ptes []mem.PA
	_ = s2of(vm).Walk(0x4000_0000, 0x4040_0000, s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
		if c.Level == 2 {
			ptes = append(ptes, c.PTE)
		}
		return nil
	}), s2pt.VisitTablePre)
	saved := make([]uint64, len(ptes))
	for i, p := range ptes {
		saved[i], _ = h.arena.Read64(p)
		h.arena.Write64(p, saved[i]+0x10_0000)
	}
	hva := vm.Slots()[0].HVA
	for _, off := range []hostmm.HVA{0, 2 * mib} {
		if err := vm.AddressSpace().SwapOut(hva + off); err != nil {
			t.Fatal(err)
		}
	}
	n, first, last := vm.Errors()
	if n != 2 || first == nil || last == nil || first.Error() == last.Error() || vm.Err() != first {
		t.Errorf("Errors: %d, first %v, last %v; want 2 distinct errors, Err the first", n, first, last)
	}
	for i, p := range ptes {
		h.arena.Write64(p, saved[i])
	}

	if err := v.Put(); err != nil {
		t.Fatal(err)
	}
	if err := vm.AddressSpace().Close(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Destroy(); err != nil {
		t.Errorf("Destroy after the VMM closed its address space: %v", err)
	}
	if s := vm.Slots(); len(s) != 0 {
		t.Errorf("a destroyed VM lists %d slots", len(s))
	}
	if err := vm.Destroy(); !errors.Is(err, ErrDestroyed) {
		t.Errorf("second Destroy: %v, want ErrDestroyed", err)
	}
}
