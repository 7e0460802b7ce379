package mmio

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
)

// singleCase is a random single-register load or store that the
// architecture reports with ISV=1 (no writeback, not exclusive), together
// with the register file that makes it access va.
type singleCase struct {
	word uint32
	esr  ESR // ISV=1 syndrome the hardware would report
	va   uint64
	regs fakeRegs
}

// genSingle draws a random ISV=1-eligible instruction. The syndrome is
// written from the semantic choice (size, direction, signedness, register
// width, acquire/release), the word from the encoding tables, and the base
// register value from the address arithmetic of each form, so the two decode
// paths are checked against the rules and against each other.
func genSingle(r *rand.Rand) singleCase {
	var c singleCase
	for i := range c.regs.x {
		c.regs.x[i] = r.Uint64()
	}
	c.regs.sp, c.regs.pc = r.Uint64(), r.Uint64()

	// Semantic choice: (size, opc) per the load/store register decode.
	type sem struct {
		size, opc     uint32
		write, signed bool
		sf            bool
	}
	var s sem
	switch r.IntN(4) {
	case 0: // STR*
		s.size = r.Uint32N(4)
		s = sem{size: s.size, opc: 0, write: true, sf: s.size == 3}
	case 1: // LDR, LDRB, LDRH (zero-extending)
		s.size = r.Uint32N(4)
		s = sem{size: s.size, opc: 1, sf: s.size == 3}
	case 2: // LDRS* into X
		s = sem{size: r.Uint32N(3), opc: 2, signed: true, sf: true}
	case 3: // LDRSB/LDRSH into W
		s = sem{size: r.Uint32N(2), opc: 3, signed: true}
	}
	form := r.IntN(6)
	switch {
	case form == 4 && s.signed: // LDAR has no sign-extending form
		s = sem{size: s.size, opc: 1, sf: s.size == 3}
	case form == 5 && s.signed: // literal: LDRSW
		s = sem{size: 2, opc: 2, signed: true, sf: true}
	case form == 5 && s.size == 3 && !s.write: // literal: LDR X
		s = sem{size: 3, opc: 1, sf: true}
	case form == 5: // literal: LDR W
		s = sem{size: 2, opc: 0, sf: false}
	}
	rt := r.Uint32N(32)
	rn := r.Uint32N(32)
	size := uint64(1) << s.size
	// A size-aligned VA never crosses a page.
	c.va = r.Uint64() &^ (size - 1) & (1<<48 - 1)
	ar := false
	var base uint64
	switch form {
	case 0: // unsigned immediate: offset imm12 << size
		imm12 := r.Uint32N(4096)
		c.word = encUImm(s.size, s.opc, imm12, rn, rt)
		base = c.va - uint64(imm12)<<s.size
	case 1, 2: // unscaled or unprivileged: signed imm9 bytes
		imm9 := int32(r.IntN(512)) - 256
		op2 := uint32(op2Unscaled)
		if form == 2 {
			op2 = op2Unpriv
		}
		c.word = encImm9(s.size, s.opc, imm9, op2, rn, rt)
		base = c.va - uint64(int64(imm9))
	case 3: // register offset
		rm := r.Uint32N(32)
		for rm == rn {
			rm = r.Uint32N(32)
		}
		option := []uint32{0b010, 0b011, 0b110, 0b111}[r.IntN(4)]
		sbit := r.Uint32N(2)
		var idx uint64
		if rm != 31 {
			idx = c.regs.x[rm]
		}
		switch option {
		case 0b010:
			idx = uint64(uint32(idx))
		case 0b110:
			idx = uint64(int64(int32(uint32(idx))))
		}
		if sbit == 1 {
			idx <<= s.size
		}
		c.word = encReg(s.size, s.opc, rm, option, sbit, rn, rt)
		base = c.va - idx
	case 4: // LDAR/STLR: base only
		ar = true
		if s.write {
			c.word = encSTLR(s.size, rn, rt)
		} else {
			c.word = encLDAR(s.size, rn, rt)
		}
		base = c.va
	case 5: // literal: PC + imm19*4
		imm19 := int32(r.IntN(1<<19)) - 1<<18
		c.word = encLit(s.opc, imm19, rt)
		c.regs.pc = c.va - uint64(int64(imm19)*4)
	}
	if form != 5 {
		if rn == 31 {
			c.regs.sp = base
		} else {
			c.regs.x[rn] = base
		}
	}
	c.esr = esrDA(true, uint8(s.size), s.signed, uint8(rt), s.sf, ar, s.write)
	return c
}

