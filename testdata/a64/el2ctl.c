// el2ctl: the EL2 controls a hypervisor sets for its guest besides
// HCR_EL2 and stage 2, and what its guest observes: VPIDR_EL2 and
// VMPIDR_EL2 (the guest's MIDR_EL1 and MPIDR_EL1), CNTVOFF_EL2 (the
// guest's and EL2's virtual counter), HCR_EL2.TID3 (ID group 3 reads
// trapped and emulated), HSTR_EL2 (AArch32 only: no effect here),
// CNTHCTL_EL2.EL1PCTEN (CNTPCT_EL0), CPTR_EL2.TCPAC (CPACR_EL1) and TFP
// (FP/SIMD, the guest's and EL2's own), MDCR_EL2.TDA (MDSCR_EL1) and TDE
// (BRK); the EL2 registers
// written and read back, and EL2's own HVC (taken to EL2, or UNDEFINED with
// HCR_EL2.HCD). Only values the architecture and the program determine
// are printed: fields of the ID registers that the PE's configuration
// fixes, counters only as a difference checked against bounds.
#include "harness.h"

#define HCR_TID3 (1UL << 18)
#define HCR_HCD (1UL << 29)
#define CPTR_TCPAC (1UL << 31)
#define CPTR_TFP (1UL << 10)
#define MDCR_TDA (1UL << 9)
#define MDCR_TDE (1UL << 8)
#define CNTHCTL_EL1PCTEN (1UL << 0)
#define CNTHCTL_EL1PCEN (1UL << 1)

#define VPIDR_VALUE 0x411fd070UL
#define VMPIDR_VALUE 0x80000102UL
#define CNTVOFF_VALUE 0x123456789aUL
#define EMULATED_ID 0x5a5a0011UL // what EL2 answers a trapped ID register read

static handler_fn harness_el2;

// el2_emulate answers a trapped MRS (EC 0x18, direction read) with
// EMULATED_ID before the harness prints the trap and skips the instruction.
static void el2_emulate(struct frame *f, int vec)
{
	if (esr_ec(f->esr) == 0x18 && (f->esr & 1)) {
		u64 rt = f->esr >> 5 & 31;
		if (rt != 31)
			f->x[rt] = EMULATED_ID;
	}
	harness_el2(f, vec);
}

// outcome prints whether the probe since the last outcome trapped.
static void outcome(const char *what)
{
	if (last.count != seen) {
		seen = last.count;
		pr("  %s: trapped\n", what);
		return;
	}
	pr("  %s: ok\n", what);
}

// vct_ok says whether CNTVCT_EL0 read between two CNTPCT_EL0 reads equals
// CNTPCT_EL0 - off at some count between them (modulo 2^64).
static int vct_ok(u64 off)
{
	isb();
	u64 p1 = read_sysreg(cntpct_el0);
	isb();
	u64 v = read_sysreg(cntvct_el0);
	isb();
	u64 p2 = read_sysreg(cntpct_el0);
	return v + off - p1 <= p2 - p1;
}

// The guest at EL1, with no trap controls beyond stage 2.
static u64 guest_plain(u64 off)
{
	pr(" EL1: MIDR_EL1 %x MPIDR_EL1 %x\n", read_sysreg(midr_el1), read_sysreg(mpidr_el1));
	pr(" EL1: ID_AA64PFR0_EL1 %x ID_AA64ISAR0_EL1 %x\n", read_sysreg(id_aa64pfr0_el1), read_sysreg(id_aa64isar0_el1));
	pr(" EL1: ID_AA64MMFR2_EL1.NV %d\n", read_sysreg(id_aa64mmfr2_el1) >> 24 & 15);
	pr(" EL1: CNTVCT_EL0 = CNTPCT_EL0 - CNTVOFF_EL2: %s\n", vct_ok(off) ? "yes" : "no");
	(void)read_sysreg(sctlr_el1);
	outcome("SCTLR_EL1 (CRn 1) with HSTR_EL2.T1");
	(void)read_sysreg(ttbr0_el1);
	outcome("TTBR0_EL1 (CRn 2) with HSTR_EL2.T2");
	(void)read_sysreg(cntpct_el0);
	outcome("CNTPCT_EL0");
	write_sysreg(cpacr_el1, 3UL << 20); // FPEN: FP/SIMD not trapped at EL1
	isb();
	outcome("CPACR_EL1 write");
	(void)read_sysreg(mdscr_el1);
	outcome("MDSCR_EL1");
	__asm__ volatile("brk #5");
	outcome("BRK");
	return 0;
}

