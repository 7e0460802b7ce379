// recurse: a nested hypervisor. The program at EL2 (H) runs a guest
// hypervisor G at EL1 with FEAT_NV (HCR_EL2.NV=1): G reads CurrentEL as
// EL2, and its EL2 register accesses (EC 0x18), TLBIs (EC 0x18) and ERET
// (EC 0x1A) trap to H, which emulates them on a virtual register file. G
// sets up its own stage 2 and vector table and runs its guest K at EL1.
// H runs K on a shadow stage 2: each of K's stage-2 faults there is
// resolved by walking G's stage 2 in software (G's tables through H's own
// stage 2) and installing the composition of G's leaf and H's, or, where
// G's stage 2 faults, forwarded to G's vector at VBAR_EL2 + 0x400 with the
// ESR_EL2 (its FSC the kind and level of G's fault), FAR_EL2 and HPFAR_EL2
// the hardware would give G at EL2. K's HVC goes to G the same way. G maps
// one page lazily, reports the faults it does not map, emulates an MMIO
// device, unmaps a page with TLBI (H then drops what its shadow derived)
// and powers off over SMC (HCR_EL2.TSC: to H). H runs G twice: with
// FEAT_NV, and with FEAT_NV2 (HCR_EL2.NV2, VNCR_EL2 at a page of H's),
// where most of G's EL2 register accesses are memory accesses to the page
// or reach the EL1 registers, and only the rest trap. Under `nestmmu exec
// --nested` the program is L1, G L2 and K L3.
//
// Every line printed is what the architecture determines: values read
// back, syndromes, and H's counts of G's traps, which are the accesses the
// compiled code makes.
#include "harness.h"

#define HCR_NV (1UL << 42)
#define HCR_NV2 (1UL << 45)
#define HCR_TSC (1UL << 19)
#define HCR_TTLB (1UL << 25)
#define HCR_HCD (1UL << 29)
#define PSCI_SYSTEM_OFF 0x84000008UL

#define H_VMID 1UL // H's stage 2 for G
#define SHADOW_VMID 2UL // H's shadow for K
#define G_VMID 5UL // the VMID G gives K

// K's IPAs, in G's stage 2.
#define K_DATA 0x20000000UL // -> G IPA G_WIN -> PA PA_DATA (H remaps G_WIN)
#define K_LAZY 0x20001000UL // mapped by G on K's first access -> PA_LAZY
#define K_RO 0x20002000UL // read-only -> PA_RO
#define K_NONE 0x20003000UL // never mapped: G reports the fault
#define K_MMIO 0x0a000000UL // G's emulated device
#define G_WIN 0x70000000UL
#define PA_DATA (DATA_BASE + 0x100000)
#define PA_LAZY (DATA_BASE + 0x101000)
#define PA_RO (DATA_BASE + 0x102000)

#define S2_NORMAL_RW (S2_MEMATTR_NORMAL | S2_AP_RW | S2_SH_INNER | S2_AF)

extern char g_vectors[];
u64 g_run(u64 (*fn)(u64), u64 arg, u64 sp, u64 spsr);
void g_resume(u64 v) __attribute__((noreturn));

// ---- H: the host hypervisor at EL2 ----

#define SR(op0, op1, crn, crm, op2) ((op0) << 14 | (op1) << 11 | (crn) << 7 | (crm) << 3 | (op2))

// G's virtual EL2 registers.
enum { V_HCR, V_VTTBR, V_VTCR, V_VBAR, V_ELR, V_SPSR, V_SP_EL1, V_ESR, V_FAR, V_HPFAR, N_V };
static const struct {
	u32 enc;
	const char *name;
} vreg[N_V] = {
	{SR(3, 4, 1, 1, 0), "HCR_EL2"}, {SR(3, 4, 2, 1, 0), "VTTBR_EL2"}, {SR(3, 4, 2, 1, 2), "VTCR_EL2"},
	{SR(3, 4, 12, 0, 0), "VBAR_EL2"}, {SR(3, 4, 4, 0, 1), "ELR_EL2"}, {SR(3, 4, 4, 0, 0), "SPSR_EL2"},
	{SR(3, 4, 4, 1, 0), "SP_EL1"}, {SR(3, 4, 5, 2, 0), "ESR_EL2"}, {SR(3, 4, 6, 0, 0), "FAR_EL2"},
	{SR(3, 4, 6, 0, 4), "HPFAR_EL2"},
};
static u64 vr[N_V];
static int nreads[N_V], nwrites[N_V];
static int n_tlbi, n_eret, n_entries, n_fills, n_forwarded;

