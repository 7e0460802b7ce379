// torture: seed-driven random scenarios. The loader writes the first seed
// at nestmmu_seed and the number of scenarios at nestmmu_seeds (0 means
// seed 1, one scenario). Each scenario builds random stage-1 and stage-2
// tables over eight test pages (invalid entries at every level, blocks and
// pages, every AP, S2AP and XN encoding, AF, DBM, nG, outputs beyond the
// PA size, the emulated MMIO window), random TCR_EL1.HA/HD and
// VTCR_EL2.HA/HD, then runs random loads, stores, pairs, exclusives,
// atomics, acquire/release, unprivileged accesses, fetches, DC ZVA and AT
// at EL1 (some with PSTATE.PAN) and EL0, and remaps pages with
// break-before-make and TLBI at both stages; every outcome and the final
// descriptors are printed.
//
// Constraints keep the scenarios away from CONSTRAINED UNPREDICTABLE
// choices the two sides may make differently: a descriptor with AF=0
// under hardware AF updates is only used where no access to it can take
// a permission fault (AArch64.SettingAccessFlagPermitted), all accesses
// are aligned, and no AT S12E*W meets a stage-2 permission fault (QEMU
// aborts, docs/QEMU-ORACLE.md).
#include "harness.h"

extern volatile u64 nestmmu_seed, nestmmu_seeds;

#define NP 8
#define VAB 0x3000000000UL
#define VAP(i) (VAB + (u64)(i) * 0x200000) // one 2 MiB region per page
#define IPAP(i) (0x44000000UL + (u64)(i) * 0x200000)
#define PAP(i) (0x45000000UL + (u64)(i) * 0x1000)

