// el2traps: PSTATE.ALLINT (FEAT_NMI, which ID_AA64PFR1_EL1.NMI says is
// implemented) through exception entry (NOT SCTLR_ELx.SPINTMASK), SPSR
// bit 13 and ERET, and its MSR (immediate) and MRS/MSR forms at EL2, EL1
// and EL0; HCR_EL2.TACR (ACTLR_EL1 at EL1 trapped to EL2); the SVE enable
// controls CPACR_EL1.ZEN and CPTR_EL2.TZ (E2H=0) and their order with the
// FP/SIMD controls CPACR_EL1.FPEN and CPTR_EL2.TFP
// (AArch64.CheckSVEEnabled), each on an RDVL whose execution is trapped:
// an enabled SVE instruction is not executed by the model.
#include "harness.h"

#define HCR_TACR (1UL << 21)
#define CPTR_TFP (1UL << 10)
#define CPTR_TZ (1UL << 8)
#define SCTLR_SPINTMASK (1UL << 62)
#define CPACR_ZEN(x) ((u64)(x) << 16)
#define CPACR_FPEN(x) ((u64)(x) << 20)

#define read_allint() read_sysreg(S3_0_C4_C3_0)
#define write_allint(v) write_sysreg(S3_0_C4_C3_0, v)
#define msr_allint_1() __asm__ volatile(".inst 0xd501411f" : : : "memory") // MSR ALLINT, #1
#define msr_allint_0() __asm__ volatile(".inst 0xd501401f" : : : "memory") // MSR ALLINT, #0
#define msr_allint_2() __asm__ volatile(".inst 0xd501421f" : : : "memory") // CRm 0b0010: UNDEFINED
#define rdvl() __asm__ volatile(".inst 0x04bf5020" : : : "x0", "memory")    // RDVL X0, #1

static handler_fn harness_el1, harness_el2;

// The handlers print PSTATE.ALLINT as exception entry left it.
static void el2_allint(struct frame *f, int vec)
{
	if (!(esr_ec(f->esr) == 0x16 && (f->esr & 0xffff) == 0xfff0))
		pr("    EL2 handler: ALLINT %x\n", read_allint());
	harness_el2(f, vec);
}

static void el1_allint(struct frame *f, int vec)
{
	if (!(esr_ec(f->esr) == 0x15 && (f->esr & 0xffff) == 0xfff0))
		pr("    EL1 handler: ALLINT %x\n", read_allint());
	harness_el1(f, vec);
}

static void outcome(const char *what)
{
	if (last.count != seen) {
		seen = last.count;
		pr("  %s: trapped\n", what);
		return;
	}
	pr("  %s: ok\n", what);
}

static u64 el0_allint(u64 arg)
{
	seen = last.count;
	(void)read_allint();
	outcome("EL0 MRS ALLINT");
	msr_allint_1();
	outcome("EL0 MSR ALLINT, #1");
	return 0;
}

static u64 el1_allint_guest(u64 arg)
{
	pr(" EL1: ALLINT %x\n", read_allint());
	__asm__ volatile("svc #1" : : : "memory");
	pr(" EL1: ALLINT after the SVC's ERET %x\n", read_allint());
	msr_allint_1();
	pr(" EL1: ALLINT after MSR ALLINT, #1 %x\n", read_allint());
	__asm__ volatile("svc #2" : : : "memory");
	write_allint(0);
	pr(" EL1: ALLINT after MSR ALLINT, xzr %x\n", read_allint());
	run_el0(el0_allint, 0);
	return 0;
}

static u64 el1_actlr(u64 arg)
{
	seen = last.count;
	(void)read_sysreg(actlr_el1);
	outcome("MRS ACTLR_EL1");
	write_sysreg(actlr_el1, read_sysreg(actlr_el1));
	outcome("MSR ACTLR_EL1 (after its MRS)");
	return 0;
}

static u64 el0_rdvl(u64 arg)
{
	seen = last.count;
	rdvl();
	outcome("EL0 RDVL");
	return 0;
}

static u64 el1_rdvl(u64 el0)
{
	if (el0)
		return run_el0(el0_rdvl, 0);
	seen = last.count;
	rdvl();
	outcome("EL1 RDVL");
	return 0;
}

