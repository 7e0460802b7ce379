package ptdump_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/ptdump"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/demo"
	"github.com/nestmmu/nestmmu/mem"
)

const ramBase, ramSize = 0x4000_0000, 0x1000_0000

// mapping is one leaf the test wrote, the reference the dump must match.
type mapping struct {
	va, oa uint64
	level  int
	size   uint64
	leaf   desc.S1Leaf
}

type world struct {
	ram   *mem.Sparse
	regs  vmsa.Regs
	tt    *ttbuild.Tables
	f     desc.Format
	maps  []mapping
	fault map[uint64]string // entry start -> expected fault substring
}

func newWorld(t *testing.T, g sysreg.Granule, vaBits uint) *world {
	t.Helper()
	ram, err := mem.NewSparse([]mem.Range{{Base: ramBase, Size: ramSize}})
	if err != nil {
		t.Fatal(err)
	}
	f := desc.Format{Granule: g}
	tt, err := ttbuild.New(ram, &ttbuild.Alloc{Next: ramBase, End: ramBase + 0x80_0000}, f, false, vaBits, ttbuild.StartLevel(g, vaBits))
	if err != nil {
		t.Fatal(err)
	}
	r := vmsa.DefaultRegs()
	r.SCTLR_EL1 = sysreg.SCTLRFields{M: true, C: true, I: true}.Value()
	r.TCR_EL1 = sysreg.TCRFields{T0SZ: sysreg.TxSZ(vaBits), TG0: g, T1SZ: sysreg.TxSZ(vaBits), TG1: g, EPD1: true, IPS: sysreg.PS48,
		IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner}.Value()
	r.TTBR0_EL1 = sysreg.TTBRFields{BADDR: tt.Root}.Value()
	r.MAIR_EL1 = sysreg.MAIROf(sysreg.MAIRNormalWB, sysreg.MAIRDevicenGnRE, sysreg.MAIRNormalNC)
	return &world{ram: ram, regs: r, tt: tt, f: f, fault: map[uint64]string{}}
}

func (w *world) overlaps(va, size uint64) bool {
	for _, m := range w.maps {
		if va < m.va+m.size && m.va < va+size {
			return true
		}
	}
	for a := range w.fault {
		if va <= a && a < va+size {
			return true
		}
	}
	return false
}

// populate writes n random leaves (blocks where the granule allows them,
// pages) with random permissions and attributes.
func (w *world) populate(t *testing.T, r *rand.Rand, n int) {
	start := w.tt.Start
	for tries := 0; len(w.maps) < n && tries < 20*n; tries++ {
		level := max(start+1, 3-r.IntN(2)) // level 2 blocks and level 3 pages
		if w.f.Granule != sysreg.Granule4K && level == 2 && r.IntN(3) > 0 {
			level = 3 // 16K/64K blocks are large: fewer of them
		}
		size := uint64(1) << w.f.LeafBits(level)
		va := (r.Uint64() % (1 << w.tt.IASize)) &^ (size - 1)
		if r.IntN(2) == 0 { // cluster half of them to exercise coalescing
			va = (uint64(r.IntN(64)) * size) % (1 << w.tt.IASize)
		}
		if w.overlaps(va, size) {
			continue
		}
		oa := (ramBase + 0x100_0000 + r.Uint64()%(ramSize/2)) &^ (size - 1)
		if r.IntN(2) == 0 && len(w.maps) > 0 { // continue the previous mapping
			p := w.maps[len(w.maps)-1]
			if p.level == level && !w.overlaps(p.va+p.size, size) && p.va+p.size < 1<<w.tt.IASize {
				va, oa = p.va+p.size, p.oa+p.size
			}
		}
		leaf := desc.S1Leaf{OA: oa, AttrIndx: uint(r.IntN(3)), AP: uint(r.IntN(4)), SH: 3, AF: r.IntN(5) > 0,
			NG: r.IntN(2) == 0, PXN: r.IntN(3) == 0, UXN: r.IntN(3) == 0}
		if r.IntN(2) == 0 && len(w.maps) > 0 {
			leaf = w.maps[len(w.maps)-1].leaf
			leaf.OA = oa
		}
		if err := w.tt.MapS1(va, level, leaf); err != nil {
			continue // a leaf above covers it
		}
		w.maps = append(w.maps, mapping{va: va, oa: oa, level: level, size: size, leaf: leaf})
	}
}

