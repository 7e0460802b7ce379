// Package guestos is an arm64 guest kernel model after Linux/arm64. It
// runs on a vCPU (host/kvm.VCPU, or anything with the CPU interface) and
// acts only through the modelled hardware: its page tables live in its own
// guest-physical memory and every descriptor it reads or writes is a load
// or store through its own linear map; it programs TTBR0_EL1, TTBR1_EL1,
// TCR_EL1, MAIR_EL1 and SCTLR_EL1 with MSR; it invalidates TLBs with TLBI by
// ASID and VA; and it handles its processes' page faults, system calls and
// timer interrupts as exceptions taken to its EL1 (reading ESR_EL1 and
// FAR_EL1 with MRS, returning with ERET).
//
// What it models:
//   - boot with the MMU off: the kernel half (TTBR1) maps all RAM in a
//     linear map, with block mappings where the granule and alignment allow
//     (or pages only, as with rodata=full), then the MMU is turned on;
//   - processes with TTBR0 tables of their own, tagged with ASIDs from
//     Linux's generation allocator (arch/arm64/mm/context.c): per-CPU active
//     and reserved ASIDs, rollover with a TLB flush on every CPU;
//   - 4K, 16K and 64K granules, 39- to 48-bit virtual addresses;
//   - demand paging (a read fault maps the shared zero page read-only, a
//     write fault a zeroed page), copy-on-write after fork (write faults
//     copy a shared page, or reuse the last reference), break-before-make
//     with TLBI VALE1IS when a valid entry changes output;
//   - mmap, munmap (TLBI VALE1IS per page, or ASIDE1IS above Linux's
//     MAX_DVM_OPS pages; page-table pages an unmap empties are freed after
//     a TLBI VAE1IS), fork, exec and exit (TLBI ASIDE1IS when tables are
//     freed, as Linux's tlb_flush for a full-mm teardown);
//   - the cost of kernel entry and exit: 34 registers stored to the task's
//     kernel stack and loaded back.
//
// Processes are single-threaded and stay on the vCPU they were created on;
// the caller (the simulator) decides when to switch between them.
package guestos
