package mmio

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// checkAccess checks the invariants of any accepted access.
func checkAccess(t *testing.T, a Access, where string) {
	t.Helper()
	switch a.Size {
	case 1, 2, 4, 8, 16:
	default:
		t.Fatalf("%s: size %d", where, a.Size)
	}
	if a.Reg > 31 || a.Reg2 > 31 || a.Base > 31 {
		t.Fatalf("%s: register out of range: %+v", where, a)
	}
	if a.SignExtend && (a.Write || a.Size == 8) {
		t.Fatalf("%s: sign extension on a store or a 64-bit load: %+v", where, a)
	}
	if a.Size == 8 && !a.Sixtyfour {
		t.Fatalf("%s: 64-bit access into a W register: %+v", where, a)
	}
	if !a.Pair && (a.Reg2 != 0 || a.IPA2 != 0 || a.Data[1] != 0) {
		t.Fatalf("%s: pair fields set on a single access: %+v", where, a)
	}
	if a.Pair && a.IPA2 != a.IPA+uint64(a.Size) {
		t.Fatalf("%s: IPA2 %#x, IPA %#x size %d", where, a.IPA2, a.IPA, a.Size)
	}
	if !a.Writeback && (a.Base != 0 || a.NewBase != 0) {
		t.Fatalf("%s: writeback fields without writeback: %+v", where, a)
	}
	if a.Data[0]&^sizeMask(a.Size) != 0 || a.Data[1]&^sizeMask(a.Size) != 0 {
		t.Fatalf("%s: store data wider than the access: %+v", where, a)
	}
}

// nopBus answers every read with all ones.
type nopBus struct{}

func (nopBus) Read(uint64, int) (uint64, error) { return ^uint64(0), nil }
func (nopBus) Write(uint64, int, uint64) error  { return nil }

func FuzzDecodeInstruction(f *testing.F) {
	for _, w := range []uint32{
		0xf9400020, 0xb9000462, 0xa8c17bfd, 0xa9bf7bfd, 0x39800020, 0x39c00020,
		0xc8dffc20, 0x889ffc20, 0xc85f7c20, 0xf8626820, 0xb8625820, 0x3dc00020,
		0xf85f8020, 0xf8408420, 0xf8408c20, 0x69400440, 0xd503201f, 0, 0xffffffff,
		encLit(2, -1, 3), encPair(1, pairPost, 1, -64, 31, 31, 31),
	} {
		f.Add(w, uint64(0x4000_1000), uint64(7))
	}
	f.Fuzz(func(t *testing.T, word uint32, far, seed uint64) {
		in, err := DecodeInstruction(word)
		if err != nil {
			if !errors.Is(err, ErrCannotEmulate) {
				t.Fatalf("0x%08x: refusal %v does not match ErrCannotEmulate", word, err)
			}
			return
		}
		switch in.Size {
		case 1, 2, 4, 8, 16:
		default:
			t.Fatalf("0x%08x: size %d", word, in.Size)
		}
		if in.Rt > 31 || in.Rt2 > 31 || in.Rn > 31 || in.Rm > 31 || in.Mode < ModeOffset || in.Mode > ModeLiteral {
			t.Fatalf("0x%08x: fields out of range %+v", word, in)
		}
		if err := checkAgainstAsm(in); err != nil {
			t.Fatal(err)
		}
		// Compute the access with random registers and FAR: it either
		// refuses with a cannot-emulate error or is self-consistent.
		r := rand.New(rand.NewPCG(seed, uint64(word)))
		var regs fakeRegs
		for i := range regs.x {
			regs.x[i] = r.Uint64()
		}
		regs.sp, regs.pc = r.Uint64(), r.Uint64()
		esr := esrDA(false, 0, false, 0, false, false, in.Write)
		if far&1 == 0 {
			// Half the time FAR names a byte of the access.
			va, _ := in.address(&regs)
			n := uint64(in.Size)
			if in.Pair {
				n *= 2
			}
			far = va + far>>1%n
		}
		a, err := in.Access(esr, far, far&0xfff|0x1000, &regs)
		if err != nil {
			if !errors.Is(err, ErrCannotEmulate) {
				t.Fatalf("0x%08x: %v", word, err)
			}
			return
		}
		checkAccess(t, a, "instruction")
		if err := Emulate(&a, &regs, nopBus{}); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeSyndrome(f *testing.F) {
	f.Add(uint64(esrDA(true, 3, false, 3, true, false, false)), uint64(0x1000), uint64(0x9000_0000))
	f.Add(uint64(esrDA(true, 0, true, 31, false, true, true)), uint64(0), uint64(0))
	f.Add(uint64(esrDA(false, 0, false, 0, false, false, false)), uint64(0), uint64(0))
	f.Add(uint64(0xffffffffffffffff), uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, esr, far, ipa uint64) {
		a, err := DecodeSyndrome(ESR(esr), far, ipa)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		checkAccess(t, a, "syndrome")
		e := ESR(esr)
		if !e.ISV() || e.EC() != ECDataAbortLowerEL || e.CM() || e.S1PTW() {
			t.Fatalf("accepted ESR %#x", esr)
		}
		if a.Size != 1<<e.SAS() || a.Reg != e.SRT() || a.Write != e.WnR() || a.Sixtyfour != e.SF() ||
			a.AcquireRelease != e.AR() || a.IPA != ipa || a.VA != far || a.Pair || a.Writeback {
			t.Fatalf("ESR %#x decoded as %+v", esr, a)
		}
		var regs fakeRegs
		if err := Emulate(&a, &regs, nopBus{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHotPathAllocs(t *testing.T) {
	regs := baseRegs()
	esr := esrDA(true, 1, true, 4, true, false, false)
	var sink uint64
	n := testing.AllocsPerRun(1000, func() {
		a, err := Decode(esr, 0x4000_1002, 0x9000_0002, regs, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.CompleteLoad([2]uint64{0x8000}, regs)
		sink += regs.x[4]
	})
	if n != 0 {
		t.Errorf("ISV=1 decode and completion: %v allocs/op, want 0", n)
	}
	_ = sink
}

func BenchmarkDecodeSyndrome(b *testing.B) {
	regs := baseRegs()
	esr := esrDA(true, 2, false, 3, false, false, true)
	b.ReportAllocs()
	for b.Loop() {
		a, err := Decode(esr, 0x4000_1000, 0x9000_0000, regs, nil)
		if err != nil {
			b.Fatal(err)
		}
		a.CompleteStore(regs)
	}
}

func BenchmarkDecodeInstruction(b *testing.B) {
	regs := baseRegs()
	esr := esrDA(false, 0, false, 0, false, false, false)
	// LDP X0,X7,[X1],#16
	fetch := fetchWord(encPair(2, pairPost, 1, 2, 7, 1, 0))
	b.ReportAllocs()
	for b.Loop() {
		a, err := Decode(esr, 0x4000_1000, 0x9000_0000, regs, fetch)
		if err != nil {
			b.Fatal(err)
		}
		a.Writeback = false
		a.CompleteLoad([2]uint64{1, 2}, regs)
	}
}
