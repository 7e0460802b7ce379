package s2pt

import (
	"errors"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// step is one operation in a table-driven case.
type step func(r *rig)

func mapS(ipa, pa, size uint64, prot Prot, f MapFlags) step {
	return func(r *rig) { r.mapRange(mem.IPA(ipa), mem.PA(pa), size, prot, f) }
}
func unmapS(ipa, size uint64) step { return func(r *rig) { r.unmap(mem.IPA(ipa), size) } }
func splitS(ipa, size uint64) step {
	return func(r *rig) {
		r.topup(r.vm.SplitPagesNeeded(mem.IPA(ipa), size))
		if err := r.vm.Split(r.c, mem.IPA(ipa), size); err != nil {
			r.t.Fatal(err)
		}
	}
}
func collapseS(ipa, size uint64, want int) step {
	return func(r *rig) {
		n, err := r.vm.Collapse(mem.IPA(ipa), size)
		if err != nil || n != want {
			r.t.Fatalf("Collapse %#x+%#x: %d, %v; want %d", ipa, size, n, err, want)
		}
	}
}
func wpS(ipa, size uint64) step {
	return func(r *rig) {
		if err := r.vm.WriteProtect(mem.IPA(ipa), size); err != nil {
			r.t.Fatal(err)
		}
	}
}

// expect is what the hardware and the tables must show for one IPA.
type expect struct {
	ipa    uint64
	oa     uint64 // 0 with fault
	fault  bool
	level  int // leaf level in the tables
	w      bool
	blkBit uint8
}

func TestOperations(t *testing.T) {
	c4 := defaultCfg(40, sysreg.Granule4K)
	c16 := defaultCfg(48, sysreg.Granule16K)
	c64 := defaultCfg(48, sysreg.Granule64K)
	c52 := defaultCfg(52, sysreg.Granule4K)
	rw := ProtR | ProtW
	const pa0 = 0x40_0000_0000 // 1 GiB-aligned (and 512M-aligned)
	cases := []struct {
		name   string
		cfg    Config
		steps  []step
		expect []expect
		tables int // non-root tables afterwards
	}{
		{"1G block at level 1", c4, []step{mapS(gib, pa0, gib, rw, MapBlocks)},
			[]expect{{gib, pa0, false, 1, true, 30}, {2*gib - 8, pa0 + gib - 8, false, 1, true, 30}, {2 * gib, 0, true, 1, false, 0}}, 0},
		{"1G without MapBlocks is pages", c4, []step{mapS(gib, pa0, 4*mib, rw, 0)},
			[]expect{{gib, pa0, false, 3, true, 12}, {gib + 2*mib, pa0 + 2*mib, false, 3, true, 12}}, 3},
		{"2M block plus a page", c4, []step{mapS(2*mib, pa0+2*mib, 2*mib+4*kib, rw, MapBlocks)},
			[]expect{{2 * mib, pa0 + 2*mib, false, 2, true, 21}, {4 * mib, pa0 + 4*mib, false, 3, true, 12}, {4*mib + 4*kib, 0, true, 3, false, 0}}, 2},
		{"misaligned PA falls back to pages", c4, []step{mapS(2*mib, pa0+4*kib, 2*mib, rw, MapBlocks)},
			[]expect{{2 * mib, pa0 + 4*kib, false, 3, true, 12}, {4*mib - 4*kib, pa0 + 2*mib, false, 3, true, 12}}, 2},
		// One block's size at an IPA that is not block-aligned: no entry
		// covers exactly the range, so pages (Map's one-leaf fast path
		// must not take it for a block).
		{"block-sized map at a misaligned IPA is pages", c4, []step{mapS(64*mib, pa0+gib, 4*kib, rw, 0), mapS(2*mib+4*kib, pa0, 2*mib, rw, MapBlocks)},
			[]expect{{2*mib + 4*kib, pa0, false, 3, true, 12}, {4 * mib, pa0 + 2*mib - 4*kib, false, 3, true, 12}, {2 * mib, 0, true, 3, false, 0}}, 4},
		// One page over a page, over a block, and one block over a table
		// of pages: the fast path handles the first, the walk the others.
		{"page over a page", c4, []step{mapS(8*kib, pa0, 4*kib, rw, 0), mapS(8*kib, pa0+gib, 4*kib, ProtR, 0)},
			[]expect{{8 * kib, pa0 + gib, false, 3, false, 12}}, 2},
		{"page inside a block splits it", c4, []step{mapS(0, pa0, 2*mib, rw, MapBlocks), mapS(8*kib, pa0+gib, 4*kib, rw, 0)},
			[]expect{{8 * kib, pa0 + gib, false, 3, true, 12}, {12 * kib, pa0 + 12*kib, false, 3, true, 12}}, 2},
		{"block over a table of pages", c4, []step{mapS(0, pa0, 8*kib, rw, 0), mapS(0, pa0+gib, 2*mib, rw, MapBlocks)},
			[]expect{{0, pa0 + gib, false, 2, true, 21}, {4 * kib, pa0 + gib + 4*kib, false, 2, true, 21}}, 1},
		{"across a 2M boundary", c4, []step{mapS(2*mib-8*kib, pa0, 16*kib, rw, MapBlocks)},
			[]expect{{2*mib - 8*kib, pa0, false, 3, true, 12}, {2*mib + 4*kib, pa0 + 12*kib, false, 3, true, 12}}, 3},
		// Unmap and write-protect act on whole leaves (no memory needed):
		// part of a block takes the whole block, as Linux's stage-2 unmap
		// and wrprotect do.
		{"unmap inside a block removes the block", c4, []step{mapS(gib, pa0, gib, rw, MapBlocks), mapS(2*gib, pa0+gib, 4*kib, rw, 0), unmapS(gib+2*mib+4*kib, 4*kib)},
			[]expect{{gib, 0, true, 1, false, 0}, {gib + 2*mib + 8*kib, 0, true, 1, false, 0}, {2*gib - 4*kib, 0, true, 1, false, 0},
				{2 * gib, pa0 + gib, false, 3, true, 12}}, 2},
		{"unmap across a block boundary removes both blocks", c4, []step{mapS(0, pa0, 4*mib, rw, MapBlocks), mapS(4*mib, pa0+gib, 4*kib, rw, 0), unmapS(2*mib-4*kib, 8*kib)},
			[]expect{{0, 0, true, 2, false, 0}, {4*mib - 4*kib, 0, true, 2, false, 0}, {4 * mib, pa0 + gib, false, 3, true, 12}}, 2},
		{"write-protect a page inside a block protects the block", c4, []step{mapS(0, pa0, 4*mib, rw, MapBlocks), wpS(8*kib, 4*kib)},
			[]expect{{0, pa0, false, 2, false, 21}, {8 * kib, pa0 + 8*kib, false, 2, false, 21}, {2*mib - 4*kib, pa0 + 2*mib - 4*kib, false, 2, false, 21},
				{2 * mib, pa0 + 2*mib, false, 2, true, 21}}, 1},
		{"write-protect a whole block keeps it", c4, []step{mapS(0, pa0, 4*mib, rw, MapBlocks), wpS(0, 2*mib)},
			[]expect{{0, pa0, false, 2, false, 21}, {2 * mib, pa0 + 2*mib, false, 2, true, 21}}, 1},
		{"split 1G to pages", c4, []step{mapS(gib, pa0, gib, rw, MapBlocks), splitS(gib, gib)},
			[]expect{{gib, pa0, false, 3, true, 12}, {gib + 123*mib + 8*kib, pa0 + 123*mib + 8*kib, false, 3, true, 12}}, 513},
		{"collapse pages to 2M", c4, []step{mapS(2*mib, pa0, 2*mib, rw, 0), collapseS(0, 4*mib, 1)},
			[]expect{{2 * mib, pa0, false, 2, true, 21}, {4*mib - 8, pa0 + 2*mib - 8, false, 2, true, 21}}, 1},
		{"split then collapse back to 1G", c4, []step{mapS(gib, pa0, gib, rw, MapBlocks), splitS(gib, gib), collapseS(gib, gib, 513)},
			[]expect{{gib, pa0, false, 1, true, 30}}, 0},
		{"no collapse with a differing page", c4, []step{mapS(2*mib, pa0, 2*mib, rw, 0), wpS(2*mib+4*kib, 4*kib), collapseS(0, 4*mib, 0)},
			[]expect{{2 * mib, pa0, false, 3, true, 12}}, 2},
		{"no collapse when not contiguous", c4, []step{mapS(2*mib, pa0, 2*mib, rw, 0), mapS(2*mib, pa0+gib, 4*kib, rw, 0), collapseS(0, 4*mib, 0)},
			[]expect{{2 * mib, pa0 + gib, false, 3, true, 12}}, 2},
		{"no collapse of a misaligned run", c4, []step{mapS(2*mib, pa0+4*kib, 2*mib, rw, 0), collapseS(0, 4*mib, 0)},
			[]expect{{2 * mib, pa0 + 4*kib, false, 3, true, 12}}, 2},
		{"remap a block over pages frees them", c4, []step{mapS(2*mib, pa0, 2*mib, rw, 0), mapS(0, pa0+gib, 4*mib, ProtR, MapBlocks)},
			[]expect{{2 * mib, pa0 + gib + 2*mib, false, 2, false, 21}}, 1},
		{"concatenated root above 512 GiB", c4, []step{mapS(512*gib, pa0, 2*mib, rw, MapBlocks), mapS(512*gib-4*kib, pa0+gib, 4*kib, rw, 0)},
			[]expect{{512 * gib, pa0, false, 2, true, 21}, {512*gib - 4*kib, pa0 + gib, false, 3, true, 12}}, 3},
		{"16K 32M block", c16, []step{mapS(32*mib, pa0, 64*mib, rw, MapBlocks)},
			[]expect{{32 * mib, pa0, false, 2, true, 25}, {64 * mib, pa0 + 32*mib, false, 2, true, 25}}, 1},
		// The level-2 table the unmap empties stays, kept empty
		// (Config.KeepEmpty): the walk ends at its invalid entry.
		{"16K unmap inside 32M removes it", c16, []step{mapS(32*mib, pa0, 32*mib, rw, MapBlocks), unmapS(48*mib, 16*kib)},
			[]expect{{48 * mib, 0, true, 2, false, 0}, {48*mib + 16*kib, 0, true, 2, false, 0}, {32 * mib, 0, true, 2, false, 0}}, 1},
		{"64K 512M block", c64, []step{mapS(512*mib, pa0, 512*mib, rw, MapBlocks)},
			[]expect{{512 * mib, pa0, false, 2, true, 29}, {gib - 64*kib, pa0 + 512*mib - 64*kib, false, 2, true, 29}}, 1},
		{"64K split and collapse", c64, []step{mapS(512*mib, pa0, 512*mib, rw, MapBlocks), splitS(512*mib, 64*kib), collapseS(0, gib, 1)},
			[]expect{{512 * mib, pa0, false, 2, true, 29}}, 1},
		{"4K 52-bit: 512G block at level 0 (DS)", c52, []step{mapS(1<<39, 1<<50, 1<<39, rw, MapBlocks)},
			[]expect{{1 << 39, 1 << 50, false, 0, true, 39}, {1<<40 - 4*kib, 1<<50 + 1<<39 - 4*kib, false, 0, true, 39}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.cfg, 64*mib)
			for _, s := range tc.steps {
				s(r)
			}
			for _, e := range tc.expect {
				tr := r.hw(e.ipa)
				if tr.Fault.IsFault() != e.fault || (!e.fault && (tr.OA != mem.PA(e.oa) || tr.Perms.W1 != e.w || tr.S2BlockBits != e.blkBit)) {
					t.Errorf("IPA %#x: %v OA %#x W %v leaf 2^%d; want fault %v OA %#x W %v leaf 2^%d", e.ipa, tr.Fault, tr.OA, tr.Perms.W1, tr.S2BlockBits, e.fault, e.oa, e.w, e.blkBit)
				}
				if _, lvl, err := r.vm.Lookup(mem.IPA(e.ipa)); err != nil || lvl != e.level {
					t.Errorf("IPA %#x: Lookup level %d, %v; want %d", e.ipa, lvl, err, e.level)
				}
			}
			if st := r.vm.Stats(); st.Tables != tc.tables {
				t.Errorf("%d tables, want %d", st.Tables, tc.tables)
			}
			r.checkCounts()
		})
	}
}

