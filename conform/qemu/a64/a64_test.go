package a64

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
)

// one assembles a single instruction at base 0x1000 and returns its word.
func one(t *testing.T, f func(a *Asm)) uint32 {
	t.Helper()
	a := New(0x1000)
	f(a)
	b, err := a.Finish()
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	if len(b) != 4 {
		t.Fatalf("assembled %d bytes, want 4", len(b))
	}
	return binary.LittleEndian.Uint32(b)
}

// disasm decodes w with the independent decoder and returns its text in the
// decoder's own syntax, with a branch target made absolute from pc.
func disasm(w uint32) (string, error) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	inst, err := arm64asm.Decode(b[:])
	if err != nil {
		return "", err
	}
	return inst.String(), nil
}

// TestDecodedByArm64asm encodes each instruction the decoder knows and
// compares its disassembly with the text written from the architecture's
// assembler syntax.
func TestDecodedByArm64asm(t *testing.T) {
	sr := func(name string) SysReg {
		r, ok := LookupSysReg(name)
		if !ok {
			t.Fatalf("no system register %s", name)
		}
		return r
	}
	tests := []struct {
		name string
		f    func(a *Asm)
		want string
	}{
		{"movz", func(a *Asm) { a.MOVZ(3, 0xbeef, 0) }, "MOV X3, #0xbeef"},
		{"movz lsl48", func(a *Asm) { a.MOVZ(30, 0x8400, 3) }, "MOV X30, #0x8400000000000000"},
		{"movk lsl16", func(a *Asm) { a.MOVK(0, 0x1234, 1) }, "MOVK X0, #0x1234, LSL #16"},
		{"movk lsl32", func(a *Asm) { a.MOVK(17, 0xffff, 2) }, "MOVK X17, #0xffff, LSL #32"},
		{"mov", func(a *Asm) { a.MOV(2, 28) }, "MOV X2, X28"},
		{"ldr", func(a *Asm) { a.LDR(1, 19, 120) }, "LDR X1, [X19,#120]"},
		{"ldr max", func(a *Asm) { a.LDR(0, 2, 32760) }, "LDR X0, [X2,#32760]"},
		{"ldr sp", func(a *Asm) { a.LDR(4, SP, 0) }, "LDR X4, [SP]"},
		{"str", func(a *Asm) { a.STR(5, 4, 8) }, "STR X5, [X4,#8]"},
		{"str xzr", func(a *Asm) { a.STR(XZR, 0, 0) }, "STR XZR, [X0]"},
		{"strw", func(a *Asm) { a.STRW(0, 25, 0) }, "STR W0, [X25]"},
		{"strw off", func(a *Asm) { a.STRW(3, 25, 4092) }, "STR W3, [X25,#4092]"},
		{"add imm", func(a *Asm) { a.ADDI(26, 6, 16) }, "ADD X26, X6, #0x10"},
		{"add imm lsl12", func(a *Asm) { a.ADDI(1, 1, 0x5000) }, "ADD X1, X1, #0x5, LSL #12"},
		{"sub imm", func(a *Asm) { a.SUBI(16, 16, 1) }, "SUB X16, X16, #0x1"},
		{"cmp imm", func(a *Asm) { a.CMPI(3, 10) }, "CMP X3, #0xa"},
		{"add reg", func(a *Asm) { a.ADD(6, 6, 3) }, "ADD X6, X6, X3"},
		{"cmp reg", func(a *Asm) { a.CMP(24, 26) }, "CMP X24, X26"},
		{"ubfx", func(a *Asm) { a.UBFX(11, 1, 0, 16) }, "UBFX X11, X1, #0, #16"},
		{"ubfx hi", func(a *Asm) { a.UBFX(13, 1, 32, 1) }, "UBFX X13, X1, #32, #1"},
		{"lsl", func(a *Asm) { a.LSLI(3, 4, 6) }, "LSL X3, X4, #6"},
		{"lsrv", func(a *Asm) { a.LSRV(3, 1, 2) }, "LSR X3, X1, X2"},
		{"blr", func(a *Asm) { a.BLR(6) }, "BLR X6"},
		{"ret", func(a *Asm) { a.RET() }, "RET X30"},
		{"msr sctlr_el2", func(a *Asm) { a.MSR(sr("SCTLR_EL2"), 10) }, "MSR S3_4_C1_C0_0, X10"},
		{"msr hcr_el2", func(a *Asm) { a.MSR(sr("HCR_EL2"), 9) }, "MSR S3_4_C1_C1_0, X9"},
		{"mrs par_el1", func(a *Asm) { a.MRS(7, sr("PAR_EL1")) }, "MRS X7, S3_0_C7_C4_0"},
		{"mrs esr_el2", func(a *Asm) { a.MRS(21, sr("ESR_EL2")) }, "MRS X21, S3_4_C5_C2_0"},
		{"tlbi alle1", func(a *Asm) { a.TLBI(TLBIALLE1) }, "TLBI ALLE1"},
		{"tlbi alle2", func(a *Asm) { a.TLBI(TLBIALLE2) }, "TLBI ALLE2"},
		{"tlbi vmalle1", func(a *Asm) { a.TLBI(TLBIVMALLE1) }, "TLBI VMALLE1"},
		{"dsb sy", func(a *Asm) { a.DSBSY() }, "DSB SY"},
		{"isb", func(a *Asm) { a.ISB() }, "ISB SY"},
		{"nop", func(a *Asm) { a.NOP() }, "NOP"},
		{"eret", func(a *Asm) { a.ERET() }, "ERET"},
		{"hlt", func(a *Asm) { a.HLT(0xf000) }, "HLT #0xf000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := one(t, tt.f)
			got, err := disasm(w)
			if err != nil {
				t.Fatalf("%08x: arm64asm: %v", w, err)
			}
			if strings.TrimSpace(got) != tt.want {
				t.Errorf("%08x decodes as %q, want %q", w, got, tt.want)
			}
		})
	}
}