// TestSyndromeMatchesInstruction: for random ISV=1 syndromes and the matching
// instruction word, decoding the syndrome and decoding the instruction give
// the same access.
func TestSyndromeMatchesInstruction(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := 0; i < n; i++ {
		c := genSingle(r)
		ipa := r.Uint64()&(1<<40-1)&^0xfff | c.va&0xfff
		a1, err1 := Decode(c.esr, c.va, ipa, &c.regs, nil)
		a0, err0 := Decode(c.esr&^(1<<24), c.va, ipa, &c.regs, fetchWord(c.word))
		if err1 != nil || err0 != nil {
			t.Fatalf("word 0x%08x esr %#x va %#x: syndrome err %v, instruction err %v", c.word, uint64(c.esr), c.va, err1, err0)
		}
		if a1 != a0 {
			t.Fatalf("word 0x%08x esr %#x:\nsyndrome    %+v\ninstruction %+v", c.word, uint64(c.esr), a1, a0)
		}
	}
}

// asmMnemonic is the arm64asm mnemonic an Insn must have, from the A64
// mnemonic naming rules: LDUR/LDTR for the unscaled/unprivileged forms,
// S for sign-extending loads, B/H/W size suffixes, NP for non-temporal pairs.
func asmMnemonic(in Insn) string {
	w := in.Word
	dir := "LD"
	if in.Write {
		dir = "ST"
	}
	if in.Pair {
		switch {
		case in.SignExtend:
			return "LDPSW"
		case w>>23&3 == 0:
			return dir + "NP"
		}
		return dir + "P"
	}
	suffix := ""
	switch {
	case in.SignExtend:
		suffix = "S" + string("BHW"[in.Size>>1])
	case in.Size == 1:
		suffix = "B"
	case in.Size == 2:
		suffix = "H"
	}
	switch {
	case in.AcquireRelease && in.Write:
		return "STLR" + suffix
	case in.AcquireRelease:
		return "LDAR" + suffix
	case in.Unprivileged:
		return dir + "TR" + suffix
	case in.Mode == ModeOffset && !in.RegOffset && w>>24&1 == 0:
		return dir + "UR" + suffix
	}
	return dir + "R" + suffix
}

