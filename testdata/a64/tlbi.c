// tlbi: break-before-make with every kind of TLBI, checking that the
// stale translation is gone (the access faults while the descriptor is
// invalid) and that the new one is used: stage 1 at EL1 (by VA, by ASID,
// all, ranges), stage 2 from EL2 (by IPA, by VMID), and EL2's own regime.
#include "harness.h"

#define VA0 0x3000000000UL
#define PA_A (DATA_BASE + 0x10000)
#define PA_B (DATA_BASE + 0x11000)
#define IPA_S2 (DATA_BASE + 0x20000) // remapped at stage 2
#define PA_C (DATA_BASE + 0x21000)
#define PA_D (DATA_BASE + 0x22000)

static u64 *s1, *s2;

enum { T_VAE1, T_VALE1, T_VAAE1, T_VAALE1, T_ASIDE1, T_VMALLE1, T_VAE1IS, T_VMALLE1IS, T_RVAE1, T_RVAALE1IS, T_VAE1OS, N_T };
static const char *tname[N_T] = {"VAE1", "VALE1", "VAAE1", "VAALE1", "ASIDE1", "VMALLE1", "VAE1IS", "VMALLE1IS", "RVAE1", "RVAALE1IS", "VAE1OS"};

#define ASID 5UL

static void tlbi(int k, u64 va)
{
	u64 op = (va >> 12) & 0xfffffffffffUL;
	u64 asid = ASID << 48;
	dsb(ishst);
	switch (k) {
	case T_VAE1: __asm__ volatile("tlbi vae1, %0" : : "r"(op | asid)); break;
	case T_VALE1: __asm__ volatile("tlbi vale1, %0" : : "r"(op | asid)); break;
	case T_VAAE1: __asm__ volatile("tlbi vaae1, %0" : : "r"(op)); break;
	case T_VAALE1: __asm__ volatile("tlbi vaale1, %0" : : "r"(op)); break;
	case T_ASIDE1: __asm__ volatile("tlbi aside1, %0" : : "r"(asid)); break;
	case T_VMALLE1: __asm__ volatile("tlbi vmalle1"); break;
	case T_VAE1IS: __asm__ volatile("tlbi vae1is, %0" : : "r"(op | asid)); break;
	case T_VMALLE1IS: __asm__ volatile("tlbi vmalle1is"); break;
	case T_RVAE1: // range: 4K granule (TG=1), SCALE 0, NUM 1: 2 pages from BaseADDR
		__asm__ volatile("sys #0, c8, c6, #1, %0" /* TLBI RVAE1 */ : : "r"(asid | 1UL << 46 | 1UL << 39 | op));
		break;
	case T_RVAALE1IS:
		__asm__ volatile("sys #0, c8, c2, #7, %0" /* TLBI RVAALE1IS */ : : "r"(1UL << 46 | 0UL << 39 | op));
		break;
	case T_VAE1OS: __asm__ volatile("sys #0, c8, c1, #1, %0" /* TLBI VAE1OS */ : : "r"(op | asid)); break;
	}
	dsb(ish);
	isb();
}

static u64 leaf(u64 pa, int global)
{
	return pa | S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN | (global ? 0 : S1_NG) | 3;
}

static void bbm(int k, int level)
{
	u64 va = VA0 + (u64)k * 0x40000000UL; // one 1 GiB region per case
	u64 size = level == 3 ? 0x1000 : 0x200000;
	u64 off = level == 3 ? 0x18 : 0x11018;
	int global = k == T_VAAE1 || k == T_VAALE1 || k == T_RVAALE1IS;
	u64 *e = pt_entry(s1, va, level);
	u64 a = level == 3 ? PA_A : 0x41200000UL, b = level == 3 ? PA_B : 0x41400000UL;
	*e = level == 3 ? leaf(a, global) : (leaf(a, global) & ~2UL);
	dsb(ish);
	pr("%s level %d:", tname[k], level);
	pr(" read %x", probe_ldr(va + off));
	*e = 0; // break
	tlbi(k, va);
	int before = last.count;
	u64 v = probe_ldr(va + off);
	pr(" | after break %s", last.count != before ? "faults" : "STALE");
	if (last.count == before)
		pr(" %x", v);
	*e = level == 3 ? leaf(b, global) : (leaf(b, global) & ~2UL); // make
	dsb(ish);
	isb();
	pr(" | after make %x\n", probe_ldr(va + off));
	(void)size;
}

// hvc #1: remap IPA x0 to PA x1 at stage 2 with break-before-make and
// TLBI x2 (0: IPAS2E1IS+VMALLE1IS, 1: VMALLS12E1IS, 2: ALLE1IS);
// hvc #2: switch to VMID x0.
static void service(struct frame *f, u64 imm)
{
	if (imm == 2) {
		write_sysreg(vttbr_el2, (u64)s2 | f->x[0] << 48);
		isb();
		return;
	}
	u64 ipa = f->x[0], pa = f->x[1];
	u64 *e = pt_entry(s2, ipa, 3);
	*e = 0;
	dsb(ishst);
	switch (f->x[2]) {
	case 0:
		__asm__ volatile("tlbi ipas2e1is, %0\n dsb ish\n tlbi vmalle1is" : : "r"(ipa >> 12));
		break;
	case 1:
		__asm__ volatile("tlbi vmalls12e1is");
		break;
	default:
		__asm__ volatile("tlbi alle1is");
	}
	dsb(ish);
	isb();
	f->x[0] = 0;
	if (pa)
		*e = pa | S2_MEMATTR_NORMAL | S2_SH_INNER | S2_AF | S2_AP_RW | 3;
	dsb(ish);
}

