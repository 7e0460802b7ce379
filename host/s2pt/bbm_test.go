package s2pt

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// pteOf returns the descriptor address of the entry at level for ipa.
func (r *rig) pteOf(ipa mem.IPA, level int) mem.PA {
	r.t.Helper()
	var pte mem.PA
	err := r.vm.Walk(ipa, ipa+mem.IPA(r.vm.Layout().TableBytes), VisitorFunc(func(c *Ctx, at WalkFlags) error {
		if c.Level == level {
			pte = c.PTE
		}
		return nil
	}), VisitLeaf|VisitTablePre)
	if err != nil || pte == 0 {
		r.t.Fatalf("no level-%d entry for %#x: %v", level, uint64(ipa), err)
	}
	return pte
}

// trace renders the recorded events touching the named descriptors, the
// TLBIs and the frees, in order.
func trace(evs []event, names map[mem.PA]string, tables map[mem.PA]string) []string {
	var out []string
	for _, e := range evs {
		switch e.kind {
		case "tlbi-ipa":
			out = append(out, fmt.Sprintf("tlbi %#x L%d", e.ipa, e.level))
		case "tlbi-range":
			k := ""
			if !e.r.LeafOnly {
				k = " table"
			}
			out = append(out, fmt.Sprintf("tlbi %#x+%#x L%d%s", uint64(e.r.Start), uint64(e.r.End-e.r.Start), e.r.Level, k))
		case "tlbi-vmid":
			out = append(out, "tlbi vmid")
		case "free":
			out = append(out, "free "+tables[e.pa])
		default:
			if n, ok := names[e.pa]; ok {
				out = append(out, fmt.Sprintf("%s %s %s", e.kind, n, kindName(e.v, n)))
			}
		}
	}
	return out
}

func kindName(v uint64, n string) string {
	lvl := 2
	if n == "pte3" {
		lvl = 3
	}
	if v == 0 {
		return "0"
	}
	s := desc.KindAt(v, lvl).String()
	if v&desc.S2APWriteBit == 0 && desc.KindAt(v, lvl) != desc.Table {
		s += "-ro"
	}
	if v&desc.AFBit == 0 && desc.KindAt(v, lvl) != desc.Table {
		s += "-old"
	}
	return s
}

// TestBreakBeforeMakeOrder checks the sequence of descriptor values and
// TLB invalidations of each kind of update: a change of output address,
// size or memory attributes goes invalid, TLBI, new (R_WHZWS); a
// restriction is followed by its TLBI; a relaxation or an AF change has
// none; tables are freed after the TLBI that removes them from walk
// caches. The Invalidator takes ranges, one batch per operation.
func TestBreakBeforeMakeOrder(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.vm.reserveCap, r.vm.keepCap = 0, 0 // every emptied table is freed, so the trace shows it
	rw := ProtR | ProtW
	r.mapRange(0, 0x4000_0000, 2*mib, rw, MapBlocks)
	r.topup(8)
	names := map[mem.PA]string{}
	learn := func() {
		pte := r.pteOf(0, 2)
		names[pte] = "pte2"
		if d, _ := r.tm.Read64(pte); desc.KindAt(d, 2) == desc.Table {
			names[mem.PA(r.vm.Layout().Format.TableOA(d))+8] = "pte3"
		}
	}
	run := func(name string, op func() error, want []string) {
		t.Helper()
		clear(names)
		learn()
		r.rec.take()
		r.rec.enable = true
		err := op()
		r.rec.enable = false
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st := r.vm.Stats(); st.Tables > 0 {
			learn()
		}
		tables := map[mem.PA]string{}
		evs := r.rec.take()
		for _, e := range evs {
			if e.kind == "free" {
				tables[e.pa] = "table"
			}
		}
		if got := trace(evs, names, tables); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
		r.checkCounts()
	}
	// Remapping one page of a block: split by BBM (the new table is filled
	// before it is published), then the page itself by BBM.
	run("remap page in block", func() error { return r.vm.Map(r.c, 4096, 0x7000_0000, 4096, rw, 0) }, []string{
		"cas pte2 0", "write pte3 page", "tlbi 0x0+0x200000 L2", "write pte2 table",
		"cas pte3 0", "tlbi 0x1000+0x1000 L3", "write pte3 page",
	})
	// Restriction: change, then TLBI.
	run("write-protect", func() error { return r.vm.WriteProtect(4096, 4096) }, []string{
		"cas pte3 page-ro", "tlbi 0x1000+0x1000 L3",
	})
	// Relaxation and AF: no TLBI.
	run("relax", func() error { return r.vm.Relax(r.c, 4096, 4096, ProtW) }, []string{"cas pte3 page"})
	run("mkold", func() error { _, err := r.vm.MkOld(4096, 4096); return err }, []string{"cas pte3 page-old"})
	run("mkyoung", func() error { _, err := r.vm.MkYoung(4096); return err }, []string{"cas pte3 page"})
	// Same output, fewer rights through Map: in place, then TLBI.
	run("map restrict in place", func() error { return r.vm.Map(r.c, 4096, 0x7000_0000, 4096, ProtR, 0) }, []string{
		"cas pte3 page-ro", "tlbi 0x1000+0x1000 L3",
	})
	// Unmap of one page: invalid, TLBI; the table stays.
	run("unmap page", func() error { return r.vm.Unmap(4096, 4096) }, []string{"cas pte3 0", "tlbi 0x1000+0x1000 L3"})
	// A block over the table: break the table, invalidate its range with
	// the non-last-level form (walk caches may hold the table, leaves of
	// any level may be cached), write the block, then free the table.
	run("block over table", func() error { return r.vm.Map(r.c, 0, 0x4000_0000, 2*mib, rw, MapBlocks) }, []string{
		"cas pte2 0", "tlbi 0x0+0x200000 L-2 table", "write pte2 block", "free table",
	})
	// Unmapping the last pages of a table frees it, and then its parent
	// (also emptied), after the TLBI: the parent's range covers the
	// leaves' and the table's, so the batch is that one range, not last
	// level, with no level hint.
	r.unmap(0, 2*mib)
	r.mapRange(0, 0x4000_0000, 8192, rw, 0)
	run("unmap empties tables", func() error { return r.vm.Unmap(0, 2*mib) }, []string{
		"cas pte3 0", "cas pte2 0", "tlbi 0x0+0x40000000 L-2 table", "free table", "free table",
	})
	// Collapse: break the table, invalidate its range, write the block,
	// free the table.
	r.mapRange(0, 0x4000_0000, 2*mib, rw, 0)
	run("collapse", func() error { _, err := r.vm.Collapse(0, 2*mib); return err }, []string{
		"cas pte2 0", "tlbi 0x0+0x200000 L-2 table", "write pte2 block", "free table",
	})
	// Part of a block: write-protect and unmap act on the whole block (no
	// table is allocated to split it), one TLBI by IPA with its level.
	_ = r.c.Release()
	run("write-protect part of a block", func() error { return r.vm.WriteProtect(4096, 4096) }, []string{
		"cas pte2 block-ro", "tlbi 0x0+0x200000 L2",
	})
	run("unmap part of a block", func() error { return r.vm.Unmap(4096, 4096) }, []string{
		"cas pte2 0", "tlbi 0x0+0x40000000 L-2 table", "free table",
	})
}

