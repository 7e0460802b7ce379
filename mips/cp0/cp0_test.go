package cp0

import (
	"math/rand/v2"
	"testing"
)

func TestNormalizePageMask(t *testing.T) {
	cases := []struct{ in, want uint32 }{
		{0, 0},                    // 4K
		{0x6000, 0x6000},          // 16K
		{0x1e000, 0x1e000},        // 64K
		{0x1fffe000, 0x1fffe000},  // 256M
		{0x2000, 0x6000},          // half a pair rounds up
		{0x4000, 0x6000},          // top bit of the 16K pair
		{0x8000, 0x1e000},         // low bit of the 64K pair
		{0x1fff, 0},               // bits below 13 do not exist
		{0xffffffff, 0x1fffe000},  // bits above 28 do not exist
		{0x0100_0000, 0x01ffe000}, // bit 24 tops the 16M pair (bits 23-24)
	}
	for _, c := range cases {
		if got := NormalizePageMask(c.in); got != c.want {
			t.Errorf("NormalizePageMask(%#x) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

func TestEvenOddBit(t *testing.T) {
	// MIPS32 Vol. III TLB lookup: EvenOddBit is 12 for 4K, 14 for 16K,
	// 16 for 64K, ..., 28 for 256M.
	cases := []struct {
		mask uint32
		bit  uint
	}{{0, 12}, {0x6000, 14}, {0x1e000, 16}, {0x7e000, 18}, {0x1fe000, 20}, {0x1fffe000, 28}}
	for _, c := range cases {
		if got := EvenOddBit(c.mask); got != c.bit {
			t.Errorf("EvenOddBit(%#x) = %d, want %d", c.mask, got, c.bit)
		}
	}
}

func TestEntryMatchAndPA(t *testing.T) {
	// 4K pair at 0x00400000 ASID 5: even page PFN 0x123, odd PFN 0x456.
	e := EntryFromRegs(0x00400000|5, 0x123<<6|EntryLoV, 0x456<<6|EntryLoV|EntryLoD, 0)
	cases := []struct {
		va    uint32
		asid  uint8
		match bool
		pa    uint64
	}{
		{0x00400000, 5, true, 0x123000},
		{0x00400abc, 5, true, 0x123abc},
		{0x00401abc, 5, true, 0x456abc}, // VA bit 12 selects EntryLo1
		{0x00402000, 5, false, 0},       // next pair
		{0x00400000, 6, false, 0},       // other ASID, not global
	}
	for _, c := range cases {
		if got := e.Matches(c.va, c.asid); got != c.match {
			t.Errorf("Matches(%#x, %d) = %v, want %v", c.va, c.asid, got, c.match)
			continue
		}
		if c.match {
			if got := PA(e.Half(c.va), e.Mask, c.va); got != c.pa {
				t.Errorf("PA(%#x) = %#x, want %#x", c.va, got, c.pa)
			}
		}
	}
	// G is the AND of both halves' G bits.
	g1 := EntryFromRegs(0x00400000|5, EntryLoG|EntryLoV, EntryLoV, 0)
	g2 := EntryFromRegs(0x00400000|5, EntryLoG|EntryLoV, EntryLoG, 0)
	if g1.G || !g2.G || !g2.Matches(0x00400000, 77) {
		t.Errorf("global: %v %v", g1.G, g2.G)
	}
	// 16K pages: VPN2 bit 13 and PFN bits 1:0 (EntryLo bits 7:6) are masked.
	b := EntryFromRegs(0x00406000|1, 0x1ff<<6|EntryLoV, 0x2ff<<6|EntryLoV, 0x6000)
	if b.Hi != 0x00400001 || b.Lo[0] != 0x1fc<<6|EntryLoV {
		t.Errorf("16K entry stored as %+v", b)
	}
	if !b.Matches(0x00407fff, 1) || b.Half(0x00404000) != b.Lo[1] || b.Half(0x00403fff) != b.Lo[0] {
		t.Errorf("16K entry match/half wrong")
	}
	if got := PA(b.Lo[1], b.Mask, 0x00405678); got != 0x2fc000|0x1678 {
		t.Errorf("16K PA = %#x", got)
	}
}

func newState(t *testing.T) *State {
	t.Helper()
	s, err := NewState(4096)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMTC0Masks(t *testing.T) {
	s := newState(t)
	cases := []struct {
		reg, sel uint8
		in, want uint32
	}{
		{RegIndex, 0, 0xffffffff, 0x3f},          // P is read-only
		{RegEntryLo0, 0, 0xffffffff, 0x3fffffff}, // bits 31:30 are 0
		{RegContext, 0, 0xffffffff, 0xff800000},  // BadVPN2 read-only
		{RegPageMask, 0, 0x6000, 0x6000},
		{RegEntryHi, 0, 0xffffffff, 0xffffe0ff}, // bits 12:8 are 0
		{RegStatus, 0, 0xffffffff, StatusWritable},
		{RegCause, 0, 0xffffffff, 1<<23 | 3<<8},
		{RegEBase, SelEBase, 0xffffffff, 0x5ffff000}, // relocated KSeg0 base fixed
		{RegBadVAddr, 0, 0x1234, 0},
		{RegRandom, 0, 5, 63},
		{RegKScratch, 2, 0xdeadbeef, 0xdeadbeef},
	}
	for _, c := range cases {
		s.Reset()
		s.Set(RegStatus, 0, 0)
		if got := s.MTC0(c.reg, c.sel, c.in); got != c.want || s.Get(c.reg, c.sel) != c.want {
			t.Errorf("MTC0 $%d,%d <- %#x: got %#x, want %#x", c.reg, c.sel, c.in, got, c.want)
		}
	}
	// Writing Wired sets Random to its upper bound.
	s.Reset()
	s.Set(RegRandom, 0, 7)
	s.MTC0(RegWired, 0, 4)
	if s.Get(RegRandom, 0) != 63 || s.Get(RegWired, 0) != 4 {
		t.Errorf("Wired write: Random %d Wired %d", s.Get(RegRandom, 0), s.Get(RegWired, 0))
	}
}

func TestTLBWRRandomStaysAboveWired(t *testing.T) {
	s := newState(t)
	s.MTC0(RegWired, 0, 60)
	seen := map[int]bool{}
	for i := 0; i < 10; i++ {
		r := s.RandomIndex()
		if r < 60 || r > 63 {
			t.Fatalf("Random %d outside [Wired=60, 63]", r)
		}
		seen[r] = true
		s.TLBWrite(r, true)
	}
	if len(seen) != 4 {
		t.Errorf("Random visited %v, want all of 60..63", seen)
	}
}

func TestTLBPAndTLBR(t *testing.T) {
	s := newState(t)
	s.MTC0(RegEntryHi, 0, 0x00400000|3)
	s.MTC0(RegEntryLo0, 0, 0x100<<6|EntryLoV|EntryLoG)
	s.MTC0(RegEntryLo1, 0, 0x101<<6|EntryLoV)
	s.MTC0(RegIndex, 0, 9)
	s.TLBWrite(s.WriteIndex(), false)
	s.MTC0(RegEntryHi, 0, 0x00401000|3) // same pair, other page
	s.TLBP()
	if s.Get(RegIndex, 0) != 9 {
		t.Errorf("TLBP hit: Index %#x, want 9", s.Get(RegIndex, 0))
	}
	s.MTC0(RegEntryHi, 0, 0x00400000|4)
	s.TLBP()
	if s.Get(RegIndex, 0)&IndexP == 0 {
		t.Errorf("TLBP miss: Index %#x, want P set", s.Get(RegIndex, 0))
	}
	s.MTC0(RegIndex, 0, 9)
	s.TLBR()
	// G was set only in EntryLo0, so the entry is not global and both
	// halves read G=0.
	if s.Get(RegEntryHi, 0) != 0x00400003 || s.Get(RegEntryLo0, 0) != 0x100<<6|EntryLoV || s.Get(RegEntryLo1, 0) != 0x101<<6|EntryLoV {
		t.Errorf("TLBR: hi %#x lo0 %#x lo1 %#x", s.Get(RegEntryHi, 0), s.Get(RegEntryLo0, 0), s.Get(RegEntryLo1, 0))
	}
}

func TestExceptionEntry(t *testing.T) {
	cases := []struct {
		name       string
		status     uint32
		code       ExcCode
		refill     bool
		fault      Fault
		bd         bool
		wantVector uint32
		wantEPC    uint32
		wantBD     bool
	}{
		// EXL=0 refill: base+0x000, EPC = PC.
		{"refill", StatusUM, ExcTLBL, true, FaultTLB, false, 0x40000000, 0x400100, false},
		// In a delay slot: EPC = PC-4 and Cause.BD.
		{"refill-bd", StatusUM, ExcTLBS, true, FaultTLB, true, 0x40000000, 0x4000fc, true},
		// EXL=1: refill goes to base+0x180, EPC and BD kept.
		{"refill-exl", StatusEXL, ExcTLBL, true, FaultTLB, true, 0x40000180, 0x1111, true},
		// BEV=1: base 0xbfc00200.
		{"bev", StatusBEV, ExcTLBL, true, FaultTLB, false, 0xbfc00200, 0x400100, false},
		{"bev-invalid", StatusBEV, ExcTLBL, false, FaultTLB, false, 0xbfc00380, 0x400100, false},
		{"mod", 0, ExcMod, false, FaultTLB, false, 0x40000180, 0x400100, false},
		{"adel", StatusUM, ExcAdEL, false, FaultAddr, false, 0x40000180, 0x400100, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newState(t)
			s.Set(RegStatus, 0, c.status)
			s.Set(RegEPC, 0, 0x1111)
			s.Set(RegCause, 0, CauseBD)
			s.Set(RegEntryHi, 0, 0x12340000|0x42)
			s.Set(RegContext, 0, 0xff800000)
			vec := s.Enter(c.code, c.refill, c.fault, 0x00403abc, 0x400100, c.bd)
			if vec != c.wantVector {
				t.Errorf("vector %#x, want %#x", vec, c.wantVector)
			}
			if s.Get(RegEPC, 0) != c.wantEPC {
				t.Errorf("EPC %#x, want %#x", s.Get(RegEPC, 0), c.wantEPC)
			}
			if (s.Get(RegCause, 0)&CauseBD != 0) != c.wantBD {
				t.Errorf("Cause.BD %v, want %v", s.Get(RegCause, 0)&CauseBD != 0, c.wantBD)
			}
			if got := ExcCode(s.Get(RegCause, 0) >> 2 & 31); got != c.code {
				t.Errorf("ExcCode %v, want %v", got, c.code)
			}
			if s.Get(RegStatus, 0)&StatusEXL == 0 {
				t.Error("EXL not set")
			}
			if s.Get(RegBadVAddr, 0) != 0x00403abc {
				t.Errorf("BadVAddr %#x", s.Get(RegBadVAddr, 0))
			}
			wantHi, wantCtx := uint32(0x12340042), uint32(0xff800000)
			if c.fault == FaultTLB {
				// EntryHi.VPN2 <- VA[31:13], ASID kept; Context.BadVPN2 <- VA[31:13].
				wantHi, wantCtx = 0x00402000|0x42, 0xff800000|0x00403abc>>13<<4
			}
			if s.Get(RegEntryHi, 0) != wantHi || s.Get(RegContext, 0) != wantCtx {
				t.Errorf("EntryHi %#x Context %#x, want %#x %#x", s.Get(RegEntryHi, 0), s.Get(RegContext, 0), wantHi, wantCtx)
			}
		})
	}
}

func TestERET(t *testing.T) {
	s := newState(t)
	s.Set(RegStatus, 0, StatusERL|StatusEXL)
	s.Set(RegErrorEPC, 0, 0x100)
	s.Set(RegEPC, 0, 0x200)
	if pc := s.ERET(); pc != 0x100 || s.Get(RegStatus, 0) != StatusEXL {
		t.Errorf("ERET with ERL: pc %#x status %#x", pc, s.Get(RegStatus, 0))
	}
	if pc := s.ERET(); pc != 0x200 || s.Get(RegStatus, 0) != 0 {
		t.Errorf("ERET with EXL: pc %#x status %#x", pc, s.Get(RegStatus, 0))
	}
}

func TestKernelMode(t *testing.T) {
	cases := []struct {
		status uint32
		kernel bool
	}{{0, true}, {StatusUM, false}, {StatusUM | StatusEXL, true}, {StatusUM | StatusERL, true}}
	s := newState(t)
	for _, c := range cases {
		s.Set(RegStatus, 0, c.status)
		if s.KernelMode() != c.kernel {
			t.Errorf("Status %#x: kernel %v, want %v", c.status, !c.kernel, c.kernel)
		}
	}
}

func TestCommpageAddr(t *testing.T) {
	for ps, want := range map[uint32]uint32{4096: 0x7000, 16384: 0x4000, 32768: 0, 65536: 0} {
		if got := CommpageAddr(ps); got != want {
			t.Errorf("CommpageAddr(%d) = %#x, want %#x", ps, got, want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	a := EntryFromRegs(0x00400000|1, EntryLoV, EntryLoV, 0)
	b := EntryFromRegs(0x00400000|2, EntryLoV, EntryLoV, 0)
	c := EntryFromRegs(0x00400000|2, EntryLoV|EntryLoG, EntryLoG, 0)
	d := EntryFromRegs(0x00404000|1, EntryLoV, EntryLoV, 0x6000) // 16K pair 0x400000-0x407fff
	if Overlaps(&a, &b) || !Overlaps(&a, &c) || !Overlaps(&a, &d) {
		t.Errorf("overlaps: a/b %v a/c %v a/d %v", Overlaps(&a, &b), Overlaps(&a, &c), Overlaps(&a, &d))
	}
}

func FuzzMTC0(f *testing.F) {
	f.Add(uint8(5), uint8(0), uint32(0x12345678))
	f.Add(uint8(15), uint8(1), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, reg, sel uint8, v uint32) {
		s, _ := NewState(4096)
		got := s.MTC0(reg, sel, v)
		if s.Get(reg, sel) != got {
			t.Fatalf("register holds %#x, MTC0 returned %#x", s.Get(reg, sel), got)
		}
		if reg&31 == RegPageMask && sel&7 == 0 && NormalizePageMask(got) != got {
			t.Fatalf("PageMask %#x not normalized", got)
		}
		// TLB instructions never panic whatever the registers hold.
		s.TLBP()
		s.TLBR()
		s.TLBWrite(s.WriteIndex(), false)
		s.TLBWrite(s.RandomIndex(), true)
		if r := s.RandomIndex(); r < int(s.Get(RegWired, 0)) && r != 63 {
			t.Fatalf("Random %d below Wired %d", r, s.Get(RegWired, 0))
		}
	})
}

// TestStateLookupMatchesScan: the State's indexed lookup answers as the
// linear scan of the TLB (the first matching entry) after random TLB
// writes of every page size, with global entries, several ASIDs and
// entries that overlap (so the lowest index must win).
func TestStateLookupMatchesScan(t *testing.T) {
	s, err := NewState(4096)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12345, 1))
	rnd := rng.Uint64N
	masks := []uint32{0, 0, 0, 0x6000, 0x1e000, 0x7e000, 0x1fffe000}
	va := func() uint32 {
		if rnd(2) == 0 {
			e := s.TLB.E[rnd(Entries)]
			return e.Hi&EntryHiVPN2 | uint32(rnd(1<<13)) ^ uint32(rnd(2))<<13
		}
		return uint32(rnd(1 << 32))
	}
	for round := 0; round < 3000; round++ {
		if round%1000 == 0 {
			s.Reset()
		}
		hi := uint32(0x00400000) + uint32(rnd(64))<<13 | uint32(rnd(3))
		if rnd(4) == 0 {
			hi = va()&EntryHiVPN2 | uint32(rnd(3))
		}
		g := uint32(0)
		if rnd(8) == 0 {
			g = EntryLoG
		}
		s.MTC0(RegEntryHi, 0, hi)
		s.MTC0(RegEntryLo0, 0, uint32(rnd(1<<20))<<6|EntryLoV|g)
		s.MTC0(RegEntryLo1, 0, uint32(rnd(1<<20))<<6|g)
		s.MTC0(RegPageMask, 0, masks[rnd(uint64(len(masks)))])
		if rnd(2) == 0 {
			s.TLBWrite(s.RandomIndex(), true)
		} else {
			s.TLBWrite(int(rnd(Entries)), false)
		}
		for k := 0; k < 20; k++ {
			a, asid := va(), uint8(rnd(3))
			if got, want := s.Lookup(a, asid), s.TLB.Lookup(a, asid); got != want {
				t.Fatalf("round %d: Lookup(%#x, %d) = %d, the scan finds %d", round, a, asid, got, want)
			}
		}
	}
}
