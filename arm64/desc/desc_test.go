package desc_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// Bit positions in this file are taken from DDI 0487 D8.3 ("VMSAv8-64
// translation table format descriptors"), not from the package.

func TestKindAt(t *testing.T) {
	for level := -1; level <= 3; level++ {
		for low := uint64(0); low < 4; low++ {
			d := 0x4000_0000 | low
			var want desc.Kind
			switch {
			case low&1 == 0:
				want = desc.Invalid
			case level == 3 && low == 3:
				want = desc.Page
			case level == 3:
				want = desc.Reserved
			case low == 3:
				want = desc.Table
			default:
				want = desc.Block
			}
			if got := desc.KindAt(d, level); got != want {
				t.Errorf("KindAt(%#x, %d) = %v, want %v", d, level, got, want)
			}
		}
	}
	for k, s := range map[desc.Kind]string{desc.Invalid: "invalid", desc.Table: "table", desc.Block: "block", desc.Page: "page", desc.Reserved: "reserved"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), s)
		}
	}
}

func TestLeafBits(t *testing.T) {
	// 4K: 12 + 9 per level; 16K: 14 + 11; 64K: 16 + 13.
	want := map[sysreg.Granule][5]uint{
		sysreg.Granule4K:  {48, 39, 30, 21, 12},
		sysreg.Granule16K: {58, 47, 36, 25, 14},
		sysreg.Granule64K: {68, 55, 42, 29, 16},
	}
	for g, w := range want {
		f := desc.Format{Granule: g}
		for level := -1; level <= 3; level++ {
			if got := f.LeafBits(level); got != w[level+1] {
				t.Errorf("%v LeafBits(%d) = %d, want %d", g, level, got, w[level+1])
			}
		}
		if f.Stride() != g.Bits()-3 {
			t.Errorf("%v stride %d", g, f.Stride())
		}
	}
}

func TestS1LeafFields(t *testing.T) {
	f := desc.Format{Granule: sysreg.Granule4K}
	cases := []struct {
		l     desc.S1Leaf
		level int
		want  uint64
	}{
		// Page: bits[1:0]=0b11, OA, AttrIndx[4:2]=3, AP[7:6]=01, SH[9:8]=11, AF(10).
		{desc.S1Leaf{OA: 0x4000_1000, AttrIndx: 3, AP: 1, SH: 3, AF: true}, 3, 0x4000_1000 | 0b11 | 3<<2 | 1<<6 | 3<<8 | 1<<10},
		// Block at level 2: bits[1:0]=0b01.
		{desc.S1Leaf{OA: 0x4020_0000, AF: true}, 2, 0x4020_0401},
		{desc.S1Leaf{NS: true}, 3, 1<<5 | 3},
		{desc.S1Leaf{NG: true}, 3, 1<<11 | 3},
		{desc.S1Leaf{DBM: true}, 3, 1<<51 | 3},
		{desc.S1Leaf{Contig: true}, 3, 1<<52 | 3},
		{desc.S1Leaf{PXN: true}, 3, 1<<53 | 3},
		{desc.S1Leaf{UXN: true}, 3, 1<<54 | 3},
		{desc.S1Leaf{AP: 2}, 3, 2<<6 | 3},
		{desc.S1Leaf{AttrIndx: 7}, 1, 7<<2 | 1},
	}
	for _, c := range cases {
		d := c.l.Encode(f, c.level)
		if uint64(d) != c.want {
			t.Errorf("%+v.Encode(L%d) = %#x, want %#x", c.l, c.level, uint64(d), c.want)
		}
		// Decode every field back.
		if d.AttrIndx() != c.l.AttrIndx || d.NS() != c.l.NS || d.AP() != c.l.AP || d.SH() != c.l.SH ||
			d.AF() != c.l.AF || d.NG() != c.l.NG || d.DBM() != c.l.DBM || d.Contiguous() != c.l.Contig ||
			d.PXN() != c.l.PXN || d.UXN() != c.l.UXN || !d.Valid() {
			t.Errorf("decode of %#x does not give back %+v", uint64(d), c.l)
		}
		if got := f.LeafOA(uint64(d), c.level); got != c.l.OA {
			t.Errorf("LeafOA(%#x) = %#x, want %#x", uint64(d), got, c.l.OA)
		}
	}
	// With DS=1 the descriptor's bits [9:8] are OA[51:50]: SH is not encoded.
	d := desc.S1Leaf{OA: 0x4000_1000, SH: 3}.Encode(desc.Format{Granule: sysreg.Granule4K, DS: true}, 3)
	if uint64(d) != 0x4000_1003 {
		t.Errorf("DS=1 leaf = %#x, want 0x40001003", uint64(d))
	}
}

