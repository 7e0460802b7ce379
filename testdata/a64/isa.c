// isa: the integer instruction set, differentially. Random operands from a
// fixed xorshift stream go through every class gcc emits (and inline
// assembly for the flag-setting, exclusive, LSE and RCpc forms); each
// class folds its results into a checksum that is printed. QEMU and the
// model must print the same sums.
#include "lib.h"

static u64 rng = 0x9e3779b97f4a7c15UL;
static u64 next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static u64 sum;
static void fold(u64 v) { sum = (sum ^ v) * 0x100000001b3UL + (sum >> 29); }

#define N 400

static u64 __attribute__((noinline)) flags_add(u64 a, u64 b)
{
	u64 r, f;
	__asm__ volatile("adds %0, %2, %3\n mrs %1, nzcv" : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "cc");
	return r ^ f;
}
static u64 __attribute__((noinline)) flags_sub32(u64 a, u64 b)
{
	u64 r, f;
	__asm__ volatile("subs %w0, %w2, %w3\n mrs %1, nzcv" : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "cc");
	return r ^ f;
}
static u64 __attribute__((noinline)) flags_adc(u64 a, u64 b, u64 c)
{
	u64 r, f;
	__asm__ volatile("msr nzcv, %4\n adcs %0, %2, %3\n sbcs %0, %0, %2\n ngcs %w0, %w0\n mrs %1, nzcv"
			 : "=&r"(r), "=r"(f) : "r"(a), "r"(b), "r"(c << 28) : "cc");
	return r ^ f;
}
static u64 __attribute__((noinline)) flags_ccmp(u64 a, u64 b, u64 c)
{
	u64 f;
	__asm__ volatile("msr nzcv, %3\n ccmp %1, %2, #5, ne\n ccmn %w1, #7, #10, lt\n mrs %0, nzcv"
			 : "=r"(f) : "r"(a), "r"(b), "r"(c << 28) : "cc");
	return f;
}
static u64 __attribute__((noinline)) logic_flags(u64 a, u64 b)
{
	u64 r, f;
	__asm__ volatile("bics %0, %2, %3, ror #7\n ands %w0, %w0, #0xff00ff00\n mrs %1, nzcv"
			 : "=r"(r), "=r"(f) : "r"(a), "r"(b) : "cc");
	return r ^ f;
}
static u64 __attribute__((noinline)) ext_ops(u64 a, u64 b)
{
	u64 r1, r2, r3, r4;
	__asm__ volatile("add %0, %4, %w5, sxtb #3\n sub %1, %4, %w5, uxth #1\n"
			 "extr %2, %4, %5, #19\n adds %3, %4, %5, sxtx #2"
			 : "=&r"(r1), "=&r"(r2), "=&r"(r3), "=&r"(r4) : "r"(a), "r"(b) : "cc");
	return r1 ^ r2 * 3 ^ r3 * 5 ^ r4 * 7;
}
static u64 __attribute__((noinline)) bitops(u64 a, u64 b)
{
	u64 r1, r2, r3, r4, r5;
	__asm__ volatile("rbit %0, %5\n cls %w1, %w5\n cls %2, %6\n rev16 %3, %5\n rev32 %4, %6"
			 : "=r"(r1), "=r"(r2), "=r"(r3), "=r"(r4), "=r"(r5) : "r"(a), "r"(b));
	return r1 ^ r2 << 7 ^ r3 << 13 ^ r4 * 3 ^ r5 * 11;
}
static u64 __attribute__((noinline)) bitfield(u64 a, u64 b)
{
	u64 r1 = b, r2 = a, r3, r4;
	__asm__ volatile("bfi %0, %4, #13, #21\n bfxil %w1, %w5, #3, #9\n sbfiz %2, %4, #50, #9\n ubfiz %w3, %w5, #7, #20"
			 : "+r"(r1), "+r"(r2), "=r"(r3), "=r"(r4) : "r"(a), "r"(b));
	return r1 ^ r2 * 3 ^ r3 * 5 ^ r4 * 7;
}

struct rec {
	u8 b;
	s8 sb;
	u16 h;
	short sh;
	u32 w;
	int sw;
	u64 x;
};

