// The test programs' runtime: UART output, PSCI, exception frames, system
// register access and small helpers. Freestanding: no libc.
#ifndef LIB_H
#define LIB_H

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef long s64;
typedef signed char s8;

#define UART_BASE 0x09000000UL

// The frame the vectors save (start.S): x0-x30, then ELR, SPSR, ESR, FAR
// of the EL that took the exception.
struct frame {
	u64 x[31];
	u64 elr, spsr, esr, far;
	u64 pad;
};

// The exception handlers a program installs; by default an exception
// prints the frame and powers off.
typedef void (*handler_fn)(struct frame *f, int vec);
extern handler_fn el2_handler, el1_handler;
void el2_exception(struct frame *f, int vec);
void el1_exception(struct frame *f, int vec);

extern u64 boot_el;

void putc(int c);
void puts(const char *s);
void pr(const char *fmt, ...);
void psci_system_off(void) __attribute__((noreturn));
void fail(const char *why) __attribute__((noreturn));
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

#define read_sysreg(r) ({ u64 __v; __asm__ volatile("mrs %0, " #r : "=r"(__v)); __v; })
#define write_sysreg(r, v) __asm__ volatile("msr " #r ", %0" : : "r"((u64)(v)) : "memory")
#define isb() __asm__ volatile("isb" : : : "memory")
#define dsb(o) __asm__ volatile("dsb " #o : : : "memory")

static inline u64 current_el(void) { return read_sysreg(CurrentEL) >> 2; }

static inline u64 rd64(u64 a) { return *(volatile u64 *)a; }
static inline void wr64(u64 a, u64 v) { *(volatile u64 *)a = v; }

// The exception class and fault status of an ESR.
static inline u64 esr_ec(u64 esr) { return esr >> 26 & 0x3f; }

// hpfar_valid is the pseudocode's IPAValid for an abort taken to EL2: the
// faulting IPA is in HPFAR_EL2 for a stage-2 Translation, Access flag or
// Address size fault, and for a stage-2 Permission fault on a stage-1
// table walk; elsewhere HPFAR_EL2 is UNKNOWN and the programs do not print
// it. stage2 says whether the abort is a stage-2 fault.
int hpfar_valid(u64 esr, int stage2);

#endif