// With FEAT_NV2 (HCR_EL2.{NV,NV2}={1,1}) G's accesses to HCR_EL2,
// VTTBR_EL2, VTCR_EL2 and SP_EL1 are loads and stores at VNCR_EL2 + the
// register's offset, and those to ELR_EL2, SPSR_EL2, ESR_EL2 and FAR_EL2
// reach the EL1 registers; the others still trap. vget and vset reach G's
// register where it is while G's context is on the PE.
static int nv2;
static u64 vncr_page[512] __attribute__((aligned(4096)));
static const u16 vncr_off[N_V] = {[V_HCR] = 0x078, [V_VTTBR] = 0x020, [V_VTCR] = 0x040, [V_SP_EL1] = 0x240};

static u64 vget(int i)
{
	if (nv2 && vncr_off[i])
		return vncr_page[vncr_off[i] / 8];
	if (nv2) {
		switch (i) {
		case V_ELR: return read_sysreg(elr_el1);
		case V_SPSR: return read_sysreg(spsr_el1);
		case V_ESR: return read_sysreg(esr_el1);
		case V_FAR: return read_sysreg(far_el1);
		}
	}
	return vr[i];
}

static void vset(int i, u64 x)
{
	if (nv2 && vncr_off[i]) {
		vncr_page[vncr_off[i] / 8] = x;
		return;
	}
	if (nv2) {
		switch (i) {
		case V_ELR: write_sysreg(elr_el1, x); return;
		case V_SPSR: write_sysreg(spsr_el1, x); return;
		case V_ESR: write_sysreg(esr_el1, x); return;
		case V_FAR: write_sysreg(far_el1, x); return;
		}
	}
	vr[i] = x;
}

// With FEAT_NV2 the EL1 registers an exception entry and return use hold
// G's EL2 ones while G runs and K's while K runs; K's are kept in the VNCR
// page (where G's *_EL12 accesses reach them) and G's in g_el1 between.
static const u16 el1_off[4] = {0x230, 0x160, 0x138, 0x220}; // ELR, SPSR, ESR, FAR
static u64 g_el1[4];
static void el1_switch(u64 *save, u64 *load)
{
	save[0] = read_sysreg(elr_el1);
	save[1] = read_sysreg(spsr_el1);
	save[2] = read_sysreg(esr_el1);
	save[3] = read_sysreg(far_el1);
	write_sysreg(elr_el1, load[0]);
	write_sysreg(spsr_el1, load[1]);
	write_sysreg(esr_el1, load[2]);
	write_sysreg(far_el1, load[3]);
}
static void k_el1(u64 *k)
{
	for (int i = 0; i < 4; i++)
		k[i] = vncr_page[el1_off[i] / 8];
}
static void k_el1_store(const u64 *k)
{
	for (int i = 0; i < 4; i++)
		vncr_page[el1_off[i] / 8] = k[i];
}

static u64 *h_s2, *shadow;
static u64 shadow_vttbr; // G's VTTBR_EL2 the shadow was built for
static u64 hcr_g, g_sp;
static int in_k;

// s2_walk translates ia through the stage-2 tables at root (VTCR_VALUE:
// 4K granule, 39-bit input, start level 1). For G's stage 2 (nested) the
// table addresses are G's IPAs, read through H's stage 2. It returns 0
// with the leaf, or the fault status code of the fault (translation or
// Access flag, with its level).
struct leaf {
	u64 desc, oa;
	int level;
};
static u64 s2_walk(u64 root, u64 ia, int nested, struct leaf *w)
{
	u64 table = root;
	for (int l = 1; l <= 3; l++) {
		u64 ta = table;
		if (nested) {
			struct leaf h;
			if (s2_walk((u64)h_s2, table, 0, &h))
				fail("G's stage-2 tables are outside what H gives G");
			ta = h.oa;
		}
		u64 d = rd64(ta + ((ia >> (39 - 9 * l)) & 511) * 8);
		if (!(d & 1) || (l == 3 && !(d & 2)))
			return 0x04 | l;
		if (l < 3 && (d & 2)) {
			table = d & 0xfffffffff000UL;
			continue;
		}
		if (!(d & S2_AF))
			return 0x08 | l;
		u64 size = 1UL << (39 - 9 * l);
		w->desc = d;
		w->level = l;
		w->oa = (d & 0xfffffffff000UL & ~(size - 1)) | (ia & (size - 1));
		return 0;
	}
	return 0;
}

