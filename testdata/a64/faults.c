// faults: loads, stores, fetches, exclusives and atomics at EL1 and EL0
// that succeed and that fault at every level of stage 1 (taken to EL1)
// and of stage 2 (taken to EL2), with the ESR, FAR, HPFAR, ELR and SPSR
// the handlers see, and AT with the PAR_EL1 it returns.
#include "harness.h"

#define VA(i) ((i) == P_S1PTW ? 0x2000200000UL : 0x2000000000UL + (u64)(i) * 0x1000)
#define S1PTW_TABLE 0x47f00000UL
#define PA(i) (DATA_BASE + (u64)(i) * 0x1000)
#define VA_L1HOLE 0x2040000000UL
#define VA_L2 0x2080000000UL
#define VA_1G 0x20c0000000UL

// Stage-1 pages (index: what).
enum {
	P_RW = 0,     // RW at EL1
	P_RO = 1,     // read-only at EL1 and EL0
	P_EL0 = 2,    // RW at EL0 and EL1
	P_NOAF = 3,   // AF=0
	P_HOLE = 4,   // level-3 invalid
	P_OASIZE = 5, // output address beyond the 40-bit IPA size
	P_DEV = 6,    // Device memory (RAM behind it)
	P_CODE = 7,   // code_page_fn, executable at EL1 only (UXN)
	P_CODE0 = 8,  // code_page_fn, executable at EL0 only (PXN)
	P_XN = 9,     // code_page_fn, never executable
	P_S2HOLE = 10,  // IPA unmapped at stage 2 (level 3)
	P_S2RO = 11,    // stage 2 read-only
	P_S2NOAF = 12,  // stage 2 AF=0
	P_S2XN = 13,    // stage 2 execute-never (code_page_fn)
	P_S2ASIZE = 14, // stage 2 output beyond VTCR_EL2.PS
	P_EXT = 15,     // PA with no memory: External abort
	P_MMIO = 16,    // IPA in the emulated MMIO window
	P_S1PTW = 17,   // its level-3 table sits at an IPA stage 2 does not map
	P_S2L2 = 18,    // IPA unmapped at stage 2 level 2
	P_S2WO = 19,    // stage 2 write-only
	P_S2L1 = 20,    // IPA unmapped at stage 2 level 1
	N_PAGES
};

static u64 *s1, *s2;

static void s2_map4k(u64 ipa, u64 pa, u64 attrs)
{
	// Split the 2 MiB block holding ipa into pages first.
	u64 *l2 = pt_entry(s2, ipa, 2);
	if ((*l2 & 3) == 1) {
		u64 blk = *l2 & 0xffffffe00000UL, a = *l2 & 0xfff0000000000ffcUL;
		u64 *t = pt_alloc();
		for (int i = 0; i < 512; i++)
			t[i] = (blk + i * 4096UL) | a | 3;
		*l2 = (u64)t | 3;
	}
	pt_map(s2, ipa, pa, 3, attrs);
}

#define S2N (S2_MEMATTR_NORMAL | S2_SH_INNER)
#define S1N (S1_ATTR(ATTR_NORMAL) | S1_SH_INNER)

