// One-instruction probes: each performs one access with x0 as the
// address (x1 the value to store) and returns. A handler that takes the
// probe's fault skips the instruction (ELR += 4), so the probe returns
// x0 unchanged; a fetch probe (probe_call) branches to x0 and a handler
// returns to x30.
	.text
	.macro	probe name, insn:vararg
	.global	\name
	.balign	8
\name:
	\insn
	ret
	.endm

	probe	probe_ldr, ldr x0, [x0]
	probe	probe_ldrw, ldr w0, [x0]
	probe	probe_ldrsb, ldrsb x0, [x0]
	probe	probe_ldrh, ldrh w0, [x0]
	probe	probe_str, str x1, [x0]
	probe	probe_strw, str w1, [x0]
	probe	probe_strb, strb w1, [x0]
	probe	probe_ldtr, ldtr x0, [x0]
	probe	probe_sttr, sttr x1, [x0]
	probe	probe_ldar, ldar x0, [x0]
	probe	probe_stlr, stlr w1, [x0]
	probe	probe_ldxr, ldxr x0, [x0]
	probe	probe_stxr, stxr w2, x1, [x0]
	probe	probe_ldadd, ldadd x1, x0, [x0]
	probe	probe_swp, swp x1, x0, [x0]
	probe	probe_cas, cas x1, x2, [x0]
	probe	probe_ldp, ldp x0, x2, [x0]
	probe	probe_stp, stp x1, x1, [x0]
	probe	probe_ldr_post, ldr w2, [x0], #4
	probe	probe_str_pre, str x1, [x0, #8]!
	probe	probe_ldr_reg, ldr x0, [x0, x1, lsl #3]
	probe	probe_dczva, dc zva, x0
	probe	probe_dccivac, dc civac, x0
	probe	probe_icivau, ic ivau, x0

	.global	probe_call
probe_call:
	stp	x29, x30, [sp, #-16]!
	blr	x0
	ldp	x29, x30, [sp], #16
	ret

// A function to branch to in a page the test maps: returns 0x600d.
	.global	code_page_fn
	.balign	4096
code_page_fn:
	mov	x0, #0x600d
	ret
	.balign	4096

// u64 pan_probe(fn, a, b): fn(a, b) with PSTATE.PAN set around it only
// (the caller's code and data may be EL0-accessible).
	.text
	.global	pan_probe
pan_probe:
	stp	x29, x30, [sp, #-16]!
	mov	x9, x0
	mov	x0, x1
	mov	x1, x2
	msr	pan, #1
	blr	x9
	msr	pan, #0
	ldp	x29, x30, [sp], #16
	ret