// s2_perm is the stage-2 permission check of an access from EL1: S2AP for
// reads and writes, XN[1:0] for fetches (0b01 and 0b10 forbid EL1).
static u64 s2_el1_xn(u64 d)
{
	u64 xn = d >> 53 & 3;
	return xn == 1 || xn == 2;
}
static u64 s2_perm(struct leaf *w, int write, int fetch)
{
	u64 ap = w->desc >> 6 & 3;
	if (fetch ? s2_el1_xn(w->desc) : write ? !(ap & 2) : !(ap & 1))
		return 0x0c | w->level;
	return 0;
}

static void clear_shadow(void)
{
	memset(shadow, 0, 4096);
	__asm__ volatile("dsb ishst; tlbi alle1is; dsb ish; isb" : : : "memory");
}

// to_g is the reverse world switch: K's exception (syndrome esr) taken to
// G's EL2, at VBAR_EL2 + 0x400 (synchronous, from a lower EL using
// AArch64), with PSTATE EL2h and DAIF masked (EL1h on the PE).
static void to_g(struct frame *f, u64 esr, u64 far, u64 hpfar)
{
	if (nv2) {
		u64 k[4];
		el1_switch(k, g_el1);
		k_el1_store(k);
	}
	if (!vget(V_VBAR))
		fail("G has no vector table");
	vset(V_ELR, f->elr);
	vset(V_SPSR, f->spsr);
	vset(V_ESR, esr);
	vset(V_FAR, far);
	vset(V_HPFAR, hpfar);
	vset(V_SP_EL1, read_sysreg(sp_el1));
	write_sysreg(sp_el1, g_sp);
	write_sysreg(vttbr_el2, (u64)h_s2 | H_VMID << 48);
	write_sysreg(hcr_el2, hcr_g);
	isb();
	f->elr = vget(V_VBAR) + 0x400;
	f->spsr = SPSR_EL1H;
	in_k = 0;
	n_forwarded++;
}

// k_abort handles K's stage-2 abort on the shadow.
static void k_abort(struct frame *f)
{
	u64 esr = f->esr;
	int fetch = esr_ec(esr) == 0x20, write = !fetch && (esr >> 6 & 1);
	u64 fsc = esr & 0x3f;
	if (fsc >> 2 < 1 || fsc >> 2 > 3)
		fail("K's abort is not a translation, Access flag or permission fault");
	if (read_sysreg(sctlr_el1) & SCTLR_M)
		fail("K's stage 1 is on");
	u64 ipa = f->far; // K's stage 1 is off: its IPA is the VA
	struct leaf g, h;
	u64 gfsc = s2_walk(vget(V_VTTBR) & 0xfffffffffffeUL, ipa, 1, &g);
	if (!gfsc)
		gfsc = s2_perm(&g, write, fetch);
	if (gfsc) {
		to_g(f, (esr & ~0x3fUL) | gfsc, f->far, ipa >> 12 << 4);
		return;
	}
	if (s2_walk((u64)h_s2, g.oa, 0, &h) || s2_perm(&h, write, fetch))
		fail("G maps its guest to an IPA H does not give G");
	u64 attr = S2_SH_INNER | S2_AF | (g.desc & h.desc & S2_AP_RW);
	attr |= (g.desc & h.desc & (3UL << 4)) ? S2_MEMATTR_NORMAL : S2_MEMATTR_DEVICE;
	if (s2_el1_xn(g.desc) || s2_el1_xn(h.desc))
		attr |= S2_XN;
	u64 *e = pt_entry(shadow, ipa, 3);
	u64 old = *e;
	*e = (h.oa & ~0xfffUL) | attr | 3;
	dsb(ishst);
	if (old & 1)
		__asm__ volatile("tlbi ipas2e1is, %0; dsb ish; tlbi vmalle1is" : : "r"(ipa >> 12));
	dsb(ish);
	isb();
	n_fills++;
}