// The guest with HCR_EL2.TID3: ID group 3 reads trap; MIDR_EL1 is not in it.
static u64 guest_tid3(u64 arg)
{
	pr(" EL1: ID_AA64PFR0_EL1 %x\n", read_sysreg(id_aa64pfr0_el1));
	pr(" EL1: ID_AA64MMFR0_EL1 %x\n", read_sysreg(id_aa64mmfr0_el1));
	pr(" EL1: ID_AA64MMFR2_EL1 %x\n", read_sysreg(id_aa64mmfr2_el1));
	pr(" EL1: MIDR_EL1 %x\n", read_sysreg(midr_el1));
	return 0;
}

// The guest under CNTHCTL_EL2, CPTR_EL2 and MDCR_EL2 traps.
static u64 guest_traps(u64 off)
{
	u64 v = read_sysreg(cntpct_el0);
	outcome("CNTPCT_EL0");
	pr(" EL1: the trapped CNTPCT_EL0 read %x\n", v);
	isb();
	u64 a = read_sysreg(cntvct_el0);
	isb();
	u64 b = read_sysreg(cntvct_el0);
	outcome("CNTVCT_EL0");
	pr(" EL1: CNTVCT_EL0 counts up: %s\n", b - a < 1UL << 40 ? "yes" : "no");
	(void)read_sysreg(cpacr_el1);
	outcome("CPACR_EL1 read");
	__asm__ volatile(".inst 0x9e6703e0" : : : "memory"); // FMOV D0, XZR
	outcome("FMOV D0, XZR");
	(void)read_sysreg(mdscr_el1);
	outcome("MDSCR_EL1");
	__asm__ volatile("brk #6");
	outcome("BRK");
	return 0;
}

// readback prints a field of an EL2 register as read back after a write.
static void readback(const char *name, u64 v)
{
	pr(" EL2: %s reads %x\n", name, v);
}

