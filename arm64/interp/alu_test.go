package interp_test

import "testing"

// Register values the cases start from.
const (
	x1 = 0x8000_0000_0000_0001
	x2 = 0x7fff_ffff_ffff_ffff
	x3 = 0x0123_4567_89ab_cdef
)

// TestDataProcessing executes one instruction (its encoding from the GNU
// assembler, the text beside it) with x1, x2, x3 above and checks X0 and
// NZCV against values worked out from the instruction's pseudocode.
func TestDataProcessing(t *testing.T) {
	cases := []struct {
		asm   string
		word  uint32
		nzcv  uint8 // flags before
		want  uint64
		flags int // NZCV after; -1: unchanged
	}{
		{"adds x0, x1, x2", 0xab020020, 0, 0, 0b0110},
		{"subs w0, w1, w2", 0x6b020020, 0xf, 2, 0b0000},
		{"adc x0, x1, x2 (C=1)", 0x9a020020, 0b0010, 1, -1},
		{"sbcs x0, x1, x2 (C=0)", 0xfa020020, 0, 1, 0b0011},
		{"add x0, x1, w2, sxtw #2", 0x8b22c820, 0, 0x7ffffffffffffffd, -1},
		{"and x0, x3, #0xff00ff00ff00ff00", 0x92089c60, 0, 0x010045008900cd00, -1},
		{"orr w0, w1, #0x3", 0x32000420, 0, 3, -1},
		{"ands x0, x1, x2, lsr #4", 0xea421020, 0xf, 1, 0b0000},
		{"bic x0, x1, x2", 0x8a220020, 0, 0x8000000000000000, -1},
		{"eon w0, w1, w2, ror #8", 0x4ae22020, 0, 1, -1},
		{"movz x0, #0x1234, lsl #32", 0xd2c24680, 0, 0x123400000000, -1},
		{"movn w0, #0x1", 0x12800020, 0, 0xfffffffe, -1},
		{"sbfx x0, x3, #4, #8", 0x93442c60, 0, 0xffffffffffffffde, -1},
		{"ubfiz w0, w3, #3, #5", 0x531d1060, 0, 0x78, -1},
		{"extr x0, x1, x2, #12", 0x93c23020, 0, 0x0017ffffffffffff, -1},
		{"madd x0, x1, x2, x3", 0x9b020c20, 0, 0x0123456789abcdee, -1},
		{"msub w0, w1, w2, w3", 0x1b028c20, 0, 0x89abcdf0, -1},
		{"smulh x0, x1, x2", 0x9b427c20, 0, 0xc000000000000000, -1},
		{"umulh x0, x1, x2", 0x9bc27c20, 0, 0x3fffffffffffffff, -1},
		{"smaddl x0, w1, w2, x3", 0x9b220c20, 0, 0x0123456789abcdee, -1},
		{"udiv x0, x1, x2", 0x9ac20820, 0, 1, -1},
		{"sdiv w0, w1, w2", 0x1ac20c20, 0, 0xffffffff, -1},
		{"udiv x0, x1, xzr (by zero)", 0x9adf0820, 0, 0, -1},
		{"lsl x0, x1, x2", 0x9ac22020, 0, 0x8000000000000000, -1},
		{"ror w0, w1, w2", 0x1ac22c20, 0, 2, -1},
		{"rbit x0, x1", 0xdac00020, 0, 0x8000000000000001, -1},
		{"rev16 w0, w3", 0x5ac00460, 0, 0xab89efcd, -1},
		{"cls x0, x3", 0xdac01460, 0, 6, -1},
		{"clz w0, w3", 0x5ac01060, 0, 0, -1},
		{"csinc x0, x1, x2, eq (Z=0)", 0x9a820420, 0, x2 + 1, -1},
		{"csinc x0, x1, x2, eq (Z=1)", 0x9a820420, 0b0100, x1, -1},
		{"csneg w0, w1, w2, lt (N!=V)", 0x5a82b420, 0b1000, 1, -1},
		{"csneg w0, w1, w3, lt (N=V)", 0x5a83b420, 0, 0x76543211, -1},
		{"ccmp x1, x2, #4, ne (Z=1: flags #4)", 0xfa421024, 0b0100, 0, 0b0100},
		{"ccmp x1, x2, #4, ne (Z=0: x1-x2)", 0xfa421024, 0, 0, 0b0011},
		{"adr x0, .+0x100", 0x10000800, 0, codeBase + 0x100, -1},
		{"adrp x0, .+0x5000", 0xb0000020, 0, codeBase + 0x5000, -1},
	}
	for _, tc := range cases {
		r := newRig(t, 2)
		r.code(tc.word)
		r.c.X[1], r.c.X[2], r.c.X[3] = x1, x2, x3
		r.pe.NZCV = tc.nzcv
		r.run(1)
		if len(r.undef) > 0 {
			t.Errorf("%s: UNDEFINED: %v", tc.asm, r.undef)
			continue
		}
		if r.c.X[0] != tc.want {
			t.Errorf("%s: X0 = %#x, want %#x", tc.asm, r.c.X[0], tc.want)
		}
		wantFlags := tc.nzcv
		if tc.flags >= 0 {
			wantFlags = uint8(tc.flags)
		}
		if r.pe.NZCV != wantFlags {
			t.Errorf("%s: NZCV = %04b, want %04b", tc.asm, r.pe.NZCV, wantFlags)
		}
		if r.pe.PC != codeBase+4 {
			t.Errorf("%s: PC = %#x, want the next instruction", tc.asm, r.pe.PC)
		}
	}
}