// g_sysreg emulates G's trapped EL2 register access or TLBI (EC 0x18).
static void g_sysreg(struct frame *f)
{
	u64 iss = f->esr & 0x1ffffff;
	u64 op0 = iss >> 20 & 3, op2 = iss >> 17 & 7, op1 = iss >> 14 & 7, crn = iss >> 10 & 15, crm = iss >> 1 & 15;
	u64 rt = iss >> 5 & 31, read = iss & 1;
	u32 enc = SR(op0, op1, crn, crm, op2);
	f->elr += 4;
	// TLBI IPAS2E1IS, VMALLS12E1IS (NV), VMALLE1IS (TTLB): G's guest's
	// translations; the shadow holds them.
	if (enc == SR(1, 4, 8, 0, 1) || enc == SR(1, 4, 8, 3, 6) || enc == SR(1, 0, 8, 3, 0)) {
		n_tlbi++;
		clear_shadow();
		return;
	}
	for (int i = 0; i < N_V; i++) {
		if (vreg[i].enc != enc)
			continue;
		if (read) {
			nreads[i]++;
			if (rt != 31)
				f->x[rt] = vget(i);
		} else {
			nwrites[i]++;
			vset(i, rt == 31 ? 0 : f->x[rt]);
		}
		return;
	}
	pr("H: G's access to op0 %d op1 %d CRn %d CRm %d op2 %d is not emulated\n", op0, op1, crn, crm, op2);
	fail("recurse");
}

// g_eret emulates G's ERET (EC 0x1A): to its own EL2, or the world switch
// into K on the shadow of G's stage 2.
static void g_eret(struct frame *f)
{
	u64 spsr = vget(V_SPSR), elr = vget(V_ELR), hcr = vget(V_HCR), m = spsr & 0x1f;
	n_eret++;
	if (m == 0x9 || m == 0x8) {
		f->elr = elr;
		f->spsr = (spsr & ~0xcUL) | 0x4;
		return;
	}
	if (m != 0x5 && m != 0x4 && m != 0x0)
		fail("G returns to a mode H does not run");
	if (!(hcr & HCR_VM) || !(hcr & HCR_RW))
		fail("G runs its guest without stage 2 or AArch64");
	if (vget(V_VTCR) != VTCR_VALUE)
		fail("G's VTCR_EL2 is not the one H walks");
	if (shadow_vttbr != vget(V_VTTBR)) {
		shadow_vttbr = vget(V_VTTBR);
		clear_shadow();
	}
	g_sp = read_sysreg(sp_el1);
	write_sysreg(sp_el1, vget(V_SP_EL1));
	if (nv2) {
		u64 k[4];
		k_el1(k);
		el1_switch(g_el1, k);
	}
	write_sysreg(vttbr_el2, (u64)shadow | SHADOW_VMID << 48);
	write_sysreg(hcr_el2, HCR_RW | HCR_VM | HCR_TSC | (hcr & HCR_HCD));
	isb();
	f->elr = elr;
	f->spsr = spsr;
	in_k = 1;
	n_entries++;
}

static void g_handler(struct frame *f, int vec);

static void h_handler(struct frame *f, int vec)
{
	if (vec >= 16) {
		g_handler(f, vec - 16);
		return;
	}
	u64 ec = esr_ec(f->esr);
	if (vec != 8) {
		pr("H: unexpected exception: vector %d ESR %x ELR %x\n", vec, f->esr, f->elr);
		fail("recurse");
	}
	if (in_k) {
		if (ec == 0x20 || ec == 0x24)
			k_abort(f);
		else if (ec == 0x16)
			to_g(f, f->esr, 0, 0); // HVC: G's (its HCR_EL2.HCD is 0 here); FAR_EL2, HPFAR_EL2 UNKNOWN
		else {
			pr("H: unexpected exception from G's guest: ESR %x ELR %x\n", f->esr, f->elr);
			fail("recurse");
		}
		return;
	}
	if (ec == 0x18)
		g_sysreg(f);
	else if (ec == 0x1a)
		g_eret(f);
	else if (ec == 0x17 && f->x[0] == PSCI_SYSTEM_OFF)
		resume(f->x[1]);
	else {
		pr("H: unexpected exception from G: ESR %x ELR %x\n", f->esr, f->elr);
		fail("recurse");
	}
}

// ---- G: the guest hypervisor, at EL1 with NV: its EL2 ----

static u64 *g_s2;
static u64 k_stack[512] __attribute__((aligned(16)));

