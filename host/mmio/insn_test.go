package mmio

import (
	"errors"
	"testing"
)

func TestDecodeInstructionForms(t *testing.T) {
	// want is derived from the field values named in each encoder call and
	// the decode pseudocode: size = 1<<size; opc<1>=0: opc<0> selects load,
	// regsize 64 iff size=11; opc<1>=1: sign-extending load, opc<0>=1 means
	// a W destination; offsets scale by the access size where the form does.
	tests := []struct {
		name string
		word uint32
		op   string // arm64asm mnemonic
		want Insn
	}{
		{"LDR X0,[X1] (assembler 0xf9400020)", 0xf9400020, "LDR",
			Insn{Size: 8, Sixtyfour: true, Rt: 0, Rn: 1, Mode: ModeOffset}},
		{"STR W2,[X3,#4] (assembler 0xb9000462)", 0xb9000462, "STR",
			Insn{Size: 4, Write: true, Rt: 2, Rn: 3, Mode: ModeOffset, Imm: 4}},
		// size=11 opc=01 imm12=0xfff: offset 0xfff<<3.
		{"LDR Xt uimm max", encUImm(3, 1, 0xfff, 4, 5), "LDR",
			Insn{Size: 8, Sixtyfour: true, Rt: 5, Rn: 4, Mode: ModeOffset, Imm: 0xfff << 3}},
		// size=00 opc=01: LDRB, imm12 unscaled.
		{"LDRB W7,[X8,#0x123]", encUImm(0, 1, 0x123, 8, 7), "LDRB",
			Insn{Size: 1, Rt: 7, Rn: 8, Mode: ModeOffset, Imm: 0x123}},
		// size=01 opc=00: STRH, offset imm12<<1.
		{"STRH W9,[SP,#0x10]", encUImm(1, 0, 8, 31, 9), "STRH",
			Insn{Size: 2, Write: true, Rt: 9, Rn: 31, Mode: ModeOffset, Imm: 16}},
		// size=00 opc=10: LDRSB into X; opc=11: LDRSB into W.
		{"LDRSB X0,[X1] (assembler 0x39800020)", 0x39800020, "LDRSB",
			Insn{Size: 1, SignExtend: true, Sixtyfour: true, Rn: 1, Mode: ModeOffset}},
		{"LDRSB W0,[X1] (assembler 0x39c00020)", 0x39c00020, "LDRSB",
			Insn{Size: 1, SignExtend: true, Rn: 1, Mode: ModeOffset}},
		{"LDRSH W3,[X4,#2]", encUImm(1, 3, 1, 4, 3), "LDRSH",
			Insn{Size: 2, SignExtend: true, Rt: 3, Rn: 4, Mode: ModeOffset, Imm: 2}},
		{"LDRSH X3,[X4]", encUImm(1, 2, 0, 4, 3), "LDRSH",
			Insn{Size: 2, SignExtend: true, Sixtyfour: true, Rt: 3, Rn: 4, Mode: ModeOffset}},
		// size=10 opc=10: LDRSW, offset imm12<<2.
		{"LDRSW X0,[X1] (assembler 0xb9800020)", 0xb9800020, "LDRSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Rn: 1, Mode: ModeOffset}},
		{"LDRSW X2,[X3,#8]", encUImm(2, 2, 2, 3, 2), "LDRSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Rt: 2, Rn: 3, Mode: ModeOffset, Imm: 8}},
		{"STR XZR,[X1] (Rt=31 is XZR)", encUImm(3, 0, 0, 1, 31), "STR",
			Insn{Size: 8, Write: true, Sixtyfour: true, Rt: 31, Rn: 1, Mode: ModeOffset}},
		{"LDR WZR,[SP]", encUImm(2, 1, 0, 31, 31), "LDR",
			Insn{Size: 4, Rt: 31, Rn: 31, Mode: ModeOffset}},

		// imm9 forms: imm9 is a signed byte offset, never scaled.
		{"LDUR X0,[X1,#-8] (assembler 0xf85f8020)", 0xf85f8020, "LDUR",
			Insn{Size: 8, Sixtyfour: true, Rn: 1, Mode: ModeOffset, Imm: -8}},
		{"STURH W1,[X2,#255]", encImm9(1, 0, 255, op2Unscaled, 2, 1), "STURH",
			Insn{Size: 2, Write: true, Rt: 1, Rn: 2, Mode: ModeOffset, Imm: 255}},
		{"LDURSB W1,[X2,#-256]", encImm9(0, 3, -256, op2Unscaled, 2, 1), "LDURSB",
			Insn{Size: 1, SignExtend: true, Rt: 1, Rn: 2, Mode: ModeOffset, Imm: -256}},
		{"LDR X0,[X1],#8 (assembler 0xf8408420)", 0xf8408420, "LDR",
			Insn{Size: 8, Sixtyfour: true, Rn: 1, Mode: ModePostIndex, Imm: 8, Writeback: true}},
		{"LDR X0,[X1,#8]! (assembler 0xf8408c20)", 0xf8408c20, "LDR",
			Insn{Size: 8, Sixtyfour: true, Rn: 1, Mode: ModePreIndex, Imm: 8, Writeback: true}},
		{"STRB W3,[SP,#-1]!", encImm9(0, 0, -1, op2Pre, 31, 3), "STRB",
			Insn{Size: 1, Write: true, Rt: 3, Rn: 31, Mode: ModePreIndex, Imm: -1, Writeback: true}},
		{"LDRSW X5,[X6],#-4", encImm9(2, 2, -4, op2Post, 6, 5), "LDRSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Rt: 5, Rn: 6, Mode: ModePostIndex, Imm: -4, Writeback: true}},
		// WBOVERLAPLD: load with Rt == Rn, n != 31 -> Constraint_WBSUPPRESS.
		{"LDR X1,[X1,#8]! suppresses writeback", encImm9(3, 1, 8, op2Pre, 1, 1), "LDR",
			Insn{Size: 8, Sixtyfour: true, Rt: 1, Rn: 1, Mode: ModePreIndex, Imm: 8}},
		// WBOVERLAPST: store with Rt == Rn -> Constraint_NONE, writeback kept.
		{"STR X1,[X1],#8 keeps writeback", encImm9(3, 0, 8, op2Post, 1, 1), "STR",
			Insn{Size: 8, Write: true, Sixtyfour: true, Rt: 1, Rn: 1, Mode: ModePostIndex, Imm: 8, Writeback: true}},
		// n == 31 is SP, not the transfer register: no overlap.
		{"LDR XZR,[SP],#16", encImm9(3, 1, 16, op2Post, 31, 31), "LDR",
			Insn{Size: 8, Sixtyfour: true, Rt: 31, Rn: 31, Mode: ModePostIndex, Imm: 16, Writeback: true}},
		{"LDTR W0,[X1,#4]", encImm9(2, 1, 4, op2Unpriv, 1, 0), "LDTR",
			Insn{Size: 4, Rn: 1, Mode: ModeOffset, Imm: 4, Unprivileged: true}},
		{"STTRB W0,[X1]", encImm9(0, 0, 0, op2Unpriv, 1, 0), "STTRB",
			Insn{Size: 1, Write: true, Rn: 1, Mode: ModeOffset, Unprivileged: true}},
		{"LDTRSH X0,[X1]", encImm9(1, 2, 0, op2Unpriv, 1, 0), "LDTRSH",
			Insn{Size: 2, SignExtend: true, Sixtyfour: true, Rn: 1, Mode: ModeOffset, Unprivileged: true}},

		// Register offset: shift = S ? size : 0.
		{"LDR X0,[X1,X2] (assembler 0xf8626820)", 0xf8626820, "LDR",
			Insn{Size: 8, Sixtyfour: true, Rn: 1, Mode: ModeOffset, RegOffset: true, Rm: 2, Extend: ExtendLSL}},
		{"LDR W0,[X1,W2,UXTW #2] (assembler 0xb8625820)", 0xb8625820, "LDR",
			Insn{Size: 4, Rn: 1, Mode: ModeOffset, RegOffset: true, Rm: 2, Extend: ExtendUXTW, Shift: 2}},
		{"STR X3,[X4,W5,SXTW #3]", encReg(3, 0, 5, 0b110, 1, 4, 3), "STR",
			Insn{Size: 8, Write: true, Sixtyfour: true, Rt: 3, Rn: 4, Mode: ModeOffset, RegOffset: true, Rm: 5, Extend: ExtendSXTW, Shift: 3}},
		{"LDRH W3,[SP,X5,LSL #1]", encReg(1, 1, 5, 0b011, 1, 31, 3), "LDRH",
			Insn{Size: 2, Rt: 3, Rn: 31, Mode: ModeOffset, RegOffset: true, Rm: 5, Extend: ExtendLSL, Shift: 1}},
		{"LDRSB X3,[X4,X5,SXTX] S=1 byte shift is 0", encReg(0, 2, 5, 0b111, 1, 4, 3), "LDRSB",
			Insn{Size: 1, SignExtend: true, Sixtyfour: true, Rt: 3, Rn: 4, Mode: ModeOffset, RegOffset: true, Rm: 5, Extend: ExtendSXTX}},
		{"LDR X0,[X1,XZR] (Rm=31 is XZR)", encReg(3, 1, 31, 0b011, 0, 1, 0), "LDR",
			Insn{Size: 8, Sixtyfour: true, Rn: 1, Mode: ModeOffset, RegOffset: true, Rm: 31, Extend: ExtendLSL}},

		// Literal: offset imm19:'00' sign-extended; opc 00 W, 01 X, 10 LDRSW.
		{"LDR W4,label-4", encLit(0, -1, 4), "LDR",
			Insn{Size: 4, Rt: 4, Mode: ModeLiteral, Imm: -4}},
		{"LDR X4,label+0x100", encLit(1, 0x40, 4), "LDR",
			Insn{Size: 8, Sixtyfour: true, Rt: 4, Mode: ModeLiteral, Imm: 0x100}},
		{"LDRSW X4,label", encLit(2, 2, 4), "LDRSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Rt: 4, Mode: ModeLiteral, Imm: 8}},

		// Pairs: imm7 scaled by 4 (opc 00/01) or 8 (opc 10).
		{"LDP X29,X30,[SP],#16 (assembler 0xa8c17bfd)", 0xa8c17bfd, "LDP",
			Insn{Size: 8, Sixtyfour: true, Pair: true, Rt: 29, Rt2: 30, Rn: 31, Mode: ModePostIndex, Imm: 16, Writeback: true}},
		{"STP X29,X30,[SP,#-16]! (assembler 0xa9bf7bfd)", 0xa9bf7bfd, "STP",
			Insn{Size: 8, Write: true, Sixtyfour: true, Pair: true, Rt: 29, Rt2: 30, Rn: 31, Mode: ModePreIndex, Imm: -16, Writeback: true}},
		{"LDP W1,W2,[X3,#-256]", encPair(0, pairOffset, 1, -64, 2, 3, 1), "LDP",
			Insn{Size: 4, Pair: true, Rt: 1, Rt2: 2, Rn: 3, Mode: ModeOffset, Imm: -256}},
		{"LDPSW X0,X1,[X2] (assembler 0x69400440)", 0x69400440, "LDPSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Pair: true, Rt: 0, Rt2: 1, Rn: 2, Mode: ModeOffset}},
		{"LDPSW X0,X1,[X2,#8]!", encPair(1, pairPre, 1, 2, 1, 2, 0), "LDPSW",
			Insn{Size: 4, SignExtend: true, Sixtyfour: true, Pair: true, Rt: 0, Rt2: 1, Rn: 2, Mode: ModePreIndex, Imm: 8, Writeback: true}},
		{"STNP X1,XZR,[X2,#504]", encPair(2, pairNT, 0, 63, 31, 2, 1), "STNP",
			Insn{Size: 8, Write: true, Sixtyfour: true, Pair: true, Rt: 1, Rt2: 31, Rn: 2, Mode: ModeOffset, Imm: 504}},
		{"LDNP W1,W2,[X3]", encPair(0, pairNT, 1, 0, 2, 3, 1), "LDNP",
			Insn{Size: 4, Pair: true, Rt: 1, Rt2: 2, Rn: 3, Mode: ModeOffset}},
		// WBOVERLAPLD on the second register suppresses writeback.
		{"LDP X1,X2,[X2],#16", encPair(2, pairPost, 1, 2, 2, 2, 1), "LDP",
			Insn{Size: 8, Sixtyfour: true, Pair: true, Rt: 1, Rt2: 2, Rn: 2, Mode: ModePostIndex, Imm: 16}},
		{"STP X2,X3,[X2,#16]! keeps writeback", encPair(2, pairPre, 0, 2, 3, 2, 2), "STP",
			Insn{Size: 8, Write: true, Sixtyfour: true, Pair: true, Rt: 2, Rt2: 3, Rn: 2, Mode: ModePreIndex, Imm: 16, Writeback: true}},

		// Load-acquire / store-release.
		{"LDAR X0,[X1] (assembler 0xc8dffc20)", 0xc8dffc20, "LDAR",
			Insn{Size: 8, Sixtyfour: true, AcquireRelease: true, Rn: 1, Mode: ModeOffset}},
		{"STLR W0,[X1] (assembler 0x889ffc20)", 0x889ffc20, "STLR",
			Insn{Size: 4, Write: true, AcquireRelease: true, Rn: 1, Mode: ModeOffset}},
		{"LDARB W3,[SP]", encLDAR(0, 31, 3), "LDARB",
			Insn{Size: 1, AcquireRelease: true, Rt: 3, Rn: 31, Mode: ModeOffset}},
		{"STLRH WZR,[X5]", encSTLR(1, 5, 31), "STLRH",
			Insn{Size: 2, Write: true, AcquireRelease: true, Rt: 31, Rn: 5, Mode: ModeOffset}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeInstruction(tt.word)
			if err != nil {
				t.Fatalf("DecodeInstruction(0x%08x): %v", tt.word, err)
			}
			if got.Op.String() != tt.op {
				t.Errorf("op = %s, want %s", got.Op, tt.op)
			}
			want := tt.want
			want.Word, want.Op = tt.word, got.Op
			if got != want {
				t.Errorf("DecodeInstruction(0x%08x) =\n%+v\nwant\n%+v", tt.word, got, want)
			}
		})
	}
}

func TestDecodeInstructionRefused(t *testing.T) {
	tests := []struct {
		name string
		word uint32
		kind error // specific sentinel; all must also match ErrCannotEmulate
	}{
		{"NOP", 0xd503201f, ErrNotLoadStore},
		{"ADD X0,X1,X2", 0x8b020020, ErrNotLoadStore},
		{"DC ZVA,X0", 0xd50b7420, ErrNotLoadStore},
		{"all zeros (UDF #0)", 0x00000000, ErrUnallocated},
		{"all ones", 0xffffffff, ErrUnallocated},
		// V=1: SIMD&FP register loads/stores.
		{"LDR Q0,[X1] (assembler 0x3dc00020)", 0x3dc00020, ErrCannotEmulate},
		{"LDR D0,[X1] (assembler 0xfd400020)", 0xfd400020, ErrCannotEmulate},
		{"STP D0,D1,[X2]", encPair(1, pairOffset, 0, 0, 1, 2, 0) | 1<<26, ErrCannotEmulate},
		{"LD1 {V0.16B},[X1] (assembler 0x4c407020)", 0x4c407020, ErrCannotEmulate},
		// Exclusives: o2=0.
		{"LDXR X0,[X1] (assembler 0xc85f7c20)", 0xc85f7c20, ErrCannotEmulate},
		{"STXR W2,X0,[X1]", encExcl(3, 0, 0, 0, 2, 0, 31, 1, 0), ErrCannotEmulate},
		{"LDAXP X0,X1,[X2]", encExcl(3, 0, 1, 1, 31, 1, 1, 2, 0), ErrCannotEmulate},
		// Prefetches never access memory.
		{"PRFM PLDL1KEEP,[X0] (assembler 0xf9800000)", 0xf9800000, ErrCannotEmulate},
		{"PRFUM", encImm9(3, 2, 0, op2Unscaled, 0, 0), ErrCannotEmulate},
		{"PRFM literal", encLit(3, 1, 0), ErrCannotEmulate},
		// Unallocated size/opc combinations.
		{"size=10 opc=11 (uimm)", encUImm(2, 3, 0, 1, 0), ErrUnallocated},
		{"size=11 opc=11 (uimm)", encUImm(3, 3, 0, 1, 0), ErrUnallocated},
		{"size=11 opc=10 pre-index", encImm9(3, 2, 0, op2Pre, 1, 0), ErrUnallocated},
		{"register offset option=000", encReg(3, 1, 2, 0b000, 0, 1, 0), ErrUnallocated},
		{"pair opc=11", encPair(3, pairOffset, 1, 0, 1, 2, 0), ErrUnallocated},
		{"LDNP opc=01", encPair(1, pairNT, 1, 0, 1, 2, 0), ErrUnallocated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeInstruction(tt.word)
			if err == nil {
				t.Fatalf("DecodeInstruction(0x%08x) accepted", tt.word)
			}
			if !errors.Is(err, ErrCannotEmulate) {
				t.Errorf("error %q does not match ErrCannotEmulate", err)
			}
			// arm64asm may reject an encoding the Arm ARM calls
			// unallocated before this package's own checks see it, or
			// accept it and leave the rejection to them; either way the
			// guest gets an abort. Accept both kinds for those.
			if !errors.Is(err, tt.kind) && !(tt.kind == ErrUnallocated && errors.Is(err, ErrCannotEmulate)) {
				t.Errorf("error %q does not match %v", err, tt.kind)
			}
			t.Log(err)
		})
	}
}