func TestS1TableFields(t *testing.T) {
	f := desc.Format{Granule: sysreg.Granule4K}
	cases := []struct {
		tb   desc.S1Table
		want uint64
	}{
		{desc.S1Table{Addr: 0x4400_1000}, 0x4400_1003},
		{desc.S1Table{PXNTable: true}, 1<<59 | 3},
		{desc.S1Table{UXNTable: true}, 1<<60 | 3},
		{desc.S1Table{APTable: 1}, 1<<61 | 3},
		{desc.S1Table{APTable: 2}, 1<<62 | 3},
		{desc.S1Table{NSTable: true}, 1<<63 | 3},
	}
	for _, c := range cases {
		d := c.tb.Encode(f)
		if uint64(d) != c.want {
			t.Errorf("%+v.Encode = %#x, want %#x", c.tb, uint64(d), c.want)
		}
		if d.PXNTable() != c.tb.PXNTable || d.UXNTable() != c.tb.UXNTable || d.APTable() != c.tb.APTable || d.NSTable() != c.tb.NSTable {
			t.Errorf("decode of %#x does not give back %+v", uint64(d), c.tb)
		}
		if got := f.TableOA(uint64(d)); got != c.tb.Addr {
			t.Errorf("TableOA(%#x) = %#x, want %#x", uint64(d), got, c.tb.Addr)
		}
	}
}

func TestS2LeafFields(t *testing.T) {
	f := desc.Format{Granule: sysreg.Granule4K}
	cases := []struct {
		l     desc.S2Leaf
		level int
		want  uint64
	}{
		// MemAttr[5:2], S2AP[7:6], SH[9:8], AF(10), DBM(51), Contig(52), XN[54:53], SW[58:55].
		{desc.S2Leaf{OA: 0x4000_0000, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}, 2, 0x4000_0000 | 1 | 0xf<<2 | 3<<6 | 3<<8 | 1<<10},
		{desc.S2Leaf{MemAttr: 0x5}, 3, 0x5<<2 | 3},
		{desc.S2Leaf{S2AP: 1}, 3, 1<<6 | 3},
		{desc.S2Leaf{S2AP: 2}, 3, 2<<6 | 3},
		{desc.S2Leaf{DBM: true}, 3, 1<<51 | 3},
		{desc.S2Leaf{Contig: true}, 3, 1<<52 | 3},
		{desc.S2Leaf{XN: 1}, 3, 1<<53 | 3},
		{desc.S2Leaf{XN: 2}, 3, 1<<54 | 3},
		{desc.S2Leaf{SW: 0xf}, 3, 0xf<<55 | 3},
		{desc.S2Leaf{SW: 0x9, XN: 3}, 1, 0x9<<55 | 3<<53 | 1},
	}
	for _, c := range cases {
		d := c.l.Encode(f, c.level)
		if uint64(d) != c.want {
			t.Errorf("%+v.Encode(L%d) = %#x, want %#x", c.l, c.level, uint64(d), c.want)
		}
		if d.MemAttr() != c.l.MemAttr || d.S2AP() != c.l.S2AP || d.SH() != c.l.SH || d.AF() != c.l.AF ||
			d.DBM() != c.l.DBM || d.Contiguous() != c.l.Contig || d.XN() != c.l.XN || !d.Valid() {
			t.Errorf("decode of %#x does not give back %+v", uint64(d), c.l)
		}
	}
	if got := desc.S2Table(f, 0x4f00_1000); uint64(got) != 0x4f00_1003 {
		t.Errorf("S2Table = %#x, want 0x4f001003", uint64(got))
	}
}

