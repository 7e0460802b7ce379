package s2pt

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestKeepEmpty: a table an unmap empties stays in place, its table
// descriptor valid and the table all invalid entries, so the hardware
// walk ends in a Translation fault one level down and no invalidation of
// the table is needed; the next map of its range installs no table; the
// newest Config.KeepEmpty emptied tables are kept, the others detached
// and freed after the non-last-level invalidation; Trim frees the kept ones (and the
// tables above them they alone held) the same way; KeepEmpty < 0 frees
// every emptied table at once.
func TestKeepEmpty(t *testing.T) {
	rw := ProtR | ProtW
	r := newRig(t, defaultCfg(48, sysreg.Granule4K), 16*mib)
	r.vm.reserveCap = 0 // frees show in the trace
	r.mapRange(0, 0x4000_0000, 4096, rw, 0)
	tables := r.vm.Stats().Tables // levels 1, 2, 3 under the level-0 root
	if tables != 3 {
		t.Fatalf("one page mapped with %d tables, want 3", tables)
	}
	r.rec.take()
	r.rec.enable = true
	r.unmap(0, 4096)
	r.rec.enable = false
	// Only the leaf's invalidation: nothing is detached or freed.
	if got, want := trace(r.rec.take(), nil, nil), []string{"tlbi 0x0+0x1000 L3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("unmap of the last page of a table: %q, want %q", got, want)
	}
	if st := r.vm.Stats(); st.Tables != tables || st.EmptyTables != 1 || st.TableBytes != r.vm.layout.RootBytes+3*4096 {
		t.Errorf("after the unmap: %+v; want the 3 tables, 1 of them kept empty, in TableBytes", st)
	}
	r.checkCounts()
	if tr := r.hw(0); tr.Fault.Kind != vmsa.FaultTranslation || tr.Fault.Level != 3 {
		t.Errorf("walk through the kept table: %v at level %d, want a level-3 Translation fault", tr.Fault.Kind, tr.Fault.Level)
	}
	if d, lvl, err := r.vm.Lookup(0); err != nil || d != 0 || lvl != 3 {
		t.Errorf("Lookup in the kept table: %#x level %d %v, want an invalid level-3 entry", d, lvl, err)
	}
	// The next map uses it: no page from the cache (topped up to the
	// worst case, which Map checks).
	r.topup(3)
	before := r.c.Len()
	if err := r.vm.Map(r.c, 8192, 0x5000_0000, 4096, rw, 0); err != nil {
		t.Fatal(err)
	}
	if r.c.Len() != before || r.vm.Stats().EmptyTables != 0 {
		t.Errorf("map into the kept table took %d pages, %d tables still kept empty", before-r.c.Len(), r.vm.Stats().EmptyTables)
	}
	if tr := r.hw(8192); tr.Fault.IsFault() || tr.OA != 0x5000_0000 {
		t.Errorf("after the map: %v OA %#x", tr.Fault, tr.OA)
	}
	r.unmap(8192, 4096)

	// Six more level-3 tables emptied, in six 1 GiB regions (each with its
	// own level-2 table): the newest is kept, each displaced one freed
	// (after a non-last-level invalidation) with the level-2 table it
	// alone held: the one at 0 and the first five, 12 tables.
	for i := uint64(1); i <= 6; i++ {
		r.mapRange(mem.IPA(i*gib), mem.PA(0x4000_0000+i*4096), 4096, rw, 0)
	}
	r.rec.take()
	r.rec.enable = true
	for i := uint64(1); i <= 6; i++ {
		r.unmap(mem.IPA(i*gib), 4096)
	}
	r.rec.enable = false
	freed := checkFreedAfterTLBI(t, r.rec.take())
	if st := r.vm.Stats(); st.EmptyTables != keepDefault || freed != 12 {
		t.Errorf("%d tables kept empty, %d freed; want %d and 12", st.EmptyTables, freed, keepDefault)
	}
	if d, lvl, _ := r.vm.Lookup(mem.IPA(6 * gib)); lvl != 3 || d != 0 {
		t.Errorf("the newest emptied table is not the one kept: Lookup at 6 GiB ends at level %d", lvl)
	}
	r.checkCounts()

	// Trim: the kept table, its level-2 table and the level-1 table go,
	// each invalidated (not last-level) before it is freed.
	r.rec.take()
	r.rec.enable = true
	n, err := r.vm.Trim()
	r.rec.enable = false
	if err != nil {
		t.Fatal(err)
	}
	freed = checkFreedAfterTLBI(t, r.rec.take())
	if st := r.vm.Stats(); n != 3 || freed != 3 || st.Tables != 0 || st.EmptyTables != 0 || st.TableBytes != r.vm.layout.RootBytes {
		t.Errorf("Trim freed %d tables (%d frees), left %+v; want 3, only the root", n, freed, st)
	}
	r.checkCounts()

	// KeepEmpty 3: the three newest kept.
	cfg := defaultCfg(48, sysreg.Granule4K)
	cfg.KeepEmpty = 3
	r3 := newRig(t, cfg, 16*mib)
	for i := uint64(0); i < 5; i++ {
		r3.mapRange(mem.IPA(i*gib), 0x4000_0000, 4096, rw, 0)
	}
	for i := uint64(0); i < 5; i++ {
		r3.unmap(mem.IPA(i*gib), 4096)
	}
	if st := r3.vm.Stats(); st.EmptyTables != 3 || st.Tables != 3+3+1 {
		t.Errorf("KeepEmpty 3: %+v, want 3 kept, with their level-2 tables and the level-1 table", st)
	}
	for i := uint64(0); i < 5; i++ {
		if _, lvl, _ := r3.vm.Lookup(mem.IPA(i * gib)); (lvl == 3) != (i >= 2) {
			t.Errorf("KeepEmpty 3: Lookup at %d GiB ends at level %d", i, lvl)
		}
	}
	r3.checkCounts()

	// KeepEmpty < 0: the first emptied table goes at once.
	cfg.KeepEmpty = -1
	r2 := newRig(t, cfg, 16*mib)
	r2.mapRange(0, 0x4000_0000, 4096, rw, 0)
	r2.unmap(0, 4096)
	if st := r2.vm.Stats(); st.Tables != 0 || st.EmptyTables != 0 {
		t.Errorf("KeepEmpty -1: %+v after the unmap, want no table", st)
	}
	r2.checkCounts()
}