func TestYoung(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.mapRange(0, 0x200000, 2*mib, ProtR, MapOld)
	if y, err := r.vm.TestYoung(0, 2*mib); err != nil || y {
		t.Fatalf("TestYoung after MapOld: %v %v", y, err)
	}
	if tr := r.hw(4 * kib); tr.Fault.Kind != vmsa.FaultAccessFlag {
		t.Fatalf("HA=0, AF=0: hardware %v, want an access flag fault", tr.Fault)
	}
	if ok, err := r.vm.MkYoung(mem.IPA(4*kib + 100)); !ok || err != nil {
		t.Fatalf("MkYoung: %v %v", ok, err)
	}
	if tr := r.hw(4 * kib); tr.Fault.IsFault() {
		t.Fatalf("after MkYoung: %v", tr.Fault)
	}
	if y, _ := r.vm.TestYoung(0, 4*kib); y {
		t.Fatal("MkYoung set AF on a neighbour")
	}
	if y, _ := r.vm.TestYoung(0, 2*mib); !y {
		t.Fatal("TestYoung missed the young page")
	}
	if y, _ := r.vm.MkOld(0, 2*mib); !y {
		t.Fatal("MkOld did not report the young page")
	}
	if y, _ := r.vm.TestYoung(0, 2*mib); y {
		t.Fatal("MkOld left a young page")
	}
	// Collapse keeps the Access flag of any young page in the block.
	if ok, _ := r.vm.MkYoung(mem.IPA(8 * kib)); !ok {
		t.Fatal("MkYoung found no mapping")
	}
	if n, err := r.vm.Collapse(0, 2*mib); n != 1 || err != nil {
		t.Fatalf("Collapse: %d %v", n, err)
	}
	if d, lvl, _ := r.vm.Lookup(0); lvl != 2 || d&desc.AFBit == 0 {
		t.Fatalf("collapsed block %#x level %d: want a young level-2 block", d, lvl)
	}
	if ok, _ := r.vm.MkYoung(mem.IPA(4 * mib)); ok {
		t.Fatal("MkYoung found a mapping at an unmapped IPA")
	}
}