// sve_case runs RDVL at EL1 (or EL0) with CPACR_EL1 and CPTR_EL2's TZ, TFP.
static void sve_case(const char *what, u64 cpacr, u64 cptr, int el0)
{
	pr(" %s\n", what);
	write_sysreg(cpacr_el1, cpacr);
	write_sysreg(cptr_el2, (read_sysreg(cptr_el2) & ~(CPTR_TZ | CPTR_TFP)) | cptr);
	isb();
	run_el1(el1_rdvl, el0);
}

int main(void)
{
	if (boot_el != 2)
		fail("el2traps needs EL2");
	harness_install();
	harness_el2 = el2_handler;
	harness_el1 = el1_handler;
	el2_handler = el2_allint;
	el1_handler = el1_allint;

	pr("el2traps: PSTATE.ALLINT at EL2\n");
	pr(" ALLINT at reset %x\n", read_allint());
	__asm__ volatile("brk #1" : : : "memory");
	pr(" ALLINT after BRK and ERET %x\n", read_allint());
	msr_allint_1();
	pr(" ALLINT after MSR ALLINT, #1 %x\n", read_allint());
	__asm__ volatile("brk #2" : : : "memory");
	pr(" ALLINT after BRK and ERET %x\n", read_allint());
	msr_allint_0();
	pr(" ALLINT after MSR ALLINT, #0 %x\n", read_allint());
	write_allint(~0UL);
	pr(" ALLINT after MSR ALLINT, ~0 %x\n", read_allint());
	write_allint(0);
	pr(" ALLINT after MSR ALLINT, xzr %x\n", read_allint());
	write_sysreg(sctlr_el2, read_sysreg(sctlr_el2) | SCTLR_SPINTMASK);
	isb();
	pr(" SCTLR_EL2.SPINTMASK %x\n", read_sysreg(sctlr_el2) >> 62 & 1);
	msr_allint_1();
	__asm__ volatile("brk #3" : : : "memory");
	pr(" ALLINT after BRK and ERET %x\n", read_allint());
	write_sysreg(sctlr_el2, read_sysreg(sctlr_el2) & ~SCTLR_SPINTMASK);
	isb();
	seen = last.count;
	msr_allint_2();
	outcome("MSR ALLINT with CRm 0b0010");
	msr_allint_0();

	pr("el2traps: PSTATE.ALLINT at EL1 and EL0\n");
	s2_setup(1);
	run_el1(el1_allint_guest, 0);
	pr(" EL2: ALLINT after the guest (no ERET back to EL2) %x\n", read_allint());
	__asm__ volatile("brk #4" : : : "memory");
	msr_allint_0();

	pr("el2traps: HCR_EL2.TACR\n");
	run_el1(el1_actlr, 0);
	write_sysreg(hcr_el2, read_sysreg(hcr_el2) | HCR_TACR);
	isb();
	run_el1(el1_actlr, 0);
	write_sysreg(hcr_el2, read_sysreg(hcr_el2) & ~HCR_TACR);
	isb();

	pr("el2traps: the SVE enables\n");
	sve_case("CPACR_EL1.{ZEN,FPEN} {0,0}", 0, 0, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {3,0}", CPACR_ZEN(3), 0, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {0,3} with CPTR_EL2.TZ", CPACR_FPEN(3), CPTR_TZ, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {3,3} with CPTR_EL2.TZ", CPACR_ZEN(3) | CPACR_FPEN(3), CPTR_TZ, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {3,3} with CPTR_EL2.{TZ,TFP}", CPACR_ZEN(3) | CPACR_FPEN(3), CPTR_TZ | CPTR_TFP, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {3,3} with CPTR_EL2.TFP", CPACR_ZEN(3) | CPACR_FPEN(3), CPTR_TFP, 0);
	sve_case("CPACR_EL1.{ZEN,FPEN} {1,3} at EL0", CPACR_ZEN(1) | CPACR_FPEN(3), 0, 1);
	sve_case("CPACR_EL1.{ZEN,FPEN} {3,1} at EL0", CPACR_ZEN(3) | CPACR_FPEN(1), 0, 1);
	pr(" EL2 with CPTR_EL2.TZ\n");
	write_sysreg(cpacr_el1, 0);
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) | CPTR_TZ);
	isb();
	seen = last.count;
	rdvl();
	outcome("EL2 RDVL");
	pr(" EL2 with CPTR_EL2.TFP\n");
	write_sysreg(cptr_el2, (read_sysreg(cptr_el2) & ~CPTR_TZ) | CPTR_TFP);
	isb();
	rdvl();
	outcome("EL2 RDVL");
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) & ~CPTR_TFP);
	isb();
	pr("el2traps done\n");
	return 0;
}
