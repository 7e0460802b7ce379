package vmsa_test

import (
	"fmt"
	"math/bits"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestBlockLevels maps one leaf at each legal level of each granule and
// checks the output address: the leaf's OA bits above the leaf size, the
// VA's bits below it (AArch64.S1Walk / StageOA). Leaf sizes: 4K: L3 4K,
// L2 2M, L1 1G, L0 512G (DS); 16K: L3 16K, L2 32M, L1 64G (DS); 64K: L3
// 64K, L2 512M, L1 4T (FEAT_LPA).
func TestBlockLevels(t *testing.T) {
	const va = 0x0000_5a5a_5a5a_5a5a
	cases := []struct {
		g     sysreg.Granule
		tg0   uint64
		ds    bool
		level int
		size  uint // log2 of the leaf size
		oa    uint64
	}{
		{sysreg.Granule4K, 0, false, 3, 12, 0x4123_4000},
		{sysreg.Granule4K, 0, false, 2, 21, 0x4160_0000},
		{sysreg.Granule4K, 0, false, 1, 30, 0x7_c000_0000},
		{sysreg.Granule4K, 0, true, 0, 39, 0xa_8000_0000_0000},
		{sysreg.Granule16K, 2, false, 3, 14, 0x4123_c000},
		{sysreg.Granule16K, 2, false, 2, 25, 0x4200_0000},
		{sysreg.Granule16K, 2, true, 1, 36, 0xc_1230_0000_0000 &^ (1<<36 - 1)},
		{sysreg.Granule64K, 1, false, 3, 16, 0x4123_0000},
		{sysreg.Granule64K, 1, false, 2, 29, 0x6000_0000},
		{sysreg.Granule64K, 1, false, 1, 42, 0xf_fc00_0000_0000},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v L%d", c.g, c.level), func(t *testing.T) {
			g := newRig(t)
			ips := uint64(6) // 52 bits
			tcr := uint64(16) | c.tg0<<14 | ips<<32
			if c.ds {
				tcr |= 1<<59 | 3<<12
			}
			g.r.SCTLR_EL1 = 1 | 1<<2
			g.r.TCR_EL1 = sysreg.TCR(tcr)
			g.r.MAIR_EL1 = 0xff
			f := desc.Format{Granule: c.g, DS: c.ds, OA52: c.g == sysreg.Granule64K}
			tb, err := ttbuild.New(g.m, &ttbuild.Alloc{Next: 0x4800_0000, End: 0x5000_0000}, f, false, 48, ttbuild.StartLevel(c.g, 48))
			if err != nil {
				t.Fatal(err)
			}
			g.r.TTBR0_EL1 = sysreg.TTBR(tb.Root)
			if err := tb.MapS1(va, c.level, desc.S1Leaf{OA: c.oa, AF: true, SH: 3}); err != nil {
				t.Fatal(err)
			}
			tr := g.tr(va, rd1)
			if tr.Fault.IsFault() {
				t.Fatalf("fault %v", tr.Fault)
			}
			want := c.oa | va&(1<<c.size-1)
			if tr.OA != mem.PA(want) || int(tr.Level) != c.level || uint(tr.BlockBits) != c.size {
				t.Errorf("OA %#x level %d bits %d; want %#x level %d bits %d", tr.OA, tr.Level, tr.BlockBits, want, c.level, c.size)
			}
		})
	}
}