// TestKeptTableReplaced: a block mapped over the range of a kept empty
// table replaces the table (break, non-last-level invalidation, block,
// free), which stops being kept.
func TestKeptTableReplaced(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.mapRange(0, 0x4000_0000, 4096, ProtR, 0)
	r.unmap(0, 4096)
	if r.vm.Stats().EmptyTables != 1 {
		t.Fatal("the level-3 table was not kept")
	}
	r.mapRange(0, 0x4000_0000, 2*mib, ProtR, MapBlocks)
	if d, lvl, _ := r.vm.Lookup(4096); lvl != 2 || desc.KindAt(d, 2) != desc.Block {
		t.Fatalf("Lookup after the block: %#x level %d, want a level-2 block", d, lvl)
	}
	if st := r.vm.Stats(); st.EmptyTables != 0 || st.Tables != 1 {
		t.Errorf("%+v: want the level-2 table alone, none kept", st)
	}
	r.checkCounts()
}

// TestUnmapExact: a block straddling either end of the range is split
// (from the cache) so that exactly the range goes, the rest mapped as
// before; without the cache pages it needs, nothing changes.
func TestUnmapExact(t *testing.T) {
	const pa = 0x4000_0000
	for _, direct := range []bool{true, false} {
		r := newRigOn(t, defaultCfg(40, sysreg.Granule4K), 16*mib, direct)
		r.mapRange(0, pa, 4*mib, ProtR|ProtW, MapBlocks) // two 2 MiB blocks
		s, size := 2*mib-8192, uint64(3*4096)            // the last two pages of one, the first of the other
		need := r.vm.EdgePagesNeeded(mem.IPA(s), size)
		if need != 4 {
			t.Fatalf("EdgePagesNeeded %d, want 4 (at each end a table for a 1 GiB block, one for a 2 MiB block)", need)
		}
		if err := r.vm.UnmapExact(r.vm.NewCache(), mem.IPA(s), size); err == nil {
			t.Fatal("UnmapExact with an empty cache succeeded")
		}
		if tr := r.hw(s); tr.Fault.IsFault() || tr.S2BlockBits != 21 {
			t.Fatalf("the refused UnmapExact changed the block: %v", tr.Fault)
		}
		r.topup(need)
		if err := r.vm.UnmapExact(r.c, mem.IPA(s), size); err != nil {
			t.Fatal(err)
		}
		for ipa := uint64(0); ipa < 4*mib; ipa += 4096 {
			tr := r.hw(ipa)
			if gone := ipa >= s && ipa < s+size; tr.Fault.IsFault() != gone || !gone && tr.OA != mem.PA(pa+ipa) {
				t.Fatalf("direct=%v: IPA %#x: %v OA %#x, want unmapped %v", direct, ipa, tr.Fault, tr.OA, gone)
			}
		}
		r.checkCounts()
		// A range that is exactly one leaf.
		r.mapRange(mem.IPA(8*mib), pa, 2*mib, ProtR, MapBlocks)
		r.topup(r.vm.EdgePagesNeeded(mem.IPA(8*mib), 2*mib))
		if err := r.vm.UnmapExact(r.c, mem.IPA(8*mib), 2*mib); err != nil {
			t.Fatalf("UnmapExact of a whole block: %v", err)
		}
		if tr := r.hw(8 * mib); tr.Fault.Kind != vmsa.FaultTranslation {
			t.Fatalf("the block is still mapped: %v", tr.Fault)
		}
		if err := r.vm.UnmapExact(nil, 1, 4096); err == nil || !strings.Contains(err.Error(), "not aligned") {
			t.Errorf("UnmapExact of an unaligned IPA: %v", err)
		}
	}
}