func TestArgumentErrors(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	empty := r.vm.NewCache()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"misaligned IPA", r.vm.Map(empty, 0x1001, 0, 4096, ProtR, 0), "0x1001"},
		{"beyond the IPA space", r.vm.Map(empty, 1<<40, 0, 4096, ProtR, 0), "0x10000000000"},
		{"PA beyond PS", r.vm.Map(empty, 0, 1<<48, 4096, ProtR, 0), "0x1000000000000"},
		{"cache too small", r.vm.Map(empty, 0, 0, 4096, ProtR, 0), "may need 2"},
		{"bad prot", r.vm.Map(empty, 0, 0, 4096, 0x40, 0), "0x40"},
		{"relax device", r.vm.Relax(empty, 0, 4096, ProtDevice), "0x8"},
		{"empty unmap", r.vm.Unmap(0, 0), "empty"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, c.err, c.want)
		}
	}
	if st := r.vm.Stats(); st.Tables != 0 {
		t.Errorf("refused operations allocated %d tables", st.Tables)
	}
	other := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	other.topup(4)
	if err := r.vm.Map(other.c, 0, 0, 4096, ProtR, 0); err == nil || !strings.Contains(err.Error(), "another VM") && !strings.Contains(err.Error(), "belongs to VM") {
		t.Errorf("foreign cache: %v", err)
	}
}

