// Exception handlers for the MMU test programs: each prints the exception
// (the syndrome registers an OS or hypervisor reads) and recovers so that
// the probe returns, and the EL2 handler emulates an MMIO device.
#ifndef HARNESS_H
#define HARNESS_H
#include "mmu.h"
#include "probes.h"

// The MMIO window: IPAs stage 2 leaves unmapped; the EL2 handler emulates
// a device there (loads return MMIO_VALUE ^ offset, stores are printed).
#define MMIO_IPA 0x0a000000UL
#define MMIO_VALUE 0x1234567890abcdefUL

void harness_install(void);
// Run fn(arg) at EL1 (from EL2) or at EL0 (from EL1).
u64 run_el1(u64 (*fn)(u64), u64 arg);
u64 run_el0(u64 (*fn)(u64), u64 arg);
// The HPFAR_EL2 of the last exception taken to EL2, when it was valid.
// s2_fix, when set, is called by the EL2 handler for a stage-2 abort
// and returns 1 if it fixed the mapping (the access is then retried).
extern int (*s2_fix)(u64 ipa, u64 esr);
extern int quiet_el2;
// hvc_service, when set, handles HVC #imm (imm != 0xfff0) from EL1: it
// may change the frame (x0 is the result).
extern void (*hvc_service)(struct frame *f, u64 imm);
// show prints a probe's result: "faulted" if an exception was taken since
// the last show (seen is its count then), else "ok" and the value.
void show(const char *what, u64 v);
extern int seen;
u64 run_lower(u64 (*fn)(u64), u64 arg, u64 sp, u64 spsr);
void resume(u64 ret) __attribute__((noreturn));
#endif
