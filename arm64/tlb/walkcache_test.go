package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestWalkCache: a stage-2 table reached by a walk is cached; a walk after
// the table was replaced (and its page reused) without the right TLBI
// still goes through it; the last-level forms, VMALLE1, other VMIDs and
// other IPAs leave it; IPAS2E1, RIPAS2E1 and VMALLS12E1 over it remove
// it (under StrictHints only with a hint that a walk through it can have).
func TestWalkCache(t *testing.T) {
	const (
		ipa    = 0x4000_1000
		other  = 0x4f00_8000 // a second level-2 table
		vmid   = 3
		oldOA  = 0x4000_1000
		stalOA = 0x5000_1000 // what the reused page maps
	)
	ctx := Context{EL: 2, VMID: vmid}
	type step struct {
		name     string
		op       Op
		xt       uint64
		ctx      Context
		strict   bool
		keepsOld bool // the walk still goes through the replaced table
	}
	ipaXt := func(a uint64, ttl uint64) uint64 { return IPAOperandOf(mem.IPA(a), ttl) }
	steps := []step{
		{"no TLBI", 0, 0, ctx, false, true},
		{"IPAS2LE1 (last level)", OpIPAS2LE1.IS(), ipaXt(ipa, 0), ctx, false, true},
		{"RIPAS2LE1 (last level)", OpRIPAS2LE1.IS(), 1<<46 | 31<<39 | ipa>>12, ctx, false, true},
		{"VMALLE1 (stage 1 only)", OpVMALLE1.IS(), 0, ctx, false, true},
		{"IPAS2E1 of another VMID", OpIPAS2E1.IS(), ipaXt(ipa, 0), Context{EL: 2, VMID: 4}, false, true},
		{"IPAS2E1 outside the table's span", OpIPAS2E1.IS(), ipaXt(0x8000_1000, 0), ctx, false, true},
		{"IPAS2E1 with a level-1 TTL, strict", OpIPAS2E1.IS(), ipaXt(ipa, 0b0101), ctx, true, true},
		{"IPAS2E1 with a level-1 TTL", OpIPAS2E1.IS(), ipaXt(ipa, 0b0101), ctx, false, false},
		// The replaced table is at level 3: only walks ending at level 3
		// go through it.
		{"IPAS2E1 with a level-2 TTL, strict", OpIPAS2E1.IS(), ipaXt(ipa, 0b0110), ctx, true, true},
		{"IPAS2E1 with a level-3 TTL, strict", OpIPAS2E1.IS(), ipaXt(ipa, 0b0111), ctx, true, false},
		{"IPAS2E1 of another IPA of the level-2 table", OpIPAS2E1.IS(), ipaXt(0x7fff_f000, 0), ctx, false, true},
		{"IPAS2E1 anywhere in the table's span", OpIPAS2E1.IS(), ipaXt(0x401f_f000, 0), ctx, false, false},
		{"RIPAS2E1 not reaching it", OpRIPAS2E1.IS(), 1<<46 | 1<<39 | 0x3fe0_0000>>12, ctx, false, true},
		{"RIPAS2E1 over the span", OpRIPAS2E1.IS(), 1<<46 | 1<<44 | 7<<39 | 0x4000_0000>>12, ctx, false, false},
		{"VMALLS12E1", OpVMALLS12E1.IS(), 0, ctx, false, false},
		{"ALLE1", OpALLE1.IS(), 0, ctx, false, false},
	}
	for _, s := range steps {
		g := newWalkRig(t, true)
		tl := MustNew(Config{WalkCache: 16, StrictHints: s.strict})
		g.w.S2Tables = tl
		// Page the first 2 MiB at stage 2 through a level-3 table.
		g.put(rS2L2+(ipa>>21&511)*8, other|dTable)
		g.put(other+(ipa>>12&511)*8, oldOA|dPage|0xf<<2|3<<6|dIS|dAF)
		tr := g.w.TranslateS2(&g.r, ipa, rd1)
		if tr.Fault.IsFault() || tr.OA != oldOA {
			t.Fatalf("%s: first walk %v %#x", s.name, tr.Fault, tr.OA)
		}
		// Unmap the level-3 table and reuse its page for something else,
		// then the TLBI under test.
		g.put(rS2L2+(ipa>>21&511)*8, 0)
		g.put(other+(ipa>>12&511)*8, stalOA|dPage|0xf<<2|3<<6|dIS|dAF)
		if s.op != 0 {
			if _, err := tl.Invalidate(s.op, s.xt, s.ctx); err != nil {
				t.Fatal(err)
			}
		}
		tr = g.w.TranslateS2(&g.r, ipa, rd1)
		stale := !tr.Fault.IsFault() && tr.OA == stalOA
		if !stale && !(tr.Fault.Kind == vmsa.FaultTranslation && tr.Fault.Level == 2) {
			t.Fatalf("%s: second walk %v %#x: neither the stale table nor the level-2 fault", s.name, tr.Fault, tr.OA)
		}
		if stale != s.keepsOld {
			t.Errorf("%s: walk through the replaced table %v, want %v", s.name, stale, s.keepsOld)
		}
	}
}

