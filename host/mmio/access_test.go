package mmio

import (
	"errors"
	"fmt"
	"testing"
)

// baseRegs is a register file whose values make addresses easy to check.
func baseRegs() *fakeRegs {
	r := &fakeRegs{sp: 0xffff_0000_0010_0800, pc: 0xffff_0000_0040_0100}
	for i := range r.x {
		r.x[i] = 0x1111_0000_0000_0000 * uint64(i&1) // odd registers get a high pattern
	}
	r.x[1] = 0x0000_0000_4000_1000
	r.x[2] = 0x0000_0000_4000_2000
	r.x[3] = 0xdead_beef_cafe_f00d
	r.x[4] = 0x0000_0000_4000_4000
	r.x[5] = 0xffff_ffff_ffff_fff8 // -8 as X, 0xfffffff8 as W
	r.x[6] = 0x0000_0001_0000_0010 // W6 = 0x10
	r.x[7] = 0x0123_4567_89ab_cdef
	return r
}

func TestInsnAccess(t *testing.T) {
	const ipaPage = 0x8000_0000
	tests := []struct {
		name string
		word uint32
		want Access // IPA is filled from VA below; Data for stores
	}{
		{"LDR X0,[X1,#8]: VA = X1+8", encUImm(3, 1, 1, 1, 0),
			Access{VA: 0x4000_1008, Size: 8, Sixtyfour: true, Base: 1}},
		{"LDR X0,[X1,#8]!: pre-index, base = VA", encImm9(3, 1, 8, op2Pre, 1, 0),
			Access{VA: 0x4000_1008, Size: 8, Sixtyfour: true, Base: 1, Writeback: true, NewBase: 0x4000_1008}},
		{"LDR X0,[X1],#-16: post-index, VA = base", encImm9(3, 1, -16, op2Post, 1, 0),
			Access{VA: 0x4000_1000, Size: 8, Sixtyfour: true, Base: 1, Writeback: true, NewBase: 0x4000_0ff0}},
		{"STR X3,[SP,#-16]!: SP base", encImm9(3, 0, -16, op2Pre, 31, 3),
			Access{VA: 0xffff_0000_0010_07f0, Size: 8, Write: true, Reg: 3, Sixtyfour: true, Base: 31,
				Writeback: true, NewBase: 0xffff_0000_0010_07f0, Data: [2]uint64{0xdead_beef_cafe_f00d}}},
		{"STRB W3,[X4]: data truncated to a byte", encUImm(0, 0, 0, 4, 3),
			Access{VA: 0x4000_4000, Size: 1, Write: true, Reg: 3, Base: 4, Data: [2]uint64{0x0d}}},
		{"STRH W3,[X4,#2]", encUImm(1, 0, 1, 4, 3),
			Access{VA: 0x4000_4002, Size: 2, Write: true, Reg: 3, Base: 4, Data: [2]uint64{0xf00d}}},
		{"STR W3,[X4]", encUImm(2, 0, 0, 4, 3),
			Access{VA: 0x4000_4000, Size: 4, Write: true, Reg: 3, Base: 4, Data: [2]uint64{0xcafe_f00d}}},
		{"STR WZR,[X4]: Rt=31 stores zero", encUImm(2, 0, 0, 4, 31),
			Access{VA: 0x4000_4000, Size: 4, Write: true, Reg: 31, Base: 4}},
		// Register offset: ExtendReg(m, type, shift).
		{"LDR X0,[X4,X5]: LSL #0, X5 = -8", encReg(3, 1, 5, 0b011, 0, 4, 0),
			Access{VA: 0x4000_3ff8, Size: 8, Sixtyfour: true, Base: 4}},
		{"LDR W0,[X4,W5,UXTW]: W5 zero-extended", encReg(2, 1, 5, 0b010, 0, 4, 0),
			Access{VA: 0x4000_4000 + 0xffff_fff8, Size: 4, Base: 4}},
		{"LDR W0,[X4,W5,SXTW #2]: W5 = -8, << 2", encReg(2, 1, 5, 0b110, 1, 4, 0),
			Access{VA: 0x4000_4000 - 32, Size: 4, Base: 4}},
		{"LDR X0,[X4,W6,UXTW #3]: upper half of X6 ignored", encReg(3, 1, 6, 0b010, 1, 4, 0),
			Access{VA: 0x4000_4000 + 0x80, Size: 8, Sixtyfour: true, Base: 4}},
		{"LDRH W0,[X4,X6,SXTX #1]", encReg(1, 1, 6, 0b111, 1, 4, 0),
			Access{VA: 0x4000_4000 + 0x2_0000_0020, Size: 2, Base: 4}},
		{"LDR X0,[X4,XZR]: Rm=31 reads zero", encReg(3, 1, 31, 0b011, 1, 4, 0),
			Access{VA: 0x4000_4000, Size: 8, Sixtyfour: true, Base: 4}},
		{"LDR X0,label+0x40: PC-relative", encLit(1, 0x10, 0),
			Access{VA: 0xffff_0000_0040_0140, Size: 8, Sixtyfour: true}},
		// Pairs: second element at VA + size.
		{"LDP X0,X7,[X1,#16]", encPair(2, pairOffset, 1, 2, 7, 1, 0),
			Access{VA: 0x4000_1010, Size: 8, Sixtyfour: true, Pair: true, Reg2: 7, Base: 1}},
		{"STP W3,W7,[X4],#8", encPair(0, pairPost, 0, 2, 7, 4, 3),
			Access{VA: 0x4000_4000, Size: 4, Write: true, Reg: 3, Pair: true, Reg2: 7, Base: 4,
				Writeback: true, NewBase: 0x4000_4008, Data: [2]uint64{0xcafe_f00d, 0x89ab_cdef}}},
		{"STP X3,XZR,[SP,#-16]!", encPair(2, pairPre, 0, -2, 31, 31, 3),
			Access{VA: 0xffff_0000_0010_07f0, Size: 8, Write: true, Reg: 3, Sixtyfour: true, Pair: true, Reg2: 31, Base: 31,
				Writeback: true, NewBase: 0xffff_0000_0010_07f0, Data: [2]uint64{0xdead_beef_cafe_f00d, 0}}},
		// Constraint_NONE: STR X4,[X4,#8]! stores the original X4.
		{"STR X4,[X4,#8]!: stores pre-writeback value", encImm9(3, 0, 8, op2Pre, 4, 4),
			Access{VA: 0x4000_4008, Size: 8, Write: true, Reg: 4, Sixtyfour: true, Base: 4,
				Writeback: true, NewBase: 0x4000_4008, Data: [2]uint64{0x4000_4000}}},
		{"STLR X7,[X1]", encSTLR(3, 1, 7),
			Access{VA: 0x4000_1000, Size: 8, Write: true, Reg: 7, Sixtyfour: true, AcquireRelease: true, Base: 1,
				Data: [2]uint64{0x0123_4567_89ab_cdef}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DecodeInstruction(tt.word)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Reg = in.Rt
			if !want.Writeback {
				want.Base = 0 // only reported with writeback
			}
			want.IPA = ipaPage | want.VA&0xfff
			if want.Pair {
				want.IPA2 = want.IPA + uint64(want.Size)
			}
			wnr := ESR(0)
			if in.Write {
				wnr = 1 << 6
			}
			esr := esrDA(false, 0, false, 0, false, false, false) | wnr
			// FAR names the first byte; the IPA the hardware reports
			// is that of FAR.
			regs := baseRegs()
			got, err := in.Access(esr, want.VA, want.IPA, regs)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			// FAR at the last byte of the access gives the same access.
			last := want.VA + uint64(want.Len()) - 1
			got2, err := in.Access(esr, last, want.IPA+uint64(want.Len())-1, regs)
			if err != nil || got2 != want {
				t.Errorf("FAR at last byte: got %+v, %v", got2, err)
			}
			// The whole path through Decode agrees.
			got3, err := Decode(esr, want.VA, want.IPA, regs, fetchWord(tt.word))
			if err != nil || got3 != want {
				t.Errorf("Decode: got %+v, %v", got3, err)
			}
		})
	}
}