// TestSysRegFieldsByArm64asm checks every named system register's encoding
// against the decoder's generic S<op0>_<op1>_C<n>_C<m>_<op2> rendering (or
// the register fields).
func TestSysRegFieldsByArm64asm(t *testing.T) {
	for _, name := range []string{"SCTLR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1",
		"MAIR_EL1", "PAR_EL1", "ID_AA64MMFR0_EL1", "ID_AA64MMFR1_EL1",
		"ID_AA64MMFR2_EL1", "ID_AA64MMFR3_EL1", "SCTLR_EL2", "HCR_EL2",
		"TTBR0_EL2", "TTBR1_EL2", "TCR_EL2", "VTTBR_EL2", "VTCR_EL2", "SPSR_EL2",
		"ELR_EL2", "ESR_EL2", "FAR_EL2", "HPFAR_EL2", "MAIR_EL2", "VBAR_EL2", "CurrentEL"} {
		r, ok := LookupSysReg(name)
		if !ok {
			t.Fatalf("LookupSysReg(%q) failed", name)
		}
		w := one(t, func(a *Asm) { a.MRS(5, r) })
		got, err := disasm(w)
		if err != nil {
			t.Fatalf("%s: %08x: %v", name, w, err)
		}
		// arm64asm names none of these registers: it prints the fields.
		if want := "MRS X5, " + r.String(); got != want {
			t.Errorf("%s: %08x decodes as %q, want %q", name, w, got, want)
		}
	}
	if _, ok := LookupSysReg("NOT_A_REG"); ok {
		t.Error("LookupSysReg accepted an unknown name")
	}
}

// sysFields splits a system-instruction word by the encoding diagram of
// Arm ARM C4.1 ("System instructions": 1101010100 L op0 op1 CRn CRm op2 Rt).
func sysFields(w uint32) (fixed, l, op0, op1, crn, crm, op2, rt uint32) {
	return w >> 22, w >> 21 & 1, w >> 19 & 3, w >> 16 & 7, w >> 12 & 15, w >> 8 & 15, w >> 5 & 7, w & 31
}