static void g_mmio(struct frame *f, u64 off)
{
	u64 iss = f->esr & 0x1ffffff;
	if (!(iss >> 24 & 1))
		fail("G: MMIO without a syndrome");
	u64 sas = iss >> 22 & 3, srt = iss >> 16 & 31, sf = iss >> 15 & 1, wnr = iss >> 6 & 1;
	pr("G: mmio SAS %d SRT %d SF %d %s at %x", sas, srt, sf, wnr ? "write" : "read", off);
	u64 mask = sas < 3 ? (1UL << (8 << sas)) - 1 : ~0UL;
	if (wnr) {
		pr(" value %x\n", (srt == 31 ? 0 : f->x[srt]) & mask);
		return;
	}
	u64 v = (MMIO_VALUE ^ off) & mask;
	if (srt != 31)
		f->x[srt] = v;
	pr(" -> %x\n", v);
}

static void g_handler(struct frame *f, int vec)
{
	u64 ec = esr_ec(f->esr);
	if (vec != 8) {
		pr("G: unexpected exception: vector %d ESR %x\n", vec, f->esr);
		fail("recurse");
	}
	if (ec == 0x16) {
		pr("G: HVC #%x from its guest: ESR %x x0 %x ELR %x\n", f->esr & 0xffff, f->esr, f->x[0], f->elr);
		if (f->x[0] == PSCI_SYSTEM_OFF)
			g_resume(f->x[1]);
		f->x[0] = (u64)-1; // NOT_SUPPORTED
		return;
	}
	if (ec != 0x20 && ec != 0x24) {
		pr("G: unexpected exception from its guest: ESR %x\n", f->esr);
		fail("recurse");
	}
	u64 hpfar = read_sysreg(hpfar_el2);
	int valid = hpfar_valid(f->esr, 1);
	pr("G: stage-2 %s from its guest: ESR %x FAR %x", ec == 0x20 ? "iabt" : "dabt", f->esr, f->far);
	if (valid)
		pr(" HPFAR %x", hpfar);
	pr(" ELR %x\n", f->elr);
	u64 ipa = valid ? (hpfar >> 4 << 12) | (f->far & 0xfff) : f->far; // the guest's stage 1 is off
	if ((ipa & ~0xfffUL) == K_LAZY && (f->esr & 0x3c) == 0x04) {
		pt_map(g_s2, K_LAZY, PA_LAZY, 3, S2_NORMAL_RW);
		dsb(ish);
		pr("G: mapped %x lazily\n", K_LAZY);
		return; // the access runs again
	}
	if (ipa >= K_MMIO && ipa < K_MMIO + 0x1000 && ec == 0x24)
		g_mmio(f, ipa - K_MMIO);
	else
		pr("G: reported\n");
	// Skip the access; a faulting fetch returns to the caller.
	f->elr = ec == 0x20 ? f->x[30] : f->elr + 4;
}

// ---- K: G's guest, at EL1, stage 1 off ----

static u64 k_main(u64 arg)
{
	pr("K: CurrentEL %d, arg %d\n", current_el(), arg);
	probe_str(K_DATA, 0x5555000011110000UL | arg);
	pr("K: %x reads %x\n", K_DATA, probe_ldr(K_DATA));
	pr("K: %x reads %x\n", K_LAZY, probe_ldr(K_LAZY));
	probe_str(K_RO, 1);
	pr("K: %x reads %x after the store\n", K_RO, probe_ldr(K_RO));
	pr("K: %x load returns %x\n", K_NONE, probe_ldr(K_NONE));
	pr("K: call %x returns %x\n", K_NONE + 0x40, probe_call(K_NONE + 0x40));
	pr("K: mmio read %x\n", probe_ldrw(K_MMIO + 0x10));
	probe_str(K_MMIO + 0x8, 0xfeed);
	return 0x600d;
}

static u64 k_again(u64 arg)
{
	pr("K: again: %x load returns %x\n", K_DATA, probe_ldr(K_DATA));
	return 0xd0e;
}

