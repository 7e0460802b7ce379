// hwupdate: hardware Access flag and dirty state updates (FEAT_HAFDBS) at
// stage 1 (TCR_EL1.HA/HD) and stage 2 (VTCR_EL2.HA/HD): the descriptors
// before and after loads, stores, AT and fetches, and the stage-2 fault a
// stage-1 update takes when stage 2 maps the table read-only.
#include "harness.h"

#define VA0 0x3000000000UL
#define PA(i) (DATA_BASE + 0x30000 + (u64)(i) * 0x1000)
#define N1 (S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_PXN | S1_UXN)

static u64 *s1, *s2;

// hvc #3: read the stage-2 descriptor of IPA x0; hvc #4: set it to x1.
static void service(struct frame *f, u64 imm)
{
	u64 *e = pt_entry(s2, f->x[0], 3);
	if (imm == 4) {
		*e = f->x[1];
		dsb(ish);
		__asm__ volatile("tlbi ipas2e1is, %0\n dsb ish\n tlbi vmalle1is\n dsb ish" : : "r"(f->x[0] >> 12));
	}
	f->x[0] = *e;
}

static u64 hvc2(int imm, u64 a, u64 b)
{
	register u64 x0 __asm__("x0") = a, x1 __asm__("x1") = b;
	if (imm == 3)
		__asm__ volatile("hvc #3" : "+r"(x0) : "r"(x1) : "memory");
	else
		__asm__ volatile("hvc #4" : "+r"(x0) : "r"(x1) : "memory");
	return x0;
}

static void s2split(u64 ipa)
{
	u64 *l2 = pt_entry(s2, ipa, 2);
	if ((*l2 & 3) == 1) {
		u64 blk = *l2 & 0xffffffe00000UL, a = *l2 & 0xfff0000000000ffcUL;
		u64 *t = pt_alloc();
		for (int i = 0; i < 512; i++)
			t[i] = (blk + i * 4096UL) | a | 3;
		*l2 = (u64)t | 3;
	}
}

static void desc(const char *when, u64 *e)
{
	pr("    %s: stage-1 descriptor %x\n", when, *e);
}

static void step(const char *what, u64 va, u64 *e, int store)
{
	u64 v = store ? probe_str(va, 0x5707e) : probe_ldr(va);
	show(what, v);
	desc("after", e);
}

static u64 el1(u64 arg)
{
	s1 = s1_setup();
	write_sysreg(tcr_el1, TCR_EL1_VALUE | 1UL << 39 | 1UL << 40); // HA, HD
	isb();
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE);
	isb();
	u64 *e[8];
	for (int i = 0; i < 8; i++)
		e[i] = pt_entry(s1, VA0 + i * 0x1000UL, 3);
	*e[0] = PA(0) | N1 | S1_AP_RW_EL1 | 3;                   // AF=0
	*e[1] = PA(1) | N1 | S1_AF | S1_AP_RO_EL1 | S1_DBM | 3;  // writable-clean
	*e[2] = PA(2) | N1 | S1_AP_RO_EL1 | S1_DBM | 3;          // AF=0, clean
	*e[3] = PA(3) | N1 | S1_AF | S1_AP_RO_EL1 | 3;           // read-only, no DBM
	*e[4] = PA(4) | N1 | S1_AF | S1_AP_RO_EL1 | S1_DBM | 3;  // clean, for AT
	*e[5] = (u64)code_page_fn | S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AP_RO_EL1 | S1_UXN | 3; // AF=0 code
	*e[6] = PA(6) | N1 | S1_AF | S1_AP_RW_EL1 | 3;           // a page whose stage-2 is clean
	*e[7] = PA(7) | N1 | S1_AP_RW_EL1 | 3;                   // AF=0, its table page read-only at stage 2
	dsb(ish);
	tlbi_all();
	pr("stage 1 (TCR_EL1.HA=HD=1)\n");
	desc("AF=0 page", e[0]);
	step("load AF=0", VA0, e[0], 0);
	desc("clean page", e[1]);
	step("load clean", VA0 + 0x1000, e[1], 0);
	step("store clean", VA0 + 0x1000, e[1], 1);
	step("store AF=0 clean", VA0 + 0x2000, e[2], 1);
	step("store read-only", VA0 + 0x3000, e[3], 1);
	u64 par;
	__asm__ volatile("at s1e1w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(VA0 + 0x4000));
	pr("  AT S1E1W clean: PAR %x\n", par & ~0x200UL);
	desc("after", e[4]);
	show("fetch AF=0", probe_call(VA0 + 0x5000));
	desc("after", e[5]);
	write_sysreg(tcr_el1, TCR_EL1_VALUE | 1UL << 39); // HA only
	isb();
	*e[1] = PA(1) | N1 | S1_AF | S1_AP_RO_EL1 | S1_DBM | 3;
	dsb(ish);
	tlbi_all();
	step("store clean with HD=0", VA0 + 0x1000, e[1], 1);
	write_sysreg(tcr_el1, TCR_EL1_VALUE);
	isb();
	*e[0] = PA(0) | N1 | S1_AP_RW_EL1 | 3;
	dsb(ish);
	tlbi_all();
	step("load AF=0 with HA=0", VA0, e[0], 0);

	pr("stage 2 (VTCR_EL2.HA=HD=1)\n");
	write_sysreg(tcr_el1, TCR_EL1_VALUE | 1UL << 39 | 1UL << 40);
	isb();
	u64 d = hvc2(3, PA(6), 0);
	pr("    stage-2 descriptor %x\n", d);
	hvc2(4, PA(6), (d & ~(S2_AF | S2_AP_RW)) | S2_AP_RO | S2_DBM); // AF=0, clean
	pr("    stage-2 descriptor %x\n", hvc2(3, PA(6), 0));
	show("load stage-2 AF=0", probe_ldr(VA0 + 0x6000));
	pr("    stage-2 descriptor %x\n", hvc2(3, PA(6), 0));
	show("store stage-2 clean", probe_str(VA0 + 0x6000, 1));
	pr("    stage-2 descriptor %x\n", hvc2(3, PA(6), 0));
	// The stage-1 table holding e[7] on a stage-2 page that is read-only
	// without DBM: setting AF is a stage-2 write on the walk (S1PTW).
	u64 tbl = (u64)e[7] & ~0xfffUL;
	u64 td = hvc2(3, tbl, 0);
	hvc2(4, tbl, (td & ~S2_AP_RW) | S2_AP_RO);
	show("load with AF update on a read-only table", probe_ldr(VA0 + 0x7000));
	desc("after", e[7]);
	hvc2(4, tbl, td);
	show("again with the table writable", probe_ldr(VA0 + 0x7000));
	desc("after", e[7]);
	return 0;
}

int main(void)
{
	if (boot_el != 2)
		fail("hwupdate needs EL2");
	harness_install();
	hvc_service = service;
	for (int i = 0; i < 8; i++)
		wr64(PA(i), 0x1000 + i);
	s2 = s2_setup(1);
	s2split(PA(0));
	s2split(0x40800000UL); // the table pool
	write_sysreg(vtcr_el2, VTCR_VALUE | 1UL << 21 | 1UL << 22); // HA, HD
	isb();
	tlbi_all();
	run_el1(el1, 0);
	pr("hwupdate done\n");
	return 0;
}
