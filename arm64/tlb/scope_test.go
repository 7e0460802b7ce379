package tlb

import (
	"slices"
	"sort"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Addresses of the fixture entries.
const (
	vaA   = 0x0040_0000           // 4K pages, ASIDs 5 and 6, VMIDs 1 and 2
	vaB   = 0x0050_0000           // global 4K pages
	vaC   = 0x8000_0000           // 2M block, level 2
	vaD   = 0x9000_0000           // contiguous 64K run of 4K pages
	vaE   = 0xa000_0000           // combined stage 1+2 entry
	vaF   = 0xb000_0000           // 64K-granule page
	vaHi  = 0xffff_ffff_ffe0_0000 // TTBR1 page
	ipaP  = 0x5000_0000           // stage-2 page (and the IPA of vaE)
	ipaBk = 0x6000_0000           // stage-2 2M block
)

func e4k(r vmsa.Regime, vmid, asid uint16, global bool, va uint64) Entry {
	return Entry{Regime: r, VMID: vmid, ASID: asid, Global: global, VA: mem.VA(va), SizeBits: 12,
		OA: mem.PA(va ^ 0x10_0000_0000), Level: 3, GranuleBits: 12, Perms: allPerms}
}

var allPerms = vmsa.Perms{R0: true, W0: true, X0: true, R1: true, W1: true, X1: true}

// fixture is the set of named entries every scope case starts from.
func fixture() map[string]Entry {
	m := map[string]Entry{
		"a5":    e4k(vmsa.RegimeEL10, 1, 5, false, vaA),
		"a6":    e4k(vmsa.RegimeEL10, 1, 6, false, vaA),
		"g":     e4k(vmsa.RegimeEL10, 1, 0, true, vaB),
		"v2a5":  e4k(vmsa.RegimeEL10, 2, 5, false, vaA),
		"v2g":   e4k(vmsa.RegimeEL10, 2, 0, true, vaB),
		"hi":    e4k(vmsa.RegimeEL10, 1, 0, true, vaHi),
		"el2":   e4k(vmsa.RegimeEL2, 0, 0, true, vaA),
		"h20g":  e4k(vmsa.RegimeEL20, 0, 0, true, vaB),
		"h20a5": e4k(vmsa.RegimeEL20, 0, 5, false, vaA),
		"h20a6": e4k(vmsa.RegimeEL20, 0, 6, false, vaA),
	}
	blk := e4k(vmsa.RegimeEL10, 1, 5, false, vaC)
	blk.SizeBits, blk.Level = 21, 2
	m["blk2M"] = blk
	c := e4k(vmsa.RegimeEL10, 1, 0, true, vaD)
	c.SizeBits = 16 // 16 contiguous 4K pages: level 3, 4K granule
	m["cont64K"] = c
	f := e4k(vmsa.RegimeEL10, 1, 0, true, vaF)
	f.SizeBits, f.GranuleBits = 16, 16
	m["g64K"] = f
	comb := e4k(vmsa.RegimeEL10, 1, 5, false, vaE)
	comb.Combined, comb.IPA, comb.S2Level, comb.S2SizeBits = true, ipaP, 3, 12
	m["comb"] = comb
	s2 := Entry{Stage2Only: true, VMID: 1, SizeBits: 12, OA: 0x7_0000_0000, IPA: ipaP, Level: 3, GranuleBits: 12, Perms: allPerms}
	m["s2"] = s2
	s2b := s2
	s2b.IPA, s2b.SizeBits, s2b.Level = ipaBk, 21, 2
	m["s2blk"] = s2b
	s2v2 := s2
	s2v2.VMID = 2
	m["s2v2"] = s2v2
	return m
}

// names of entries of the fixture grouped by what they are.
var (
	el10v1   = []string{"a5", "a6", "g", "hi", "blk2M", "cont64K", "g64K", "comb"}
	el10v2   = []string{"v2a5", "v2g"}
	el2All   = []string{"el2", "h20g", "h20a5", "h20a6"}
	s2v1     = []string{"s2", "s2blk"}
	el10v1A5 = []string{"a5", "g", "hi", "blk2M", "cont64K", "g64K", "comb"} // ASID 5 or global
)

func cat(xs ...[]string) []string { return slices.Concat(xs...) }

// Operand builders, bit by bit from the operand layouts.
func xtVA(asid uint16, ttl uint8, va uint64) uint64 {
	return uint64(asid)<<48 | uint64(ttl&0xf)<<44 | (va>>12)&(1<<44-1)
}

func xtIPA(ttl uint8, ipa uint64) uint64 {
	return uint64(ttl&0xf)<<44 | (ipa>>12)&(1<<40-1)
}

// xtRange: ASID[63:48] TG[47:46] SCALE[45:44] NUM[43:39] TTL[38:37] BaseADDR[36:0].
func xtRange(asid uint16, tg, scale, num, ttl uint8, baseaddr uint64) uint64 {
	return uint64(asid)<<48 | uint64(tg&3)<<46 | uint64(scale&3)<<44 | uint64(num&0x1f)<<39 |
		uint64(ttl&3)<<37 | baseaddr&(1<<37-1)
}

var (
	ctxEL1   = Context{EL: 1, VMID: 1, ASID16: true}
	ctxEL2   = Context{EL: 2, VMID: 1, ASID16: true}
	ctxVHE   = Context{EL: 2, VMID: 1, ASID16: true, HCR: sysreg.HCR_E2H}
	ctxVHETG = Context{EL: 2, VMID: 1, ASID16: true, HCR: sysreg.HCR_E2H | sysreg.HCR_TGE}
)

type scopeCase struct {
	name string
	op   Op
	xt   uint64
	ctx  Context
	// gone are the fixture entries that must be removed; strictGone,
	// when non-nil, replaces it under StrictHints.
	gone, strictGone []string
	rule             string
}

var scopeCases = []scopeCase{
	{"VMALLE1 at EL1", OpVMALLE1, 0, ctxEL1, el10v1, nil,
		"VMALLE1: stage 1 (and combined) entries of EL1&0 with the current VMID, any ASID; not stage-2-only"},
	{"VMALLE1 at EL2 E2H=1 TGE=0", OpVMALLE1, 0, ctxVHE, el10v1, nil,
		"VMALLE1: {E2H,TGE} != {1,1}: EL1&0 with the current VMID"},
	{"VMALLE1 at EL2 E2H=1 TGE=1", OpVMALLE1, 0, ctxVHETG, []string{"h20g", "h20a5", "h20a6"}, nil,
		"VMALLE1: {E2H,TGE}={1,1}: the EL2&0 regime"},
	{"VAE1 ASID 5", OpVAE1, xtVA(5, 0, vaA), ctxEL1, []string{"a5"}, nil,
		"VAE1: non-global entries of the ASID, current VMID, that translate the VA"},
	{"VAE1 global page", OpVAE1, xtVA(9, 0, vaB), ctxEL1, []string{"g"}, nil,
		"VAE1: global entries match whatever the ASID"},
	{"VAE1 in 2M block", OpVAE1, xtVA(5, 0, vaC+0x12_3000), ctxEL1, []string{"blk2M"}, nil,
		"VAE1: an entry is removed if it would translate the VA (any offset in the block)"},
	{"VAE1 in 2M block other ASID", OpVAE1, xtVA(6, 0, vaC+0x12_3000), ctxEL1, nil, nil,
		"VAE1: a non-global entry of another ASID stays"},
	{"VAE1 in contiguous run", OpVAE1, xtVA(0, 0, vaD+0x5000), ctxEL1, []string{"cont64K"}, nil,
		"VAE1: a contiguous-bit entry translates the whole run"},
	{"VAE1 upper VA", OpVAE1, xtVA(0, 0, vaHi), ctxEL1, []string{"hi"}, nil,
		"VAE1: Xt[43:0] = VA[55:12], bit 55 selects TTBR1"},
	{"VAE1 combined", OpVAE1, xtVA(5, 0, vaE), ctxEL1, []string{"comb"}, nil,
		"VAE1: combined stage 1+2 entries are stage-1 entries of EL1&0"},
	{"VAE1 EL2&0 redirect", OpVAE1, xtVA(5, 0, vaA), ctxVHETG, []string{"h20a5"}, nil,
		"VAE1 at EL2 with {E2H,TGE}={1,1}: EL2&0, ASID match"},
	{"VAE1 8-bit ASID", OpVAE1, xtVA(0x0105, 0, vaA), Context{EL: 1, VMID: 1}, []string{"a5"}, nil,
		"ASID[15:8] are RES0 when only 8 bits of ASID are used"},
	{"VAE1 TTL 4K L2 on block", OpVAE1, xtVA(5, 0b0110, vaC), ctxEL1, []string{"blk2M"}, []string{"blk2M"},
		"FEAT_TTL: 0b0110 = 4K level 2, correct for the block"},
	{"VAE1 TTL 4K L3 on block", OpVAE1, xtVA(5, 0b0111, vaC), ctxEL1, []string{"blk2M"}, []string{},
		"FEAT_TTL: an incorrect TTL: no entries required to be invalidated"},
	{"VAE1 TTL reserved 4K L0", OpVAE1, xtVA(5, 0b0100, vaC), ctxEL1, []string{"blk2M"}, []string{"blk2M"},
		"FEAT_TTL: 0b0100 without FEAT_LPA2 is treated as 0b00xx"},
	{"VAE1 TTL 64K L3", OpVAE1, xtVA(0, 0b1111, vaF), ctxEL1, []string{"g64K"}, []string{"g64K"},
		"FEAT_TTL: 0b1111 = 64K level 3"},
	{"VAE1 TTL wrong granule", OpVAE1, xtVA(0, 0b0111, vaF), ctxEL1, []string{"g64K"}, []string{},
		"FEAT_TTL: 4K hint on a 64K-granule entry is incorrect"},
	{"VALE1", OpVALE1, xtVA(5, 0, vaA), ctxEL1, []string{"a5"}, nil,
		"VALE1: as VAE1, final level only (every entry is a leaf)"},
	{"VALE1 block", OpVALE1, xtVA(5, 0b0110, vaC+0x1000), ctxEL1, []string{"blk2M"}, []string{"blk2M"},
		"VALE1: a level-2 block is the final level of its walk"},
	{"VAAE1", OpVAAE1, xtVA(0, 0, vaA), ctxEL1, []string{"a5", "a6"}, nil,
		"VAAE1: all ASIDs, current VMID only"},
	{"VAAE1 EL2&0", OpVAAE1, xtVA(0, 0, vaA), ctxVHETG, []string{"h20a5", "h20a6"}, nil,
		"VAAE1 at EL2 with {E2H,TGE}={1,1}: EL2&0, all ASIDs"},
	{"VAALE1", OpVAALE1, xtVA(0, 0, vaA), ctxEL1, []string{"a5", "a6"}, nil,
		"VAALE1: all ASIDs, final level"},
	{"ASIDE1", OpASIDE1, 5 << 48, ctxEL1, []string{"a5", "blk2M", "comb"}, nil,
		"ASIDE1: non-global entries of the ASID and current VMID; global entries stay"},
	{"ASIDE1 EL2&0", OpASIDE1, 6 << 48, ctxVHETG, []string{"h20a6"}, nil,
		"ASIDE1 at EL2 with {E2H,TGE}={1,1}: EL2&0"},
	{"ALLE1", OpALLE1, 0, ctxEL2, cat(el10v1, el10v2, s2v1, []string{"s2v2"}), nil,
		"ALLE1: every EL1&0 entry, stage 1, 2 and combined, any VMID"},
	{"ALLE1 at VHE host", OpALLE1, 0, ctxVHETG, cat(el10v1, el10v2, s2v1, []string{"s2v2"}), nil,
		"ALLE1 is not redirected by {E2H,TGE}"},
	{"VMALLS12E1", OpVMALLS12E1, 0, ctxEL2, cat(el10v1, s2v1), nil,
		"VMALLS12E1: stage 1 and stage 2 entries of EL1&0 with the current VMID"},
	{"VMALLS12E1 at VHE host", OpVMALLS12E1, 0, ctxVHETG, cat(el10v1, s2v1), nil,
		"VMALLS12E1 is not redirected by {E2H,TGE}"},
	{"ALLE2", OpALLE2, 0, ctxEL2, el2All, nil,
		"ALLE2: every entry of the EL2 or EL2&0 regime"},
	{"VAE2 E2H=0", OpVAE2, xtVA(0, 0, vaA), ctxEL2, []string{"el2", "h20a5", "h20a6"}, nil,
		"VAE2: EL2 (and EL2&0) entries translating the VA; ASID field RES0 with E2H=0"},
	{"VAE2 E2H=1", OpVAE2, xtVA(5, 0, vaA), ctxVHE, []string{"el2", "h20a5"}, nil,
		"VAE2 with E2H=1: EL2&0 global or ASID match"},
	{"VAE2 global", OpVAE2, xtVA(5, 0, vaB), ctxVHE, []string{"h20g"}, nil,
		"VAE2 with E2H=1: global EL2&0 entries match"},
	{"VAE2 8-bit EL2&0 ASID", OpVAE2, xtVA(0x0105, 0, vaA), ctxVHE, []string{"el2", "h20a5"}, nil,
		"VAE2: TCR_EL2.AS=0: ASID[15:8] RES0"},
	{"VAE1 redirect 16-bit EL2&0 ASID", OpVAE1, xtVA(0x0105, 0, vaA),
		Context{EL: 2, VMID: 1, HCR: sysreg.HCR_E2H | sysreg.HCR_TGE, EL2ASID16: true}, []string{}, nil,
		"VAE1 redirected to EL2&0 takes the ASID size of TCR_EL2, not TCR_EL1"},
	{"VALE2", OpVALE2, xtVA(6, 0, vaA), ctxVHE, []string{"el2", "h20a6"}, nil,
		"VALE2: as VAE2, final level"},
	{"IPAS2E1", OpIPAS2E1, xtIPA(0, ipaP), ctxEL2, []string{"s2"}, nil,
		"IPAS2E1: stage-2-only entries of the current VMID; combined entries need not be invalidated"},
	{"IPAS2E1 in block", OpIPAS2E1, xtIPA(0, ipaBk+0x10_0000), ctxEL2, []string{"s2blk"}, nil,
		"IPAS2E1: any entry translating the IPA"},
	{"IPAS2E1 TTL L2", OpIPAS2E1, xtIPA(0b0110, ipaBk), ctxEL2, []string{"s2blk"}, []string{"s2blk"},
		"IPAS2E1 TTL: stage-2 leaf level 2, 4K granule"},
	{"IPAS2E1 TTL wrong", OpIPAS2E1, xtIPA(0b0111, ipaBk), ctxEL2, []string{"s2blk"}, []string{},
		"IPAS2E1 TTL: incorrect level: not required"},
	{"IPAS2E1 52-bit", OpIPAS2E1, xtIPA(0, 1<<51|ipaP), ctxEL2, []string{}, nil,
		"IPAS2E1: Xt[39:36] = IPA[51:48]: a different IPA"},
	{"IPAS2LE1", OpIPAS2LE1, xtIPA(0, ipaP), ctxEL2, []string{"s2"}, nil,
		"IPAS2LE1: final-level stage-2 entries"},
	{"RVAE1 4 pages", OpRVAE1, xtRange(5, 1, 0, 1, 0, vaA>>12), ctxEL1, []string{"a5"}, nil,
		"RVAE1: [Base, Base+(NUM+1)*2^(5*SCALE+1) pages), ASID or global"},
	{"RVAE1 global", OpRVAE1, xtRange(5, 1, 0, 0, 0, (vaB-0x1000)>>12), ctxEL1, []string{"g"}, nil,
		"RVAE1: 2 pages from vaB-4K reach vaB"},
	{"RVAE1 below range", OpRVAE1, xtRange(5, 1, 0, 0, 0, (vaB-0x2000)>>12), ctxEL1, []string{}, nil,
		"RVAE1: 2 pages from vaB-8K stop before vaB"},
	{"RVAE1 block", OpRVAE1, xtRange(5, 1, 1, 0, 0, (vaC+0x10_0000)>>12), ctxEL1, []string{"blk2M"}, nil,
		"RVAE1: an entry partly in the range"},
	{"RVAE1 TTL L3 on block", OpRVAE1, xtRange(5, 1, 1, 0, 3, vaC>>12), ctxEL1, []string{"blk2M"}, []string{},
		"RVAE1 TTL=11: level 3 only"},
	{"RVAE1 TG=00", OpRVAE1, xtRange(5, 0, 0, 0, 0, vaA>>12), ctxEL1, el10v1A5, []string{},
		"RVAE1 TG reserved: no invalidation required (non-strict: the whole ASID scope)"},
	{"RVAE1 TG 64K mismatch", OpRVAE1, xtRange(0, 3, 0, 0, 0, vaF>>16), ctxEL1, []string{"g64K"}, []string{"g64K"},
		"RVAE1 TG=64K on a 64K-granule entry"},
	{"RVAE1 TG 16K on 4K", OpRVAE1, xtRange(5, 2, 0, 0, 0, vaA>>14), ctxEL1, []string{"a5"}, []string{},
		"RVAE1: entries of another granule than TG are not required"},
	{"RVAE1 upper half", OpRVAE1, xtRange(0, 1, 0, 0, 0, (vaHi>>12)&(1<<37-1)), ctxEL1, []string{"hi"}, nil,
		"RVAE1: BaseADDR[36] (VA[48]) extends to VA[55:49] in a two-range regime"},
	{"RVAE1 LPA2 base", OpRVAE1, xtRange(5, 1, 0, 0, 0, vaA>>16), Context{EL: 1, VMID: 1, ASID16: true, DS: true}, []string{"a5"}, nil,
		"RVAE1 with TCR.DS=1: BaseADDR is in 64KB units"},
	{"RVAE1 no LPA2 base", OpRVAE1, xtRange(5, 1, 0, 0, 0, vaA>>16), ctxEL1, []string{}, nil,
		"RVAE1 with DS=0: BaseADDR in granule units (a different address)"},
	{"RVALE1", OpRVALE1, xtRange(6, 1, 0, 0, 0, vaA>>12), ctxEL1, []string{"a6"}, nil,
		"RVALE1: final level, ASID match"},
	{"RVAAE1", OpRVAAE1, xtRange(0, 1, 0, 1, 0, vaA>>12), ctxEL1, []string{"a5", "a6"}, nil,
		"RVAAE1: all ASIDs, current VMID"},
	{"RVAAE1 big", OpRVAAE1, xtRange(0, 1, 3, 31, 0, 0), ctxEL1, []string{"a5", "a6", "g", "blk2M", "cont64K", "g64K", "comb"},
		[]string{"a5", "a6", "g", "blk2M", "cont64K", "comb"},
		"RVAAE1: 32*2^16 pages of 4K = 8GB from 0; strict: TG=4K leaves the 64K-granule entry"},
	{"RVAALE1", OpRVAALE1, xtRange(0, 1, 0, 0, 0, vaD>>12), ctxEL1, []string{"cont64K"}, nil,
		"RVAALE1: final level, all ASIDs"},
	{"RVAE2", OpRVAE2, xtRange(5, 1, 0, 0, 0, vaA>>12), ctxVHE, []string{"el2", "h20a5"}, nil,
		"RVAE2 with E2H=1: EL2 and EL2&0 global or ASID"},
	{"RVAE2 E2H=0", OpRVAE2, xtRange(0, 1, 0, 0, 0, vaA>>12), ctxEL2, []string{"el2", "h20a5", "h20a6"}, nil,
		"RVAE2 with E2H=0: ASID RES0"},
	{"RVALE2", OpRVALE2, xtRange(6, 1, 0, 0, 0, vaA>>12), ctxVHE, []string{"el2", "h20a6"}, nil,
		"RVALE2: final level"},
	{"RIPAS2E1", OpRIPAS2E1, xtRange(0, 1, 0, 0, 0, ipaP>>12), ctxEL2, []string{"s2"}, nil,
		"RIPAS2E1: stage-2-only entries in the IPA range; not combined"},
	{"RIPAS2E1 8M", OpRIPAS2E1, xtRange(0, 1, 2, 0, 0, ipaBk>>12), ctxEL2, []string{"s2blk"}, nil,
		"RIPAS2E1: 2^11 pages from the block"},
	{"RIPAS2E1 TTL L2", OpRIPAS2E1, xtRange(0, 1, 2, 0, 2, ipaBk>>12), ctxEL2, []string{"s2blk"}, []string{"s2blk"},
		"RIPAS2E1 TTL=10: level 2"},
	{"RIPAS2LE1", OpRIPAS2LE1, xtRange(0, 1, 0, 0, 0, ipaP>>12), ctxEL2, []string{"s2"}, nil,
		"RIPAS2LE1: final level"},
	{"RIPAS2LE1 wide", OpRIPAS2LE1, xtRange(0, 1, 3, 31, 0, 0), ctxEL2, s2v1, nil,
		"RIPAS2LE1: every stage-2 entry of the VMID below 8GB"},
}

func fillFixture(t testing.TB, tl *TLB) map[string]Entry {
	fx := fixture()
	for n, e := range fx {
		if !tl.FillEntry(e) {
			t.Fatalf("fill %s refused", n)
		}
	}
	return fx
}

// survivors names the fixture entries still in the TLB.
func survivors(tl *TLB, fx map[string]Entry) []string {
	var out []string
	for n, e := range fx {
		if present(tl, &e) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// present looks an entry up by its own tag.
func present(tl *TLB, e *Entry) bool {
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true}
	var r Result
	if e.Stage2Only {
		_, r = tl.LookupS2(e.VMID, e.IPA, acc)
	} else {
		_, r = tl.Lookup(e.Regime, e.VMID, e.ASID, e.VA, acc)
	}
	return r == Hit
}

func minus(all map[string]Entry, gone []string) []string {
	var out []string
	for n := range all {
		if !slices.Contains(gone, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func TestScopes(t *testing.T) {
	for _, strict := range []bool{false, true} {
		for _, c := range scopeCases {
			tl := MustNew(Config{StrictHints: strict})
			fx := fillFixture(t, tl)
			if got := survivors(tl, fx); len(got) != len(fx) {
				t.Fatalf("fixture: only %v present", got)
			}
			gone := c.gone
			if strict && c.strictGone != nil {
				gone = c.strictGone
			}
			n, err := tl.Invalidate(c.op, c.xt, c.ctx)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := minus(fx, gone)
			if got := survivors(tl, fx); !slices.Equal(got, want) {
				t.Errorf("%s (strict=%v) [%s]:\n survivors %v\n want      %v", c.name, strict, c.rule, got, want)
			}
			if n != len(gone) {
				t.Errorf("%s (strict=%v): removed %d entries, want %d", c.name, strict, n, len(gone))
			}
			if tl.Stats.Invalidations[c.op] != 1 {
				t.Errorf("%s: Stats.Invalidations[%v] = %d", c.name, c.op, tl.Stats.Invalidations[c.op])
			}
		}
	}
}

// TestEveryOpCovered checks that the scope table has a case for each op.
func TestEveryOpCovered(t *testing.T) {
	for o := Op(0); o < numBaseOps; o++ {
		if !slices.ContainsFunc(scopeCases, func(c scopeCase) bool { return c.op == o }) {
			t.Errorf("no scope case for TLBI %v", o)
		}
	}
}

// TestShareability runs every case through a Domain of three PEs, PEs 0
// and 1 in one Inner Shareable domain and PE 2 in another: the plain form
// reaches PE 0 alone, IS PEs 0 and 1, OS all three.
func TestShareability(t *testing.T) {
	for _, c := range scopeCases {
		for _, op := range []Op{c.op, c.op.IS(), c.op.OS()} {
			d, err := NewDomain(3, Config{})
			if err != nil {
				t.Fatal(err)
			}
			d.Inner = []int{0, 0, 1}
			var fx map[string]Entry
			for _, tl := range d.TLBs {
				fx = fillFixture(t, tl)
			}
			if _, err := d.Invalidate(0, op, c.xt, c.ctx); err != nil {
				t.Fatalf("%s %v: %v", c.name, op, err)
			}
			reached := []bool{true, op.InnerShareable() || op.OuterShareable(), op.OuterShareable()}
			for pe, tl := range d.TLBs {
				want := minus(fx, nil)
				if reached[pe] {
					want = minus(fx, c.gone)
				}
				if got := survivors(tl, fx); !slices.Equal(got, want) {
					t.Errorf("%s: TLBI %v from PE0, PE%d: survivors %v, want %v", c.name, op, pe, got, want)
				}
			}
		}
	}
}

func TestUndefinedAtEL1(t *testing.T) {
	tl := MustNew(Config{})
	for o := Op(0); o < numBaseOps; o++ {
		_, err := tl.Invalidate(o, 0, ctxEL1)
		if (o.opEL() == 2) != (err != nil) {
			t.Errorf("TLBI %v at EL1: err = %v", o, err)
		}
		if err != nil {
			if _, ok := err.(*UndefinedError); !ok {
				t.Errorf("TLBI %v: error %T, want *UndefinedError", o, err)
			}
		}
	}
	if _, err := tl.Invalidate(Op(0x7f), 0, ctxEL2); err == nil {
		t.Error("invalid op accepted")
	}
	if _, err := tl.Invalidate(OpVAE1, 0, Context{EL: 3}); err == nil {
		t.Error("EL3 accepted")
	}
}