static void setup_tables(void)
{
	for (int i = 0; i < N_PAGES; i++) {
		u64 a = S1N | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN, pa = PA(i);
		switch (i) {
		case P_RO: a = S1N | S1_AF | S1_AP_RO_ALL | S1_PXN | S1_UXN; break;
		case P_EL0: a = S1N | S1_AF | S1_AP_RW_ALL | S1_PXN | S1_UXN; break;
		case P_NOAF: a &= ~S1_AF; break;
		case P_HOLE: continue;
		case P_OASIZE: pa = 0x10000000000UL; break;
		case P_DEV: a = S1_ATTR(ATTR_DEVICE) | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN; break;
		case P_CODE: a = S1N | S1_AF | S1_AP_RO_EL1 | S1_UXN; pa = (u64)code_page_fn; break;
		case P_CODE0: a = S1N | S1_AF | S1_AP_RO_ALL | S1_PXN; pa = (u64)code_page_fn; break;
		case P_XN: pa = (u64)code_page_fn; break;
		case P_S2XN: a = S1N | S1_AF | S1_AP_RO_EL1 | S1_UXN; break;
		case P_EXT: pa = NO_MEMORY; break;
		case P_MMIO: pa = MMIO_IPA; a = S1_ATTR(ATTR_DEVICE) | S1_AF | S1_AP_RW_ALL | S1_PXN | S1_UXN; break;
		case P_S2L2: pa = 0x50000000UL; break;
		case P_S2L1: pa = 0x80000000UL; a = S1N | S1_AF | S1_AP_RW_EL1 | S1_UXN; break;
		case P_S1PTW: {
			u64 *l2 = pt_entry(s1, VA(i), 2);
			*l2 = 0; // stays a hole unless the table is placed below
			continue;
		}
		}
		pt_map(s1, VA(i), pa, 3, a);
	}
	// Stage 2.
	s2_map4k(PA(P_S2HOLE), 0, 0);
	*pt_entry(s2, PA(P_S2HOLE), 3) = 0;
	s2_map4k(PA(P_S2RO), PA(P_S2RO), S2N | S2_AF | S2_AP_RO);
	s2_map4k(PA(P_S2NOAF), PA(P_S2NOAF), S2N | S2_AP_RW);
	s2_map4k(PA(P_S2XN), (u64)code_page_fn, S2N | S2_AF | S2_AP_RO | S2_XN);
	s2_map4k(PA(P_S2ASIZE), 0x20000000000UL, S2N | S2_AF | S2_AP_RW);
	s2_map4k(PA(P_S2WO), PA(P_S2WO), S2N | S2_AF | S2_AP_WO);
	pt_map(s2, NO_MEMORY, NO_MEMORY, 3, S2_MEMATTR_DEVICE | S2_AF | S2_AP_RW | S2_XN);
	// The stage-1 L3 table of P_S1PTW at IPA S1PTW_TABLE (in RAM, written
	// by EL2 before EL1 ran: EL1 never translated it), whose stage-2 page
	// is then removed. Removed without TLB maintenance, a page EL1 had
	// used could still translate (a TLB, or a hypervisor's shadow stage 2
	// under nesting, may keep it until a TLBI); one never used cannot.
	u64 tbl = S1PTW_TABLE;
	*pt_entry(s1, VA(P_S1PTW), 2) = tbl | 3;
	s2_map4k(tbl, 0, 0);
	*pt_entry(s2, tbl, 3) = 0;
	// 1 GiB block and a level-2 table with a hole and a 2 MiB block.
	pt_map(s1, VA_1G, 0x40000000UL, 1, S1N | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN);
	pt_map(s1, VA_L2 + 0x200000, DATA_BASE, 2, S1N | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN);
	dsb(ish);
	tlbi_all();
}

