package kvm_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/host/kvm"
)

// Handle a stage-2 fault: a VM with 4 MiB of RAM at IPA 0x80000000 and
// nothing mapped at stage 2 yet. The guest's first store takes a stage-2
// translation fault to EL2; the hypervisor maps the page and returns, and
// the store completes. ESR_EL2 and FAR_EL2 keep what the fault reported
// (HPFAR_EL2, which held the IPA, is UNKNOWN again once the guest runs).
func ExampleVCPU_Run() {
	h, err := kvm.NewHost(kvm.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	vm, _ := h.NewVM(kvm.VMConfig{IPABits: 40})
	if _, err := vm.AddMemory(0, 0x8000_0000, 4<<20, 0, 0); err != nil {
		fmt.Println(err)
		return
	}
	v, _ := vm.NewVCPU(0)
	v.Load(0)

	v.Ctx().X[1] = 0xfeed
	exit, err := v.Run(kvm.Access{VA: 0x8000_1008, Size: 8, Write: true, Rt: 1})
	pe := v.PE()
	fmt.Printf("store: exit %v, err %v\n", exit.Reason, err)
	fmt.Printf("ESR_EL2 EC %#x ISV %v DFSC %#x WnR %v, FAR_EL2 %#x\n",
		pe.ESR[2].EC(), pe.ESR[2].ISV(), pe.ESR[2].FSC(), pe.ESR[2].WnR(), pe.FAR[2])

	exit, _ = v.Run(kvm.Access{VA: 0x8000_1008, Size: 8, Rt: 2})
	st := vm.Stats()
	fmt.Printf("load: exit %v, X2 %#x; stage-2 maps %d, table pages below the root %d\n", exit.Reason, v.Ctx().X[2], st.Maps, st.S2.Tables)

	v.Put()
	vm.Destroy()
	// Output:
	// store: exit none, err <nil>
	// ESR_EL2 EC 0x24 ISV true DFSC 0x5 WnR true, FAR_EL2 0x80001008
	// load: exit none, X2 0xfeed; stage-2 maps 1, table pages below the root 2
}