static u64 g_main(u64 arg)
{
	pr("G: CurrentEL %d\n", current_el());
	write_sysreg(vbar_el2, (u64)g_vectors);
	wr64(PA_LAZY, 0x1a2b3c4d);
	wr64(PA_RO, 0x0de1);
	g_s2 = pt_alloc();
	pt_map(g_s2, 0x40200000UL, 0x40200000UL, 2, S2_NORMAL_RW); // the image: K's code, data and stack
	pt_map(g_s2, UART_BASE, UART_BASE, 3, S2_MEMATTR_DEVICE | S2_AP_RW | S2_AF | S2_XN);
	pt_map(g_s2, K_DATA, G_WIN, 3, S2_NORMAL_RW);
	pt_map(g_s2, K_RO, PA_RO, 3, S2_MEMATTR_NORMAL | S2_AP_RO | S2_SH_INNER | S2_AF);
	write_sysreg(vtcr_el2, VTCR_VALUE);
	write_sysreg(vttbr_el2, (u64)g_s2 | G_VMID << 48);
	write_sysreg(hcr_el2, HCR_RW | HCR_VM);
	isb();
	pr("G: HCR_EL2 %x VTTBR_EL2.VMID %d\n", read_sysreg(hcr_el2), read_sysreg(vttbr_el2) >> 48);
	u64 r = g_run(k_main, 7, (u64)(k_stack + 512), SPSR_EL1H);
	pr("G: guest off with %x; G IPA %x holds %x\n", r, G_WIN, rd64(G_WIN));
	// Unmap K_DATA: break, then the stage-2 TLBI sequence.
	*pt_entry(g_s2, K_DATA, 3) = 0;
	dsb(ishst);
	__asm__ volatile("tlbi ipas2e1is, %0; dsb ish; tlbi vmalle1is; dsb ish; isb" : : "r"(K_DATA >> 12) : "memory");
	r = g_run(k_again, 0, (u64)(k_stack + 512), SPSR_EL1H);
	pr("G: guest off with %x\n", r);
	psci_system_off(); // SMC: H's (HCR_EL2.TSC)
}

// pass runs G with FEAT_NV, or with FEAT_NV2 and a VNCR page, and prints
// what G did to H.
static void pass(int with_nv2)
{
	nv2 = with_nv2;
	memset(vr, 0, sizeof vr);
	memset(nreads, 0, sizeof nreads);
	memset(nwrites, 0, sizeof nwrites);
	memset(vncr_page, 0, sizeof vncr_page);
	n_tlbi = n_eret = n_entries = n_fills = n_forwarded = 0;
	hcr_g = HCR_RW | HCR_VM | HCR_NV | HCR_TSC | HCR_TTLB;
	if (nv2) {
		hcr_g |= HCR_NV2;
		write_sysreg(s3_4_c2_c2_0, (u64)vncr_page); // VNCR_EL2: EL2's MMU is off, VA = PA
	}
	pr("H: running G with FEAT_NV%s\n", nv2 ? "2" : "");
	write_sysreg(vttbr_el2, (u64)h_s2 | H_VMID << 48);
	write_sysreg(hcr_el2, hcr_g);
	isb();
	run_lower(g_main, 0, (u64)__stack_el1, SPSR_EL1H);
	write_sysreg(hcr_el2, HCR_RW);
	isb();
	pr("H: G is off; PA %x holds %x\n", PA_DATA, rd64(PA_DATA));
	pr("H: G's traps:");
	for (int i = 0; i < N_V; i++)
		if (nreads[i] || nwrites[i])
			pr(" %s %d/%d", vreg[i].name, nreads[i], nwrites[i]);
	pr("\nH: TLBI %d, ERET %d, entries into K %d, shadow fills %d, exceptions to G %d\n", n_tlbi, n_eret, n_entries,
	   n_fills, n_forwarded);
	if (nv2)
		pr("H: VNCR page: HCR_EL2 %x VTCR_EL2 %x\n", vncr_page[0x078 / 8], vncr_page[0x040 / 8]);
}

int main(void)
{
	if (boot_el != 2)
		fail("recurse needs EL2");
	el2_handler = h_handler;
	u64 nv = read_sysreg(id_aa64mmfr2_el1) >> 24 & 15;
	pr("H: ID_AA64MMFR2_EL1.NV %d\n", nv);
	if (!nv)
		fail("no FEAT_NV");
	h_s2 = s2_setup(H_VMID);
	pt_map(h_s2, G_WIN, PA_DATA, 3, S2_NORMAL_RW);
	shadow = pt_alloc();
	pass(0);
	if (nv >= 2)
		pass(1);
	return 0;
}
