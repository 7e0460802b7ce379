#include "lib.h"
#include <stdarg.h>

u64 boot_el;
handler_fn el2_handler, el1_handler;

void putc(int c)
{
	*(volatile u32 *)UART_BASE = (u32)(u8)c;
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void put_hex(u64 v, int width)
{
	char b[16];
	int n = 0;
	do {
		b[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v && n < 16);
	while (width > n) {
		putc('0');
		width--;
	}
	while (n)
		putc(b[--n]);
}

static void put_dec(s64 v)
{
	char b[20];
	int n = 0;
	u64 u = v;
	if (v < 0) {
		putc('-');
		u = -(u64)v;
	}
	do {
		b[n++] = '0' + u % 10;
		u /= 10;
	} while (u);
	while (n)
		putc(b[--n]);
}

// pr is a small printf: %x (hex), %016x-style widths, %d, %u, %s, %c.
void pr(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc(*fmt);
			continue;
		}
		int width = 0;
		fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + *fmt++ - '0';
		switch (*fmt) {
		case 'x':
			put_hex(va_arg(ap, u64), width);
			break;
		case 'd':
			put_dec(va_arg(ap, s64));
			break;
		case 'u':
			put_dec((s64)va_arg(ap, u64));
			break;
		case 's':
			puts(va_arg(ap, const char *));
			break;
		case 'c':
			putc(va_arg(ap, int));
			break;
		default:
			putc(*fmt);
		}
	}
	va_end(ap);
}

void psci_system_off(void)
{
	register u64 x0 __asm__("x0") = 0x84000008;
	if (current_el() == 2 || boot_el == 2)
		__asm__ volatile("smc #0" : "+r"(x0) : : "memory");
	else
		__asm__ volatile("hvc #0" : "+r"(x0) : : "memory");
	for (;;)
		;
}

void fail(const char *why)
{
	pr("FAIL %s\n", why);
	psci_system_off();
}

static void dump(const char *el, struct frame *f, int vec)
{
	pr("unexpected exception at %s: vector %d ESR %x ELR %x FAR %x SPSR %x\n", el, vec, f->esr, f->elr, f->far,
	   f->spsr);
	psci_system_off();
}

void el2_exception(struct frame *f, int vec)
{
	if (el2_handler)
		el2_handler(f, vec);
	else
		dump("EL2", f, vec);
}

void el1_exception(struct frame *f, int vec)
{
	if (el1_handler)
		el1_handler(f, vec);
	else
		dump("EL1", f, vec);
}

int hpfar_valid(u64 esr, int stage2)
{
	u64 ec = esr_ec(esr);
	if (!stage2 || (ec != 0x20 && ec != 0x24))
		return 0;
	u64 fsc = esr & 0x3f;
	int s1ptw = esr >> 7 & 1;
	switch (fsc >> 2) {
	case 0: // address size
	case 1: // translation
	case 2: // access flag
		return 1;
	case 3: // permission
		return s1ptw;
	}
	return 0;
}

void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}