int main(void)
{
	if (boot_el != 2)
		fail("el2ctl needs EL2");
	harness_install();
	harness_el2 = el2_handler;
	el2_handler = el2_emulate;

	pr("el2ctl: EL2's own HVC\n");
	__asm__ volatile("hvc #0x42" : : : "memory");
	outcome("HVC #0x42 at EL2");
	write_sysreg(hcr_el2, HCR_RW | HCR_HCD);
	isb();
	__asm__ volatile("hvc #0x43" : : : "memory");
	outcome("HVC #0x43 at EL2 with HCR_EL2.HCD");
	write_sysreg(hcr_el2, HCR_RW);
	isb();
	// CPTR_EL2.TFP (E2H=0) traps FP/SIMD at EL2 too; CPACR_EL1 (the
	// guest's, FPEN=3: no trap at EL1) does not apply at EL2. (First: an
	// exception taken to EL2 sets PSTATE.ALLINT, FEAT_NMI, and run_el1
	// returns without an ERET; el2traps checks that.)
	write_sysreg(cpacr_el1, 3UL << 20);
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) | CPTR_TFP);
	isb();
	__asm__ volatile(".inst 0x9e6703e0" : : : "memory"); // FMOV D0, XZR
	outcome("FMOV D0, XZR at EL2 with CPTR_EL2.TFP");
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) & ~CPTR_TFP);
	write_sysreg(cpacr_el1, 0);
	isb();

	pr("el2ctl: EL2 registers written and read back\n");
	pr(" EL2: MIDR_EL1 %x\n", read_sysreg(midr_el1));
	write_sysreg(vpidr_el2, VPIDR_VALUE);
	write_sysreg(vmpidr_el2, VMPIDR_VALUE);
	write_sysreg(tpidr_el2, 0x7e57000000000001UL);
	write_sysreg(contextidr_el2, 0x1234);
	write_sysreg(hstr_el2, 0xbfef); // T0-T15 but T4 and T14 (RES0)
	write_sysreg(cntvoff_el2, CNTVOFF_VALUE);
	isb();
	pr(" EL2: VPIDR_EL2 %x VMPIDR_EL2 %x\n", read_sysreg(vpidr_el2), read_sysreg(vmpidr_el2));
	pr(" EL2: TPIDR_EL2 %x CONTEXTIDR_EL2 %x\n", read_sysreg(tpidr_el2), read_sysreg(contextidr_el2));
	pr(" EL2: HSTR_EL2 %x CNTVOFF_EL2 %x\n", read_sysreg(hstr_el2) & 0xffff, read_sysreg(cntvoff_el2));
	pr(" EL2: MIDR_EL1 %x (not VPIDR_EL2)\n", read_sysreg(midr_el1));
	pr(" EL2: CNTVCT_EL0 = CNTPCT_EL0 - CNTVOFF_EL2 at EL2 (E2H=0): %s\n", vct_ok(CNTVOFF_VALUE) ? "yes" : "no");

	s2_setup(1);
	pr("el2ctl: the guest, no traps\n");
	run_el1(guest_plain, CNTVOFF_VALUE);

	pr("el2ctl: the guest with HCR_EL2.TID3\n");
	write_sysreg(hcr_el2, HCR_RW | HCR_VM | HCR_TID3);
	isb();
	run_el1(guest_tid3, 0);
	write_sysreg(hcr_el2, HCR_RW | HCR_VM);
	isb();

	pr("el2ctl: the guest with CNTHCTL_EL2, CPTR_EL2 and MDCR_EL2 traps\n");
	u64 cnthctl = read_sysreg(cnthctl_el2) & ~(CNTHCTL_EL1PCTEN | CNTHCTL_EL1PCEN);
	write_sysreg(cnthctl_el2, cnthctl);
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) | CPTR_TCPAC | CPTR_TFP);
	write_sysreg(mdcr_el2, read_sysreg(mdcr_el2) | MDCR_TDA);
	isb();
	u64 cptr = read_sysreg(cptr_el2), mdcr = read_sysreg(mdcr_el2);
	readback("CNTHCTL_EL2.{EL1PCEN,EL1PCTEN}", read_sysreg(cnthctl_el2) & 3);
	readback("CPTR_EL2.{TCPAC,TFP}", (cptr >> 31 & 1) << 1 | (cptr >> 10 & 1));
	readback("MDCR_EL2.{TDA,TDE}", mdcr >> 8 & 3);
	run_el1(guest_traps, CNTVOFF_VALUE);
	write_sysreg(mdcr_el2, (read_sysreg(mdcr_el2) & ~MDCR_TDA) | MDCR_TDE);
	isb();
	readback("MDCR_EL2.{TDA,TDE}", read_sysreg(mdcr_el2) >> 8 & 3);
	run_el1(guest_traps, CNTVOFF_VALUE);

	write_sysreg(mdcr_el2, read_sysreg(mdcr_el2) & ~MDCR_TDE);
	write_sysreg(cptr_el2, read_sysreg(cptr_el2) & ~(CPTR_TCPAC | CPTR_TFP));
	write_sysreg(cnthctl_el2, read_sysreg(cnthctl_el2) | CNTHCTL_EL1PCTEN | CNTHCTL_EL1PCEN);
	write_sysreg(hstr_el2, 0);
	isb();
	pr("el2ctl: the guest, traps cleared\n");
	run_el1(guest_plain, CNTVOFF_VALUE);
	pr("el2ctl done\n");
	return 0;
}
