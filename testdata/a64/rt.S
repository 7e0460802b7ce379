// Calls into a lower EL and back.
//
// u64 run_lower(u64 (*fn)(u64), u64 arg, u64 sp, u64 spsr) runs fn(arg) at
// the EL and SP that spsr names (SPSR_ELx of the current EL: 0x3c5 EL1h,
// 0x3c0 EL0t, ...) with sp as that EL's stack pointer. fn returns through
// lower_return, which asks the current EL to come back (HVC #0xfff0 from
// EL1 to EL2, SVC #0xfff0 from EL0 to EL1); the handler of the current EL
// then calls resume(x0), and run_lower returns that value.

	.text
	.global	run_lower
run_lower:
	mrs	x9, CurrentEL
	adrp	x10, saved_ctx
	add	x10, x10, :lo12:saved_ctx
	cmp	x9, #8
	b.ne	1f
	add	x10, x10, #112		// EL2's context after EL1's
1:	stp	x19, x20, [x10, #0]
	stp	x21, x22, [x10, #16]
	stp	x23, x24, [x10, #32]
	stp	x25, x26, [x10, #48]
	stp	x27, x28, [x10, #64]
	stp	x29, x30, [x10, #80]
	mov	x12, sp
	str	x12, [x10, #96]
	cmp	x9, #8
	b.ne	2f
	msr	elr_el2, x0
	msr	spsr_el2, x3
	tst	x3, #4			// to EL1 or EL0
	b.eq	3f
	msr	sp_el1, x2
	b	4f
3:	msr	sp_el0, x2
	b	4f
2:	msr	elr_el1, x0
	msr	spsr_el1, x3
	msr	sp_el0, x2
4:	mov	x0, x1
	adr	x30, return_el1
	tst	x3, #4
	b.ne	5f
	adr	x30, return_el0
5:	isb
	eret

// fn returns here, at EL1 (HVC to EL2) or EL0 (SVC to EL1).
return_el1:
	hvc	#0xfff0
	b	.
return_el0:
	svc	#0xfff0
	b	.

// resume(ret) returns ret from the latest run_lower of the current EL.
	.global	resume
resume:
	mrs	x9, CurrentEL
	adrp	x10, saved_ctx
	add	x10, x10, :lo12:saved_ctx
	cmp	x9, #8
	b.ne	1f
	add	x10, x10, #112
1:	ldp	x19, x20, [x10, #0]
	ldp	x21, x22, [x10, #16]
	ldp	x23, x24, [x10, #32]
	ldp	x25, x26, [x10, #48]
	ldp	x27, x28, [x10, #64]
	ldp	x29, x30, [x10, #80]
	ldr	x12, [x10, #96]
	mov	sp, x12
	ret

	.bss
	.balign	16
saved_ctx:
	.skip	224
