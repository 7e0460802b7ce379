package interp_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// legalEC are the exception classes the interpreter and the PE can take.
var legalEC = map[uint8]bool{0x00: true, 0x01: true, 0x07: true, 0x0e: true, 0x15: true, 0x16: true, 0x17: true,
	0x18: true, 0x19: true, 0x1a: true, 0x20: true, 0x21: true, 0x22: true, 0x24: true, 0x25: true, 0x26: true, 0x3c: true}

// FuzzExecute executes random instruction words at a random EL with random
// HCR_EL2 trap bits and random register values: nothing may panic, every
// exception taken has a legal EC and lands on its vector.
func FuzzExecute(f *testing.F) {
	f.Add([]byte{0x20, 0x00, 0x02, 0xab}, uint8(2), uint64(0), uint64(1))     // adds
	f.Add([]byte{0x00, 0x00, 0x00, 0x00}, uint8(1), uint64(0), uint64(2))     // udf
	f.Add([]byte{0x20, 0x7c, 0x5f, 0xc8}, uint8(0), uint64(1<<27), uint64(3)) // ldxr
	f.Add([]byte{0x9f, 0x41, 0x00, 0xd5}, uint8(1), uint64(1<<42), uint64(4)) // msr pan with NV
	f.Add([]byte{0x1f, 0x87, 0x08, 0xd5, 0x1f, 0x75, 0x08, 0xd5}, uint8(1), uint64(1<<25), uint64(5))
	f.Fuzz(func(t *testing.T, code []byte, el uint8, hcr uint64, seed uint64) {
		if len(code) < 4 || len(code) > 64 {
			return
		}
		r := newRig(t, el%3)
		r.pe.Regs.HCR_EL2 = sysreg.HCR(hcr) | sysreg.HCRFields{RW: true}.Value()
		r.pe.SP = el%3 != 0 && seed&1 != 0
		r.pe.RegsChanged()
		rng := rand.New(rand.NewPCG(seed, seed^0x9e37))
		for i := range r.c.X[:31] {
			switch rng.IntN(3) {
			case 0:
				r.c.X[i] = dataBase + rng.Uint64N(0x1000)&^7
			case 1:
				r.c.X[i] = rng.Uint64()
			}
		}
		r.c.SP = [3]uint64{dataBase + 0x2000, dataBase + 0x3000, dataBase + 0x4000}
		words := make([]uint32, len(code)/4)
		for i := range words {
			words[i] = binary.LittleEndian.Uint32(code[4*i:])
		}
		r.code(words...)
		for i := 0; i < len(words); i++ {
			before := r.c.Exceptions
			r.c.Step()
			if r.c.Exceptions == before {
				continue
			}
			pe := r.pe
			ec := uint8(uint64(pe.ESR[pe.EL]) >> 26)
			if pe.EL == 0 || !legalEC[ec] {
				t.Fatalf("word %#08x: exception to EL%d with EC %#x", words[i], pe.EL, ec)
			}
			if v := pe.PC - pe.VBAR[pe.EL]; v&0x7f != 0 || v > 0x780 {
				t.Fatalf("word %#08x: PC %#x is not a vector of VBAR %#x", words[i], pe.PC, pe.VBAR[pe.EL])
			}
			break
		}
	})
}

// TestDecodeNeverPanics decodes a million random words and every word with
// the top byte of each instruction class.
func TestDecodeNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	for i := 0; i < n; i++ {
		w := rng.Uint32()
		_ = interp.Disassemble(w)
		_ = interp.Decode(w)
	}
}

// TestRunStopsOnExceptionLoop: a vector that cannot be fetched (VBAR
// outside memory) stops Run with ExceptionLoop instead of spinning.
func TestRunStopsOnExceptionLoop(t *testing.T) {
	r := newRig(t, 2)
	r.pe.VBAR[2] = 0x1000_0000 // no memory
	r.code(0)                  // udf
	if got := r.c.Run(100); got != interp.ExceptionLoop {
		t.Fatalf("Run = %v, want %v", got, interp.ExceptionLoop)
	}
	if r.c.StopMessage() == "" {
		t.Error("no stop message")
	}
	_ = mem.VA(0)
}