// TestATEncoding checks the AT operations, which arm64asm does not decode
// (it has no table for them), field by field against the Arm ARM's
// encoding table for AT <op>, <Xt> (SYS #op1, C7, Cm, #op2, Xt).
func TestATEncoding(t *testing.T) {
	want := map[string][3]uint32{ // op1, CRm, op2
		"S1E1R": {0, 8, 0}, "S1E1W": {0, 8, 1}, "S1E0R": {0, 8, 2}, "S1E0W": {0, 8, 3},
		"S1E1RP": {0, 9, 0}, "S1E1WP": {0, 9, 1}, "S1E1A": {0, 9, 2},
		"S1E2R": {4, 8, 0}, "S1E2W": {4, 8, 1}, "S12E1R": {4, 8, 4}, "S12E1W": {4, 8, 5},
		"S12E0R": {4, 8, 6}, "S12E0W": {4, 8, 7}, "S1E2A": {4, 9, 2},
	}
	if len(want) != NumATOps {
		t.Fatalf("table has %d ops, NumATOps is %d", len(want), NumATOps)
	}
	for name, f := range want {
		op, ok := LookupAT(name)
		if !ok || op.String() != name {
			t.Fatalf("LookupAT(%q) = %v, %v", name, op, ok)
		}
		w := one(t, func(a *Asm) { a.AT(op, 5) })
		fixed, l, op0, op1, crn, crm, op2, rt := sysFields(w)
		if fixed != 0b1101010100 || l != 0 || op0 != 1 || crn != 7 || rt != 5 ||
			op1 != f[0] || crm != f[1] || op2 != f[2] {
			t.Errorf("AT %s, X5 = %08x: L %d op0 %d op1 %d CRn %d CRm %d op2 %d Rt %d; want op1 %d CRm %d op2 %d",
				name, w, l, op0, op1, crn, crm, op2, rt, f[0], f[1], f[2])
		}
		// The decoder must not mistake an AT for anything else.
		if got, err := disasm(w); err == nil && !strings.HasPrefix(got, "AT") && !strings.HasPrefix(got, "SYS") {
			t.Errorf("AT %s (%08x) decodes as %q", name, w, got)
		}
	}
	// Published encoding: AT S1E1R, X0 is 0xd5087800.
	if w := one(t, func(a *Asm) { a.AT(S1E1R, 0) }); w != 0xd5087800 {
		t.Errorf("AT S1E1R, X0 = %08x, want d5087800", w)
	}
	// Published encodings (LLVM's MC tests): AT S1E1RP, X1 and AT S1E1WP, X2.
	if w := one(t, func(a *Asm) { a.AT(S1E1RP, 1) }); w != 0xd5087901 {
		t.Errorf("AT S1E1RP, X1 = %08x, want d5087901", w)
	}
	if w := one(t, func(a *Asm) { a.AT(S1E1WP, 2) }); w != 0xd5087922 {
		t.Errorf("AT S1E1WP, X2 = %08x, want d5087922", w)
	}
	if ATOp(200).Valid() || ATOp(200).String() != "ATOp(200)" {
		t.Error("ATOp(200) is valid or misnamed")
	}
	if _, ok := LookupAT("S1E3R"); ok {
		t.Error("LookupAT accepted S1E3R")
	}
}

// TestFixedEncodings checks the instructions arm64asm does not decode
// (SMC, MSR PAN) field by field from their encoding diagrams.
func TestFixedEncodings(t *testing.T) {
	// SMC #imm16: 11010100 000 imm16 000 11.
	w := one(t, func(a *Asm) { a.SMC(0) })
	if w>>21 != 0b11010100000 || w&31 != 0b00011 || w>>5&0xffff != 0 {
		t.Errorf("SMC #0 = %08x", w)
	}
	if w := one(t, func(a *Asm) { a.SMC(0x1234) }); w>>5&0xffff != 0x1234 || w&31 != 3 {
		t.Errorf("SMC #0x1234 = %08x", w)
	}
	// MSR <pstatefield>, #imm: 1101010100 0 00 op1 0100 CRm op2 11111, PAN
	// is op1=000 op2=100.
	for _, on := range []bool{false, true} {
		w := one(t, func(a *Asm) { a.MSRPAN(on) })
		fixed, l, op0, op1, crn, crm, op2, rt := sysFields(w)
		wantCRm := uint32(0)
		if on {
			wantCRm = 1
		}
		if fixed != 0b1101010100 || l != 0 || op0 != 0 || op1 != 0 || crn != 4 || crm != wantCRm || op2 != 4 || rt != 31 {
			t.Errorf("MSR PAN, #%d = %08x", wantCRm, w)
		}
	}
}

// TestBranches assembles branches forward and backward and checks the
// decoded targets.
func TestBranches(t *testing.T) {
	a := New(0x4000)
	a.Label("top")
	a.B("end")          // 0x4000
	a.BL("top")         // 0x4004
	a.BCond(LO, "top")  // 0x4008
	a.CBZ(3, "end")     // 0x400c
	a.CBNZ(20, "top")   // 0x4010
	a.BCond(NE, "end")  // 0x4014
	a.MovAddr(6, "end") // 0x4018..0x4024
	a.Label("end")      // 0x4028
	a.NOP()
	b, err := a.Finish()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"B .+0x28", "BL .+0xfffffffffffffffc", "B CC, .+0xfffffffffffffff8",
		"CBZ X3, .+0x1c", "CBNZ X20, .+0xfffffffffffffff0", "B NE, .+0x14",
		"MOV X6, #0x4028", "MOVK X6, #0x0, LSL #16", "MOVK X6, #0x0, LSL #32", "MOVK X6, #0x0, LSL #48"}
	for i, w := range want {
		got, err := disasm(binary.LittleEndian.Uint32(b[4*i:]))
		if err != nil {
			t.Fatalf("insn %d: %v", i, err)
		}
		if got != w {
			t.Errorf("insn %d at %#x: %q, want %q", i, 0x4000+4*i, got, w)
		}
	}
	if addr, ok := a.Addr("end"); !ok || addr != 0x4028 {
		t.Errorf("Addr(end) = %#x, %v", addr, ok)
	}
}