func TestInsnAccessRefused(t *testing.T) {
	regs := baseRegs()
	load := esrDA(false, 0, false, 0, false, false, false)
	store := load | 1<<6
	tests := []struct {
		name string
		word uint32
		esr  ESR
		far  uint64
		kind error
	}{
		{"FAR one below the access", encUImm(3, 1, 1, 1, 0), load, 0x4000_1007, ErrAddressMismatch},
		{"FAR one past the access", encUImm(3, 1, 1, 1, 0), load, 0x4000_1010, ErrAddressMismatch},
		{"FAR one past a pair", encPair(2, pairOffset, 1, 0, 7, 1, 0), load, 0x4000_1010, ErrAddressMismatch},
		{"load but WnR=1", encUImm(3, 1, 1, 1, 0), store, 0x4000_1008, ErrAddressMismatch},
		{"store but WnR=0", encUImm(3, 0, 1, 1, 0), load, 0x4000_1008, ErrAddressMismatch},
		// X1 + 0xffc: a word at 0x...1ffc fits, a doubleword crosses.
		{"LDR X0 crossing 4KB", encImm9(3, 1, -4, op2Unscaled, 2, 0), load, 0x4000_1ffc, ErrCannotEmulate},
		{"LDP X0,X7 crossing 4KB", encPair(2, pairOffset, 1, -1, 7, 2, 0), load, 0x4000_2000, ErrCannotEmulate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DecodeInstruction(tt.word)
			if err != nil {
				t.Fatal(err)
			}
			_, err = in.Access(tt.esr, tt.far, 0x8000_0000|tt.far&0xfff, regs)
			if !errors.Is(err, tt.kind) || !errors.Is(err, ErrCannotEmulate) {
				t.Fatalf("error %v, want %v (and ErrCannotEmulate)", err, tt.kind)
			}
			t.Log(err)
		})
	}
	// The same word as a word load does not cross.
	in, _ := DecodeInstruction(encImm9(2, 1, -4, op2Unscaled, 2, 0))
	if _, err := in.Access(load, 0x4000_1ffc, 0x8000_0ffc, regs); err != nil {
		t.Errorf("LDR W0 at 0x...ffc: %v", err)
	}
	// Tag bits 63:56 of FAR are not compared.
	in, _ = DecodeInstruction(encUImm(3, 1, 1, 1, 0))
	if _, err := in.Access(load, 0x5a00_0000_4000_1008, 0x8000_0008, regs); err != nil {
		t.Errorf("tagged FAR: %v", err)
	}
}

