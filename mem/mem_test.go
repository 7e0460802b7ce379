package mem

import (
	"sync"
	"testing"
)

func TestSparseRejectsBadRanges(t *testing.T) {
	cases := []struct {
		name string
		ram  []Range
	}{
		{"empty range", []Range{{Base: 0x1000, Size: 0}}},
		{"misaligned base", []Range{{Base: 0x1004, Size: 0x1000}}},
		{"misaligned size", []Range{{Base: 0x1000, Size: 0x1001}}},
		{"overlap", []Range{{Base: 0x1000, Size: 0x2000}, {Base: 0x2000, Size: 0x1000}}},
	}
	for _, c := range cases {
		if _, err := NewSparse(c.ram); err == nil {
			t.Errorf("%s: NewSparse(%v) accepted", c.name, c.ram)
		}
	}
}

func TestSparseReadWrite(t *testing.T) {
	m, err := NewSparse([]Range{{Base: 0x4000_0000, Size: 0x1000}})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Read64(0x4000_0008); !ok || v != 0 {
		t.Fatalf("unwritten RAM reads %#x, %v; want 0, true", v, ok)
	}
	if _, ok := m.Read64(0x4000_1000); ok {
		t.Fatal("read past the end of RAM succeeded")
	}
	if _, ok := m.Read64(0x4000_0004); ok {
		t.Fatal("misaligned read succeeded")
	}
	if err := m.Write64(0x4000_1000, 1); err == nil {
		t.Fatal("write outside RAM accepted")
	}
	if err := m.Write64(0x4000_0010, 0xabc); err != nil {
		t.Fatal(err)
	}
	if sw, ok := m.CompareAndSwap64(0x4000_0010, 0xabd, 1); sw || !ok {
		t.Fatalf("CAS with a wrong old value: swapped=%v ok=%v", sw, ok)
	}
	if sw, ok := m.CompareAndSwap64(0x4000_0010, 0xabc, 0xdef); !sw || !ok {
		t.Fatalf("CAS with the right old value: swapped=%v ok=%v", sw, ok)
	}
	if v, _ := m.Read64(0x4000_0010); v != 0xdef {
		t.Fatalf("after CAS read %#x, want 0xdef", v)
	}
}

func TestFlatConcurrentCAS(t *testing.T) {
	m, err := NewFlat(0x1000, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, incs = 4, 1000
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < incs; i++ {
				for {
					v, _ := m.Read64(0x1008)
					if sw, _ := m.CompareAndSwap64(0x1008, v, v+1); sw {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := m.Read64(0x1008); v != goroutines*incs {
		t.Fatalf("counter = %d, want %d: CAS lost updates", v, goroutines*incs)
	}
	if _, ok := m.Read64(0x2000); ok {
		t.Fatal("read past the end succeeded")
	}
	if err := m.Write64(0xff8, 1); err == nil {
		t.Fatal("write below the base accepted")
	}
}

func TestFlatSubWordAccess(t *testing.T) {
	m, err := NewFlat(0x1000, 0x100)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Write(0x1003, 2, 0xbbaa) || !m.Write(0x1007, 4, 0x44332211) {
		t.Fatal("write failed")
	}
	// Little-endian: byte 3 = 0xaa, byte 4 = 0xbb, bytes 7..10 = 11 22 33 44.
	w0, _ := m.Read64(0x1000)
	w1, _ := m.Read64(0x1008)
	if w0 != 0x11_00_00_bb_aa_00_00_00 || w1 != 0x44_33_22 {
		t.Fatalf("words %#x %#x", w0, w1)
	}
	if v, ok := m.Read(0x1006, 4); !ok || v != 0x3322_1100 {
		t.Fatalf("misaligned read %#x %v", v, ok)
	}
	if _, ok := m.Read(0x10fe, 4); ok {
		t.Fatal("read past the end succeeded")
	}
}

func TestFlatZero(t *testing.T) {
	m, err := NewFlat(0x1000, 0x100)
	if err != nil {
		t.Fatal(err)
	}
	for pa := PA(0x1000); pa < 0x1100; pa += 8 {
		if err := m.Write64(pa, ^uint64(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Zero(0x1010, 0x20); err != nil {
		t.Fatal(err)
	}
	for pa := PA(0x1000); pa < 0x1100; pa += 8 {
		v, _ := m.Read64(pa)
		want := ^uint64(0)
		if pa >= 0x1010 && pa < 0x1030 {
			want = 0
		}
		if v != want {
			t.Errorf("%#x holds %#x after Zero(0x1010, 0x20), want %#x", uint64(pa), v, want)
		}
	}
	// Ranges outside RAM, misaligned or past its end are refused.
	for _, c := range []struct {
		pa   PA
		size uint64
	}{{0xff8, 8}, {0x1004, 8}, {0x1000, 4}, {0x10f8, 0x10}, {0x1100, 8}, {0x1000, 1 << 63}} {
		if err := m.Zero(c.pa, c.size); err == nil {
			t.Errorf("Zero(%#x, %#x) accepted", uint64(c.pa), c.size)
		}
	}
}

// InRAM against a linear scan over many ranges (with holes, a word
// straddling two adjacent ranges, and the top of the address space), and
// 100,000 ranges answered quickly (it was a linear scan per call).
func TestInRAMManyRanges(t *testing.T) {
	var rs []Range
	for i := 0; i < 200; i++ {
		base := PA(0x1000 + i*0x3000)
		size := uint64(0x1000 + (i%3)*0x1000) // some ranges touch the next one
		rs = append(rs, Range{Base: base, Size: size})
	}
	rs = append(rs, Range{Base: 0xffff_ffff_ffff_f000, Size: 0x1000})
	m, err := NewSparse(rs)
	if err != nil {
		t.Fatal(err)
	}
	linear := func(pa PA) bool {
		for _, r := range rs {
			if r.Contains(pa) {
				return r.Contains(pa + 7)
			}
		}
		return false
	}
	for pa := PA(0); pa < 0x1000+200*0x3000+0x4000; pa += 4 {
		if got, want := m.InRAM(pa), linear(pa); got != want {
			t.Fatalf("InRAM(%#x) = %v, linear scan says %v", uint64(pa), got, want)
		}
	}
	for _, pa := range []PA{^PA(0) - 7, ^PA(0) - 3, 0xffff_ffff_ffff_f000, 0xffff_ffff_ffff_eff8, 0} {
		if got, want := m.InRAM(pa), linear(pa); got != want {
			t.Errorf("InRAM(%#x) = %v, linear scan says %v", uint64(pa), got, want)
		}
	}

	big := make([]Range, 100_000)
	for i := range big {
		big[i] = Range{Base: PA(i) * 0x2000, Size: 0x1000}
	}
	mb, err := NewSparse(big)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < 200_000; i++ {
		if mb.InRAM(PA(i) * 0x1000) {
			n++
		}
	}
	if n != 100_000 {
		t.Errorf("%d of 200,000 probes in RAM, want 100,000", n)
	}
	if a := testing.AllocsPerRun(100, func() { mb.InRAM(0x1234_5000) }); a != 0 {
		t.Errorf("InRAM allocates %v times", a)
	}
}
