package vmid_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/host/vmid"
)

type tlb struct{}

func (tlb) FlushAll()          { fmt.Println("TLBI ALLE1IS") }
func (tlb) FlushVMID(v uint16) { fmt.Printf("TLBI VMALLS12E1IS, VMID %d\n", v) }

// Two CPUs, 8-bit VMIDs (ID_AA64MMFR1_EL1.VMIDBits = 0b0000). The 256th
// VM rolls the generation over; the VM still running on CPU 0 keeps its VMID.
func Example() {
	width, _ := vmid.Bits(0)
	a, err := vmid.New(width, 2, tlb{})
	if err != nil {
		fmt.Println(err)
		return
	}
	vms := make([]vmid.VM, 256)
	first, _ := a.Load(0, &vms[0])
	for i := 1; i < 255; i++ {
		a.Load(1, &vms[i])
	}
	last, _ := a.Load(1, &vms[255])
	again, _ := a.Load(0, &vms[0])
	fmt.Println(first, last, again, a.Rollovers())
	a.Free(&vms[0])
	// Output:
	// TLBI ALLE1IS
	// 1 2 1 1
	// TLBI VMALLS12E1IS, VMID 1
}