func TestDecodeFetchError(t *testing.T) {
	boom := errors.New("guest PC unmapped")
	esr := esrDA(false, 0, false, 0, false, false, false)
	_, err := Decode(esr, 0, 0, baseRegs(), FetchFunc(func() (uint32, error) { return 0, boom }))
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the fetch error", err)
	}
	// With ISV=1 the fetcher is not called.
	_, err = Decode(esrDA(true, 2, false, 0, false, false, false), 0, 0, baseRegs(),
		FetchFunc(func() (uint32, error) { t.Fatal("fetch called with ISV=1"); return 0, nil }))
	if err != nil {
		t.Error(err)
	}
	// IL=0 (T32) is refused on the ISV=0 path.
	_, err = Decode(esr&^(1<<25), 0, 0, baseRegs(), fetchWord(0xf9400020))
	if !errors.Is(err, ErrCannotEmulate) {
		t.Errorf("IL=0 with ISV=0: %v", err)
	}
	// Missing collaborators are errors, not panics.
	if _, err := Decode(esr, 0, 0, nil, fetchWord(0xf9400020)); err == nil {
		t.Errorf("nil Registers accepted")
	}
	if _, err := Decode(esr, 0, 0, baseRegs(), nil); err == nil {
		t.Errorf("ISV=0 without a Fetcher accepted")
	}
	// The syndrome checks apply to ISV=0 too.
	_, err = Decode(esr|1<<8, 0, 0, baseRegs(), fetchWord(0xf9400020))
	if !errors.Is(err, ErrCacheMaintenance) {
		t.Errorf("CM=1 with ISV=0: %v", err)
	}
}

