package interp

import (
	"fmt"

	"golang.org/x/arch/arm64/arm64asm"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/mem"
)

// insn is a decoded instruction: its handler and the operand fields the
// handler reads, extracted once from the encoding.
type insn struct {
	fn   handler
	word uint32
	// rd, rn, rm, ra: register fields (Rd/Rt, Rn, Rm/Rs, Ra/Rt2).
	rd, rn, rm, ra uint8
	sf             bool  // 64-bit operation
	setFlags       bool  // S
	sub            bool  // subtract (add/sub), or another per-class switch
	op             uint8 // class-specific operation
	size           uint8 // access size in bytes
	shift          uint8 // shift type or amount
	amount         uint8
	imm            uint64
	imm2           uint64
	sysreg         sysRegRef
}

// handler executes d. It returns true when execution continues with the
// next instruction, false when it has set the PC (branch or exception).
type handler func(c *CPU, d *insn) bool

// codePage holds the decoded instructions of one 4 KiB physical page.
type codePage struct {
	insns [1024]insn
}

// decodeCache maps physical pages to their decoded instructions.
type decodeCache struct {
	pages map[mem.PA]*codePage
}

func (dc *decodeCache) init() { dc.pages = make(map[mem.PA]*codePage) }

// page returns the decoded page at pa (4 KiB aligned), creating it.
func (dc *decodeCache) page(pa mem.PA) *codePage {
	p := dc.pages[pa]
	if p == nil {
		p = new(codePage)
		dc.pages[pa] = p
	}
	return p
}

// invalidate drops the decoded instructions overlapping [pa, pa+size).
func (dc *decodeCache) invalidate(pa mem.PA, size int) {
	for a := pa &^ 3; a < pa+mem.PA(size); a += 4 {
		if p := dc.pages[a&^0xfff]; p != nil {
			// Only the handler goes: an instruction that overwrites itself
			// still reads its own fields while it completes.
			p.insns[a>>2&1023].fn = nil
		}
	}
}

// InvalidateCode drops every decoded instruction (IC IALLU, IC IALLUIS).
func (c *CPU) InvalidateCode() {
	clear(c.cache.pages)
	c.fVPage = ^uint64(0)
}

// CodeWritten drops the decoded instructions overlapping [pa, pa+size):
// for writes to the PE's memory that do not go through the PE, such as a
// hypervisor's below the code (the PE's writes are watched already).
func (c *CPU) CodeWritten(pa mem.PA, size int) {
	if size <= 0 {
		return
	}
	for p := pa &^ 0xfff; p < pa+mem.PA(size); p += 0x1000 {
		if _, ok := c.cache.pages[p]; ok {
			c.cache.invalidate(pa, size)
			return
		}
	}
}

// codeWatch wraps the PE's memory: a write that reaches a page holding
// decoded instructions drops them (stores, hardware updates of
// descriptors, FEAT_NV2 register stores alike).
type codeWatch struct {
	cpu.DataMemory
	c *CPU
}

func (w *codeWatch) Write(pa mem.PA, size int, v uint64) bool {
	if _, ok := w.c.cache.pages[pa&^0xfff]; ok {
		w.c.cache.invalidate(pa, size)
	}
	return w.DataMemory.Write(pa, size, v)
}

func (w *codeWatch) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	if _, ok := w.c.cache.pages[pa&^0xfff]; ok {
		w.c.cache.invalidate(pa, 8)
	}
	return w.DataMemory.CompareAndSwap64(pa, old, new)
}

// decodeInto reads the instruction word at pa and decodes it into d.
func (c *CPU) decodeInto(d *insn, pa mem.PA) {
	v, ok := c.PE.Mem.Read(pa, 4)
	if !ok {
		// Fetched a moment ago: only a device that changed under us.
		*d = insn{fn: undefinedInsn, word: 0}
		return
	}
	*d = Decode(uint32(v))
}

// Decode decodes one instruction word. An encoding the interpreter does
// not implement decodes to a handler that takes the UNDEFINED exception.
func Decode(w uint32) (d insn) {
	defer func() {
		// arm64asm is not ours: a panic inside it on some encoding must
		// not take the machine down. The encoding is UNDEFINED here.
		if r := recover(); r != nil {
			d = insn{fn: unimplemented, word: w, imm: uint64(whyDecoderPanic)}
		}
	}()
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	if isFPSIMD(w) {
		// Classified by the encoding groups alone, so that every FP/SIMD
		// encoding (arm64asm knows only some) meets the access traps.
		return insn{fn: fpInsn, word: w}
	}
	if w>>25&15 == 0b0010 {
		// The SVE encoding space (op0 = 0b0010 in the A64 top-level
		// table), which arm64asm does not decode: its enable traps first.
		return insn{fn: sveInsn, word: w}
	}
	in, err := arm64asm.Decode(b[:])
	if err != nil {
		d = decodeExtra(w)
	} else {
		d = compile(in)
	}
	d.word = w
	if d.fn == nil {
		d.fn = unimplemented
	}
	return d
}

// isFPSIMD reports the A64 encoding groups of SIMD and floating point:
// data processing (op0 x111) and loads and stores of SIMD&FP registers
// (op0 x1x0 with bit 26 set).
func isFPSIMD(w uint32) bool {
	return w>>25&7 == 0b111 || (w>>25&5 == 0b100 && w>>26&1 != 0)
}

// Disassemble returns the assembly text of w as arm64asm prints it, or a
// note for the encodings only the interpreter's own table knows.
func Disassemble(w uint32) string {
	b := [4]byte{byte(w), byte(w >> 8), byte(w >> 16), byte(w >> 24)}
	if in, err := arm64asm.Decode(b[:]); err == nil {
		return arm64asm.GNUSyntax(in)
	}
	if d := decodeExtra(w); d.fn != nil {
		return extraName(w)
	}
	return fmt.Sprintf(".inst %#08x", w)
}

// Reasons an encoding is not executed, reported by Strict.
const (
	whyUnknown = iota
	whyDecoderPanic
)

// unimplemented takes the UNDEFINED exception for an encoding the
// interpreter does not execute.
func unimplemented(c *CPU, d *insn) bool {
	why := "not implemented: " + Disassemble(d.word)
	switch d.imm {
	case whyDecoderPanic:
		why = "arm64asm panicked decoding it"
	}
	return c.undefined(d, why)
}

// undefinedInsn is an encoding the architecture makes UNDEFINED in the
// modelled PE (UDF, unallocated encodings, DCPS outside Debug state, ...).
func undefinedInsn(c *CPU, d *insn) bool { return c.undefined(d, "") }
