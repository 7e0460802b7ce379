// Translation tables for the test programs: 4K granule, stage 1 with a
// 39-bit VA (TCR.T0SZ=25, start level 1) and stage 2 with a 39-bit IPA
// (VTCR_EL2.T0SZ=25, SL0=1: start level 1), tables from a pool in RAM.
#ifndef MMU_H
#define MMU_H
#include "lib.h"

#define POOL_BASE 0x40800000UL
#define POOL_END 0x41000000UL
#define DATA_BASE 0x41000000UL // test pages
#define NO_MEMORY 0x60000000UL // a PA with nothing behind it

// Stage-1 leaf attributes.
#define S1_VALID (1UL << 0)
#define S1_TABLE (1UL << 1) // at levels 1-2: table; at level 3: page
#define S1_ATTR(i) ((u64)(i) << 2) // MAIR index
#define S1_AP_RW_EL1 (0UL << 6)
#define S1_AP_RW_ALL (1UL << 6)
#define S1_AP_RO_EL1 (2UL << 6)
#define S1_AP_RO_ALL (3UL << 6)
#define S1_SH_INNER (3UL << 8)
#define S1_AF (1UL << 10)
#define S1_NG (1UL << 11)
#define S1_DBM (1UL << 51)
#define S1_PXN (1UL << 53)
#define S1_UXN (1UL << 54)
// MAIR: index 0 Normal write-back, 1 Device-nGnRnE.
#define MAIR_VALUE 0x00ffUL
#define ATTR_NORMAL 0
#define ATTR_DEVICE 1

// Stage-2 leaf attributes.
#define S2_MEMATTR_NORMAL (0xfUL << 2)
#define S2_MEMATTR_DEVICE (0x0UL << 2)
#define S2_AP_NONE (0UL << 6)
#define S2_AP_RO (1UL << 6)
#define S2_AP_WO (2UL << 6)
#define S2_AP_RW (3UL << 6)
#define S2_SH_INNER (3UL << 8)
#define S2_AF (1UL << 10)
#define S2_DBM (1UL << 51)
#define S2_XN (2UL << 53)

// Register values.
#define TCR_EL1_VALUE ((25UL << 0) | (1UL << 8) | (1UL << 10) | (3UL << 12) | (0UL << 14) | (1UL << 23) | (2UL << 32))
#define VTCR_VALUE ((25UL << 0) | (1UL << 6) | (1UL << 8) | (1UL << 10) | (3UL << 12) | (0UL << 14) | (2UL << 16) | (1UL << 31))
#define HCR_RW (1UL << 31)
#define HCR_VM (1UL << 0)
#define SCTLR_M (1UL << 0)
#define SCTLR_C (1UL << 2)
#define SCTLR_I (1UL << 12)
#define SCTLR_EL1_VALUE (0x30d00800UL | SCTLR_M | SCTLR_C | SCTLR_I) // RES1 bits, SPAN
#define SPSR_EL1H 0x3c5UL
#define SPSR_EL0T 0x3c0UL

// A table pool allocation, zeroed.
u64 *pt_alloc(void);
// pt_map writes a leaf at level (1, 2 or 3) for va -> pa with attrs
// (valid and, at level 3, page bits added), creating tables below root.
void pt_map(u64 *root, u64 va, u64 pa, int level, u64 attrs);
// pt_entry returns the descriptor that translates va at level (creating
// the tables above it).
u64 *pt_entry(u64 *root, u64 va, int level);

// Stage 2: identity map of RAM (2 MiB blocks, Normal, RW) and the UART
// page (Device), VTCR_EL2/VTTBR_EL2 set, stage 2 enabled in HCR_EL2.
u64 *s2_setup(u64 vmid);
// Stage 1 at EL1: the image (text read-only and executable at EL1 and
// EL0, data and bss RW at EL1 and EL0, the EL1 and EL2 stacks RW at EL1,
// the EL0 stack RW at EL0), the UART, the table pool (RW at EL1);
// TCR/MAIR/TTBR0_EL1 set, the MMU not yet enabled.
u64 *s1_setup(void);

extern char __text_start[], __text_end[], __rodata_end[], __data_end[], __el0_start[], __stack_el0[], __stack_el2[],
	__stack_el1[], __image_end[];

static inline void tlbi_all(void)
{
	if (current_el() == 2)
		__asm__ volatile("dsb ishst; tlbi alle1; tlbi alle2; dsb ish; isb" : : : "memory");
	else
		__asm__ volatile("dsb ishst; tlbi vmalle1; dsb ish; isb" : : : "memory");
}

#endif
