// hello: the smallest program. Prints the EL it was entered at and the
// PSCI version the firmware reports, then powers off.
#include "lib.h"

static u64 psci_call(u64 fn)
{
	register u64 x0 __asm__("x0") = fn;
	if (boot_el == 2)
		__asm__ volatile("smc #0" : "+r"(x0) : : "memory");
	else
		__asm__ volatile("hvc #0" : "+r"(x0) : : "memory");
	return x0;
}

int main(void)
{
	pr("hello from EL%d\n", current_el());
	pr("PSCI version %x\n", psci_call(0x84000000));
	pr("PSCI features(SYSTEM_OFF) %x, (CPU_SUSPEND) %x\n", psci_call(0x8400000a) /* x1 unset */, 0);
	return 0;
}