static u64 hvc3(u64 a, u64 b, u64 c, int imm)
{
	register u64 x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
	if (imm == 1)
		__asm__ volatile("hvc #1" : "+r"(x0) : "r"(x1), "r"(x2) : "memory");
	else
		__asm__ volatile("hvc #2" : "+r"(x0) : "r"(x1), "r"(x2) : "memory");
	return x0;
}

static u64 el1(u64 arg)
{
	s1 = s1_setup();
	write_sysreg(ttbr0_el1, (u64)s1 | ASID << 48);
	write_sysreg(tcr_el1, TCR_EL1_VALUE | 1UL << 36); // AS: 16-bit ASIDs
	isb();
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE);
	isb();
	quiet_el2 = 1;
	for (int k = 0; k < N_T; k++) {
		bbm(k, 3);
		if (k != T_RVAE1 && k != T_RVAALE1IS)
			bbm(k, 2);
	}
	// Stage 2: the EL1 mapping stays, EL2 remaps the IPA behind it.
	u64 va = VA0 + 0x800000000UL;
	pt_map(s1, va, IPA_S2, 3, S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AF | S1_AP_RW_EL1 | S1_PXN | S1_UXN);
	dsb(ish);
	const char *how[3] = {"IPAS2E1IS+VMALLE1IS", "VMALLS12E1IS", "ALLE1IS"};
	for (int k = 0; k < 3; k++) {
		u64 to = k & 1 ? PA_C : PA_D;
		pr("stage 2 %s: read %x", how[k], probe_ldr(va));
		hvc3(IPA_S2, 0, k, 1);
		int before = last.count;
		u64 v = probe_ldr(va);
		pr(" | after break %s", last.count != before ? "faults" : "STALE");
		if (last.count == before)
			pr(" %x", v);
		hvc3(IPA_S2, to, k, 1);
		pr(" | after make %x\n", probe_ldr(va));
	}
	// VMIDs: the same IPA under VMID 2 (same tables) after a remap in VMID 1.
	hvc3(2, 0, 0, 2);
	pr("VMID 2 read %x\n", probe_ldr(va));
	hvc3(1, 0, 0, 2);
	pr("VMID 1 read %x\n", probe_ldr(va));
	quiet_el2 = 0;
	return 0;
}

// EL2's own regime (HCR_EL2.E2H=0): its stage 1 with TLBI VAE2 and ALLE2.
static void el2_regime(void)
{
	u64 *t = pt_alloc();
	for (u64 a = 0x40000000UL; a < 0x48000000UL; a += 0x200000)
		pt_map(t, a, a, 2, S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AF | S1_AP_RW_EL1);
	pt_map(t, UART_BASE, UART_BASE, 3, S1_ATTR(ATTR_DEVICE) | S1_AF | S1_AP_RW_EL1 | S1_PXN);
	u64 va = 0x5000000000UL & 0x7fffffffffUL;
	u64 *e = pt_entry(t, va, 3);
	*e = PA_A | S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AF | S1_AP_RW_EL1 | S1_PXN | 3;
	write_sysreg(mair_el2, MAIR_VALUE);
	write_sysreg(tcr_el2, 25UL | 1UL << 8 | 1UL << 10 | 3UL << 12 | 2UL << 16 | 1UL << 23 | 1UL << 31);
	write_sysreg(ttbr0_el2, (u64)t);
	isb();
	write_sysreg(sctlr_el2, 0x30c50830UL | SCTLR_M | SCTLR_C | SCTLR_I);
	isb();
	const char *ops[2] = {"VAE2", "ALLE2"};
	for (int k = 0; k < 2; k++) {
		pr("EL2 %s: read %x", ops[k], probe_ldr(va));
		*e = 0;
		dsb(ishst);
		if (k == 0)
			__asm__ volatile("tlbi vae2, %0" : : "r"(va >> 12));
		else
			__asm__ volatile("tlbi alle2");
		dsb(ish);
		isb();
		int before = last.count;
		u64 v = probe_ldr(va);
		pr(" | after break %s", last.count != before ? "faults" : "STALE");
		if (last.count == before)
			pr(" %x", v);
		*e = (k ? PA_A : PA_B) | S1_ATTR(ATTR_NORMAL) | S1_SH_INNER | S1_AF | S1_AP_RW_EL1 | S1_PXN | 3;
		dsb(ish);
		isb();
		pr(" | after make %x\n", probe_ldr(va));
	}
	write_sysreg(sctlr_el2, 0x30c50830UL);
	isb();
}

int main(void)
{
	if (boot_el != 2)
		fail("tlbi needs EL2");
	harness_install();
	hvc_service = service;
	for (u64 p = PA_A; p <= PA_D; p += 0x1000)
		wr64(p + 0x18, 0xa000 + p), wr64(p, 0xa000 + p);
	for (u64 p = 0x41200000UL; p < 0x41600000UL; p += 0x200000)
		wr64(p + 0x11018, 0xb000 + p);
	s2 = s2_setup(1);
	run_el1(el1, 0);
	quiet_el2 = 1;
	el2_regime();
	pr("tlbi done\n");
	return 0;
}