static void at_show(const char *op, u64 va)
{
	seen = last.count;
	u64 par;
	switch (op[4]) {
	case 'R':
		if (op[3] == '1')
			__asm__ volatile("at s1e1r, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va));
		else
			__asm__ volatile("at s1e0r, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va));
		break;
	default:
		if (op[3] == '1')
			__asm__ volatile("at s1e1w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va));
		else
			__asm__ volatile("at s1e0w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va));
	}
	// PAR_EL1.NS is UNKNOWN for a Non-secure regime and bits [63:56] of a
	// fault IMPLEMENTATION DEFINED: masked.
	par &= par & 1 ? 0x00fffffffffffffeUL | 1 : ~0x200UL;
	pr("  AT %s %x: PAR %x\n", op, va, par);
}

static u64 el0_tests(u64 arg)
{
	show("EL0 load RW-all page", probe_ldr(VA(P_EL0)));
	show("EL0 store RW-all page", probe_str(VA(P_EL0), 0xe10));
	show("EL0 load EL1-only page", probe_ldr(VA(P_RW)));
	show("EL0 store read-only page", probe_str(VA(P_RO), 1));
	show("EL0 load read-only page", probe_ldr(VA(P_RO)));
	show("EL0 fetch PXN page", probe_call(VA(P_CODE0)));
	show("EL0 fetch UXN page", probe_call(VA(P_CODE)));
	show("EL0 load level-3 hole", probe_ldr(VA(P_HOLE)));
	show("EL0 load stage-2 hole", probe_ldr(VA(P_S2HOLE)));
	show("EL0 mmio load", probe_ldrw(VA(P_MMIO)));
	show("EL0 exclusive load", probe_ldxr(VA(P_EL0)));
	__asm__ volatile("svc #0x42");
	show("EL0 svc", 0);
	__asm__ volatile("mrs x0, sctlr_el1" : : : "x0");
	show("EL0 mrs sctlr_el1", 0);
	__asm__ volatile("brk #7");
	show("EL0 brk", 0);
	return 0xe0;
}

static u64 el1_tests(u64 arg)
{
	s1 = s1_setup();
	setup_tables();
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE);
	isb();
	pr("EL1 stage 1 on\n");
	show("load RW page", probe_ldr(VA(P_RW)));
	show("store RW page", probe_str(VA(P_RW), 0x5a5a));
	show("load back", probe_ldr(VA(P_RW)));
	show("load byte signed", probe_ldrsb(VA(P_RW) + 1));
	show("load 1 GiB block", probe_ldr(VA_1G + (DATA_BASE - 0x40000000UL) + 8));
	show("load 2 MiB block", probe_ldr(VA_L2 + 0x200000 + 0x1000));
	show("load level-1 hole", probe_ldr(VA_L1HOLE + 0x10));
	show("load level-2 hole", probe_ldr(VA_L2 + 0x18));
	show("load level-3 hole", probe_ldr(VA(P_HOLE) + 0x20));
	show("load beyond the VA range", probe_ldr(0x8000000000UL));
	show("load AF=0", probe_ldr(VA(P_NOAF)));
	show("store AF=0", probe_str(VA(P_NOAF), 1));
	show("load OA beyond IPS", probe_ldr(VA(P_OASIZE)));
	show("store read-only", probe_str(VA(P_RO), 2));
	show("load read-only", probe_ldr(VA(P_RO)));
	show("store-release read-only", probe_stlr(VA(P_RO), 2));
	show("load pair level-3 hole", probe_ldp(VA(P_HOLE)));
	show("store pair read-only", probe_stp(VA(P_RO), 3));
	show("load post-index hole", probe_ldr_post(VA(P_HOLE)));
	show("store pre-index read-only", probe_str_pre(VA(P_RO), 4));
	show("exclusive load read-only", probe_ldxr(VA(P_RO)));
	show("exclusive store read-only", probe_stxr(VA(P_RO), 5));
	show("exclusive store without monitor", probe_stxr(VA(P_RW), 5));
	show("ldadd read-only", probe_ldadd(VA(P_RO), 1));
	show("ldadd hole", probe_ldadd(VA(P_HOLE), 1));
	show("swp RW", probe_swp(VA(P_RW), 0x77));
	show("cas read-only", probe_cas(VA(P_RO), 9));
	show("unaligned load Device", probe_ldr(VA(P_DEV) + 4));
	show("aligned load Device", probe_ldr(VA(P_DEV) + 8));
	show("unaligned load Normal", probe_ldr(VA(P_RW) + 4));
	show("unaligned exclusive load", probe_ldxr(VA(P_RW) + 4));
	show("unaligned ldar in 16 bytes", probe_ldar(VA(P_RW) + 4));
	show("unaligned ldar across 16 bytes", probe_ldar(VA(P_RW) + 12));
	show("fetch UXN page", probe_call(VA(P_CODE)));
	show("fetch PXN page", probe_call(VA(P_CODE0)));
	show("fetch XN page", probe_call(VA(P_XN)));
	show("fetch level-3 hole", probe_call(VA(P_HOLE)));
	show("fetch misaligned", probe_call(VA(P_CODE) + 2));
	show("ldtr EL1-only page", probe_ldtr(VA(P_RW)));
	show("ldtr RW-all page", probe_ldtr(VA(P_EL0)));
	show("sttr read-only", probe_sttr(VA(P_RO), 1));
	{
		// PSTATE.PAN: privileged loads of EL0-accessible pages fault, LDTR
		// does not. (Printing reads EL0-readable strings: PAN off first.)
		u64 v1, v2;
		__asm__ volatile("msr pan, #1");
		v1 = probe_ldr(VA(P_EL0));
		__asm__ volatile("msr pan, #0");
		show("PAN: load EL0 page", v1);
		__asm__ volatile("msr pan, #1");
		v2 = probe_ldtr(VA(P_EL0));
		__asm__ volatile("msr pan, #0");
		show("PAN: ldtr EL0 page", v2);
	}
	show("external abort load", probe_ldr(VA(P_EXT)));
	show("external abort store", probe_str(VA(P_EXT), 1));
	show("dc zva RW", probe_dczva(VA(P_RW) + 0x40));
	show("dc zva read-only", probe_dczva(VA(P_RO) + 0x48));
	show("dc civac hole", probe_dccivac(VA(P_HOLE) + 0x10));
	show("ic ivau hole", probe_icivau(VA(P_HOLE) + 0x10));
	show("ic ivau code page", probe_icivau(VA(P_CODE)));
	pr("stage 2 faults (to EL2)\n");
	show("load stage-2 level-3 hole", probe_ldr(VA(P_S2HOLE) + 8));
	show("store stage-2 level-3 hole", probe_strw(VA(P_S2HOLE) + 4, 6));
	show("load stage-2 level-2 hole", probe_ldrw(VA(P_S2L2) + 0x10));
	show("store stage-2 level-1 hole", probe_str(VA(P_S2L1) + 0x18, 9));
	show("fetch stage-2 level-1 hole", probe_call(VA(P_S2L1)));
	show("store stage-2 read-only", probe_str(VA(P_S2RO), 7));
	show("load stage-2 read-only", probe_ldr(VA(P_S2RO)));
	show("load stage-2 write-only", probe_ldr(VA(P_S2WO)));
	show("store stage-2 write-only", probe_str(VA(P_S2WO), 8));
	show("load stage-2 AF=0", probe_ldrh(VA(P_S2NOAF) + 2));
	show("load stage-2 OA beyond PS", probe_ldr(VA(P_S2ASIZE)));
	show("fetch stage-2 XN", probe_call(VA(P_S2XN)));
	show("load via stage-1 table outside stage 2", probe_ldr(VA(P_S1PTW)));
	show("exclusive load stage-2 hole", probe_ldxr(VA(P_S2HOLE)));
	show("ldadd stage-2 read-only", probe_ldadd(VA(P_S2RO), 1));
	show("load-acquire stage-2 hole", probe_ldar(VA(P_S2HOLE)));
	pr("mmio (ISV=1 and ISV=0)\n");
	show("mmio ldr w", probe_ldrw(VA(P_MMIO) + 0x10));
	show("mmio ldrsb", probe_ldrsb(VA(P_MMIO) + 0x21));
	show("mmio ldrh", probe_ldrh(VA(P_MMIO) + 0x22));
	show("mmio str x", probe_str(VA(P_MMIO) + 0x30, 0xabcdef));
	show("mmio strb", probe_strb(VA(P_MMIO) + 0x31, 0x1ff));
	show("mmio stlr", probe_stlr(VA(P_MMIO) + 0x38, 0x77));
	show("mmio ldar", probe_ldar(VA(P_MMIO) + 0x40));
	show("mmio ldr register offset", probe_ldr_reg(VA(P_MMIO), 9));
	show("mmio ldp", probe_ldp(VA(P_MMIO) + 0x50));
	show("mmio stp", probe_stp(VA(P_MMIO) + 0x60, 1));
	show("mmio post-index", probe_ldr_post(VA(P_MMIO) + 0x70));
	show("mmio ldxr", probe_ldxr(VA(P_MMIO) + 0x80));
	pr("AT\n");
	at_show("S1E1R", VA(P_RW));
	at_show("S1E1W", VA(P_RO));
	at_show("S1E0R", VA(P_RW));
	at_show("S1E0W", VA(P_EL0));
	at_show("S1E1R", VA(P_HOLE));
	at_show("S1E1R", VA(P_NOAF));
	at_show("S1E1R", VA(P_S2HOLE));
	at_show("S1E1R", VA(P_S1PTW));
	at_show("S1E1R", VA_1G + 0x123456);
	pr("EL0\n");
	u64 r = run_el0(el0_tests, 0);
	pr("EL0 returned %x\n", r);
	return 0xe1;
}

int main(void)
{
	if (boot_el != 2)
		fail("faults needs EL2");
	harness_install();
	for (int i = 0; i < N_PAGES; i++)
		*(volatile u64 *)PA(i) = 0x1111111111111111UL * (i + 1);
	s2 = s2_setup(1);
	u64 *tbl = (u64 *)S1PTW_TABLE;
	for (int i = 0; i < 512; i++)
		tbl[i] = 0;
	tbl[(VA(P_S1PTW) >> 12) & 511] = PA(P_S1PTW) | S1N | S1_AF | S1_AP_RW_EL1 | 3;
	u64 r = run_el1(el1_tests, 0);
	pr("EL1 returned %x\n", r);
	// AT S12E1R/W from EL2 see both stages.
	u64 par;
	// (Not AT S12E1W of a stage-2 read-only page: QEMU 10.0.2 aborts,
	// docs/QEMU-ORACLE.md.)
	u64 vas[] = {VA(P_RW), VA(P_S2HOLE), VA(P_S1PTW), VA(P_HOLE), VA(P_S2RO)};
	for (int i = 0; i < 5; i++) {
		__asm__ volatile("at s12e1r, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(vas[i]));
		par &= par & 1 ? 0x00fffffffffffffeUL | 1 : ~0x200UL;
		pr("  AT S12E1R %x: PAR %x\n", vas[i], par);
		if (i == 4)
			break;
		__asm__ volatile("at s12e1w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(vas[i]));
		par &= par & 1 ? 0x00fffffffffffffeUL | 1 : ~0x200UL;
		pr("  AT S12E1W %x: PAR %x\n", vas[i], par);
	}
	pr("faults done\n");
	return 0;
}
