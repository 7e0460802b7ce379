// The guest hypervisor G of the recurse program: its EL2 vector table and
// its calls into its guest K. G runs at EL1 under HCR_EL2.NV=1, believing
// it is at EL2, so this is EL2 code: it uses ELR_EL2, SPSR_EL2, SP_EL1 and
// ERET, which trap to the program's EL2 (H), which emulates them.
//
// Each vector entry saves x0 and x1, puts 16 + its index in x0 and joins
// the program's EL2 vector code (start.S) at the same entry's branch to
// the common save: the frame is the same, and el2_exception tells G's
// exceptions from H's by the index.

	.text
	.balign	0x800
	.global	g_vectors
g_vectors:
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	.balign	0x80
	sub	sp, sp, #288
	stp	x0, x1, [sp, #0]
	mov	x0, #(16 + \i)
	b	vectors_el2 + \i * 0x80 + 12
	.endr

// u64 g_run(u64 (*fn)(u64), u64 arg, u64 sp, u64 spsr) enters G's guest:
// fn(arg) at the EL spsr names, SP_EL1 = sp. fn returns to k_return,
// which calls PSCI SYSTEM_OFF over HVC with its result in x1; G's
// handler then calls g_resume(result), and g_run returns it.
	.balign	8
	.global	g_run
g_run:
	adrp	x10, g_ctx
	add	x10, x10, :lo12:g_ctx
	stp	x19, x20, [x10, #0]
	stp	x21, x22, [x10, #16]
	stp	x23, x24, [x10, #32]
	stp	x25, x26, [x10, #48]
	stp	x27, x28, [x10, #64]
	stp	x29, x30, [x10, #80]
	mov	x12, sp
	str	x12, [x10, #96]
	msr	elr_el2, x0
	msr	spsr_el2, x3
	msr	sp_el1, x2
	mov	x0, x1
	adr	x30, k_return
	eret

k_return:
	mov	x1, x0
	movz	x0, #0x0008
	movk	x0, #0x8400, lsl #16
	hvc	#0
	b	.

	.global	g_resume
g_resume:
	adrp	x10, g_ctx
	add	x10, x10, :lo12:g_ctx
	ldp	x19, x20, [x10, #0]
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
g_ctx:
	.skip	112
