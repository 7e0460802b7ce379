// Start-up and exception vectors shared by the test programs.
//
// _start runs at the EL QEMU's -kernel (and `nestmmu exec`) enters: EL2
// with -M virt,virtualization=on, EL1 without. It sets the stack and
// VBAR of that EL (and VBAR_EL1 from EL2), zeroes .bss, calls main and
// powers off through PSCI.
//
// Every vector saves x0-x30 and ELR, SPSR, ESR, FAR of its EL in a frame
// on the stack, calls el2_exception/el1_exception(frame, vector index)
// and restores the frame (the handler may change it) before ERET.

	.section .text.start, "ax"
	.global _start
_start:
	mrs	x19, CurrentEL
	lsr	x19, x19, #2
	cmp	x19, #2
	b.ne	1f
	ldr	x1, =__stack_el2
	mov	sp, x1
	adr	x1, vectors_el2
	msr	vbar_el2, x1
	b	2f
1:	ldr	x1, =__stack_el1
	mov	sp, x1
2:	adr	x1, vectors_el1
	msr	vbar_el1, x1
	isb
	ldr	x1, =__bss_start
	ldr	x2, =__bss_end
3:	cmp	x1, x2
	b.hs	4f
	str	xzr, [x1], #8
	b	3b
4:	adrp	x1, boot_el
	str	x19, [x1, :lo12:boot_el]
	bl	main
	bl	psci_system_off
5:	b	5b

	.macro	save el
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x19, [sp, #144]
	stp	x20, x21, [sp, #160]
	stp	x22, x23, [sp, #176]
	stp	x24, x25, [sp, #192]
	stp	x26, x27, [sp, #208]
	stp	x28, x29, [sp, #224]
	mrs	x2, elr_el\el
	stp	x30, x2, [sp, #240]
	mrs	x2, spsr_el\el
	mrs	x3, esr_el\el
	stp	x2, x3, [sp, #256]
	mrs	x2, far_el\el
	str	x2, [sp, #272]
	.if \el == 1
	// The handlers use data EL0 can reach: PSTATE.PAN off (ERET restores it).
	msr	pan, #0
	.endif
	mov	x1, x0
	mov	x0, sp
	bl	el\el\()_exception
	ldp	x30, x2, [sp, #240]
	msr	elr_el\el, x2
	ldr	x2, [sp, #256]
	msr	spsr_el\el, x2
	ldp	x0, x1, [sp, #0]
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x19, [sp, #144]
	ldp	x20, x21, [sp, #160]
	ldp	x22, x23, [sp, #176]
	ldp	x24, x25, [sp, #192]
	ldp	x26, x27, [sp, #208]
	ldp	x28, x29, [sp, #224]
	add	sp, sp, #288
	eret
	.endm

	.macro	ventry idx, common
	.balign	0x80
	sub	sp, sp, #288
	stp	x0, x1, [sp, #0]
	mov	x0, #\idx
	b	\common
	.endm

	.macro	vectors name, common
	.balign	0x800
	.global	\name
\name:
	.irp	i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	ventry	\i, \common
	.endr
	.endm

	.text
	vectors	vectors_el2, common_el2
	vectors	vectors_el1, common_el1
common_el2:
	save	2
common_el1:
	save	1