static u64 rng;
static u64 rnd(void)
{
	u64 z = (rng += 0x9e3779b97f4a7c15UL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
	return z ^ (z >> 31);
}
static int chance(int pct) { return (int)(rnd() % 100) < pct; }

static u64 *s1, *s2;
static int ha1, hd1, ha2, hd2;

struct page {
	int s1kind;  // 0 L3 page, 1 L2 block, 2 L2 invalid, 3 L3 invalid
	u64 s1attr;  // leaf attributes
	int s2kind;  // 0 mapped page, 1 L3 invalid, 2 MMIO window, 3 output beyond PS
	u64 s2attr;
	int code;    // maps code_page_fn instead of data
	int noperm;  // AF=0 under HA: only permissive accesses allowed
} pg[NP];

static void gen_page(int i)
{
	struct page *p = &pg[i];
	p->code = chance(20);
	p->s1kind = chance(70) ? 0 : (int)(rnd() % 4);
	if (p->code && p->s1kind == 1)
		p->s1kind = 0;
	u64 ap = (rnd() % 4) << 6;
	p->s1attr = S1_ATTR(chance(85) ? ATTR_NORMAL : ATTR_DEVICE) | S1_SH_INNER | ap;
	if (chance(80))
		p->s1attr |= S1_AF;
	if (chance(25))
		p->s1attr |= S1_DBM;
	if (chance(30))
		p->s1attr |= S1_PXN;
	if (chance(30))
		p->s1attr |= S1_UXN;
	if (chance(30))
		p->s1attr |= S1_NG;
	// Writable-clean and read-only at EL0 and EL1 under HD: whether that is
	// "writable at EL0" for the implicit PXN of an EL1 fetch is where the
	// model and QEMU 10 differ (docs/A64.md): not generated.
	if (hd1 && (p->s1attr & S1_DBM) && (p->s1attr >> 6 & 3) == 3)
		p->s1attr &= ~S1_DBM;
	p->s2kind = chance(75) ? 0 : (int)(rnd() % 4);
	p->s2attr = (chance(85) ? S2_MEMATTR_NORMAL : S2_MEMATTR_DEVICE) | S2_SH_INNER | (rnd() % 4) << 6 | (rnd() % 4) << 53;
	if (chance(85))
		p->s2attr |= S2_AF;
	if (chance(25))
		p->s2attr |= S2_DBM;
	// Code pages share one physical page: never writable at stage 2.
	if (p->code)
		p->s2attr &= ~(2UL << 6 | S2_DBM);
	// AF=0 with hardware AF updates: make every access permitted.
	p->noperm = 0;
	if ((!(p->s1attr & S1_AF) && ha1) || (!(p->s2attr & S2_AF) && ha2)) {
		p->s1attr = (p->s1attr & ~(3UL << 6 | S1_PXN | S1_UXN | 7UL << 2)) | S1_AP_RW_ALL | S1_ATTR(ATTR_NORMAL);
		p->s2attr = (p->s2attr & ~(3UL << 6 | 3UL << 53 | 0xfUL << 2)) | S2_AP_RW | S2_MEMATTR_NORMAL;
		p->noperm = 1;
		p->code = 0;
	}
}

static void map_s1(int i)
{
	struct page *p = &pg[i];
	u64 va = VAP(i);
	u64 *l2 = pt_entry(s1, va, 2);
	switch (p->s1kind) {
	case 0:
		pt_map(s1, va, IPAP(i), 3, p->s1attr);
		break;
	case 1:
		*l2 = (IPAP(i) & ~0x1fffffUL) | p->s1attr | 1;
		break;
	case 2:
		*l2 = 0;
		break;
	case 3:
		*pt_entry(s1, va, 3) = 0;
		break;
	}
}

// Stage 2 is applied by EL2 (HVC #5 with x0 = page).
static void map_s2(int i)
{
	struct page *p = &pg[i];
	u64 *e = pt_entry(s2, IPAP(i), 3);
	u64 pa = p->code ? (u64)code_page_fn : PAP(i);
	switch (p->s2kind) {
	case 0:
		*e = pa | p->s2attr | 3;
		break;
	case 1:
	case 2:
		*e = 0;
		break;
	case 3:
		*e = 0x20000000000UL | p->s2attr | 3;
		break;
	}
}

static void service(struct frame *f, u64 imm)
{
	int i = (int)f->x[0];
	if (imm == 5) { // remap stage 2 of page i (break-before-make)
		*pt_entry(s2, IPAP(i), 3) = 0;
		dsb(ish);
		__asm__ volatile("tlbi ipas2e1is, %0\n dsb ish\n tlbi vmalle1is\n dsb ish\n isb" : : "r"(IPAP(i) >> 12));
		map_s2(i);
		dsb(ish);
	} else if (imm == 6) { // read the stage-2 descriptor
		f->x[0] = *pt_entry(s2, IPAP(i), 3);
	}
}

static u64 hvc(int imm, u64 a)
{
	register u64 x0 __asm__("x0") = a;
	if (imm == 5)
		__asm__ volatile("hvc #5" : "+r"(x0) : : "memory");
	else
		__asm__ volatile("hvc #6" : "+r"(x0) : : "memory");
	return x0;
}

enum { O_LDR, O_STR, O_LDRB, O_STRB, O_LDP, O_STP, O_LDXR, O_STXR, O_LDADD, O_SWP, O_CAS, O_LDAR, O_STLR,
       O_LDTR, O_STTR, O_FETCH, O_DCZVA, O_AT, N_OPS };
static const char *opname[N_OPS] = {"ldr", "str", "ldrb", "strb", "ldp", "stp", "ldxr+stxr", "stxr", "ldadd", "swp",
				    "cas", "ldar", "stlr", "ldtr", "sttr", "fetch", "dc zva", "at"};

static void one_op(int el)
{
	int i = (int)(rnd() % NP);
	int op = (int)(rnd() % N_OPS);
	u64 off = (rnd() % 512) * 8;
	u64 va = VAP(i) + off;
	u64 v = rnd();
	struct page *p = &pg[i];
	if (p->noperm && (op == O_FETCH || op == O_LDTR || op == O_STTR))
		op = O_LDR;
	if (el == 0 && (op == O_AT || op == O_DCZVA))
		op = O_STR;
	if (op == O_FETCH)
		va = VAP(i);
	if (op == O_DCZVA)
		va &= ~63UL;
	if (op == O_LDP || op == O_STP)
		va &= ~15UL;
	int pan = el == 1 && !p->noperm && chance(20) && op != O_FETCH && op != O_AT && op != O_LDXR;
	pr("  EL%d %s%s page %d +%x:\n", el, opname[op], pan ? " (PAN)" : "", i, off);
	seen = last.count;
	void *fns[N_OPS] = {probe_ldr, probe_str, probe_ldrsb, probe_strb, probe_ldp, probe_stp, 0, probe_stxr,
			    probe_ldadd, probe_swp, probe_cas, probe_ldar, probe_stlr, probe_ldtr, probe_sttr, 0, probe_dczva, 0};
	if (op == O_LDRB || op == O_STRB)
		va += v & 7;
	u64 r;
	if (pan) {
		r = pan_probe(fns[op], va, v);
	} else if (op == O_LDXR) {
		r = probe_ldxr(va);
		r ^= probe_stxr(va, v) << 1;
	} else if (op == O_FETCH) {
		r = probe_call(va);
	} else if (op == O_AT) {
		u64 par;
		switch (v & 3) {
		case 0: __asm__ volatile("at s1e1r, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va)); break;
		case 1: __asm__ volatile("at s1e1w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va)); break;
		case 2: __asm__ volatile("at s1e0r, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va)); break;
		default: __asm__ volatile("at s1e0w, %1\n isb\n mrs %0, par_el1" : "=r"(par) : "r"(va));
		}
		par &= par & 1 ? 0x00fffffffffffffeUL | 1 : ~0x200UL;
		pr("    AT %d: PAR %x\n", (int)(v & 3), par);
		seen = last.count;
		return;
	} else {
		r = ((u64(*)(u64, u64))fns[op])(va, v);
	}
	show("   ", r);
}

static int nops0;
static u64 el0_ops(u64 arg)
{
	for (int k = 0; k < nops0; k++)
		one_op(0);
	return 0;
}

static void remap(void)
{
	int i = (int)(rnd() % NP);
	int s2side = chance(40);
	pr("  remap page %d at stage %d\n", i, s2side ? 2 : 1);
	// Break: invalidate, TLBI; make: the new descriptor.
	if (s2side) {
		gen_page(i);
		hvc(5, i);
		return;
	}
	u64 *l2 = pt_entry(s1, VAP(i), 2);
	*l2 = 0;
	dsb(ish);
	__asm__ volatile("tlbi vaae1is, %0\n dsb ish\n isb" : : "r"(VAP(i) >> 12));
	int keep2 = pg[i].s2kind;
	u64 keepa = pg[i].s2attr;
	int keepc = pg[i].code;
	gen_page(i);
	if (!pg[i].noperm) { // stage 2 is unchanged on this side
		pg[i].s2kind = keep2, pg[i].s2attr = keepa, pg[i].code = keepc;
	} else {
		hvc(5, i);
	}
	map_s1(i);
	dsb(ish);
	isb();
}

static u64 scenario(u64 seed)
{
	// Stage 1 from scratch, MMU off while building.
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE & ~SCTLR_M);
	isb();
	s1 = s1_setup();
	u64 tcr = TCR_EL1_VALUE | (ha1 ? 1UL << 39 : 0) | (hd1 ? 1UL << 40 : 0);
	write_sysreg(tcr_el1, tcr);
	write_sysreg(ttbr0_el1, (u64)s1 | (seed & 0xff) << 48);
	for (int i = 0; i < NP; i++)
		map_s1(i);
	dsb(ish);
	__asm__ volatile("tlbi vmalle1\n dsb ish\n isb");
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE);
	isb();
	int nops = 6 + (int)(rnd() % 10);
	for (int k = 0; k < nops; k++) {
		if (chance(15))
			remap();
		one_op(1);
	}
	nops0 = 3 + (int)(rnd() % 6);
	run_el0(el0_ops, 0);
	for (int i = 0; i < NP; i++) {
		u64 d1 = pg[i].s1kind == 1 ? *pt_entry(s1, VAP(i), 2) : pg[i].s1kind == 0 ? *pt_entry(s1, VAP(i), 3) : 0;
		pr("  page %d: stage 1 %x stage 2 %x\n", i, d1, hvc(6, i));
	}
	return 0;
}

int main(void)
{
	if (boot_el != 2)
		fail("torture needs EL2");
	harness_install();
	hvc_service = service;
	u64 seed = nestmmu_seed, n = nestmmu_seeds;
	if (n == 0)
		n = 1;
	if (seed == 0 && nestmmu_seeds == 0)
		seed = 1;
	extern u64 pool_next;
	u64 pool0 = pool_next;
	for (u64 k = 0; k < n; k++, seed++) {
		rng = seed;
		pool_next = pool0;
		pr("seed %d\n", seed);
		ha1 = chance(40), hd1 = ha1 && chance(60), ha2 = chance(40), hd2 = ha2 && chance(60);
		pr("  HA/HD stage 1 %d%d stage 2 %d%d\n", ha1, hd1, ha2, hd2);
		// Page contents, then stage 2 with the test pages split to 4K.
		for (int i = 0; i < NP; i++)
			for (int w = 0; w < 512; w++)
				wr64(PAP(i) + 8 * w, seed * 0x100000001b3UL ^ (u64)(i * 512 + w));
		// A fetch from a data page executes its first word: RET.
		for (int i = 0; i < NP; i++)
			wr64(PAP(i), 0xd65f03c0UL | (seed << 32));
		s2 = s2_setup(1 + (seed & 0xff));
		write_sysreg(vtcr_el2, VTCR_VALUE | (ha2 ? 1UL << 21 : 0) | (hd2 ? 1UL << 22 : 0));
		for (int i = 0; i < NP; i++) {
			gen_page(i);
			map_s2(i);
		}
		dsb(ish);
		tlbi_all();
		run_el1(scenario, seed);
	}
	pr("torture done\n");
	return 0;
}