// expand lists the dump's mapped leaves (start, oa, level) in order.
func leavesOf(t *testing.T, tb ptdump.Table, f desc.Format) map[uint64]mapping {
	got := map[uint64]mapping{}
	for _, r := range tb.Ranges {
		if r.Fault != "" {
			continue
		}
		size := uint64(1) << f.LeafBits(r.Level)
		if r.Size()%size != 0 || uint64(r.Leaves)*size != r.Size() {
			t.Fatalf("range %#x-%#x: %d leaves of %#x bytes", r.Start, r.End, r.Leaves, size)
		}
		for va := r.Start; va != r.End; va += size {
			got[va] = mapping{va: va, oa: r.OA + (va - r.Start), level: r.Level, size: size}
		}
	}
	return got
}

// The dump lists exactly the leaves written, coalesced, with the
// permissions the walker enforces.
func TestStage1MatchesReference(t *testing.T) {
	cfgs := []struct {
		g      sysreg.Granule
		vaBits uint
	}{{sysreg.Granule4K, 39}, {sysreg.Granule4K, 48}, {sysreg.Granule16K, 47}, {sysreg.Granule64K, 42}, {sysreg.Granule64K, 48}}
	r := rand.New(rand.NewPCG(1, 7))
	for _, c := range cfgs {
		for round := 0; round < 4; round++ {
			w := newWorld(t, c.g, c.vaBits)
			w.populate(t, r, 60)
			before := w.ram.Words()
			tabs, err := ptdump.Stage1(w.ram, &w.regs, vmsa.RegimeEL10, ptdump.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(tabs) != 2 || tabs[0].Name != "TTBR0_EL1" {
				t.Fatalf("tables %+v", tabs)
			}
			got := leavesOf(t, tabs[0], w.f)
			if len(got) != len(w.maps) {
				t.Fatalf("%v/%d: dump has %d leaves, %d written", c.g, c.vaBits, len(got), len(w.maps))
			}
			for _, m := range w.maps {
				g, ok := got[m.va]
				if !ok || g.oa != m.oa || g.level != m.level {
					t.Fatalf("%v/%d: leaf %#x -> %#x L%d dumped as %+v (present %v)", c.g, c.vaBits, m.va, m.oa, m.level, g, ok)
				}
			}
			// Coalescing is maximal: neighbouring ranges differ in something.
			for i := 1; i < len(tabs[0].Ranges); i++ {
				a, b := tabs[0].Ranges[i-1], tabs[0].Ranges[i]
				if a.End == b.Start && a.Level == b.Level && a.OA+a.Size() == b.OA && a.Perms == b.Perms && a.Attrs == b.Attrs &&
					a.Fault == "" && b.Fault == "" && a.Desc&^0x0000_ffff_ffff_f003 == b.Desc&^0x0000_ffff_ffff_f003 {
					t.Errorf("ranges %#x and %#x could have been one", a.Start, b.Start)
				}
			}
			// The dump never writes memory (AF=0 leaves are shown, not set).
			if after := w.ram.Words(); len(after) != len(before) {
				t.Fatal("dump changed memory")
			} else {
				for k, v := range before {
					if after[k] != v {
						t.Fatalf("dump changed %#x", uint64(k))
					}
				}
			}
			checkPerms(t, w, tabs[0])
		}
	}
}

// checkPerms translates one address of every range with the plain walker
// (HA on, so AF=0 does not fault) for each access at EL0 and EL1 and
// requires the access allowed exactly when the dumped permissions say so.
func checkPerms(t *testing.T, w *world, tb ptdump.Table) {
	t.Helper()
	regs := w.regs
	regs.TCR_EL1 |= 1 << 39 // HA
	walker := &vmsa.Walker{Mem: w.ram}
	for _, rg := range tb.Ranges {
		if rg.Fault != "" {
			continue
		}
		for _, el := range []uint8{0, 1} {
			for _, k := range []vmsa.AccessKind{vmsa.Read, vmsa.Write, vmsa.Fetch} {
				tr := walker.Translate(&regs, vmsa.RegimeEL10, mem.VA(rg.Start), vmsa.Access{Kind: k, EL: el}, vmsa.TranslateOptions{})
				p := rg.Perms
				want := map[[2]int]bool{{0, 0}: p.R0, {0, 1}: p.W0, {0, 2}: p.X0, {1, 0}: p.R1, {1, 1}: p.W1, {1, 2}: p.X1}[[2]int{int(el), int(k)}]
				if allowed := !tr.Fault.IsFault(); allowed != want {
					t.Fatalf("%#x EL%d %v: walker allowed=%v (%v), dump says %s", rg.Start, el, k, allowed, tr.Fault, tb.PermString(p))
				}
			}
		}
	}
}

// Entries that make the walk fault are listed with the fault; holes are
// not; an unreadable table covers its parent entry's range.
func TestFaultEntries(t *testing.T) {
	w := newWorld(t, sysreg.Granule4K, 48)
	w.regs.TCR_EL1 = w.regs.TCR_EL1&^(7<<32) | sysreg.TCR(sysreg.PS40<<32) // 40-bit output
	set := func(va uint64, level int, d uint64) {
		if err := w.tt.Set(va, level, d); err != nil {
			t.Fatal(err)
		}
	}
	f := w.f
	ok := desc.S1Leaf{OA: ramBase + 0x200_0000, SH: 3, AF: true}
	if err := w.tt.MapS1(0x1000, 3, ok); err != nil {
		t.Fatal(err)
	}
	set(0x2000, 3, ramBase|1)                                                       // 0b01 at level 3: reserved
	set(0x80_0000_0000, 0, 1)                                                       // block at level 0 (4K, DS=0): not allowed
	set(0x40_0000_0000, 1, uint64(desc.S1Table{Addr: 0x1_0000_0000}.Encode(f)))     // table outside RAM
	set(0x40_4000_0000, 2, uint64(desc.S1Leaf{OA: 1 << 44, AF: true}.Encode(f, 2))) // OA beyond 40 bits
	set(0x40_8000_0000, 1, uint64(desc.S1Table{Addr: 1 << 45}.Encode(f)))           // next table beyond 40 bits
	tabs, err := ptdump.Stage1(w.ram, &w.regs, vmsa.RegimeEL10, ptdump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	tabs[0].WriteText(&text)
	want := []struct {
		start, size uint64
		fault       string
	}{
		{0x1000, 0x1000, ""},
		{0x2000, 0x1000, "reserved descriptor"},
		{0x40_0000_0000, 1 << 30, "not memory"},
		{0x40_4000_0000, 2 << 20, "output address 0x100000000000 beyond the output size"},
		{0x40_8000_0000, 1 << 30, "next-level table address"},
		{0x80_0000_0000, 1 << 39, "block descriptor not allowed at level 0"},
	}
	rs := tabs[0].Ranges
	if len(rs) != len(want) {
		t.Fatalf("%d ranges, want %d:\n%s", len(rs), len(want), text.String())
	}
	for i, wr := range want {
		if rs[i].Start != wr.start || rs[i].Size() != wr.size || !strings.Contains(rs[i].Fault, wr.fault) || (wr.fault == "") != (rs[i].Fault == "") {
			t.Errorf("range %d = %#x+%#x %q, want %#x+%#x %q", i, rs[i].Start, rs[i].Size(), rs[i].Fault, wr.start, wr.size, wr.fault)
		}
	}
	// TTBR1 is disabled by EPD1.
	if n := tabs[1].Notes; len(n) == 0 || !strings.Contains(n[0], "EPD1=1") {
		t.Errorf("TTBR1 notes %v", n)
	}
	// A register-level fault (TxSZ below the minimum) stops before any read.
	regs := w.regs
	regs.TCR_EL1 = regs.TCR_EL1&^0x3f | 2 // T0SZ=2: 62-bit VAs
	tabs, _ = ptdump.Stage1(w.ram, &regs, vmsa.RegimeEL10, ptdump.Options{})
	if n := tabs[0].Notes; len(n) == 0 || !strings.Contains(n[len(n)-1], "before reading a descriptor") || len(tabs[0].Ranges) != 0 {
		t.Errorf("T0SZ=2: notes %v ranges %d", n, len(tabs[0].Ranges))
	}
}

// Stage 2 with a concatenated root (40-bit IPA, 4K, level 1: two tables).
func TestStage2Concatenated(t *testing.T) {
	ram, _ := mem.NewSparse([]mem.Range{{Base: ramBase, Size: ramSize}})
	f := desc.Format{Granule: sysreg.Granule4K}
	s2, err := ttbuild.New(ram, &ttbuild.Alloc{Next: ramBase, End: ramBase + 0x10_0000}, f, true, 40, 1)
	if err != nil {
		t.Fatal(err)
	}
	rw := desc.S2Leaf{MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}
	ro := desc.S2Leaf{MemAttr: 0x1, S2AP: 1, AF: true, XN: 2}
	for i := uint64(0); i < 4; i++ {
		rw.OA = 0x8000_0000 + i<<21
		if err := s2.MapS2(0x80_0000_0000+i<<21, 2, rw); err != nil { // in the second concatenated table
			t.Fatal(err)
		}
	}
	ro.OA = 0x9000_0000
	if err := s2.MapS2(0x1000, 3, ro); err != nil {
		t.Fatal(err)
	}
	regs := vmsa.DefaultRegs()
	regs.HCR_EL2 = sysreg.HCRFields{VM: true, RW: true}.Value()
	regs.VTCR_EL2 = sysreg.VTCRFields{T0SZ: 24, SL0: 1, TG0: sysreg.Granule4K, PS: sysreg.PS48, SH0: sysreg.SHInner}.Value()
	regs.VTTBR_EL2 = sysreg.VTTBRFields{BADDR: s2.Root, VMID: 1}.Value()
	tab, err := ptdump.Stage2(ram, &regs, ptdump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	tab.WriteText(&text)
	rs := tab.Ranges
	if len(rs) != 2 || rs[0].Start != 0x1000 || rs[0].OA != 0x9000_0000 || rs[1].Start != 0x80_0000_0000 ||
		rs[1].Size() != 8<<20 || rs[1].Leaves != 4 || rs[1].OA != 0x8000_0000 {
		t.Fatalf("ranges:\n%s", text.String())
	}
	if got := tab.PermString(rs[0].Perms); got != "r- ---- ----" {
		t.Errorf("read-only XN page: %q", got)
	}
	if got := tab.PermString(rs[1].Perms); got != "rw xEL1 xEL0" {
		t.Errorf("read/write block: %q", got)
	}
	if got := ptdump.AttrString(rs[0].Attrs); got != "Device-nGnRE" {
		t.Errorf("MemAttr 0b0001: %q", got)
	}
}

// Stage 1 whose tables live in IPA space under stage 2 (the demonstration
// machine): outputs are IPAs, and a table at an IPA stage 2 does not map
// shows as a fault over its parent entry.
func TestStage1UnderStage2(t *testing.T) {
	m, err := demo.TwoStage()
	if err != nil {
		t.Fatal(err)
	}
	tabs, err := ptdump.Stage1(m.Mem, &m.Regs, vmsa.RegimeEL10, ptdump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb := tabs[0]
	var text bytes.Buffer
	tb.WriteText(&text)
	if tb.Output != "IPA" {
		t.Errorf("output %q", tb.Output)
	}
	find := func(va uint64) ptdump.Range {
		for _, r := range tb.Ranges {
			if r.Start <= va && va < r.End {
				return r
			}
		}
		t.Fatalf("no range holds %#x:\n%s", va, text.String())
		return ptdump.Range{}
	}
	if r := find(demo.VAData); r.OA+(demo.VAData-r.Start) != demo.GuestIPA+0x20_0000 || r.Fault != "" {
		t.Errorf("VAData: %+v", r)
	}
	if r := find(demo.VAHole); !strings.Contains(r.Fault, "does not translate at stage 2") || r.Size() != 2<<20 {
		t.Errorf("VAHole: %+v", r)
	}
	if r := find(demo.VAYoung); r.Desc&(1<<10) != 0 || !strings.Contains(text.String(), "!AF") {
		t.Errorf("VAYoung (AF=0) %+v", r)
	}
}

// The EL2 regime has one range and no EL0; EL2&0 has two.
func TestEL2Regimes(t *testing.T) {
	ram, _ := mem.NewSparse([]mem.Range{{Base: ramBase, Size: ramSize}})
	f := desc.Format{Granule: sysreg.Granule4K}
	tt, _ := ttbuild.New(ram, &ttbuild.Alloc{Next: ramBase, End: ramBase + 0x10_0000}, f, false, 39, 1)
	tt.MapS1(0x20_0000, 2, desc.S1Leaf{OA: 0x4800_0000, AP: 2, AF: true, UXN: true})
	regs := vmsa.DefaultRegs()
	regs.TCR_EL2 = uint64(sysreg.TCR2Fields{T0SZ: 25, TG0: sysreg.Granule4K, PS: sysreg.PS48}.Value())
	regs.TTBR0_EL2 = sysreg.TTBR(tt.Root)
	tabs, err := ptdump.Stage1(ram, &regs, vmsa.RegimeEL2, ptdump.Options{})
	if err != nil || len(tabs) != 1 {
		t.Fatal(err, len(tabs))
	}
	if len(tabs[0].Ranges) != 1 || tabs[0].PermString(tabs[0].Ranges[0].Perms) != "EL2 r--" {
		t.Errorf("EL2: %+v %s", tabs[0].Ranges, tabs[0].PermString(tabs[0].Ranges[0].Perms))
	}
	regs.HCR_EL2 = sysreg.HCRFields{E2H: true, TGE: true}.Value()
	regs.TCR_EL2 = uint64(sysreg.TCRFields{T0SZ: 25, T1SZ: 25, TG0: sysreg.Granule4K, TG1: sysreg.Granule4K, IPS: sysreg.PS48}.Value())
	regs.TTBR1_EL2 = sysreg.TTBR(tt.Root)
	tabs, err = ptdump.Stage1(ram, &regs, vmsa.RegimeEL20, ptdump.Options{})
	if err != nil || len(tabs) != 2 {
		t.Fatal(err, len(tabs))
	}
	// The same tables from TTBR1: the mapping at the top of the space.
	if r := tabs[1].Ranges; len(r) != 1 || r[0].Start != 0xffff_ff80_0020_0000 || tabs[1].PermString(r[0].Perms) != "EL2 r-x EL0 ---" {
		t.Errorf("EL2&0 TTBR1: %+v", r)
	}
}

func TestWalkLimitAndErrors(t *testing.T) {
	w := newWorld(t, sysreg.Granule4K, 39)
	w.tt.MapS1(0x1000, 3, desc.S1Leaf{OA: ramBase, AF: true})
	tabs, _ := ptdump.Stage1(w.ram, &w.regs, vmsa.RegimeEL10, ptdump.Options{MaxWalks: 10})
	if n := tabs[0].Notes; len(n) == 0 || !strings.Contains(n[len(n)-1], "stopped after 10 walks") || tabs[0].Walks != 10 {
		t.Errorf("notes %v walks %d", n, tabs[0].Walks)
	}
	// A reserved TG0 and an unimplemented granule: the model's choice
	// (the smallest implemented granule), with a note; the dump agrees
	// with the walker.
	for _, c := range []struct {
		name string
		mod  func(r *vmsa.Regs)
	}{
		{"reserved TG0", func(r *vmsa.Regs) { r.TCR_EL1 |= 3 << 14 }},
		{"64K not implemented", func(r *vmsa.Regs) { r.MMFR0 |= 0xf << 24; r.TCR_EL1 = r.TCR_EL1&^(3<<14) | 1<<14 }},
	} {
		regs := w.regs
		c.mod(&regs)
		tabs, err := ptdump.Stage1(w.ram, &regs, vmsa.RegimeEL10, ptdump.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tb := tabs[0]
		if tb.Granule != sysreg.Granule4K || len(tb.Notes) == 0 || !strings.Contains(tb.Notes[0], "IMPLEMENTATION DEFINED") {
			t.Errorf("%s: granule %v notes %v", c.name, tb.Granule, tb.Notes)
		}
		if len(tb.Ranges) != 1 || tb.Ranges[0].Start != 0x1000 {
			t.Errorf("%s: ranges %+v", c.name, tb.Ranges)
		}
		tr := (&vmsa.Walker{Mem: w.ram}).Translate(&regs, vmsa.RegimeEL10, 0x1000, vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
		if tr.Fault.IsFault() || tr.OA != ramBase {
			t.Errorf("%s: the walker gives %+v", c.name, tr.Fault)
		}
	}
}

// The JSON form carries the same ranges with addresses as "0x..." strings.
func TestJSON(t *testing.T) {
	w := newWorld(t, sysreg.Granule4K, 39)
	w.tt.MapS1(0x1000, 3, desc.S1Leaf{OA: ramBase + 0x5000, AF: true, SH: 3})
	tabs, _ := ptdump.Stage1(w.ram, &w.regs, vmsa.RegimeEL10, ptdump.Options{})
	b, err := json.Marshal(&tabs[0])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name, Regime, Output string
		Ranges               []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Regime != "EL1&0" || len(got.Ranges) != 1 || got.Ranges[0]["oa"] != fmt.Sprintf("%#x", ramBase+0x5000) ||
		got.Ranges[0]["start"] != "0x1000" || got.Ranges[0]["perms"] != "EL1 rwx EL0 --x" {
		t.Errorf("%s", b)
	}
}