static u64 __attribute__((noinline)) mem_ops(struct rec *r, int n, u64 a)
{
	u64 t = 0;
	for (int i = 0; i < n; i++) {
		r[i].b = a;
		r[i].sb = a >> 8;
		r[i].h = a >> 16;
		r[i].sh = a >> 24;
		r[i].w = a >> 3;
		r[i].sw = a >> 7;
		r[i].x = a * i;
		a = a * 6364136223846793005UL + 1;
	}
	for (int i = n - 1; i >= 0; i--)
		t += r[i].b + r[i].sb + r[i].h + r[i].sh + (u64)r[i].w + (s64)r[i].sw + r[i].x;
	return t;
}

static u64 recurse(u64 n) { return n < 2 ? n : recurse(n - 1) + recurse(n - 2) * 3; }

typedef u64 (*op_fn)(u64, u64);
static u64 f_add(u64 a, u64 b) { return a + b; }
static u64 f_mul(u64 a, u64 b) { return a * b; }
static u64 f_xor(u64 a, u64 b) { return a ^ (b >> 3); }
static u64 f_div(u64 a, u64 b) { return b ? a / b : 0; }
static const op_fn fns[4] = {f_add, f_mul, f_xor, f_div};

static u64 __attribute__((noinline)) sw(u64 k, u64 a)
{
	switch (k & 15) {
	case 0: return a + 1;
	case 1: return a * 3;
	case 2: return a >> 5;
	case 3: return ~a;
	case 4: return a ^ 0x5555;
	case 5: return a - 77;
	case 6: return a << 9;
	case 7: return (a >> 32) | (a << 32);
	case 8: return a & 0xffff;
	case 9: return -a;
	case 10: return a | 0x8000000000000000UL;
	default: return k;
	}
}

static u64 shared[8] __attribute__((aligned(64)));

static u64 __attribute__((noinline)) excl(u64 v)
{
	u64 old, st, t = 0;
	for (int i = 0; i < 4; i++) {
		__asm__ volatile("1: ldaxr %0, [%3]\n add %0, %0, %4\n stlxr %w1, %0, [%3]\n cbnz %w1, 1b"
				 : "=&r"(old), "=&r"(st), "+m"(shared[0]) : "r"(&shared[0]), "r"(v) : "memory");
		t += old;
		u32 w;
		__asm__ volatile("ldxrh %w0, [%2]\n stxrh %w1, %w0, [%2]" : "=&r"(w), "=&r"(st) : "r"(&shared[1]) : "memory");
		t += st;
		// A store-exclusive without a preceding load-exclusive fails.
		__asm__ volatile("clrex\n stxr %w0, %1, [%2]" : "=&r"(st) : "r"(v), "r"(&shared[2]) : "memory");
		t = t * 3 + st;
		u64 a, b;
		__asm__ volatile("ldxp %0, %1, [%3]\n stxp %w2, %1, %0, [%3]" : "=&r"(a), "=&r"(b), "=&r"(st) : "r"(&shared[4]) : "memory");
		t += a + b * 5 + st;
		shared[4] += v;
	}
	return t;
}