// TestOutputAddress52: the 52-bit layouts. 64K with FEAT_LPA: OA[51:48] in
// bits [15:12]; 4K/16K with DS=1: OA[51:50] in bits [9:8] and OA[49:48] in
// bits [49:48].
func TestOutputAddress52(t *testing.T) {
	cases := []struct {
		f     desc.Format
		level int
		oa    uint64
		raw   uint64 // descriptor address bits, computed by hand
	}{
		{desc.Format{Granule: sysreg.Granule64K, OA52: true}, 3, 0xa_1234_5678_0000, 0xa<<12 | 0x1234_5678_0000},
		{desc.Format{Granule: sysreg.Granule64K, OA52: true}, 1, 0xf_fc00_0000_0000, 0xf<<12 | 0xfc00_0000_0000},
		{desc.Format{Granule: sysreg.Granule64K, OA52: false}, 2, 0x1234_6000_0000, 0x1234_6000_0000},
		{desc.Format{Granule: sysreg.Granule4K, DS: true}, 3, 0xb_0000_1234_5000, 2<<8 | 3<<48 | 0x1234_5000},
		{desc.Format{Granule: sysreg.Granule4K, DS: true}, 0, 0xa_8000_0000_0000, 2<<8 | 2<<48 | 0x8000_0000_0000},
		{desc.Format{Granule: sysreg.Granule16K, DS: true}, 1, 0x5_0010_0000_0000, 1<<8 | 1<<48 | 0x10_0000_0000},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v DS=%v OA52=%v L%d", c.f.Granule, c.f.DS, c.f.OA52, c.level), func(t *testing.T) {
			leaf := desc.S1Leaf{OA: c.oa}.Encode(c.f, c.level)
			kind := uint64(1)
			if c.level == 3 {
				kind = 3
			}
			if uint64(leaf) != c.raw|kind {
				t.Errorf("S1 leaf = %#x, want %#x", uint64(leaf), c.raw|kind)
			}
			if got := c.f.LeafOA(uint64(leaf), c.level); got != c.oa {
				t.Errorf("LeafOA = %#x, want %#x", got, c.oa)
			}
			s2 := desc.S2Leaf{OA: c.oa}.Encode(c.f, c.level)
			if got := c.f.LeafOA(uint64(s2), c.level); got != c.oa {
				t.Errorf("S2 LeafOA = %#x, want %#x", got, c.oa)
			}
			// A table at the same address.
			tbl := desc.S1Table{Addr: c.oa}.Encode(c.f)
			if got := c.f.TableOA(uint64(tbl)); got != c.oa {
				t.Errorf("TableOA = %#x, want %#x", got, c.oa)
			}
			if got := c.f.TableOA(uint64(desc.S2Table(c.f, c.oa))); got != c.oa {
				t.Errorf("S2 TableOA = %#x, want %#x", got, c.oa)
			}
		})
	}
}