// TestHoldPermissions: with HoldPermissions an entry whose cached
// permissions deny an access answers PermissionFault, and the fault is
// that of the stage whose permissions deny it, at its level, with the IPA
// for stage 2; without it, or where PAN makes the answer uncertain, the
// answer is PermissionMiss (walk again).
func TestHoldPermissions(t *testing.T) {
	g := newWalkRig(t, true)
	// VA 0x1000 -> IPA 0x4000_1000 (stage 1 writable, EL0 accessible),
	// VA 0x2000 -> IPA 0x4000_2000 (stage 1 read-only); stage 2 maps the
	// 2 MiB block of 0x4000_0000 read-only.
	g.put(rL3+1*8, 0x4000_1000|dPage|dAF|dIS|dEL0)
	g.put(rL3+2*8, 0x4000_2000|dPage|dAF|dIS|dRO)
	g.put(rS2L2, 0x4000_0000|dBlock|0xf<<2|1<<6|dIS|dAF)
	for _, hold := range []bool{false, true} {
		tl := MustNew(Config{HoldPermissions: hold})
		for _, va := range []uint64{0x1000, 0x2000} {
			tr := g.walk(va, rd1)
			tl.Fill(vmsa.RegimeEL10, 3, mem.VA(va), &tr)
		}
		s2 := g.w.TranslateS2(&g.r, 0x4000_3000, rd1)
		tl.FillS2(3, 0x4000_3000, &s2)
		cases := []struct {
			name   string
			look   func() (Entry, Result)
			in     uint64
			acc    vmsa.Access
			stage2 bool
			level  int8
			ipa    mem.IPA
		}{
			{"stage 2 denies a combined entry", func() (Entry, Result) { return tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x1234, wr1) },
				0x1234, wr1, true, 2, 0x4000_1234},
			{"stage 1 denies a combined entry", func() (Entry, Result) { return tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x2345, wr1) },
				0x2345, wr1, false, 3, 0},
			{"stage-2-only entry", func() (Entry, Result) { return tl.LookupS2(3, 0x4000_3456, wr1) },
				0x4000_3456, wr1, true, 2, 0x4000_3456},
		}
		for _, c := range cases {
			e, res := c.look()
			want := PermissionMiss
			if hold {
				want = PermissionFault
			}
			if res != want {
				t.Errorf("hold=%v %s: %v, want %v", hold, c.name, res, want)
				continue
			}
			if !hold {
				continue
			}
			f := e.PermissionFault(c.in, c.acc)
			if f.Kind != vmsa.FaultPermission || f.Stage2 != c.stage2 || f.Level != c.level || f.IPA != c.ipa || !f.Write {
				t.Errorf("%s: fault %+v, want stage2 %v level %d IPA %#x write", c.name, f, c.stage2, c.level, uint64(c.ipa))
			}
		}
		// PAN: a privileged read of an EL0-accessible page may fault,
		// but the entry cannot say: walk again.
		pan := vmsa.Access{Kind: vmsa.Read, EL: 1, PAN: true}
		if _, res := tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x1234, pan); res != PermissionMiss {
			t.Errorf("hold=%v: PAN read: %v, want PermissionMiss", hold, res)
		}
	}
}