// TestContiguousBit: the contiguous hint does not change the output (each
// descriptor still supplies its own OA) and reports the range the TLB may
// cache as one entry (AArch64.ContiguousSize: 4K 16 entries; 16K L3 128,
// L2 32; 64K L3 32, L2 32).
func TestContiguousBit(t *testing.T) {
	cases := []struct {
		g     sysreg.Granule
		tg0   uint64
		level int
		leaf  uint
		bits  uint8
	}{
		{sysreg.Granule4K, 0, 3, 12, 16},
		{sysreg.Granule4K, 0, 2, 21, 25},
		{sysreg.Granule4K, 0, 1, 30, 34},
		{sysreg.Granule16K, 2, 3, 14, 21},
		{sysreg.Granule16K, 2, 2, 25, 30},
		{sysreg.Granule64K, 1, 3, 16, 21},
		{sysreg.Granule64K, 1, 2, 29, 34},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v L%d", c.g, c.level), func(t *testing.T) {
			g := newRig(t)
			g.r.SCTLR_EL1 = 1
			g.r.TCR_EL1 = sysreg.TCR(16 | c.tg0<<14 | 5<<32)
			f := desc.Format{Granule: c.g, OA52: false}
			tb, err := ttbuild.New(g.m, &ttbuild.Alloc{Next: 0x4800_0000, End: 0x5000_0000}, f, false, 48, ttbuild.StartLevel(c.g, 48))
			if err != nil {
				t.Fatal(err)
			}
			g.r.TTBR0_EL1 = sysreg.TTBR(tb.Root)
			// The second entry of a group maps an OA that is not the group's
			// base + its offset: the walk must still use its own OA.
			va := uint64(1) << c.leaf
			oa := uint64(0x7) << 40
			if err := tb.MapS1(va, c.level, desc.S1Leaf{OA: oa, AF: true, Contig: true}); err != nil {
				t.Fatal(err)
			}
			tr := g.tr(va|0x123, rd1)
			if tr.Fault.IsFault() || tr.OA != mem.PA(oa|0x123) {
				t.Fatalf("fault %v OA %#x; want %#x", tr.Fault, tr.OA, oa|0x123)
			}
			if tr.ContigBits != c.bits {
				t.Errorf("ContigBits = %d, want %d", tr.ContigBits, c.bits)
			}
		})
	}
}

// TestBigEndianTables: SCTLR_ELx.EE=1 makes the walk read (and update)
// descriptors big-endian: SCTLR_EL1.EE for stage 1, SCTLR_EL2.EE for stage 2.
func TestBigEndianTables(t *testing.T) {
	be := bits.ReverseBytes64
	setS1 := func(g *rig, rev bool) {
		conv := func(v uint64) uint64 { return v }
		if rev {
			conv = be
		}
		g.r.SCTLR_EL1 = 1 | 1<<2
		g.r.TCR_EL1 = sysreg.TCR(16 | 5<<32 | tcrHA)
		g.r.TTBR0_EL1 = rL0
		g.r.MAIR_EL1 = 0xff
		g.put(rL0, conv(rL1|xTable))
		g.put(rL1, conv(rL2|xTable))
		g.put(rL2, conv(rL3|xTable))
		g.put(rL3+8, conv(0x4000_1000|xTable|xIS)) // AF clear: HA sets it
	}
	t.Run("stage 1 EE=1", func(t *testing.T) {
		g := newRig(t)
		setS1(g, true)
		g.r.SCTLR_EL1 |= 1 << 25
		tr := g.tr(0x1234, rd1)
		if tr.Fault.IsFault() || tr.OA != 0x4000_1234 {
			t.Fatalf("fault %v OA %#x", tr.Fault, tr.OA)
		}
		if got, want := g.get(rL3+8), be(0x4000_1000|xTable|xIS|xAF); got != want {
			t.Errorf("updated descriptor in memory = %#x, want big-endian %#x", got, want)
		}
	})
	t.Run("stage 1 EE=0 reads big-endian tables wrongly", func(t *testing.T) {
		g := newRig(t)
		setS1(g, true)
		// be(0x4400_1003) = 0x0310_0044_0000_0000: bit 0 clear, invalid.
		tr := g.tr(0x1234, rd1)
		wantFault(t, tr.Fault, vmsa.FaultTranslation, 0, false)
	})
	t.Run("stage 1 EE=1 with little-endian tables", func(t *testing.T) {
		g := newRig(t)
		setS1(g, false)
		g.r.SCTLR_EL1 |= 1 << 25
		tr := g.tr(0x1234, rd1)
		wantFault(t, tr.Fault, vmsa.FaultTranslation, 0, false)
	})
	t.Run("stage 2 SCTLR_EL2.EE=1", func(t *testing.T) {
		g := newRig(t)
		g.r.HCR_EL2 |= sysreg.HCR_VM
		g.r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 5<<16)
		g.r.VTTBR_EL2 = rS2L1
		g.r.SCTLR_EL2 = 1 << 25
		g.put(rS2L1+8, be(rS2L2|xTable))
		g.put(rS2L2, be(0x4000_0000|xBlock|0xf<<2|3<<6|xIS|xAF))
		tr := g.w.TranslateS2(&g.r, 0x4000_1234, rd1)
		if tr.Fault.IsFault() || tr.OA != 0x4000_1234 {
			t.Fatalf("fault %v OA %#x", tr.Fault, tr.OA)
		}
		// SCTLR_EL1.EE does not matter for stage 2.
		g.r.SCTLR_EL2 = 0
		g.r.SCTLR_EL1 = 1 << 25
		tr = g.w.TranslateS2(&g.r, 0x4000_1234, rd1)
		wantFault(t, tr.Fault, vmsa.FaultTranslation, 1, true)
	})
}