static u64 __attribute__((noinline)) lse(u64 v)
{
	u64 t = 0, o;
	t += __atomic_fetch_add(&shared[0], v, __ATOMIC_SEQ_CST);
	t += __atomic_fetch_and(&shared[1], ~v, __ATOMIC_ACQUIRE);
	t += __atomic_fetch_or(&shared[2], v >> 3, __ATOMIC_RELEASE);
	t += __atomic_fetch_xor(&shared[3], v * 7, __ATOMIC_RELAXED);
	t += __atomic_exchange_n(&shared[5], v, __ATOMIC_ACQ_REL);
	u64 expect = shared[6];
	__atomic_compare_exchange_n(&shared[6], &expect, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	t += expect;
	expect = 1;
	t += __atomic_compare_exchange_n(&shared[6], &expect, v + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	t += expect;
	__asm__ volatile("ldsmax %1, %0, [%2]" : "=r"(o) : "r"(v), "r"(&shared[7]) : "memory");
	t += o;
	__asm__ volatile("ldumin %w1, %w0, [%2]" : "=r"(o) : "r"(v), "r"(&shared[3]) : "memory");
	t += o;
	__asm__ volatile("staddlb %w0, [%1]" : : "r"(v), "r"(&shared[2]) : "memory");
	u64 p0 = v, p1 = ~v;
	register u64 x0 __asm__("x0") = shared[4], x1 __asm__("x1") = shared[5];
	register u64 x2 __asm__("x2") = p0, x3 __asm__("x3") = p1;
	__asm__ volatile("caspal x0, x1, x2, x3, [%4]" : "+r"(x0), "+r"(x1) : "r"(x2), "r"(x3), "r"(&shared[4]) : "memory");
	t += x0 * 3 + x1;
	__asm__ volatile(".arch_extension rcpc\n ldapr %0, [%1]" : "=r"(o) : "r"(&shared[6]) : "memory");
	t += o;
	__asm__ volatile("ldar %w0, [%1]\n stlrh %w0, [%1]" : "=&r"(o) : "r"(&shared[7]) : "memory");
	t += o;
	for (int i = 0; i < 8; i++)
		t = t * 31 + shared[i];
	return t;
}

static struct rec recs[16];

int main(void)
{
	u64 sums[16] = {0};
	for (int i = 0; i < N; i++) {
		u64 a = next(), b = next(), c = next();
		u64 s = b & 63, s32 = b & 31;
		sum = sums[0];
		fold(a + b), fold(a - b), fold((u32)a + (u32)b), fold((u32)a - (u32)b), fold(-a);
		fold(flags_add(a, b)), fold(flags_add(a, -a)), fold(flags_sub32(a, b)), fold(flags_sub32(b, b));
		fold(flags_adc(a, b, c)), fold(flags_ccmp(a, b, c)), fold(logic_flags(a, b)), fold(ext_ops(a, b));
		sums[0] = sum;
		sum = sums[1];
		fold(a * b), fold((u32)a * (u32)b), fold((unsigned __int128)a * b >> 64), fold((__int128)(s64)a * (s64)b >> 64);
		fold((u64)(u32)a * (u32)b), fold((s64)(int)a * (int)b), fold(a * b + c), fold(c - a * b);
		fold(b ? a / b : 0), fold((s64)b ? (s64)a / (s64)(b | 1) : 0), fold((u32)a / ((u32)b | 1)), fold((int)a / ((int)b | 1));
		fold(a % (b | 1)), fold((s64)a % (s64)(b | 1));
		{
			s64 m = (s64)0x8000000000000000UL, m1 = -1, z = 0;
			__asm__ volatile("" : "+r"(m), "+r"(m1), "+r"(z));
			fold(m / m1), fold((int)m / (int)m1), fold((u64)m / z), fold((int)m / (int)z);
		}
		fold((s64)(a | 0x8000000000000000UL) / ((s64)b | -2L));
		sums[1] = sum;
		sum = sums[2];
		fold(a << s), fold(a >> s), fold((s64)a >> s), fold((u32)a << s32), fold((u32)a >> s32), fold((int)a >> s32);
		fold((a >> s) | (a << ((64 - s) & 63))), fold(a << 13), fold((s64)a >> 41), fold((u32)a >> 7);
		fold(a & b), fold(a | ~b), fold(a ^ (b << 9)), fold(a & 0x00ff00ff00ff00ffUL), fold(a | 0x7ffe), fold(a ^ 0xaaaaaaaaaaaaaaaaUL);
		sums[2] = sum;
		sum = sums[3];
		fold((a >> 7) & 0x3ff), fold((s64)(a << 11) >> 50), fold((u8)a), fold((s8)a), fold((u16)a), fold((short)a), fold((int)a);
		fold(bitfield(a, b)), fold(bitops(a, b)), fold(__builtin_clzl(a | 1)), fold(__builtin_clz((u32)a | 1));
		fold(__builtin_ctzl(a | 0x8000000000000000UL)), fold(__builtin_bswap64(a)), fold(__builtin_bswap32(a)), fold(__builtin_bswap16(a));
		sums[3] = sum;
		sum = sums[4];
		fold(a < b ? a : b), fold((s64)a > (s64)b ? a : c), fold(a == b ? 1 : 0), fold(a > c ? a + 1 : ~b), fold((s64)a < 0 ? -a : a);
		fold(a & 1 ? b : c), fold((int)a > (int)b), fold(sw(a, b)), fold(sw(b, c)), fold(fns[a & 3](b, c));
		sums[4] = sum;
		sum = sums[5];
		fold(mem_ops(recs, 1 + (a & 15), b));
		if ((i & 31) == 0)
			fold(recurse(10 + (a & 3)));
		sums[5] = sum;
		sum = sums[6];
		if ((i & 7) == 0)
			fold(excl(a)), fold(lse(b));
		sums[6] = sum;
	}
	const char *names[] = {"add/sub/flags", "mul/div", "shift/logic", "bitfield/bits", "select/branch", "memory", "atomics"};
	for (int i = 0; i < 7; i++)
		pr("%s %016x\n", names[i], sums[i]);
	return 0;
}
