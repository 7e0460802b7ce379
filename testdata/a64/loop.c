// loop: the benchmark program. A long integer and memory loop (a sieve,
// a hash over an array, a sort) at EL1 with stage 1 and stage 2 enabled,
// so that every fetch, load and store is translated; prints checksums.
#include "harness.h"

#define N 65536
static u32 a[N];
static u8 sieve[N];

static u64 work(u64 rounds)
{
	u64 h = 1469598103934665603UL, x = 88172645463325252UL;
	for (u64 r = 0; r < rounds; r++) {
		for (int i = 0; i < N; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			a[i] = (u32)x;
		}
		for (int i = 2; i < N; i++)
			sieve[i] = 1;
		for (int i = 2; i * i < N; i++)
			if (sieve[i])
				for (int j = i * i; j < N; j += i)
					sieve[j] = 0;
		for (int i = 0; i < N; i++)
			if (sieve[i])
				h = (h ^ a[i]) * 1099511628211UL;
		// insertion sort of a prefix
		for (int i = 1; i < 512; i++) {
			u32 v = a[i];
			int j = i - 1;
			while (j >= 0 && a[j] > v) {
				a[j + 1] = a[j];
				j--;
			}
			a[j + 1] = v;
		}
		for (int i = 0; i < 512; i++)
			h = (h ^ a[i]) * 1099511628211UL;
	}
	return h;
}

static u64 el1(u64 rounds)
{
	s1_setup();
	write_sysreg(sctlr_el1, SCTLR_EL1_VALUE);
	isb();
	return work(rounds);
}

extern volatile u64 nestmmu_seed;

int main(void)
{
	u64 rounds = nestmmu_seed ? nestmmu_seed : 6; // the loader may set the rounds
	if (boot_el == 2) {
		harness_install();
		s2_setup(1);
		pr("loop at EL1 (stage 1 and 2): %x\n", run_el1(el1, rounds));
	} else {
		pr("loop at EL1 (stage 1): %x\n", el1(rounds));
	}
	return 0;
}