// TestConcatenatedStartTables: VTCR_EL2 4K, T0SZ=24 (40-bit IPA), SL0=1
// (start level 1). Level 1 resolves IPA[38:30]; the extra IPA bit 39
// selects the second of two concatenated tables, i.e. the start "table" is
// 1024 entries indexed by IPA[39:30] and 8KB aligned.
func TestConcatenatedStartTables(t *testing.T) {
	g := newRig(t)
	g.r.HCR_EL2 |= sysreg.HCR_VM
	g.r.VTCR_EL2 = sysreg.VTCR(24 | 1<<6 | 5<<16)
	const base = 0x4f00_0000 // 8KB aligned
	g.r.VTTBR_EL2 = base
	blk := func(pa uint64) uint64 { return pa | xBlock | 0xf<<2 | 3<<6 | xIS | xAF }
	g.put(base+1*8, blk(0x0000_0000))       // IPA [1G, 2G)       -> PA 0
	g.put(base+0x201*8, blk(0x4000_0000))   // IPA 512G+[1G, 2G)  -> PA 1G
	g.put(base+0x3ff*8, blk(0x2_0000_0000)) // IPA [1023G, 1024G) -> PA 8G
	g.put(base+0x200*8+0x1000, blk(1<<45))  // beyond the 2 tables: must not be used
	cases := []struct {
		ipa, oa uint64
	}{
		{0x4000_1234, 0x1234},
		{0x80_4000_1234, 0x4000_1234}, // 512 GiB + 1 GiB: second table, entry 1
		{0xff_c000_0008, 0x2_0000_0008},
	}
	for _, c := range cases {
		tr := g.w.TranslateS2(&g.r, mem.IPA(c.ipa), rd1)
		if tr.Fault.IsFault() || tr.OA != mem.PA(c.oa) || tr.S2Level != 1 {
			t.Errorf("IPA %#x: fault %v OA %#x level %d; want OA %#x at level 1", c.ipa, tr.Fault, tr.OA, tr.S2Level, c.oa)
		}
	}
	// An IPA with bit 40 set is outside the 40-bit IPA space.
	tr := g.w.TranslateS2(&g.r, 1<<40|0x4000_0000, rd1)
	wantFault(t, tr.Fault, vmsa.FaultTranslation, 0, true)
	// The base is aligned to the concatenated size: VTTBR bits [12] are ignored
	// (AArch64.S2TTBaseAddress), so base+0x1000 walks the same tables.
	g.r.VTTBR_EL2 = base + 0x1000
	tr = g.w.TranslateS2(&g.r, 0x80_4000_1234, rd1)
	if tr.Fault.IsFault() || tr.OA != 0x4000_1234 {
		t.Errorf("misaligned VTTBR: fault %v OA %#x; want 0x40001234", tr.Fault, tr.OA)
	}
}