func TestLoadValue(t *testing.T) {
	// Extension per the load pseudocode: X[t] = SignExtend/ZeroExtend(data,
	// regsize), a W write clears bits 63:32.
	tests := []struct {
		size     uint8
		sign, sf bool
		raw      uint64
		want     uint64
	}{
		{1, false, false, 0xffff_ffff_ffff_ff80, 0x80},
		{1, true, false, 0x80, 0xffff_ff80},                 // LDRSB W
		{1, true, true, 0x80, 0xffff_ffff_ffff_ff80},        // LDRSB X
		{1, true, true, 0x7f, 0x7f},                         // positive
		{2, true, false, 0x1234_8000, 0xffff_8000},          // LDRSH W: only 2 bytes used
		{2, true, true, 0x8001, 0xffff_ffff_ffff_8001},      // LDRSH X
		{2, false, true, 0x8001, 0x8001},                    // LDRH
		{4, true, true, 0x8000_0000, 0xffff_ffff_8000_0000}, // LDRSW
		{4, false, false, 0xffff_ffff_8000_0000, 0x8000_0000},
		{4, false, true, 0xffff_ffff_8000_0000, 0x8000_0000},
		{8, false, true, 0x8000_0000_0000_0001, 0x8000_0000_0000_0001},
	}
	for _, tt := range tests {
		a := Access{Size: tt.size, SignExtend: tt.sign, Sixtyfour: tt.sf}
		if got := a.LoadValue(tt.raw); got != tt.want {
			t.Errorf("size %d sign %t sf %t LoadValue(%#x) = %#x, want %#x", tt.size, tt.sign, tt.sf, tt.raw, got, tt.want)
		}
	}
}

// fakeBus records accesses and answers reads from a map.
type fakeBus struct {
	mem    map[uint64]uint64
	log    []string
	failAt uint64
}

func (b *fakeBus) Read(ipa uint64, size int) (uint64, error) {
	b.log = append(b.log, fmt.Sprintf("R %#x/%d", ipa, size))
	if ipa == b.failAt {
		return 0, errors.New("device error")
	}
	return b.mem[ipa], nil
}

func (b *fakeBus) Write(ipa uint64, size int, v uint64) error {
	b.log = append(b.log, fmt.Sprintf("W %#x/%d=%#x", ipa, size, v))
	if ipa == b.failAt {
		return errors.New("device error")
	}
	b.mem[ipa] = v
	return nil
}

