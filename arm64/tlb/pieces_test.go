package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestBlockPiecesInvalidatedTogether: a stage-1 1GB block over 4KB stage-2
// pages is cached as 4KB combined entries (Fill keeps only the range where
// both stages map linearly). Each is a cached copy of the one stage-1 block
// entry, and the TLBI by-address forms invalidate "cached copies of
// translation table entries ... that would be required to translate the
// specified VA" (TLBI VAE1, VAAE1, VALE1, VAALE1 and the range forms), so
// naming any address of the block removes every piece, wherever in the
// block and in whichever set. Entries of other stage-1 leaves stay: the
// neighbouring block's pieces, a combined entry that covers its whole
// 2MB leaf, a stage-2-only entry of the same IPA.
func TestBlockPiecesInvalidatedTogether(t *testing.T) {
	const blk = 0x4000_0000 // VA of the 1GB stage-1 block; the next one follows
	piece := func(va uint64) Entry {
		e := e4k(vmsa.RegimeEL10, 1, 5, false, va)
		e.Level, e.Combined, e.IPA, e.S2Level, e.S2SizeBits = 1, true, mem.IPA(0x8000_0000+va-blk), 3, 12
		return e
	}
	whole := e4k(vmsa.RegimeEL10, 1, 5, false, 2*blk+0x20_0000) // a 2MB leaf, cached whole
	whole.SizeBits, whole.Level, whole.Combined, whole.IPA, whole.S2Level, whole.S2SizeBits = 21, 2, true, 0x9000_0000, 2, 21
	s2 := Entry{Stage2Only: true, VMID: 1, SizeBits: 12, OA: 0x7_0000_0000, IPA: 0x8000_5000, Level: 3, GranuleBits: 12, Perms: allPerms}
	gone := []uint64{blk, blk + 0x5000, blk + 0x20_0000, blk + 0x3fff_f000}
	kept := []uint64{2 * blk, 2*blk + 0x5000}
	ctx := Context{EL: 1, VMID: 1, ASID16: true}
	for _, c := range []struct {
		name string
		op   Op
		xt   uint64
	}{
		{"VAAE1 of one page", OpVAAE1, (blk + 0x1234_5000) >> 12},
		{"VAE1 with the ASID", OpVAE1, 5<<48 | (blk+0x1234_5000)>>12},
		{"VALE1 with the leaf's TTL (4K, level 1)", OpVALE1, 5<<48 | 0b0101<<44 | (blk+0x1234_5000)>>12},
		{"RVAAE1 of one 4K page", OpRVAAE1, 1<<46 | (blk+0x1234_5000)>>12},
	} {
		for _, strict := range []bool{false, true} {
			tl := MustNew(Config{Sets: 64, Ways: 4, StrictHints: strict})
			for _, va := range append(append([]uint64{}, gone...), kept...) {
				if !tl.FillEntry(piece(va)) {
					t.Fatal("fill refused")
				}
			}
			tl.FillEntry(whole)
			tl.FillEntry(s2)
			if _, err := tl.Invalidate(c.op, c.xt, ctx); err != nil {
				t.Fatal(err)
			}
			left := map[uint64]bool{}
			for _, e := range tl.Entries(nil) {
				if !e.Stage2Only {
					left[uint64(e.VA)] = true
				}
			}
			for _, va := range gone {
				if left[va] {
					t.Errorf("%s (strict %v): the piece at VA %#x of the block survived", c.name, strict, va)
				}
			}
			for _, va := range append(kept, uint64(whole.VA)) {
				if !left[va] {
					t.Errorf("%s (strict %v): the entry at VA %#x, outside the block, went", c.name, strict, va)
				}
			}
			if n := len(tl.Entries(nil)); n != len(kept)+2 {
				t.Errorf("%s (strict %v): %d entries left, want %d", c.name, strict, n, len(kept)+2)
			}
			if tl.pieces != len(kept) {
				t.Errorf("%s: pieces count %d, want %d", c.name, tl.pieces, len(kept))
			}
		}
	}
}