// TestMapNeverFailsMidway: with exactly MapPagesNeeded pages in the cache,
// every Map succeeds; the bound is not below what Map takes.
func TestMapPagesNeededIsEnough(t *testing.T) {
	for _, cfg := range []Config{defaultCfg(40, sysreg.Granule4K), defaultCfg(48, sysreg.Granule4K), defaultCfg(48, sysreg.Granule64K)} {
		r := newRig(t, cfg, 128*mib)
		r.vm.keepCap, r.vm.reserveCap = 0, 0 // every map starts from the root alone
		g := r.vm.Layout().TableBytes
		cases := []struct{ ipa, pa, size uint64 }{
			{0, 0, g}, {2*mib - g, 0, 3 * g}, {gib - g, gib - g, gib + 2*g}, {512*mib + g, g, 700 * mib},
		}
		if raceOn {
			cases = cases[:2]
		}
		for i, tc := range cases {
			for _, f := range []MapFlags{0, MapBlocks} {
				need := r.vm.MapPagesNeeded(mem.IPA(tc.ipa), mem.PA(tc.pa), tc.size, f)
				c := r.vm.NewCache()
				if err := c.Topup(need); err != nil {
					t.Fatal(err)
				}
				if err := r.vm.Map(c, mem.IPA(tc.ipa), mem.PA(tc.pa), tc.size, ProtR, f); err != nil {
					t.Fatalf("case %d flags %d: %v", i, f, err)
				}
				_ = c.Release()
				r.unmap(mem.IPA(tc.ipa), tc.size)
			}
		}
		r.checkCounts()
	}
}

func TestLookupKinds(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.mapRange(0, 0x200000, 2*mib, ProtR|ProtX|ProtDevice, MapBlocks)
	d, lvl, err := r.vm.Lookup(4096)
	if err != nil || lvl != 2 || desc.KindAt(d, 2) != desc.Block || desc.S2(d).MemAttr() != 1 || desc.S2(d).XN() != 0 || desc.S2(d).S2AP() != 1 {
		t.Fatalf("Lookup: %#x level %d %v", d, lvl, err)
	}
}