// TestStage2ConcatenationLimits: AArch64.S2InconsistentSL allows at most 16
// concatenated tables (4 extra bits) at the start level, and requires more
// than one level's worth of input bits.
func TestStage2ConcatenationLimits(t *testing.T) {
	cases := []struct {
		t0sz, sl0 uint64
		ok        bool
	}{
		// 4K SL0=1 (start level 1): level 1 covers 31..39 bits, +4 = 43.
		{21, 1, true},  // 43 bits: 16 tables
		{20, 1, false}, // 44 bits: 32 tables
		{34, 1, false}, // 30 bits: no bit left for level 1 (minimum 31)
		{32, 1, true},  // 32 bits
		{25, 0, false}, // SL0=0 start level 2: at most 34 bits
		{30, 0, true},  // 34 bits at level 2: 16 tables
		{16, 2, true},  // start level 0, 48 bits
		{12, 2, false}, // 52 bits without DS: below the minimum T0SZ
	}
	for _, c := range cases {
		g := newRig(t)
		g.r.HCR_EL2 |= sysreg.HCR_VM
		g.r.VTCR_EL2 = sysreg.VTCR(c.t0sz | c.sl0<<6 | 5<<16)
		g.r.VTTBR_EL2 = 0x4f00_0000
		tr := g.w.TranslateS2(&g.r, 0x1000, rd1)
		// With valid parameters the empty table gives a translation fault
		// at the start level; with invalid ones, a level-0 fault.
		start := int8(2 - c.sl0)
		if !c.ok {
			start = 0
		}
		if c.ok && start == 0 {
			continue
		}
		wantFault(t, tr.Fault, vmsa.FaultTranslation, start, true)
	}
}

// TestTranslationAgainstSparseAndFlat: the walker only uses the Memory
// interface, so the same tables in a Flat memory give the same results.
func TestTranslationAgainstSparseAndFlat(t *testing.T) {
	g := newRig(t)
	g.std4k()
	flat, err := mem.NewFlat(rL0, 0x10000) // the tables only
	if err != nil {
		t.Fatal(err)
	}
	for pa, v := range g.m.Words() {
		if pa < rL0 || pa >= rL0+0x10000 {
			continue
		}
		if err := flat.Write64(pa, v); err != nil {
			t.Fatal(err)
		}
	}
	w2 := vmsa.Walker{Mem: flat}
	for _, va := range []uint64{0x1234, 0x2234, 1 << 40} {
		a := g.tr(va, rd1)
		b := w2.Translate(&g.r, vmsa.RegimeEL10, mem.VA(va), rd1, vmsa.TranslateOptions{})
		if a.Fault != b.Fault || a.OA != b.OA {
			t.Errorf("VA %#x: sparse %v %#x, flat %v %#x", va, a.Fault, a.OA, b.Fault, b.OA)
		}
	}
}

// TestStage2OtherGranules: stage-2 start levels and concatenation for 16K
// and 64K (AArch64.S2StartLevel: 3 - SL0; AArch64.S2InconsistentSL: at most
// 4 extra bits at the start level).
func TestStage2OtherGranules(t *testing.T) {
	const base = 0x4f00_0000 // 256KB aligned
	blk := func(pa uint64) uint64 { return pa | xBlock | 0xf<<2 | 3<<6 | xIS | xAF }
	cases := []struct {
		name  string
		vtcr  uint64
		entry uint64 // byte offset of the descriptor in the start table(s)
		d     uint64
		ipa   uint64
		oa    uint64 // 0: expect a level-0 translation fault
		level int8
	}{
		// 16K, 36-bit IPA, SL0=1: start level 2, index IPA[35:25].
		{"16K L2 start", 28 | 1<<6 | 2<<14 | 5<<16, 0x20 * 8, blk(0x4000_0000), 0x4000_1234, 0x4000_1234, 2},
		// 16K, 40-bit IPA, SL0=1: 16 concatenated tables, index IPA[39:25].
		{"16K 16 concatenated", 24 | 1<<6 | 2<<14 | 5<<16, 0x2ad00, blk(0x1_4200_0000), 0xab_4000_1234, 0x1_4200_1234, 2},
		// 16K, 41-bit IPA at level 2 needs 32 tables: inconsistent.
		{"16K 32 tables", 23 | 1<<6 | 2<<14 | 5<<16, 0, 0, 0x1234, 0, 0},
		// 16K SL0=3 (level 0) needs DS.
		{"16K SL0=3 without DS", 16 | 3<<6 | 2<<14 | 5<<16, 0, 0, 0x1234, 0, 0},
		// 64K, 44-bit IPA, SL0=1: start level 2, 4 tables, index IPA[43:29].
		{"64K 4 concatenated", 20 | 1<<6 | 1<<14 | 5<<16, 0x28488, blk(0x2000_0000), 0xa12_3456_789a, 0x2000_0000 | 0x1456_789a, 2},
		// 64K SL0=0 (level 3) with 44 bits: inconsistent.
		{"64K L3 start too small", 20 | 0<<6 | 1<<14 | 5<<16, 0, 0, 0x1234, 0, 0},
		// 64K SL0=3 is reserved.
		{"64K SL0=3", 20 | 3<<6 | 1<<14 | 5<<16, 0, 0, 0x1234, 0, 0},
		// 64K SL0=2 (level 1), 48-bit IPA: 64 entries, index IPA[47:42], 4TB block
		// (FEAT_LPA) with OA[51:48]=0b0100 in descriptor bits [15:12].
		{"64K L1 start, 4TB block", 16 | 2<<6 | 1<<14 | 6<<16, 0x29 * 8, blk(4 << 12), 0xa412_3456_7890, 0x4_0000_0000_0000 | 0x12_3456_7890, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newRig(t)
			g.r.HCR_EL2 |= sysreg.HCR_VM
			g.r.VTCR_EL2 = sysreg.VTCR(c.vtcr)
			g.r.VTTBR_EL2 = base
			if c.d != 0 {
				g.put(base+c.entry, c.d)
			}
			tr := g.w.TranslateS2(&g.r, mem.IPA(c.ipa), rd1)
			if c.oa == 0 {
				wantFault(t, tr.Fault, vmsa.FaultTranslation, 0, true)
				return
			}
			if tr.Fault.IsFault() || tr.OA != mem.PA(c.oa) || tr.S2Level != c.level {
				t.Errorf("fault %v OA %#x level %d; want OA %#x level %d", tr.Fault, tr.OA, tr.S2Level, c.oa, c.level)
			}
		})
	}
}