func TestEmulate(t *testing.T) {
	t.Run("LDRSB W0,[X1],#1", func(t *testing.T) {
		regs := baseRegs()
		regs.x[0] = 0xaaaa_aaaa_aaaa_aaaa
		bus := &fakeBus{mem: map[uint64]uint64{0x9000_0000: 0xfe}}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, false), 0x4000_1000, 0x9000_0000, regs,
			fetchWord(encImm9(0, 3, 1, op2Post, 1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil {
			t.Fatal(err)
		}
		if regs.x[0] != 0xffff_fffe || regs.x[1] != 0x4000_1001 {
			t.Errorf("X0 = %#x, X1 = %#x; want 0xfffffffe, 0x40001001", regs.x[0], regs.x[1])
		}
	})
	t.Run("LDP X0,X7,[SP,#-16]!", func(t *testing.T) {
		regs := baseRegs()
		bus := &fakeBus{mem: map[uint64]uint64{0x9000_07f0: 1, 0x9000_07f8: 2}}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, false), regs.sp-16, 0x9000_07f0, regs,
			fetchWord(encPair(2, pairPre, 1, -2, 7, 31, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil {
			t.Fatal(err)
		}
		if regs.x[0] != 1 || regs.x[7] != 2 || regs.sp != 0xffff_0000_0010_07f0 {
			t.Errorf("X0 = %d, X7 = %d, SP = %#x", regs.x[0], regs.x[7], regs.sp)
		}
	})
	t.Run("LDPSW X0,XZR: Rt2=31 discarded", func(t *testing.T) {
		regs := baseRegs()
		bus := &fakeBus{mem: map[uint64]uint64{0x9000_0000: 0x8000_0000, 0x9000_0004: 5}}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, false), 0x4000_1000, 0x9000_0000, regs,
			fetchWord(encPair(1, pairOffset, 1, 0, 31, 1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil {
			t.Fatal(err)
		}
		if regs.x[0] != 0xffff_ffff_8000_0000 {
			t.Errorf("X0 = %#x", regs.x[0])
		}
		if len(bus.log) != 2 || bus.log[1] != "R 0x90000004/4" {
			t.Errorf("bus log %v", bus.log)
		}
	})
	t.Run("LDP X2,X2: second value wins", func(t *testing.T) {
		regs := baseRegs()
		bus := &fakeBus{mem: map[uint64]uint64{0x9000_0000: 1, 0x9000_0008: 2}}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, false), 0x4000_1000, 0x9000_0000, regs,
			fetchWord(encPair(2, pairOffset, 1, 0, 2, 1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil || regs.x[2] != 2 {
			t.Errorf("X2 = %d, err %v", regs.x[2], err)
		}
	})
	t.Run("STP W3,W7 ordered writes", func(t *testing.T) {
		regs := baseRegs()
		bus := &fakeBus{mem: map[uint64]uint64{}}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, true), 0x4000_4000, 0x9000_0000, regs,
			fetchWord(encPair(0, pairPost, 0, 2, 7, 4, 3)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil {
			t.Fatal(err)
		}
		want := []string{"W 0x90000000/4=0xcafef00d", "W 0x90000004/4=0x89abcdef"}
		if fmt.Sprint(bus.log) != fmt.Sprint(want) || regs.x[4] != 0x4000_4008 {
			t.Errorf("log %v, X4 %#x", bus.log, regs.x[4])
		}
	})
	t.Run("ISV=1 LDR WZR discards", func(t *testing.T) {
		regs := baseRegs()
		before := *regs
		bus := &fakeBus{mem: map[uint64]uint64{0x9000_0000: 7}}
		a, err := Decode(esrDA(true, 2, false, 31, false, false, false), 0, 0x9000_0000, regs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err != nil {
			t.Fatal(err)
		}
		if *regs != before {
			t.Errorf("registers changed by a load into WZR")
		}
	})
	t.Run("device error leaves registers alone", func(t *testing.T) {
		regs := baseRegs()
		before := *regs
		bus := &fakeBus{mem: map[uint64]uint64{}, failAt: 0x9000_0008}
		a, err := Decode(esrDA(false, 0, false, 0, false, false, false), 0x4000_1000, 0x9000_0000, regs,
			fetchWord(encPair(2, pairPost, 1, 2, 7, 1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if err := Emulate(&a, regs, bus); err == nil || *regs != before {
			t.Errorf("err %v, registers changed %t", err, *regs != before)
		}
	})
}

func TestByteSwap(t *testing.T) {
	tests := []struct {
		v    uint64
		size uint8
		want uint64
	}{
		{0x1234, 1, 0x34},
		{0x1234, 2, 0x3412},
		{0x12345678, 4, 0x78563412},
		{0x0102030405060708, 8, 0x0807060504030201},
	}
	for _, tt := range tests {
		if got := ByteSwap(tt.v, tt.size); got != tt.want {
			t.Errorf("ByteSwap(%#x, %d) = %#x, want %#x", tt.v, tt.size, got, tt.want)
		}
	}
}
