package tlb

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
)

func TestDecodeVA(t *testing.T) {
	cases := []struct {
		xt   uint64
		lpa2 bool
		want VAOperand
	}{
		// ASID 0x1234, TTL 0b0111 (4K L3), VA[55:12] = 0x12345.
		{0x1234_7000_0001_2345, false, VAOperand{ASID: 0x1234, VA: 0x1234_5000, TTL: Hint{12, 3}}},
		// VA[55:12] all ones: VA 0x00ff_ffff_ffff_f000 (TTBR1, bit 55 set).
		{0x0000_0fff_ffff_ffff, false, VAOperand{VA: 0x00ff_ffff_ffff_f000, TTL: Hint{0, -1}}},
		// TTL 0b1110: 64K L2.
		{0x0000_e000_0000_0010, false, VAOperand{VA: 0x10000, TTL: Hint{16, 2}}},
		// TTL 0b1001: 16K L1 is reserved without FEAT_LPA2 ...
		{0x0000_9000_0000_0000, false, VAOperand{TTL: Hint{0, -1}}},
		// ... and level 1 with it.
		{0x0000_9000_0000_0000, true, VAOperand{TTL: Hint{14, 1}}},
		// TTL 0b0100: 4K level 0 only with FEAT_LPA2.
		{0x0000_4000_0000_0000, false, VAOperand{TTL: Hint{0, -1}}},
		{0x0000_4000_0000_0000, true, VAOperand{TTL: Hint{12, 0}}},
		// TTL 0b1100, 0b1000: 64K/16K level 0 always reserved.
		{0x0000_c000_0000_0000, true, VAOperand{TTL: Hint{0, -1}}},
		{0x0000_8000_0000_0000, true, VAOperand{TTL: Hint{0, -1}}},
		// TTL 0b0011: granule 00 means no information, level ignored.
		{0x0000_3000_0000_0000, false, VAOperand{TTL: Hint{0, -1}}},
	}
	for _, c := range cases {
		if got := DecodeVA(c.xt, c.lpa2); got != c.want {
			t.Errorf("DecodeVA(%#x, lpa2=%v) = %+v, want %+v", c.xt, c.lpa2, got, c.want)
		}
	}
}

func TestDecodeIPA(t *testing.T) {
	// IPA[51:48] in Xt[39:36], IPA[47:12] in Xt[35:0], TTL Xt[47:44], NS Xt[63].
	got := DecodeIPA(1<<63|0b0110<<44|0xa<<36|0x1_2345, false)
	want := IPAOperand{IPA: 0xa_0000_1234_5000, TTL: Hint{12, 2}, NS: true}
	if got != want {
		t.Errorf("DecodeIPA = %+v, want %+v", got, want)
	}
	// Bits [43:40] are RES0 and not part of the IPA.
	if got := DecodeIPA(0xf<<40, false); got.IPA != 0 {
		t.Errorf("Xt[43:40] leaked into the IPA: %#x", got.IPA)
	}
}

func TestDecodeRange(t *testing.T) {
	cases := []struct {
		name             string
		xt               uint64
		ds, sext, lpa2   bool
		gran             uint8
		start, length    uint64
		ttl              Hint
		scale, num, asid uint16
	}{
		// ASID 5, TG=01, SCALE=0, NUM=1, TTL=00, Base 0x400: 4 pages of 4K at 0x40_0000.
		{"4K", 5<<48 | 1<<46 | 1<<39 | 0x400, false, false, false, 12, 0x40_0000, 4 << 12, Hint{0, -1}, 0, 1, 5},
		// TG=10 16K, SCALE=1, NUM=3: (3+1)*2^6 = 256 pages of 16K.
		{"16K", 2<<46 | 1<<44 | 3<<39 | 0x10, false, false, false, 14, 0x10 << 14, 256 << 14, Hint{0, -1}, 1, 3, 0},
		// TG=11 64K, SCALE=3, NUM=31: 32*2^16 pages of 64K; TTL=11 level 3.
		{"64K max", 3<<46 | 3<<44 | 31<<39 | 3<<37 | 1, false, false, false, 16, 1 << 16, 32 << 32, Hint{16, 3}, 3, 31, 0},
		// TG=00: reserved.
		{"TG reserved", 0<<46 | 1<<39 | 0x400, false, false, false, 0, 0, 0, Hint{0, -1}, 0, 1, 0},
		// DS=1: BaseADDR in 64KB units even with 4K pages.
		{"LPA2", 1<<46 | 0x40, true, false, false, 12, 0x40 << 16, 2 << 12, Hint{0, -1}, 0, 0, 0},
		// BaseADDR[36] set: sign-extended in a two-range regime.
		{"TTBR1", 1<<46 | (1<<37 - 1), false, true, false, 12, 0xffff_ffff_ffff_f000, 2 << 12, Hint{0, -1}, 0, 0, 0},
		// ... and not for stage 2 / EL2.
		{"no sext", 1<<46 | (1<<37 - 1), false, false, false, 12, (1<<37 - 1) << 12, 2 << 12, Hint{0, -1}, 0, 0, 0},
		// TTL=01 with 16K is reserved without FEAT_LPA2.
		{"16K TTL01", 2<<46 | 1<<37, false, false, false, 14, 0, 2 << 14, Hint{0, -1}, 0, 0, 0},
		{"16K TTL01 LPA2", 2<<46 | 1<<37, false, false, true, 14, 0, 2 << 14, Hint{14, 1}, 0, 0, 0},
		{"4K TTL10", 1<<46 | 2<<37, false, false, false, 12, 0, 2 << 12, Hint{12, 2}, 0, 0, 0},
	}
	for _, c := range cases {
		r := DecodeRange(c.xt, c.ds, c.sext, c.lpa2)
		if r.GranuleBits != c.gran || r.Start != c.start || r.Length != c.length || r.TTL != c.ttl ||
			uint16(r.Scale) != c.scale || uint16(r.Num) != c.num || r.ASID != c.asid {
			t.Errorf("%s: DecodeRange(%#x) = %+v", c.name, c.xt, r)
		}
	}
}