// checkAgainstAsm compares an accepted Insn with arm64asm's independent
// decoding of the same word: mnemonic, transfer registers and width, base,
// addressing mode, offset and index.
func checkAgainstAsm(in Insn) error {
	inst, err := asmDecode(in.Word)
	if err != nil {
		return err
	}
	if got, want := inst.Op.String(), asmMnemonic(in); got != want {
		return fmt.Errorf("0x%08x (%s): mnemonic %s, this package decoded %s", in.Word, inst, got, want)
	}
	reg := func(n uint8) arm64asm.Reg {
		if in.Sixtyfour {
			return arm64asm.X0 + arm64asm.Reg(n)
		}
		return arm64asm.W0 + arm64asm.Reg(n)
	}
	i := 0
	if inst.Args[i] != reg(in.Rt) {
		return fmt.Errorf("0x%08x (%s): Rt %v, decoded %v", in.Word, inst, inst.Args[i], reg(in.Rt))
	}
	i++
	if in.Pair {
		if inst.Args[i] != reg(in.Rt2) {
			return fmt.Errorf("0x%08x (%s): Rt2 %v, decoded %v", in.Word, inst, inst.Args[i], reg(in.Rt2))
		}
		i++
	}
	switch m := inst.Args[i].(type) {
	case arm64asm.PCRel:
		if in.Mode != ModeLiteral || int64(m) != in.Imm {
			return fmt.Errorf("0x%08x (%s): literal %d, decoded mode %v imm %d", in.Word, inst, int64(m), in.Mode, in.Imm)
		}
	case arm64asm.MemImmediate:
		if m.Base != arm64asm.RegSP(arm64asm.X0+arm64asm.Reg(in.Rn)) {
			return fmt.Errorf("0x%08x (%s): base %v, decoded %d", in.Word, inst, m.Base, in.Rn)
		}
		want := map[Mode]arm64asm.AddrMode{ModeOffset: arm64asm.AddrOffset, ModePreIndex: arm64asm.AddrPreIndex, ModePostIndex: arm64asm.AddrPostIndex}[in.Mode]
		if m.Mode != want {
			return fmt.Errorf("0x%08x (%s): mode %d, decoded %v", in.Word, inst, m.Mode, in.Mode)
		}
		// The immediate is unexported; read it back from the text.
		s := m.String()
		imm := int64(0)
		if k := strings.LastIndex(s, "#"); k >= 0 {
			imm, err = strconv.ParseInt(strings.TrimRight(s[k+1:], "]!"), 0, 64)
			if err != nil {
				return fmt.Errorf("0x%08x: parsing %q: %v", in.Word, s, err)
			}
		}
		if imm != in.Imm {
			return fmt.Errorf("0x%08x (%s): offset %d, decoded %d", in.Word, inst, imm, in.Imm)
		}
	case arm64asm.MemExtend:
		if !in.RegOffset || m.Base != arm64asm.RegSP(arm64asm.X0+arm64asm.Reg(in.Rn)) {
			return fmt.Errorf("0x%08x (%s): base %v, decoded %d", in.Word, inst, m.Base, in.Rn)
		}
		idx := arm64asm.X0 + arm64asm.Reg(in.Rm)
		if in.Extend == ExtendUXTW || in.Extend == ExtendSXTW {
			idx = arm64asm.W0 + arm64asm.Reg(in.Rm)
		}
		if m.Index != idx {
			return fmt.Errorf("0x%08x (%s): index %v, decoded %v", in.Word, inst, m.Index, idx)
		}
		ext := map[Extend]string{ExtendUXTW: "UXTW", ExtendLSL: "LSL", ExtendSXTW: "SXTW", ExtendSXTX: "SXTX"}[in.Extend]
		if m.Extend.String() != ext {
			return fmt.Errorf("0x%08x (%s): extend %v, decoded %s", in.Word, inst, m.Extend, ext)
		}
		amount := m.Amount
		if m.ShiftMustBeZero {
			amount = 0
		}
		if amount != in.Shift {
			return fmt.Errorf("0x%08x (%s): shift %d, decoded %d", in.Word, inst, amount, in.Shift)
		}
	default:
		return fmt.Errorf("0x%08x (%s): unexpected memory operand %T", in.Word, inst, m)
	}
	return nil
}

// TestDecoderAgreesWithArm64asm draws random words from the load/store
// encoding space (bit 27 = 1, bit 25 = 0) and, for every word this package
// accepts, compares its field extraction with arm64asm's decoding.
func TestDecoderAgreesWithArm64asm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 200000
	if testing.Short() {
		n = 20000
	}
	accepted := map[string]int{}
	for i := 0; i < n; i++ {
		w := r.Uint32()&^(1<<25) | 1<<27
		if i&1 == 0 {
			w &^= 1 << 26 // bias towards general-purpose registers
		}
		in, err := DecodeInstruction(w)
		if err != nil {
			// Whatever arm64asm decodes as a general-purpose register
			// load/store must be accepted, unless it is an exclusive
			// (every exclusive mnemonic has an X: LDXR, STLXP, ...).
			inst, aerr := asmDecode(w)
			if aerr != nil || !isMemOp(inst.Op) {
				continue
			}
			if reg, ok := inst.Args[0].(arm64asm.Reg); ok && reg <= arm64asm.XZR && !strings.Contains(inst.Op.String(), "X") {
				t.Fatalf("0x%08x (%s) refused: %v", w, inst, err)
			}
			continue
		}
		if err := checkAgainstAsm(in); err != nil {
			t.Fatal(err)
		}
		accepted[in.Op.String()]++
	}
	// Every supported mnemonic was reached.
	for _, op := range []string{"LDR", "LDRB", "LDRH", "LDRSB", "LDRSH", "LDRSW", "STR", "STRB", "STRH",
		"LDUR", "LDURSW", "STUR", "LDTR", "STTR", "LDP", "STP", "LDPSW", "LDNP", "STNP",
		"LDAR", "LDARB", "LDARH", "STLR", "STLRB", "STLRH"} {
		if accepted[op] == 0 {
			t.Errorf("no random word decoded as %s", op)
		}
	}
	t.Logf("accepted: %v", accepted)
}

// TestDecodeInstructionConcurrent decodes from many goroutines; with -race it
// checks that arm64asm's internal state is not raced on.
func TestDecodeInstructionConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := DecodeInstruction(0xa9bf7bfd); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
