#include "mmu.h"

u64 pool_next = POOL_BASE;

u64 *pt_alloc(void)
{
	if (pool_next >= POOL_END)
		fail("table pool exhausted");
	u64 *t = (u64 *)pool_next;
	pool_next += 4096;
	for (int i = 0; i < 512; i++)
		t[i] = 0;
	return t;
}

u64 *pt_entry(u64 *root, u64 va, int level)
{
	u64 *t = root;
	for (int l = 1; l < level; l++) {
		u64 *e = &t[(va >> (39 - 9 * l)) & 511];
		if (!(*e & 1) || !(*e & 2)) {
			u64 *n = pt_alloc();
			*e = (u64)n | 3;
		}
		t = (u64 *)(*e & 0xfffffffff000UL);
	}
	return &t[(va >> (39 - 9 * level)) & 511];
}

void pt_map(u64 *root, u64 va, u64 pa, int level, u64 attrs)
{
	u64 *e = pt_entry(root, va, level);
	*e = pa | attrs | 1 | (level == 3 ? 2 : 0);
}

u64 *s2_setup(u64 vmid)
{
	u64 *root = pt_alloc();
	for (u64 a = 0x40000000UL; a < 0x48000000UL; a += 0x200000)
		pt_map(root, a, a, 2, S2_MEMATTR_NORMAL | S2_AP_RW | S2_SH_INNER | S2_AF);
	pt_map(root, UART_BASE, UART_BASE, 3, S2_MEMATTR_DEVICE | S2_AP_RW | S2_AF | S2_XN);
	write_sysreg(vtcr_el2, VTCR_VALUE);
	write_sysreg(vttbr_el2, (u64)root | vmid << 48);
	write_sysreg(hcr_el2, HCR_RW | HCR_VM);
	isb();
	tlbi_all();
	return root;
}

u64 *s1_setup(void)
{
	u64 *root = pt_alloc();
	u64 a;
	for (a = (u64)__text_start; a < (u64)__text_end; a += 4096)
		pt_map(root, a, a, 3, S1_ATTR(ATTR_NORMAL) | S1_AP_RO_ALL | S1_SH_INNER | S1_AF);
	for (; a < (u64)__rodata_end; a += 4096)
		pt_map(root, a, a, 3, S1_ATTR(ATTR_NORMAL) | S1_AP_RO_ALL | S1_SH_INNER | S1_AF | S1_PXN | S1_UXN);
	// Data and bss: shared with EL0 code (so EL1 must clear PAN to use them).
	for (; a < (u64)__data_end; a += 4096)
		pt_map(root, a, a, 3, S1_ATTR(ATTR_NORMAL) | S1_AP_RW_ALL | S1_SH_INNER | S1_AF | S1_PXN | S1_UXN);
	// The EL1 and EL2 stacks.
	for (; a < (u64)__el0_start; a += 4096)
		pt_map(root, a, a, 3, S1_ATTR(ATTR_NORMAL) | S1_AP_RW_EL1 | S1_SH_INNER | S1_AF | S1_PXN | S1_UXN);
	for (; a < (u64)__image_end; a += 4096)
		pt_map(root, a, a, 3, S1_ATTR(ATTR_NORMAL) | S1_AP_RW_ALL | S1_SH_INNER | S1_AF | S1_PXN | S1_UXN);
	for (a = POOL_BASE; a < POOL_END; a += 0x200000)
		pt_map(root, a, a, 2, S1_ATTR(ATTR_NORMAL) | S1_AP_RW_EL1 | S1_SH_INNER | S1_AF | S1_PXN | S1_UXN);
	pt_map(root, UART_BASE, UART_BASE, 3, S1_ATTR(ATTR_DEVICE) | S1_AP_RW_ALL | S1_AF | S1_PXN | S1_UXN);
	write_sysreg(mair_el1, MAIR_VALUE);
	write_sysreg(tcr_el1, TCR_EL1_VALUE);
	write_sysreg(ttbr0_el1, (u64)root);
	isb();
	return root;
}