// TestSysEncodings cross-checks the encoding table against the
// golang.org/x/arch disassembler: every modelled op assembles to a SYS
// instruction that it prints as "TLBI <name>", and every TLBI it knows
// (other than EL3 forms) decodes to the op of the same name.
func TestSysEncodings(t *testing.T) {
	seen := map[Op]bool{}
	for op1 := uint8(0); op1 < 8; op1++ {
		for crm := uint8(0); crm < 16; crm++ {
			for op2 := uint8(0); op2 < 8; op2++ {
				// SYS #op1, C8, Cm, #op2, X0: 0xd5080000 | op1<<16 | 8<<12 | crm<<8 | op2<<5.
				word := uint32(0xd5080000) | uint32(op1)<<16 | 8<<12 | uint32(crm)<<8 | uint32(op2)<<5
				// Operand-less forms (VMALLE1, ALLE1, ...) decode only with Rt=XZR.
				text := disasm(word)
				if !strings.HasPrefix(text, "TLBI") {
					text = disasm(word | 31)
				}
				name, isTLBI := strings.CutPrefix(text, "TLBI ")
				name, _, _ = strings.Cut(name, ",")
				op, ok := OpFromSys(1, op1, 8, crm, op2)
				switch {
				case ok && (!isTLBI || name != op.String()):
					t.Errorf("op1=%d CRm=%d op2=%d: OpFromSys %v, disassembler %q", op1, crm, op2, op, text)
				case !ok && isTLBI && op1 != 6:
					t.Errorf("op1=%d CRm=%d op2=%d: disassembler %q, OpFromSys none", op1, crm, op2, text)
				}
				if ok {
					seen[op] = true
					if a, b, c, ok2 := op.Sys(); !ok2 || a != op1 || b != crm || c != op2 {
						t.Errorf("%v.Sys() = %d,%d,%d", op, a, b, c)
					}
				}
			}
		}
	}
	for o := Op(0); o < NumOps; o++ {
		if o.Valid() && !seen[o] {
			t.Errorf("TLBI %v has no encoding", o)
		}
	}
	if _, ok := OpFromSys(1, 0, 7, 7, 0); ok {
		t.Error("CRn=7 accepted")
	}
	if _, ok := OpFromSys(3, 0, 8, 7, 0); ok {
		t.Error("op0=3 accepted")
	}
}

func TestOpNames(t *testing.T) {
	for _, c := range []struct {
		op   Op
		want string
	}{{OpVAE1, "VAE1"}, {OpVAE1.IS(), "VAE1IS"}, {OpRIPAS2LE1.OS(), "RIPAS2LE1OS"}, {OpVMALLS12E1.IS().Base(), "VMALLS12E1"}, {Op(0x7f), "Op(0x7f)"}, {Op(21), "Op(0x15)"}} {
		if got := c.op.String(); got != c.want {
			t.Errorf("%d: %q, want %q", c.op, got, c.want)
		}
	}
}

func disasm(word uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], word)
	inst, err := arm64asm.Decode(b[:])
	if err != nil {
		return ""
	}
	return inst.String()
}
