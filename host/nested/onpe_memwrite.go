package nested

import (
	"github.com/nestmmu/nestmmu/mem"
)

// SetGuestWriteObserver gives L0 a function to call after every write L0
// itself makes to the guest hypervisor's memory, with the host physical
// address and size written: the hardware updates of the guest stage-2 walk
// (Access flag, dirty state) and of the walks of the guest hypervisor's
// stage 1, and the FEAT_NV2 registers of a guest's guest copied back into
// the guest hypervisor's VNCR page. A PE whose code is executed from
// memory (an interpreter's decoded-instruction cache) drops what it
// decoded there: with CTR_EL0.DIC=1 a data write is visible to instruction
// fetch without cache maintenance, and to the guest hypervisor these
// writes are the hardware's. Set it before the vCPUs run; nil removes it.
func (vm *VM) SetGuestWriteObserver(f func(pa mem.PA, size int)) {
	if f == nil {
		vm.onWrite.Store(nil)
		return
	}
	vm.onWrite.Store(&f)
}

// guestWritten reports L0's write of size bytes at L1 IPA ipa to the
// observer (the one hook every such write goes through).
func (vm *VM) guestWritten(ipa mem.IPA, size int) {
	if vm == nil {
		return
	}
	f := vm.onWrite.Load()
	if f == nil {
		return
	}
	s := vm.k.Lookup(ipa)
	if s == nil {
		return
	}
	if m, ok := vm.k.AddressSpace().Translate(s.HVAOf(ipa)); ok {
		(*f)(m.PA, size)
	}
}
