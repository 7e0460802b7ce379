#include "harness.h"

volatile struct taken last;
int (*s2_fix)(u64 ipa, u64 esr);
int quiet_el2;
void (*hvc_service)(struct frame *f, u64 imm);

u64 run_el1(u64 (*fn)(u64), u64 arg) { return run_lower(fn, arg, (u64)__stack_el1, SPSR_EL1H); }
u64 run_el0(u64 (*fn)(u64), u64 arg) { return run_lower(fn, arg, (u64)__stack_el0, SPSR_EL0T); }

static const char *ec_name(u64 ec)
{
	switch (ec) {
	case 0x00: return "undefined";
	case 0x01: return "WFx";
	case 0x0e: return "illegal state";
	case 0x15: return "SVC";
	case 0x16: return "HVC";
	case 0x17: return "SMC";
	case 0x18: return "sysreg trap";
	case 0x1a: return "ERET trap";
	case 0x20: return "iabt lower";
	case 0x21: return "iabt same";
	case 0x22: return "PC align";
	case 0x24: return "dabt lower";
	case 0x25: return "dabt same";
	case 0x26: return "SP align";
	case 0x3c: return "BRK";
	}
	return "?";
}

// recover makes the interrupted code continue: a fetch fault returns to
// the caller (x30), anything else skips the instruction (SVC, HVC and
// SMC already point past it).
static void recover(struct frame *f)
{
	u64 ec = esr_ec(f->esr);
	if (ec == 0x20 || ec == 0x21 || ec == 0x22)
		f->elr = f->x[30];
	else if (ec != 0x15 && ec != 0x16)
		f->elr += 4;
}

static void record(int el, struct frame *f)
{
	last.count++;
	last.el = el;
	last.esr = f->esr;
	last.far = f->far;
	last.elr = f->elr;
	last.spsr = f->spsr;
}

static int is_abort(u64 ec) { return ec == 0x20 || ec == 0x21 || ec == 0x24 || ec == 0x25; }

static void el1_handler_fn(struct frame *f, int vec)
{
	u64 ec = esr_ec(f->esr);
	if (ec == 0x15 && (f->esr & 0xffff) == 0xfff0)
		resume(f->x[0]);
	record(1, f);
	pr("    EL1 %s (v%d): ESR %x", ec_name(ec), vec, f->esr);
	if (is_abort(ec))
		pr(" FAR %x", f->far);
	pr(" ELR %x SPSR %x\n", f->elr, f->spsr);
	recover(f);
}

// mmio emulates a device access from the syndrome when ISV=1, and reports
// ISV=0 (a hypervisor would decode the instruction; here it is skipped).
static void mmio(struct frame *f, u64 ipa)
{
	u64 iss = f->esr & 0x1ffffff;
	u64 off = ipa - MMIO_IPA + (f->far & 0xfff);
	if (!(iss >> 24 & 1)) {
		pr("      mmio ISV=0 at %x: skipped\n", off);
		return;
	}
	u64 sas = iss >> 22 & 3, sse = iss >> 21 & 1, srt = iss >> 16 & 31, sf = iss >> 15 & 1, ar = iss >> 14 & 1;
	u64 wnr = iss >> 6 & 1;
	pr("      mmio ISV=1 SAS %d SSE %d SRT %d SF %d AR %d %s at %x", sas, sse, srt, sf, ar, wnr ? "write" : "read", off);
	if (wnr) {
		u64 v = srt == 31 ? 0 : f->x[srt];
		if (sas < 3)
			v &= (1UL << (8 << sas)) - 1;
		pr(" value %x\n", v);
		return;
	}
	u64 v = MMIO_VALUE ^ off;
	if (sas < 3)
		v &= (1UL << (8 << sas)) - 1;
	if (sse && sas < 3) {
		int sh = 64 - (8 << sas);
		v = (u64)((s64)(v << sh) >> sh);
	}
	if (!sf)
		v &= 0xffffffffUL;
	if (srt != 31)
		f->x[srt] = v;
	pr(" -> %x\n", v);
}

static void el2_handler_fn(struct frame *f, int vec)
{
	u64 ec = esr_ec(f->esr);
	if (ec == 0x16 && (f->esr & 0xffff) == 0xfff0)
		resume(f->x[0]);
	if (ec == 0x16 && hvc_service) {
		hvc_service(f, f->esr & 0xffff);
		return;
	}
	u64 hpfar = read_sysreg(hpfar_el2);
	u64 ipa = (hpfar >> 4) << 12;
	// A stage-2 abort from EL1 or EL0: a lower-EL abort at EL2 without TGE.
	int stage2 = (ec == 0x20 || ec == 0x24) && !(read_sysreg(hcr_el2) >> 27 & 1) && (f->esr & 0x3f) != 0x10;
	int valid = hpfar_valid(f->esr, stage2);
	record(2, f);
	last.hpfar = valid ? ipa : 0;
	last.hpfar_valid = valid;
	if (!quiet_el2) {
		pr("    EL2 %s (v%d): ESR %x", ec_name(ec), vec, f->esr);
		if (is_abort(ec))
			pr(" FAR %x", f->far);
		if (valid)
			pr(" HPFAR %x", hpfar);
		pr(" ELR %x SPSR %x\n", f->elr, f->spsr);
	}
	if (valid && s2_fix && s2_fix(ipa, f->esr))
		return; // retry
	if (valid && ec == 0x24 && ipa >= MMIO_IPA && ipa < MMIO_IPA + 0x10000)
		mmio(f, ipa);
	recover(f);
}

void harness_install(void)
{
	el1_handler = el1_handler_fn;
	el2_handler = el2_handler_fn;
}

int seen;

void show(const char *what, u64 v)
{
	if (last.count != seen) {
		seen = last.count;
		pr("  %s: faulted\n", what);
		return;
	}
	pr("  %s: ok %x\n", what, v);
}
