#ifndef PROBES_H
#define PROBES_H
#include "lib.h"
u64 probe_ldr(u64), probe_ldrw(u64), probe_ldrsb(u64), probe_ldrh(u64), probe_ldtr(u64), probe_ldar(u64),
	probe_ldxr(u64), probe_ldp(u64), probe_ldr_post(u64), probe_ldr_reg(u64, u64);
u64 probe_str(u64, u64), probe_strw(u64, u64), probe_strb(u64, u64), probe_sttr(u64, u64), probe_stlr(u64, u64),
	probe_stxr(u64, u64), probe_ldadd(u64, u64), probe_swp(u64, u64), probe_stp(u64, u64), probe_str_pre(u64, u64);
u64 probe_cas(u64, u64), probe_dczva(u64), probe_dccivac(u64), probe_icivau(u64);
u64 probe_call(u64);
u64 pan_probe(void *fn, u64 a, u64 b);
extern char code_page_fn[];

// The exception a probe took, recorded by the handlers.
struct taken {
	int count;
	int el;
	u64 esr, far, elr, spsr, hpfar;
	int hpfar_valid;
};
extern volatile struct taken last;
#endif