// TestPiecesOutsideScopeProbe: pieces of a kernel's linear-map block (high
// VAs) do not make a TLBI of a user page (low VAs, outside every piece's
// block) scan the TLB: the set probe finds the page's entry, and the
// pieces and the other user pages stay. A TLBI inside the block still
// scans and removes every piece.
func TestPiecesOutsideScopeProbe(t *testing.T) {
	const blk = 0xffff_8000_4000_0000 & va56 // a 1GB stage-1 block of the TTBR1 half
	tl := MustNew(Config{Sets: 64, Ways: 4})
	for i := uint64(0); i < 8; i++ {
		e := e4k(vmsa.RegimeEL10, 1, 0, true, blk+i*0x10_0000)
		e.Level, e.Combined, e.IPA, e.S2Level, e.S2SizeBits = 1, true, mem.IPA(0x8000_0000+i*0x10_0000), 3, 12
		if !tl.FillEntry(e) {
			t.Fatal("fill refused")
		}
	}
	users := []uint64{0x40_0000, 0x40_1000, 0x7f_f000}
	for _, va := range users {
		tl.FillEntry(e4k(vmsa.RegimeEL10, 1, 5, false, va))
	}
	ctx := Context{EL: 1, VMID: 1, ASID16: true}
	xt := uint64(5)<<48 | 0x40_1000>>12
	s, err := ScopeOf(OpVALE1, xt, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tl.probeRange(&s); !ok {
		t.Error("a TLBI of a user page outside the pieces' block scans the TLB")
	}
	if n, err := tl.Invalidate(OpVALE1, xt, ctx); err != nil || n != 1 {
		t.Fatalf("VALE1 of VA 0x401000: %d entries removed (%v), want 1", n, err)
	}
	if n := len(tl.Entries(nil)); n != 8+len(users)-1 || tl.pieces != 8 {
		t.Errorf("%d entries, %d pieces left; want %d and 8", n, tl.pieces, 8+len(users)-1)
	}
	if n, err := tl.Invalidate(OpVAAE1, (blk+0x3000_0000)>>12, ctx); err != nil || n != 8 || tl.pieces != 0 {
		t.Errorf("VAAE1 inside the block: %d entries removed (%v), %d pieces left; want 8 and 0", n, err, tl.pieces)
	}
}

// TestPiecesOfPageProbe: a 16KB stage-1 page over 4KB stage-2 pages is
// cached as four 4KB pieces, each in the set of its own page. A TLBI of
// any 4KB of the page removes all four without scanning the TLB: the
// probe widens to the page (the pieces' leaf), not further. Pieces of
// another VMID's leaves, even large ones over the same VAs, neither widen
// the probe nor go.
func TestPiecesOfPageProbe(t *testing.T) {
	const page = 0x10_0000_c000 // a 16KB stage-1 page
	tl := MustNew(Config{Sets: 64, Ways: 4})
	piece := func(vmid uint16, va uint64, gran uint8, level int8) Entry {
		e := e4k(vmsa.RegimeEL10, vmid, 5, false, va)
		e.GranuleBits, e.Level = gran, level
		e.Combined, e.IPA, e.S2Level, e.S2SizeBits = true, mem.IPA(0x8000_0000+va-page), 3, 12
		return e
	}
	for i := uint64(0); i < 4; i++ {
		tl.FillEntry(piece(1, page+i*0x1000, 14, 3))
		tl.FillEntry(piece(1, page+0x4000+i*0x1000, 14, 3)) // the next page's
	}
	// VMID 2: pieces of a 32MB block (16KB granule, level 2) over the same VAs.
	for i := uint64(0); i < 4; i++ {
		tl.FillEntry(piece(2, page+i*0x1000, 14, 2))
	}
	if tl.pieces != 12 {
		t.Fatalf("%d pieces, want 12", tl.pieces)
	}
	ctx := Context{EL: 1, VMID: 1, ASID16: true}
	xt := uint64(5)<<48 | (page+0x2000)>>12
	s, err := ScopeOf(OpVAE1, xt, ctx)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, ok := tl.probeRange(&s)
	if !ok || lo != page || hi != page+0x3fff {
		t.Errorf("probe range %#x-%#x (probed %v), want the 16KB page %#x-%#x probed", lo, hi, ok, page, page+0x3fff)
	}
	if n, err := tl.Invalidate(OpVAE1, xt, ctx); err != nil || n != 4 {
		t.Fatalf("VAE1 of VA %#x: %d entries removed (%v), want the page's 4 pieces", page+0x2000, n, err)
	}
	left := map[[2]uint64]bool{}
	for _, e := range tl.Entries(nil) {
		left[[2]uint64{uint64(e.VMID), uint64(e.VA)}] = true
	}
	for i := uint64(0); i < 4; i++ {
		if left[[2]uint64{1, page + i*0x1000}] {
			t.Errorf("VMID 1's piece at %#x survived", page+i*0x1000)
		}
		if !left[[2]uint64{1, page + 0x4000 + i*0x1000}] {
			t.Errorf("VMID 1's piece of the next page at %#x went", page+0x4000+i*0x1000)
		}
		if !left[[2]uint64{2, page + i*0x1000}] {
			t.Errorf("VMID 2's piece at %#x went", page+i*0x1000)
		}
	}
	// The 32MB block's pieces of VMID 2 widen a TLBI of VMID 2 to the
	// block: that scans, and removes all four.
	ctx.VMID = 2
	s, _ = ScopeOf(OpVAE1, xt, ctx)
	if _, _, ok := tl.probeRange(&s); ok {
		t.Error("a TLBI inside VMID 2's 32MB block's pieces probes sets")
	}
	if n, err := tl.Invalidate(OpVAE1, xt, ctx); err != nil || n != 4 || tl.pieces != 4 {
		t.Errorf("VAE1 for VMID 2: %d removed (%v), %d pieces left; want 4 and 4", n, err, tl.pieces)
	}
}
