// Package kvm is the host hypervisor (L0) after Linux KVM/arm64: it puts the
// modelled hardware (arm64/cpu, arm64/tlb) and the host's memory-management
// pieces (host/hostmem, host/hostmm, host/s2pt, host/memslot, host/mmio,
// host/vmid) together into VMs whose vCPUs run guest accesses at EL1 under
// stage-2 translation.
//
// A Host owns the frame arena, the host kernel, the VMID allocator and one
// TLB per physical CPU. A VM owns its stage-2 tables (VTCR_EL2 derived from
// the IPA size and granule), a VMM address space whose regions back its
// memslots, and an MMU notifier registered on that address space. A VCPU is
// a cpu.PE at EL1 with HCR_EL2.VM=1 and the VM's VTTBR_EL2, plus a small
// guest context (X0-X30, SP, PC) that the accesses come from.
//
// The run loop executes one guest access on the PE; an exception the PE
// takes to EL2 is the hypervisor's (stage-2 fault: map the page or block,
// relax a permission, set the Access flag, log a dirty page, or decode an
// MMIO access), which it handles before returning with ERET and retrying;
// an exception taken to EL1 is the guest's and is returned to the caller.
// Faults follow KVM's sequence-count protocol against host invalidations, so
// a page the host is moving is never installed. See docs/HOST.md.
package kvm