// TestMovImm checks that MovImm materialises random constants: the
// decoded MOVZ/MOVK sequence is evaluated and compared.
func TestMovImm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		v := rng.Uint64()
		switch i % 4 {
		case 1:
			v &= 0xffff_0000_ffff
		case 2:
			v &= 0xffff
		case 3:
			v <<= 48
		}
		rd := Reg(rng.IntN(31))
		a := New(0)
		a.MovImm(rd, v)
		b, err := a.Finish()
		if err != nil {
			t.Fatal(err)
		}
		var got uint64
		for j := 0; j < len(b); j += 4 {
			inst, err := arm64asm.Decode(b[j : j+4])
			if err != nil {
				t.Fatalf("%#x: %v", v, err)
			}
			if inst.Args[0].(arm64asm.Reg) != arm64asm.X0+arm64asm.Reg(rd) {
				t.Fatalf("%#x: wrong register in %v", v, inst)
			}
			switch inst.Op {
			case arm64asm.MOV: // MOVZ is shown as its MOV alias
				if j != 0 {
					t.Fatalf("%#x: MOVZ not first", v)
				}
				got = inst.Args[1].(arm64asm.Imm64).Imm
			case arm64asm.MOVK:
				imm := inst.Args[1].(arm64asm.ImmShift).String()
				var val, shift uint64
				fmt.Sscanf(strings.TrimPrefix(imm, "#"), "%v", &val)
				if k := strings.Index(imm, "LSL #"); k >= 0 {
					fmt.Sscanf(imm[k+5:], "%d", &shift)
				}
				got = got&^(0xffff<<shift) | val<<shift
			default:
				t.Fatalf("%#x: unexpected %v", v, inst)
			}
		}
		if got != v {
			t.Fatalf("MovImm(%#x) evaluates to %#x", v, got)
		}
	}
}

// TestLoadStoreProperty checks random LDR/STR/ADD operands round-trip
// through the decoder.
func TestLoadStoreProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		rt, rn := Reg(rng.IntN(31)), Reg(rng.IntN(31))
		off := uint64(rng.IntN(4096)) * 8
		imm := uint32(rng.IntN(4096))
		for _, c := range []struct {
			f    func(a *Asm)
			want string
		}{
			{func(a *Asm) { a.LDR(rt, rn, off) }, fmt.Sprintf("LDR X%d, [X%d,#%d]", rt, rn, off)},
			{func(a *Asm) { a.STR(rt, rn, off) }, fmt.Sprintf("STR X%d, [X%d,#%d]", rt, rn, off)},
			{func(a *Asm) { a.ADDI(rt, rn, imm) }, fmt.Sprintf("ADD X%d, X%d, #%#x", rt, rn, imm)},
		} {
			got, err := disasm(one(t, c.f))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Replace(c.want, ",#0]", "]", 1)
			want = strings.Replace(want, "#0x0", "#0x0", 1)
			if got != want && !(imm == 0 && strings.HasPrefix(got, "MOV")) {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
}

// TestErrors checks that bad operands are errors, not panics or silent
// wrong code.
func TestErrors(t *testing.T) {
	for name, f := range map[string]func(a *Asm){
		"ldr unaligned":   func(a *Asm) { a.LDR(0, 1, 4) },
		"ldr too far":     func(a *Asm) { a.LDR(0, 1, 32768) },
		"add too big":     func(a *Asm) { a.ADDI(0, 1, 0x1001) },
		"movz shift":      func(a *Asm) { a.MOVZ(0, 1, 4) },
		"register 32":     func(a *Asm) { a.MOV(32, 1) },
		"undefined label": func(a *Asm) { a.B("nowhere") },
		"duplicate label": func(a *Asm) { a.Label("x"); a.Label("x") },
		"bad AT":          func(a *Asm) { a.AT(ATOp(99), 0) },
		"msr op0":         func(a *Asm) { a.MSR(SysReg{Op0: 1, CRn: 7}, 0) },
		"sysreg range":    func(a *Asm) { a.MRS(0, SysReg{Op0: 3, CRn: 16}) },
		"ubfx width":      func(a *Asm) { a.UBFX(0, 1, 60, 5) },
		"lsl 0":           func(a *Asm) { a.LSLI(0, 1, 0) },
		"align":           func(a *Asm) { a.Align(6) },
	} {
		a := New(0)
		f(a)
		if _, err := a.Finish(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(2).Finish(); err == nil {
		t.Error("unaligned base: no error")
	}
}
