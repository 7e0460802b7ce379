package guestos

import (
	"math"
	"testing"
)

// checkMod compares divisor.mod with the % operator.
func checkMod(t *testing.T, d, x uint32) {
	t.Helper()
	if got, want := newDivisor(d).mod(x), x%d; got != want {
		t.Fatalf("%d mod %d = %d, want %d", x, d, got, want)
	}
}

// TestDivisorMod: the multiply-only remainder equals x % d at the edges
// (d = 1, powers of two and their neighbours, the largest d and x) and on
// a pseudo-random sample.
func TestDivisorMod(t *testing.T) {
	ds := []uint32{1, 2, 3, 7, 96, 100, 1000, 1023, 1024, 1025, 16384, 1<<31 - 1, 1 << 31, math.MaxUint32 - 1, math.MaxUint32}
	xs := []uint32{0, 1, 2, 99, 100, 101, 1<<31 - 1, 1 << 31, math.MaxUint32 - 1, math.MaxUint32}
	for _, d := range ds {
		for _, x := range xs {
			checkMod(t, d, x)
			checkMod(t, d, x/d*d)   // multiples
			checkMod(t, d, x/d*d-1) // just below them
		}
	}
	r := uint64(1)
	for i := 0; i < 200000; i++ {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		d := uint32(r>>40) | 1
		if i%3 == 0 {
			d = uint32(r>>56) + 1 // small divisors, as the workload uses
		}
		checkMod(t, d, uint32(r))
	}
}

func FuzzDivisorMod(f *testing.F) {
	f.Add(uint32(100), uint32(12345))
	f.Add(uint32(1), uint32(math.MaxUint32))
	f.Add(uint32(math.MaxUint32), uint32(math.MaxUint32-1))
	f.Fuzz(func(t *testing.T, d, x uint32) {
		if d == 0 {
			return
		}
		checkMod(t, d, x)
	})
}