// TestClassify tries every class of change of a live descriptor against
// the rule (R_WHZWS, DDI 0487I.a D8.13.1): a change of output address,
// size (block or page, Contiguous hint) or memory attributes (MemAttr,
// shareability) needs break-before-make; so does replacing a table, or a
// leaf by a table; access rights, AF, DBM and the software bits change in
// place, an invalidation following when a right is removed.
func TestClassify(t *testing.T) {
	l, err := NewLayout(defaultCfg(40, sysreg.Granule4K))
	if err != nil {
		t.Fatal(err)
	}
	f := l.Format
	page := uint64(desc.S2Leaf{OA: 0x4000_0000, MemAttr: 0xf, S2AP: 1, SH: 3, AF: true, XN: 2}.Encode(f, 3))
	block := uint64(desc.S2Leaf{OA: 0x4000_0000, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}.Encode(f, 2))
	table := uint64(desc.S2Table(f, 0x8000_1000))
	const bbm = change(255)
	cases := []struct {
		name     string
		level    int
		old, new uint64
		want     change
	}{
		{"invalid to invalid", 3, 0, 0x5a50, changeNone},
		{"make a page", 3, 0, page, changeMake},
		{"make a table", 2, 0, table, changeMake},
		{"break a page", 3, page, 0, changeBreak},
		{"break a table", 2, table, 0, changeBreak},
		{"break to invalid garbage", 3, page, page &^ desc.ValidBit, changeBreak},
		{"output address", 3, page, f.WithOA(page, 0x4000_1000), bbm},
		{"output address of a block", 2, block, f.WithOA(block, 0x4020_0000), bbm},
		{"Contiguous hint set", 3, page, page | desc.ContigBit, bbm},
		{"Contiguous hint cleared", 3, page | desc.ContigBit, page, bbm},
		{"page to reserved (size)", 3, page, page &^ desc.TypeBit, bbm},
		{"MemAttr Normal to Device", 3, page, page&^desc.S2MemAttrMask | desc.Put(1, desc.S2MemAttrMask), bbm},
		{"MemAttr cacheability", 3, page, page&^desc.S2MemAttrMask | desc.Put(0b0101, desc.S2MemAttrMask), bbm},
		{"shareability", 3, page, page&^desc.SHMask | desc.Put(2, desc.SHMask), bbm},
		{"block to table", 2, block, table, bbm},
		{"table to block", 2, table, block, bbm},
		{"table to another table", 2, table, uint64(desc.S2Table(f, 0x8000_2000)), bbm},
		{"an ignored high bit", 3, page, page | 1<<60, bbm},
		{"grant read", 3, page &^ desc.S2APReadBit, page, changeRelax},
		{"grant write", 3, page, page | desc.S2APWriteBit, changeRelax},
		{"grant execution", 3, page, page &^ desc.S2XNMask, changeRelax},
		{"grant EL0 execution only (XNX 10 to 01)", 3, page, page&^desc.S2XNMask | desc.Put(1, desc.S2XNMask), changeRelax},
		{"set DBM (writable-clean)", 3, page, page | desc.DBMBit, changeRelax},
		{"set AF", 3, page &^ desc.AFBit, page, changeRelax},
		{"clear AF", 3, page, page &^ desc.AFBit, changeRelax},
		{"software bits", 3, page, page | desc.Put(0xa, desc.SWMask), changeRelax},
		{"remove read", 3, page, page &^ desc.S2APReadBit, changeRestrict},
		{"remove write", 2, block, block &^ desc.S2APWriteBit, changeRestrict},
		{"dirty to clean (DBM kept)", 3, page | desc.DBMBit | desc.S2APWriteBit, page | desc.DBMBit, changeRestrict},
		{"remove DBM", 3, page | desc.DBMBit, page, changeRestrict},
		{"remove execution", 3, page &^ desc.S2XNMask, page, changeRestrict},
		{"remove EL1 execution (XNX 00 to 01)", 3, page &^ desc.S2XNMask, page&^desc.S2XNMask | desc.Put(1, desc.S2XNMask), changeRestrict},
		{"rights and AF together", 3, page &^ desc.AFBit, page | desc.S2APWriteBit, changeRelax},
	}
	for _, c := range cases {
		got, err := l.classify(c.level, c.old, c.new)
		if c.want == bbm {
			if !errors.Is(err, ErrBreakBeforeMake) {
				t.Errorf("%s: %#x -> %#x: class %d, error %v; want ErrBreakBeforeMake", c.name, c.old, c.new, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %#x -> %#x: class %d, error %v; want class %d", c.name, c.old, c.new, got, err, c.want)
		}
	}
}

// TestVisitorsCannotBypassBBM: an exported visitor's Set or Update of a
// live entry that needs break-before-make is refused and changes nothing;
// the same change in two steps (Set(0), Set(new)) is made, with the
// invalidation between them; a visitor cannot install a table.
func TestVisitorsCannotBypassBBM(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.mapRange(0, 0x4000_0000, 8192, ProtR|ProtW, 0)
	f := r.vm.Layout().Format
	pte := r.pteOf(0, 3)
	before, _ := r.tm.Read64(pte)
	moved := f.WithOA(before, 0x7000_0000)
	for _, try := range []struct {
		name string
		fn   func(c *Ctx) error
	}{
		{"Set", func(c *Ctx) error { return c.Set(moved) }},
		{"Update", func(c *Ctx) error { _, err := c.Update(func(uint64) uint64 { return moved }); return err }},
		{"Update to Device", func(c *Ctx) error {
			_, err := c.Update(func(d uint64) uint64 { return d&^desc.S2MemAttrMask | desc.Put(1, desc.S2MemAttrMask) })
			return err
		}},
	} {
		err := r.vm.Walk(0, 4096, VisitorFunc(func(c *Ctx, at WalkFlags) error { return try.fn(c) }), VisitLeaf)
		if !errors.Is(err, ErrBreakBeforeMake) {
			t.Errorf("%s: %v, want ErrBreakBeforeMake", try.name, err)
		}
		if d, _ := r.tm.Read64(pte); d != before {
			t.Errorf("%s: descriptor %#x, want unchanged %#x", try.name, d, before)
		}
	}
	err := r.vm.Walk(0, 4096, VisitorFunc(func(c *Ctx, at WalkFlags) error {
		return c.Set(uint64(desc.S2Table(f, 0x8000_0000)))
	}), VisitLeaf)
	if err == nil {
		t.Error("a visitor installed a table descriptor")
	}
	r.checkCounts()
	// In two steps: break, TLBI, make.
	r.rec.take()
	r.rec.enable = true
	err = r.vm.Walk(0, 4096, VisitorFunc(func(c *Ctx, at WalkFlags) error {
		if err := c.Set(0); err != nil {
			return err
		}
		return c.Set(moved)
	}), VisitLeaf)
	r.rec.enable = false
	if err != nil {
		t.Fatal(err)
	}
	got := trace(r.rec.take(), map[mem.PA]string{pte: "pte3"}, nil)
	want := []string{"cas pte3 0", "tlbi 0x0+0x1000 L3", "write pte3 page"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("two-step remap:\n got %q\nwant %q", got, want)
	}
	if tr := r.hw(0x10); tr.Fault.IsFault() || tr.OA != 0x7000_0010 {
		t.Errorf("after the remap the hardware translates to %v %#x", tr.Fault, tr.OA)
	}
	r.checkCounts()
}
