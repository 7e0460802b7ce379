package ttbuild_test

import (
	"math/bits"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/mem"
)

func newMem(t *testing.T) *mem.Sparse {
	t.Helper()
	m, err := mem.NewSparse([]mem.Range{{Base: 0x4000_0000, Size: 0x0100_0000}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func word(t *testing.T, m *mem.Sparse, pa uint64) uint64 {
	t.Helper()
	v, ok := m.Read64(mem.PA(pa))
	if !ok {
		t.Fatalf("%#x outside RAM", pa)
	}
	return v
}

func TestStartLevel(t *testing.T) {
	// AArch64.S1StartLevel: 3 - floor((ia-1-granulebits)/stride).
	cases := []struct {
		g    sysreg.Granule
		ia   uint
		want int
	}{
		{sysreg.Granule4K, 48, 0}, {sysreg.Granule4K, 39, 1}, {sysreg.Granule4K, 40, 0}, {sysreg.Granule4K, 30, 2},
		{sysreg.Granule4K, 21, 3}, {sysreg.Granule4K, 52, -1}, {sysreg.Granule4K, 16, 3},
		{sysreg.Granule16K, 48, 0}, {sysreg.Granule16K, 47, 1}, {sysreg.Granule16K, 36, 2}, {sysreg.Granule16K, 25, 3},
		{sysreg.Granule64K, 48, 1}, {sysreg.Granule64K, 52, 1}, {sysreg.Granule64K, 42, 2}, {sysreg.Granule64K, 29, 3},
	}
	for _, c := range cases {
		if got := ttbuild.StartLevel(c.g, c.ia); got != c.want {
			t.Errorf("StartLevel(%v, %d) = %d, want %d", c.g, c.ia, got, c.want)
		}
	}
}

func TestAlloc(t *testing.T) {
	a := &ttbuild.Alloc{Next: 0x1008, End: 0x4000}
	p, err := a.Take(0x1000, 0x1000)
	if err != nil || p != 0x2000 || a.Next != 0x3000 {
		t.Fatalf("Take = %#x, %v; next %#x", p, err, a.Next)
	}
	if _, err := a.Take(0x2000, 0x1000); err == nil || !strings.Contains(err.Error(), "0x2000") {
		t.Errorf("exhaustion error %v should name the size", err)
	}
	wrap := &ttbuild.Alloc{Next: ^uint64(0) - 0xfff, End: ^uint64(0)}
	if _, err := wrap.Take(0x2000, 8); err == nil {
		t.Error("wrapping allocation succeeded")
	}
}

// TestMapS1Walk: 4K, 48-bit input, start level 0. Mapping VA
// 0x0000_1234_5678_9000 at level 3 creates tables for indices L0 =
// VA[47:39] = 0x24, L1 = VA[38:30] = 0xd1, L2 = VA[29:21] = 0xb3, L3 =
// VA[20:12] = 0x189, each a fresh 4K page from the allocator.
func TestMapS1Walk(t *testing.T) {
	m := newMem(t)
	a := &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4010_0000}
	f := desc.Format{Granule: sysreg.Granule4K}
	tb, err := ttbuild.New(m, a, f, false, 48, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Root != 0x4000_0000 {
		t.Fatalf("root %#x", tb.Root)
	}
	const va = 0x0000_1234_5678_9000
	leaf := desc.S1Leaf{OA: 0x4080_0000, AF: true, SH: 3, AttrIndx: 1}
	if err := tb.MapS1(va, 3, leaf); err != nil {
		t.Fatal(err)
	}
	// Tables were allocated in order: L1 at +0x1000, L2 at +0x2000, L3 at +0x3000.
	if got := word(t, m, 0x4000_0000+0x24*8); got != 0x4000_1003 {
		t.Errorf("L0[0x24] = %#x, want 0x40001003", got)
	}
	if got := word(t, m, 0x4000_1000+0xd1*8); got != 0x4000_2003 {
		t.Errorf("L1[0xd1] = %#x, want 0x40002003", got)
	}
	if got := word(t, m, 0x4000_2000+0xb3*8); got != 0x4000_3003 {
		t.Errorf("L2[0xb3] = %#x, want 0x40003003", got)
	}
	// Page: OA | AF | SH=11 | AttrIndx=1 | 0b11.
	if got := word(t, m, 0x4000_3000+0x189*8); got != 0x4080_0000|1<<10|3<<8|1<<2|3 {
		t.Errorf("L3[0x189] = %#x", got)
	}
	d, addr, ok := tb.Get(va, 3)
	if !ok || addr != 0x4000_3000+0x189*8 || d != 0x4080_0000|1<<10|3<<8|1<<2|3 {
		t.Errorf("Get = %#x at %#x, %v", d, addr, ok)
	}
	// A second mapping in the same L3 table allocates nothing new.
	next := a.Next
	if err := tb.MapS1(va+0x1000, 3, leaf); err != nil {
		t.Fatal(err)
	}
	if a.Next != next {
		t.Errorf("allocator moved from %#x to %#x", next, a.Next)
	}
	// Set replaces whatever is there (this builder does no break-before-make
	// checks): a level-2 block now covers va ...
	if err := tb.MapS1(va, 2, desc.S1Leaf{OA: 0x4060_0000, AF: true}); err != nil {
		t.Fatal(err)
	}
	// ... so a level-3 mapping under it is refused, naming the level.
	if err := tb.MapS1(va, 3, leaf); err == nil || !strings.Contains(err.Error(), "level 2") {
		t.Errorf("mapping under a block: err = %v, want one naming level 2", err)
	}
	if _, _, ok := tb.Get(va, 3); ok {
		t.Error("Get through a block succeeded")
	}
}

func TestErrors(t *testing.T) {
	m := newMem(t)
	a := &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4000_2000}
	f := desc.Format{Granule: sysreg.Granule4K}
	tb, err := ttbuild.New(m, a, f, false, 39, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.MapS1(1<<39, 3, desc.S1Leaf{}); err == nil || !strings.Contains(err.Error(), "0x8000000000") {
		t.Errorf("address beyond 39 bits: %v", err)
	}
	if err := tb.MapS1(0, 0, desc.S1Leaf{}); err == nil {
		t.Error("level above the start level accepted")
	}
	if err := tb.MapS2(0, 3, desc.S2Leaf{}); err == nil {
		t.Error("MapS2 on stage-1 tables accepted")
	}
	// One page left: L2 fits, L3 does not.
	if err := tb.MapS1(0, 3, desc.S1Leaf{}); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("exhaustion: %v", err)
	}
	if _, err := ttbuild.New(m, a, desc.Format{}, false, 39, 1); err == nil {
		t.Error("invalid granule accepted")
	}
	if _, err := ttbuild.New(m, &ttbuild.Alloc{Next: 0x4000_0000, End: 0x5000_0000}, f, false, 21, 2); err == nil {
		t.Error("a level-2 table for a 21-bit input accepted")
	}
	// Table memory outside RAM.
	if _, err := ttbuild.New(m, &ttbuild.Alloc{Next: 0x8000_0000, End: 0x8001_0000}, f, false, 39, 1); err == nil {
		t.Error("tables outside RAM accepted")
	}
}

// TestStage2Concatenated: 4K, 40-bit IPA, start level 1: 2^(40-30) = 1024
// entries, 8KB, aligned to 8KB; IPA 0x80_4000_0000 uses entry 0x201.
func TestStage2Concatenated(t *testing.T) {
	m := newMem(t)
	a := &ttbuild.Alloc{Next: 0x4000_1000, End: 0x4010_0000}
	f := desc.Format{Granule: sysreg.Granule4K}
	tb, err := ttbuild.New(m, a, f, true, 40, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Root != 0x4000_2000 || a.Next != 0x4000_4000 {
		t.Fatalf("root %#x next %#x; want 0x40002000 (8KB aligned), 0x40004000", tb.Root, a.Next)
	}
	l := desc.S2Leaf{OA: 0x4000_0000, MemAttr: 0xf, S2AP: 3, AF: true}
	if err := tb.MapS2(0x80_4000_0000, 1, l); err != nil {
		t.Fatal(err)
	}
	want := uint64(0x4000_0000 | 1 | 0xf<<2 | 3<<6 | 1<<10)
	if got := word(t, m, tb.Root+0x201*8); got != want {
		t.Errorf("entry 0x201 = %#x, want %#x", got, want)
	}
	if err := tb.MapS1(0, 3, desc.S1Leaf{}); err == nil {
		t.Error("MapS1 on stage-2 tables accepted")
	}
	// Stage-2 table descriptors carry no hierarchical attributes.
	if err := tb.MapS2(0x1000, 3, l); err != nil {
		t.Fatal(err)
	}
	if got := word(t, m, tb.Root); got != 0x4000_4003 {
		t.Errorf("entry 0 = %#x, want a table at 0x40004000", got)
	}
}

func TestBigEndianAndExtra(t *testing.T) {
	m := newMem(t)
	a := &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4010_0000}
	f := desc.Format{Granule: sysreg.Granule64K}
	tb, err := ttbuild.New(m, a, f, false, 42, ttbuild.StartLevel(sysreg.Granule64K, 42))
	if err != nil {
		t.Fatal(err)
	}
	tb.BigEndian = true
	if tb.Start != 2 {
		t.Fatalf("start %d", tb.Start)
	}
	// 64K, 42 bits: L2 index VA[41:29] = 3 for 0x6000_0000, L3 index VA[28:16] = 0x12.
	addr, err := tb.EntryAddr(0x6012_0000, 3, 1<<61) // APTable[0] on the new table descriptor
	if err != nil {
		t.Fatal(err)
	}
	if addr != 0x4001_0000+0x12*8 {
		t.Errorf("EntryAddr = %#x", addr)
	}
	if got := bits.ReverseBytes64(word(t, m, tb.Root+3*8)); got != 0x4001_0003|1<<61 {
		t.Errorf("L2[3] (big-endian) = %#x, want %#x", got, uint64(0x4001_0003|1<<61))
	}
	if err := tb.Set(0x6012_0000, 3, 0x4050_0403); err != nil {
		t.Fatal(err)
	}
	if got := word(t, m, addr); got != bits.ReverseBytes64(0x4050_0403) {
		t.Errorf("page stored as %#x, want big-endian", got)
	}
	if d, _, ok := tb.Get(0x6012_0000, 3); !ok || d != 0x4050_0403 {
		t.Errorf("Get = %#x, %v", d, ok)
	}
}
