package guesthyp_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// Example boots L0 (host/kvm), a guest hypervisor (L1) in one of its VMs
// with FEAT_NV2, and one of L1's own VMs (L2): L2 stores at an IPA L1 has
// not mapped yet, L1 maps it on the fault injected into it, and the value
// is in L1's memory where L1's stage 2 points.
func Example() {
	h, _ := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 128 << 20})
	vm, _ := h.NewVM(kvm.VMConfig{IPABits: 40})
	_, _ = vm.AddMemory(0, 0x4000_0000, 64<<20, 0, 0) // L1's RAM
	kv, _ := vm.NewVCPU(0)
	nvm, _ := nested.New(vm, nested.Config{Mode: nested.ModeNV2, E2H: true})
	v, _ := nvm.NewVCPU(kv, nil)
	_ = v.LoadCPU(0)

	l1, _ := guesthyp.Boot(v, guesthyp.Config{E2H: true, Tables: 0x4300_0000, TablesSize: 4 << 20})
	v.SetGuestHypervisor(l1)
	l2, _ := l1.NewVM(1)
	_ = l2.AddSlot(0x8000_0000, 0x4100_0000, 16<<20) // L2 IPA -> L1 IPA
	_ = l1.Run(l2)                                   // ERET into L2

	v.KVM().Ctx().X[1] = 42
	exit, err := v.RunL2(kvm.Access{VA: 0x8000_1000, Size: 8, Write: true, Rt: 1})
	fmt.Println("L2 store:", exit.Reason, err)

	_ = v.InterruptToVEL2() // back to L1
	got, _ := v.Load(mem.VA(0x4100_1000), 8)
	fmt.Println("L1 reads", got, "at L1 IPA 0x41001000")
	st := v.Stats()
	fmt.Println("faults forwarded to L1:", st.Forwarded, "shadow entries installed:", st.Installed)
	if err := nvm.Check(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// L2 store: none <nil>
	// L1 reads 42 at L1 IPA 0x41001000
	// faults forwarded to L1: 1 shadow entries installed: 1
}

// ExampleVM_EnableNested runs four levels: L0 (host/kvm), a guest
// hypervisor L1, a guest hypervisor L2 that L1 runs at its virtual EL2
// with FEAT_NV2, and L2's VM L3. L3's store faults to L0, which forwards
// it to L1, which forwards it to L2 (L2's stage 2 has no entry yet); L2
// maps the page and returns, and the value lands in L1's memory where the
// two guest stage 2s put it.
func ExampleVM_EnableNested() {
	h, _ := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 128 << 20})
	vm, _ := h.NewVM(kvm.VMConfig{IPABits: 40})
	_, _ = vm.AddMemory(0, 0x4000_0000, 64<<20, 0, 0) // L1's RAM
	kv, _ := vm.NewVCPU(0)
	nvm, _ := nested.New(vm, nested.Config{Mode: nested.ModeNV2, E2H: true})
	v, _ := nvm.NewVCPU(kv, nil)
	_ = v.LoadCPU(0)

	l1, _ := guesthyp.Boot(v, guesthyp.Config{E2H: true, Tables: 0x4300_0000, TablesSize: 4 << 20})
	v.SetGuestHypervisor(l1)
	l2vm, _ := l1.NewVM(1)
	_ = l2vm.AddSlot(0x8000_0000, 0x4100_0000, 16<<20) // L2 IPA -> L1 IPA
	e, _ := l2vm.EnableNested(nested.EL2Config{Mode: nested.ModeNV2, VNCR: 0x4380_0000})
	_ = l1.Run(l2vm) // L2 at its virtual EL2

	l2, _ := guesthyp.Boot(v.L2(), guesthyp.Config{E2H: true, Tables: 0x80c0_0000, TablesSize: 4 << 20, VBAR: 0x8000_0800})
	e.SetGuestHypervisor(l2, v.L2())
	l3vm, _ := l2.NewVM(1)
	_ = l3vm.AddSlot(0x4000_0000, 0x8040_0000, 4<<20) // L3 IPA -> L2 IPA
	_ = l2.Run(l3vm)                                  // L3 runs

	v.KVM().Ctx().X[1] = 42
	exit, err := v.RunL2(kvm.Access{VA: 0x4000_1000, Size: 8, Write: true, Rt: 1})
	fmt.Println("L3 store:", exit.Reason, err)
	// L3 IPA 0x40001000 -> L2 IPA 0x80401000 -> L1 IPA 0x41401000.
	s := vm.Lookup(0x4140_1000)
	got, _ := vm.AddressSpace().Read(s.HVAOf(0x4140_1000), 8)
	fmt.Println("L1's memory at 0x41401000:", got)
	fmt.Println("faults L2 handled:", l2.Stats().Faults, "forwarded by L1:", e.Stats().Forwarded)
	if err := nvm.Check(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// L3 store: none <nil>
	// L1's memory at 0x41401000: 42
	// faults L2 handled: 1 forwarded by L1: 1
}