// checkFreedAfterTLBI counts the tables freed in the recorded events, each
// of which must follow a non-last-level invalidation.
func checkFreedAfterTLBI(t *testing.T, evs []event) int {
	t.Helper()
	tlbi, n := false, 0
	for _, e := range evs {
		switch {
		case e.kind == "tlbi-range" && !e.r.LeafOnly:
			tlbi = true
		case e.kind == "free" && !tlbi:
			t.Fatalf("table %#x freed before a non-last-level invalidation: %+v", uint64(e.pa), evs)
		case e.kind == "free":
			n++
		}
	}
	return n
}

// TestKeptTableRefilled: a kept table a map fills again stays listed (the
// map writes its leaf and nothing else), is found kept when it empties
// again, and makes way, without being freed, for a table emptied while it
// is in use; an empty kept table displaced by a newer one is freed.
func TestKeptTableRefilled(t *testing.T) {
	rw := ProtR | ProtW
	r := newRig(t, defaultCfg(48, sysreg.Granule4K), 16*mib)
	r.vm.reserveCap = 0 // frees show in the counts
	r.mapRange(0, 0x4000_0000, 4096, rw, 0)
	r.unmap(0, 4096)
	a := r.vm.kept[0] // the level-3 table of page 0
	r.mapRange(0, 0x4000_0000, 4096, rw, 0)
	if st := r.vm.Stats(); st.EmptyTables != 0 || st.Tables != 3 || len(r.vm.kept) != 1 || !a.kept || a.live != 1 {
		t.Fatalf("after refilling the kept table: %+v, %d listed; want 3 tables, none empty, the refilled one listed", st, len(r.vm.kept))
	}
	r.checkCounts()
	// Page 0 unmapped again: the table is kept already, nothing moves.
	r.unmap(0, 4096)
	if st := r.vm.Stats(); st.EmptyTables != 1 || st.Tables != 3 || len(r.vm.kept) != 1 || r.vm.kept[0] != a {
		t.Fatalf("after emptying it again: %+v; want it kept, 3 tables", st)
	}
	r.checkCounts()
	// Refill it, then empty another level-3 table (the next 2 MiB): the
	// refilled table makes way and stays in use; the new one is kept.
	r.mapRange(0, 0x4000_0000, 4096, rw, 0)
	r.mapRange(mem.IPA(2*mib), 0x4020_0000, 4096, rw, 0)
	r.unmap(mem.IPA(2*mib), 4096)
	b := r.vm.kept[0]
	if st := r.vm.Stats(); b == a || a.kept || !a.inUse || len(r.vm.kept) != 1 || st.EmptyTables != 1 || st.Tables != 4 {
		t.Fatalf("after emptying a second table: %+v; want the refilled table in use and unlisted, the new one kept, 4 tables", st)
	}
	r.checkCounts()
	// Page 0 unmapped: its table, empty, is kept and displaces the other
	// empty one, which is freed.
	r.unmap(0, 4096)
	if st := r.vm.Stats(); r.vm.kept[0] != a || b.inUse || st.EmptyTables != 1 || st.Tables != 3 {
		t.Fatalf("after emptying the first table again: %+v; want it kept and the other freed, 3 tables", st)
	}
	r.checkCounts()
	for _, ipa := range []uint64{0, 2 * mib} {
		if tr := r.hw(ipa); tr.Fault.Kind != vmsa.FaultTranslation {
			t.Errorf("IPA %#x: %v, want a Translation fault", ipa, tr.Fault.Kind)
		}
	}
}
