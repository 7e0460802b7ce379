package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

func eightBitHost(t *testing.T) *Host {
	id := vmsa.DefaultRegs()
	id.MMFR1 = sysreg.MMFR1(uint64(id.MMFR1) &^ 0xf0) // VMIDBits = 0b0000: 8 bits
	h := newHost(t, Config{CPUs: 1, ID: &id})
	if h.VMIDBits() != 8 {
		t.Fatalf("VMID bits %d", h.VMIDBits())
	}
	return h
}

// cycle creates a VM, loads a vCPU on CPU 0 (taking a VMID) and puts it.
func cycle(t *testing.T, h *Host) (*VM, *VCPU) {
	vm := newVM(t, h, 32)
	v := loadedVCPU(t, vm, 0, 0)
	if err := v.Put(); err != nil {
		t.Fatal(err)
	}
	return vm, v
}

func TestVMIDRollover(t *testing.T) {
	h := eightBitHost(t)
	a := newVM(t, h, 32)
	addMem(t, a, 0, 0x1000_0000, mib, 0, 0)
	va := loadedVCPU(t, a, 0, 0)
	ldr(t, va, 0x1000_0000)
	old := a.VMID()
	if old == 0 || !tlbHas(h, 0, old, 0x1000_0000) {
		t.Fatalf("VMID %d, no TLB entry", old)
	}
	if got := va.PE().Regs.VTTBR_EL2.VMID(false); got != old {
		t.Fatalf("VTTBR_EL2.VMID %d, VM has %d", got, old)
	}
	if err := va.Put(); err != nil {
		t.Fatal(err)
	}
	// 254 more VMs take every other VMID (0 is the host's); the next one
	// rolls the generation over with one TLBI ALLE1IS.
	var vms []*VM
	seen := map[uint16]bool{old: true}
	for i := 0; i < 254; i++ {
		vm, _ := cycle(t, h)
		if seen[vm.VMID()] {
			t.Fatalf("VMID %d handed out twice in one generation", vm.VMID())
		}
		seen[vm.VMID()] = true
		vms = append(vms, vm)
	}
	if h.Stats().Rollovers != 0 {
		t.Fatalf("rollover with VMIDs left")
	}
	if !tlbHas(h, 0, old, 0x1000_0000) {
		t.Fatal("A's entry lost before the rollover")
	}
	last, _ := cycle(t, h)
	vms = append(vms, last)
	st := h.Stats()
	if st.Rollovers != 1 || st.ALLE1IS != 1 {
		t.Fatalf("rollovers %d, ALLE1IS %d", st.Rollovers, st.ALLE1IS)
	}
	if tlbHas(h, 0, old, 0x1000_0000) {
		t.Fatal("the rollover left A's TLB entry")
	}
	// A runs again with a VMID of the new generation, programmed in VTTBR.
	if err := va.Load(0); err != nil {
		t.Fatal(err)
	}
	ldr(t, va, 0x1000_0000)
	if got := va.PE().Regs.VTTBR_EL2.VMID(false); got != a.VMID() || got == 0 {
		t.Fatalf("VTTBR_EL2.VMID %d, VM has %d", got, a.VMID())
	}
	if a.VMID() == last.VMID() {
		t.Fatal("A shares its VMID with the VM that caused the rollover")
	}
	destroy(t, a, va)
	for _, vm := range vms {
		destroy(t, vm)
	}
}

// TestVMIDReuse: a destroyed VM's VMID is reused at once, without a
// rollover, and its TLB entries are gone before that.
func TestVMIDReuse(t *testing.T) {
	h := eightBitHost(t)
	var vms []*VM
	var victim *VM
	var vv *VCPU
	for i := 0; i < 255; i++ {
		if i == 100 {
			victim = newVM(t, h, 32)
			addMem(t, victim, 0, 0, mib, 0, 0)
			vv = loadedVCPU(t, victim, 0, 0)
			ldr(t, vv, 0x1000)
			if err := vv.Put(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		vm, _ := cycle(t, h)
		vms = append(vms, vm)
	}
	freed := victim.VMID()
	if !tlbHas(h, 0, freed, 0x1000) {
		t.Fatal("no entry for the victim")
	}
	destroy(t, victim, vv)
	if tlbHas(h, 0, freed, 0x1000) {
		t.Fatal("destroying the VM left its TLB entries")
	}
	n, _ := cycle(t, h)
	if n.VMID() != freed || h.Stats().Rollovers != 0 {
		t.Fatalf("new VM got VMID %d (freed %d), rollovers %d", n.VMID(), freed, h.Stats().Rollovers)
	}
	destroy(t, n)
	for _, vm := range vms {
		destroy(t, vm)
	}
}

// TestVMID16AndLayout: with ID_AA64MMFR1_EL1.VMIDBits 16-bit VMIDs the
// VTCR_EL2 of every VM has VS=1, with 8-bit ones VS=0 (the ID registers are
// set here, not taken from the defaults, so the test cannot skip).
func TestVMID16AndLayout(t *testing.T) {
	for _, bits := range []uint64{16, 8} {
		id := vmsa.DefaultRegs()
		enc := uint64(2)
		if bits == 8 {
			enc = 0
		}
		id.MMFR1 = sysreg.MMFR1(uint64(id.MMFR1)&^(0xf<<4) | enc<<4)
		h := newHost(t, Config{ID: &id})
		if h.VMIDBits() != int(bits) {
			t.Fatalf("ID_AA64MMFR1_EL1.VMIDBits %d: host has %d-bit VMIDs", enc, h.VMIDBits())
		}
		for _, c := range []struct {
			ipa  uint
			t0sz uint64
		}{{32, 32}, {40, 24}, {48, 16}} {
			vm := newVM(t, h, c.ipa)
			vtcr := uint64(vm.VTCR())
			if vtcr&0x3f != c.t0sz || vtcr>>19&1 != enc/2 {
				t.Errorf("%d-bit VMIDs, IPA %d: VTCR_EL2 %#x: T0SZ %d, VS %d", bits, c.ipa, vtcr, vtcr&0x3f, vtcr>>19&1)
			}
			destroy(t, vm)
		}
		if _, err := h.NewVM(VMConfig{IPABits: 31}); err == nil {
			t.Error("31-bit IPA accepted")
		}
		if _, err := h.NewVM(VMConfig{IPABits: 53}); err == nil {
			t.Error("53-bit IPA accepted")
		}
	}
}