// TestAddressSizeChecksLeafBase: AArch64.S1Walk and AArch64.S2Walk apply
// AArch64.OAOutOfRange to the leaf's base address (AArch64.LeafBase), not
// to base plus the input-address offset. A 64K level-1 block (4TB) at OA 0
// with a 32-bit output size therefore translates even for offsets above
// 4GB, while a block whose base is above 4GB faults.
func TestAddressSizeChecksLeafBase(t *testing.T) {
	g := newRig(t)
	g.r.SCTLR_EL1 = 1
	g.r.TCR_EL1 = sysreg.TCR(16 | 1<<14) // 64K, T0SZ=16 (start level 1), IPS=32 bits
	g.r.TTBR0_EL1 = rL0
	g.put(rL0, 0|xBlock|xAF)       // VA [0, 4TB) -> PA 0
	g.put(rL0+8, 1<<42|xBlock|xAF) // VA [4TB, 8TB) -> PA 4TB: base beyond 32 bits
	const va = 0x12_3456_7890
	if tr := g.tr(va, rd1); tr.Fault.IsFault() || tr.OA != va {
		t.Errorf("base 0: fault %v OA %#x, want OA %#x", tr.Fault, tr.OA, uint64(va))
	}
	tr := g.tr(1<<42|0x1234, rd1)
	wantFault(t, tr.Fault, vmsa.FaultAddressSize, 1, false)

	// Stage 2: 64K, T0SZ=16, SL0=2 (start level 1), PS=32 bits.
	g.r.HCR_EL2 |= sysreg.HCR_VM
	g.r.VTCR_EL2 = sysreg.VTCR(16 | 2<<6 | 1<<14)
	g.r.VTTBR_EL2 = rS2L1
	g.put(rS2L1, 0|xBlock|0xf<<2|3<<6|xAF)
	g.put(rS2L1+8, 1<<42|xBlock|0xf<<2|3<<6|xAF)
	if tr := g.w.TranslateS2(&g.r, va, rd1); tr.Fault.IsFault() || tr.OA != va {
		t.Errorf("S2 base 0: fault %v OA %#x", tr.Fault, tr.OA)
	}
	tr = g.w.TranslateS2(&g.r, 1<<42|0x1234, rd1)
	wantFault(t, tr.Fault, vmsa.FaultAddressSize, 1, true)
}