// TestRoundTripAllLevels: for every granule, level and layout, an aligned
// output address and every attribute survive Encode then decode, starting
// from an all-zero and an all-ones-attributes leaf.
func TestRoundTripAllLevels(t *testing.T) {
	type layout struct {
		g    sysreg.Granule
		ds   bool
		oa52 bool
		min  int // lowest level with a leaf in this layout
	}
	layouts := []layout{
		{sysreg.Granule4K, false, false, 1}, {sysreg.Granule4K, true, false, 0},
		{sysreg.Granule16K, false, false, 2}, {sysreg.Granule16K, true, false, 1},
		{sysreg.Granule64K, false, false, 2}, {sysreg.Granule64K, false, true, 1},
	}
	n := 0
	for _, lo := range layouts {
		f := desc.Format{Granule: lo.g, DS: lo.ds, OA52: lo.oa52}
		width := uint(48)
		if lo.ds || lo.oa52 {
			width = 52
		}
		for level := lo.min; level <= 3; level++ {
			size := f.LeafBits(level)
			for _, oa := range []uint64{0, 1 << size, (1<<width - 1) &^ (1<<size - 1), 0x0005_5555_5555_5555 & (1<<width - 1) &^ (1<<size - 1)} {
				for _, all := range []bool{false, true} {
					l := desc.S1Leaf{OA: oa}
					s := desc.S2Leaf{OA: oa}
					if all {
						l = desc.S1Leaf{OA: oa, AttrIndx: 7, NS: true, AP: 3, AF: true, NG: true, DBM: true, Contig: true, PXN: true, UXN: true}
						s = desc.S2Leaf{OA: oa, MemAttr: 0xf, S2AP: 3, AF: true, DBM: true, Contig: true, XN: 3, SW: 0xf}
						if !lo.ds {
							l.SH, s.SH = 3, 3
						}
					}
					d := l.Encode(f, level)
					got := desc.S1Leaf{OA: f.LeafOA(uint64(d), level), AttrIndx: d.AttrIndx(), NS: d.NS(), AP: d.AP(), AF: d.AF(), NG: d.NG(),
						DBM: d.DBM(), Contig: d.Contiguous(), PXN: d.PXN(), UXN: d.UXN()}
					if !lo.ds {
						got.SH = d.SH()
					}
					if got != l {
						t.Errorf("%+v L%d: %+v -> %#x -> %+v", f, level, l, uint64(d), got)
					}
					e := s.Encode(f, level)
					got2 := desc.S2Leaf{OA: f.LeafOA(uint64(e), level), MemAttr: e.MemAttr(), S2AP: e.S2AP(), AF: e.AF(), DBM: e.DBM(),
						Contig: e.Contiguous(), XN: e.XN(), SW: uint(uint64(e) >> 55 & 0xf)}
					if !lo.ds {
						got2.SH = e.SH()
					}
					if got2 != s {
						t.Errorf("%+v L%d: %+v -> %#x -> %+v", f, level, s, uint64(e), got2)
					}
					wantKind := desc.Block
					if level == 3 {
						wantKind = desc.Page
					}
					if desc.KindAt(uint64(d), level) != wantKind || desc.KindAt(uint64(e), level) != wantKind {
						t.Errorf("%+v L%d: kind of %#x / %#x is not %v", f, level, uint64(d), uint64(e), wantKind)
					}
					n++
				}
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d round trips", n)
	}
}

// TestWithOAKeepsOtherBits: rewriting the output address of a descriptor
// leaves every attribute bit in place.
func TestWithOAKeepsOtherBits(t *testing.T) {
	attrs := uint64(1<<63 | 0x7f<<52 | 1<<51 | 0xfff)
	for _, f := range []desc.Format{{Granule: sysreg.Granule4K}, {Granule: sysreg.Granule16K}, {Granule: sysreg.Granule64K}} {
		d := f.WithOA(attrs|0x1234_5678_0000, 0x8765_4321_0000)
		if d != attrs|0x8765_4321_0000 {
			t.Errorf("%v: WithOA = %#x, want %#x", f.Granule, d, attrs|0x8765_4321_0000)
		}
	}
	// DS=1: bits [9:8] and [49:48] are address bits and are replaced.
	f := desc.Format{Granule: sysreg.Granule4K, DS: true}
	d := f.WithOA(0x3_0000_0000_0303, 0x4_0000_4000_1000)
	if want := uint64(0x4000_1000 | 1<<8 | 3); d != want {
		t.Errorf("DS WithOA = %#x, want %#x", d, want)
	}
}

// TestMasks holds every exported mask to the bit positions of the
// architecture's descriptor layouts (DDI 0487 D8.3), written out as
// [hi:lo] ranges here.
func TestMasks(t *testing.T) {
	span := func(hi, lo uint) uint64 { return (uint64(1)<<(hi-lo+1) - 1) << lo }
	for _, c := range []struct {
		name   string
		mask   uint64
		hi, lo uint
	}{
		{"ValidBit", desc.ValidBit, 0, 0},
		{"TypeBit", desc.TypeBit, 1, 1},
		{"AFBit", desc.AFBit, 10, 10},
		{"DBMBit", desc.DBMBit, 51, 51},
		{"ContigBit", desc.ContigBit, 52, 52},
		{"SWMask", desc.SWMask, 58, 55},
		{"SHMask", desc.SHMask, 9, 8},
		{"S1AttrIndxMask", desc.S1AttrIndxMask, 4, 2},
		{"S1NSBit", desc.S1NSBit, 5, 5},
		{"S1AP1Bit", desc.S1AP1Bit, 6, 6},
		{"S1AP2Bit", desc.S1AP2Bit, 7, 7},
		{"S1NGBit", desc.S1NGBit, 11, 11},
		{"S1PXNBit", desc.S1PXNBit, 53, 53},
		{"S1UXNBit", desc.S1UXNBit, 54, 54},
		{"S1PXNTableBit", desc.S1PXNTableBit, 59, 59},
		{"S1UXNTableBit", desc.S1UXNTableBit, 60, 60},
		{"S1APTableMask", desc.S1APTableMask, 62, 61},
		{"S1NSTableBit", desc.S1NSTableBit, 63, 63},
		{"S2MemAttrMask", desc.S2MemAttrMask, 5, 2},
		{"S2APReadBit", desc.S2APReadBit, 6, 6},
		{"S2APWriteBit", desc.S2APWriteBit, 7, 7},
		{"S2XNMask", desc.S2XNMask, 54, 53},
	} {
		if want := span(c.hi, c.lo); c.mask != want {
			t.Errorf("%s = %#x, want bits [%d:%d] = %#x", c.name, c.mask, c.hi, c.lo, want)
		}
	}
	if got := desc.Field(0x0060_0000_0000_07c5, desc.S2XNMask); got != 3 {
		t.Errorf("Field(XN) = %d, want 3", got)
	}
	if got := desc.Put(0x1f, desc.S2MemAttrMask); got != 0xf<<2 {
		t.Errorf("Put(0x1f, MemAttr) = %#x, want %#x (extra bits dropped)", got, 0xf<<2)
	}
}