// TestUnmapNeedsNoMemory: with the table memory exhausted and no cache,
// WriteProtect and Unmap of ranges that cut blocks in part still act (on
// the whole blocks), and a MapInPlace Map writes a leaf into an existing
// table but refuses, changing nothing, where it would need a table.
func TestUnmapNeedsNoMemory(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 64*kib)
	const pa0 = 0x40_0000_0000
	rw := ProtR | ProtW
	r.mapRange(0, pa0, 4*mib, rw, MapBlocks)                  // two 2M blocks
	r.mapRange(mem.IPA(4*mib), mem.PA(pa0+gib), 8*kib, rw, 0) // two pages
	if err := r.c.Release(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.tm.AllocTable(4 * kib); err != nil {
			break
		}
	}
	if err := r.vm.WriteProtect(mem.IPA(2*mib-4*kib), 8*kib); err != nil {
		t.Fatalf("WriteProtect with no memory: %v", err)
	}
	for _, ipa := range []uint64{0, 2*mib - 4*kib, 2 * mib, 4*mib - 4*kib} {
		if tr := r.hw(ipa); tr.Fault.IsFault() || tr.Perms.W1 || tr.S2BlockBits != 21 {
			t.Errorf("after write-protecting across the blocks, IPA %#x: %v W %v leaf 2^%d; want a read-only 2M block", ipa, tr.Fault, tr.Perms.W1, tr.S2BlockBits)
		}
	}
	if err := r.vm.Map(nil, mem.IPA(4*mib), mem.PA(pa0+2*gib), 4*kib, ProtR, MapInPlace); err != nil {
		t.Fatalf("MapInPlace over an existing page: %v", err)
	}
	if tr := r.hw(4 * mib); tr.OA != mem.PA(pa0+2*gib) || tr.Perms.W1 {
		t.Errorf("MapInPlace: OA %#x W %v", tr.OA, tr.Perms.W1)
	}
	for _, c := range []struct {
		name string
		ipa  uint64
	}{{"inside a block", 4 * kib}, {"where no table exists", gib}} {
		before := r.hw(c.ipa)
		err := r.vm.Map(nil, mem.IPA(c.ipa), mem.PA(pa0+3*gib), 4*kib, rw, MapInPlace)
		if !errors.Is(err, ErrNeedsTables) {
			t.Errorf("MapInPlace %s: %v, want ErrNeedsTables", c.name, err)
		}
		if after := r.hw(c.ipa); after != before {
			t.Errorf("MapInPlace %s changed the translation: %+v -> %+v", c.name, before, after)
		}
	}
	if err := r.vm.Unmap(mem.IPA(2*mib+4*kib), 2*mib); err != nil {
		t.Fatalf("Unmap with no memory: %v", err)
	}
	for _, ipa := range []uint64{2 * mib, 4*mib - 4*kib, 4 * mib} {
		if tr := r.hw(ipa); tr.Fault.Kind != vmsa.FaultTranslation {
			t.Errorf("after Unmap, IPA %#x: %v, want a translation fault", ipa, tr.Fault)
		}
	}
	if tr := r.hw(0); tr.Fault.IsFault() || tr.OA != mem.PA(pa0) {
		t.Errorf("the block below the range went too: %v OA %#x", tr.Fault, tr.OA)
	}
	if tr := r.hw(4*mib + 4*kib); tr.Fault.IsFault() || tr.OA != mem.PA(pa0+gib+4*kib) {
		t.Errorf("the page above the range went too: %v OA %#x", tr.Fault, tr.OA)
	}
	r.checkCounts()
}

// TestExecuteNeverPerEL: the XN[1:0] a leaf gets for each execute
// permission (VTCR_EL2 stage-2 descriptor XN with FEAT_XNX: 0b00 EL0 and
// EL1, 0b01 EL0 only, 0b11 EL1 only, 0b10 neither).
func TestExecuteNeverPerEL(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	for i, c := range []struct {
		prot Prot
		xn   uint
	}{
		{ProtR | ProtX, 0b00}, {ProtR | ProtX | ProtPXN, 0b01}, {ProtR | ProtX | ProtUXN, 0b11},
		{ProtR | ProtX | ProtPXN | ProtUXN, 0b10}, {ProtR, 0b10}, {ProtR | ProtPXN, 0b10},
	} {
		ipa := uint64(i) << 12
		r.mapRange(mem.IPA(ipa), mem.PA(0x200000+ipa), 4096, c.prot, 0)
		d, _, err := r.vm.Lookup(mem.IPA(ipa))
		if err != nil || desc.S2(d).XN() != c.xn {
			t.Errorf("prot %#x: XN %02b (%v), want %02b", uint8(c.prot), desc.S2(d).XN(), err, c.xn)
		}
	}
}
