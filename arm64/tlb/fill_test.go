package tlb

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// walkRig is a small machine whose tables are written word by word:
// 256 MiB of RAM at 0x4000_0000, EL1&0 stage 1 with 4K pages and 48-bit
// VAs (L0 -> L1 -> L2 -> L3), optionally stage 2 (4K, 32-bit IPA, level-1
// start, identity 2MB blocks).
type walkRig struct {
	t testing.TB
	m *mem.Sparse
	r vmsa.Regs
	w vmsa.Walker
}

const (
	ram   = 0x4000_0000
	rL0   = 0x4400_0000
	rL1   = 0x4400_1000
	rL2   = 0x4400_2000
	rL3   = 0x4400_3000
	rS2L1 = 0x4f00_0000
	rS2L2 = 0x4f00_1000

	dTable = 3
	dBlock = 1
	dPage  = 3
	dAF    = 1 << 10
	dIS    = 3 << 8
	dNG    = 1 << 11
	dRO    = 1 << 7 // AP[2]
	dEL0   = 1 << 6 // AP[1]
	dCont  = 1 << 52
)

func newWalkRig(t testing.TB, stage2 bool) *walkRig {
	t.Helper()
	m, err := mem.NewSparse([]mem.Range{{Base: ram, Size: 0x1000_0000}})
	if err != nil {
		t.Fatal(err)
	}
	g := &walkRig{t: t, m: m, r: vmsa.DefaultRegs()}
	g.w.Mem = m
	g.r.HCR_EL2 = sysreg.HCR_RW
	g.r.SCTLR_EL1 = 1 | 1<<2 | 1<<12
	g.r.TCR_EL1 = sysreg.TCR(16 | 5<<32 | 1<<36) // T0SZ=16, IPS=48, AS=1
	g.r.TTBR0_EL1 = sysreg.TTBR(rL0 | 7<<48)     // ASID 7
	g.r.MAIR_EL1 = 0xff
	g.put(rL0, rL1|dTable)
	g.put(rL1, rL2|dTable)
	g.put(rL2, rL3|dTable)
	if stage2 {
		g.r.HCR_EL2 |= sysreg.HCR_VM
		g.r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 5<<16)
		g.r.VTTBR_EL2 = sysreg.VTTBR(rS2L1 | 3<<48) // VMID 3
		g.put(rS2L1+8, rS2L2|dTable)
		for ipa := uint64(ram); ipa < ram+0x1000_0000; ipa += 1 << 21 {
			g.put(rS2L2+(ipa>>21&511)*8, ipa|dBlock|0xf<<2|3<<6|dIS|dAF)
		}
	}
	return g
}

func (g *walkRig) put(pa, v uint64) {
	g.t.Helper()
	if err := g.m.Write64(mem.PA(pa), v); err != nil {
		g.t.Fatal(err)
	}
}

func (g *walkRig) walk(va uint64, acc vmsa.Access) vmsa.Translation {
	g.t.Helper()
	tr := g.w.Translate(&g.r, vmsa.RegimeEL10, mem.VA(va), acc, vmsa.TranslateOptions{})
	if tr.Fault.IsFault() {
		g.t.Fatalf("walk %#x: %v", va, tr.Fault)
	}
	return tr
}

var (
	rd1 = vmsa.Access{Kind: vmsa.Read, EL: 1}
	wr1 = vmsa.Access{Kind: vmsa.Write, EL: 1}
	rd0 = vmsa.Access{Kind: vmsa.Read, EL: 0}
	ex1 = vmsa.Access{Kind: vmsa.Fetch, EL: 1}
)

func TestFillFromWalks(t *testing.T) {
	g := newWalkRig(t, false)
	g.put(rL3+1*8, 0x4000_1000|dPage|dAF|dIS|dNG) // VA 0x1000: nG page
	g.put(rL2+1*8, 0x4020_0000|dBlock|dAF|dIS)    // VA 0x20_0000: 2MB block
	for i := uint64(16); i < 32; i++ {            // VA 0x1_0000: contiguous 64KB
		g.put(rL3+i*8, (0x4100_0000+(i-16)<<12)|dPage|dAF|dIS|dCont)
	}
	g.put(rL3+2*8, 0x4000_2000|dPage|dAF|dIS|dRO|dNG) // VA 0x2000: read-only

	tl := MustNew(Config{})
	type look struct {
		va   uint64
		asid uint16
		acc  vmsa.Access
		want Result
		pa   uint64
	}
	cases := []struct {
		name     string
		va       uint64
		sizeBits uint8
		level    int8
		global   bool
		looks    []look
	}{
		{"4K nG page", 0x1000, 12, 3, false, []look{
			{0x1abc, 7, rd1, Hit, 0x4000_1abc},
			{0x1abc, 8, rd1, Miss, 0}, // other ASID
			{0x2abc, 7, rd1, Miss, 0},
			{0x1abc, 7, rd0, PermissionMiss, 0}, // AP[1]=0: no EL0 access
		}},
		{"2MB block", 0x20_0000, 21, 2, true, []look{
			{0x3f_f008, 99, rd1, Hit, 0x403f_f008},
			{0x3f_f008, 99, wr1, Hit, 0x403f_f008},
			{0x40_0000, 99, rd1, Miss, 0},
		}},
		{"contiguous 64KB", 0x1_4000, 16, 3, true, []look{
			{0x1_0000, 7, rd1, Hit, 0x4100_0000},
			{0x1_f123, 7, ex1, Hit, 0x4100_f123},
			{0x2_0000, 7, rd1, Miss, 0},
		}},
		{"read-only page", 0x2000, 12, 3, false, []look{
			{0x2010, 7, rd1, Hit, 0x4000_2010},
			{0x2010, 7, wr1, PermissionMiss, 0},
		}},
	}
	for _, c := range cases {
		tr := g.walk(c.va, rd1)
		if !tl.Fill(vmsa.RegimeEL10, 3, mem.VA(c.va), &tr) {
			t.Fatalf("%s: not filled", c.name)
		}
		for _, l := range c.looks {
			e, r := tl.Lookup(vmsa.RegimeEL10, 3, l.asid, mem.VA(l.va), l.acc)
			if r != l.want {
				t.Errorf("%s: lookup %#x ASID %d %+v = %v, want %v", c.name, l.va, l.asid, l.acc, r, l.want)
				continue
			}
			if r == Miss {
				continue
			}
			if e.SizeBits != c.sizeBits || e.Level != c.level || e.Global != c.global || e.GranuleBits != 12 {
				t.Errorf("%s: entry size %d level %d global %v granule %d", c.name, e.SizeBits, e.Level, e.Global, e.GranuleBits)
			}
			if r == Hit && e.PA(mem.VA(l.va)) != mem.PA(l.pa) {
				t.Errorf("%s: PA %#x, want %#x", c.name, e.PA(mem.VA(l.va)), l.pa)
			}
			if e.Attr != 0xff || e.SH != 3 {
				t.Errorf("%s: ATTR %#x SH %d, want 0xff, 3", c.name, e.Attr, e.SH)
			}
		}
		// Another VMID never hits an EL1&0 entry.
		if _, r := tl.Lookup(vmsa.RegimeEL10, 4, 7, mem.VA(c.va), rd1); r != Miss {
			t.Errorf("%s: hit with another VMID", c.name)
		}
	}
	// TLBI VAE1 of the nG page with ASID 7 removes it; the others stay.
	if _, err := tl.Invalidate(OpVAE1, xtVA(7, 0, 0x1000), Context{EL: 1, VMID: 3, ASID16: true}); err != nil {
		t.Fatal(err)
	}
	if _, r := tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x1000, rd1); r != Miss {
		t.Error("VAE1 left the page")
	}
	if _, r := tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x20_0000, rd1); r != Hit {
		t.Error("VAE1 removed the block")
	}
}

// TestFillStage2 checks combined and stage-2-only entries: the combined
// entry covers the smaller of the two leaves, carries its IPA, and is
// kept by IPAS2E1 but removed by VMALLS12E1 and VMALLE1.
func TestFillStage2(t *testing.T) {
	g := newWalkRig(t, true)
	g.put(rL3+1*8, 0x4000_1000|dPage|dAF|dIS|dNG)  // VA 0x1000 -> IPA 0x4000_1000 (S2 2MB block)
	g.put(rL2+1*8, 0x4020_0000|dBlock|dAF|dIS|dNG) // VA 0x20_0000 -> IPA 0x4020_0000 (2MB over 2MB)
	tl := MustNew(Config{})
	for _, c := range []struct {
		va       uint64
		sizeBits uint8
		ipa      uint64
	}{{0x1000, 12, 0x4000_1000}, {0x20_0000, 21, 0x4020_0000}} {
		tr := g.walk(c.va, rd1)
		if !tr.S2 {
			t.Fatal("stage 2 not applied")
		}
		if !tl.Fill(vmsa.RegimeEL10, 3, mem.VA(c.va), &tr) {
			t.Fatal("not filled")
		}
		e, r := tl.Lookup(vmsa.RegimeEL10, 3, 7, mem.VA(c.va|0x10), rd1)
		if r != Hit || !e.Combined || e.SizeBits != c.sizeBits || e.IPA != mem.IPA(c.ipa) || e.S2Level != 2 || e.S2SizeBits != 21 {
			t.Fatalf("VA %#x: %v %+v", c.va, r, e)
		}
		if e.PA(mem.VA(c.va|0x10)) != mem.PA(c.ipa|0x10) {
			t.Errorf("PA %#x", e.PA(mem.VA(c.va|0x10)))
		}
	}
	s2 := g.w.TranslateS2(&g.r, 0x4000_1000, rd1)
	if !tl.FillS2(3, 0x4000_1000, &s2) {
		t.Fatal("FillS2 refused")
	}
	if e, r := tl.LookupS2(3, 0x401f_f000, wr1); r != Hit || e.SizeBits != 21 || e.Level != 2 || !e.Stage2Only {
		t.Fatalf("LookupS2: %v %+v", r, e)
	}
	ctx := Context{EL: 2, VMID: 3, ASID16: true}
	if _, err := tl.Invalidate(OpIPAS2E1, xtIPA(0, 0x4000_1000), ctx); err != nil {
		t.Fatal(err)
	}
	if _, r := tl.LookupS2(3, 0x4000_1000, rd1); r != Miss {
		t.Error("IPAS2E1 left the stage-2 entry")
	}
	if _, r := tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x1000, rd1); r != Hit {
		t.Error("IPAS2E1 removed a combined entry (not required; the model keeps it)")
	}
	if _, err := tl.Invalidate(OpVMALLS12E1, 0, ctx); err != nil {
		t.Fatal(err)
	}
	if _, r := tl.Lookup(vmsa.RegimeEL10, 3, 7, 0x1000, rd1); r != Miss {
		t.Error("VMALLS12E1 left the combined entry")
	}
}

// TestFillStage1Off: with stage 1 off and stage 2 on, the translation is
// the stage-2 entry of IPA = VA; with both off nothing is cached.
func TestFillStage1Off(t *testing.T) {
	g := newWalkRig(t, true)
	g.r.SCTLR_EL1 = 0
	tl := MustNew(Config{})
	tr := g.walk(0x4000_5000, rd1)
	if !tl.Fill(vmsa.RegimeEL10, 3, 0x4000_5000, &tr) {
		t.Fatal("not filled")
	}
	if e, r := tl.LookupS2(3, 0x4000_5000, rd1); r != Hit || !e.Stage2Only {
		t.Errorf("LookupS2 after S1-off fill: %v %+v", r, e)
	}
	g.r.HCR_EL2 &^= sysreg.HCR_VM
	tr = g.walk(0x4000_5000, rd1)
	if tl.Fill(vmsa.RegimeEL10, 3, 0x4000_5000, &tr) {
		t.Error("flat translation with both stages off cached")
	}
	bad := vmsa.Translation{Fault: vmsa.Fault{Kind: vmsa.FaultTranslation}}
	if tl.Fill(vmsa.RegimeEL10, 3, 0, &bad) || tl.FillS2(3, 0, &bad) {
		t.Error("faulting translation cached")
	}
}

func TestPermissionCheck(t *testing.T) {
	ro := vmsa.Perms{R0: true, R1: true, X1: true}
	cases := []struct {
		p    vmsa.Perms
		kind uint8
		acc  vmsa.Access
		want bool
	}{
		{ro, 0, rd1, true},
		{ro, 0, wr1, false},
		{ro, 0, rd0, true},
		{ro, 0, vmsa.Access{Kind: vmsa.Write, EL: 0}, false},
		{ro, 0, ex1, true},
		{ro, 0, vmsa.Access{Kind: vmsa.Fetch, EL: 0}, false},
		{ro, 0, vmsa.Access{Kind: vmsa.Read, EL: 1, PAN: true}, false}, // PAN: EL0-readable
		{vmsa.Perms{R1: true, W1: true}, 0, vmsa.Access{Kind: vmsa.Write, EL: 1, PAN: true}, true},
		{vmsa.Perms{R1: true, W1: true}, uint8(vmsa.RegimeEL2), vmsa.Access{Kind: vmsa.Write, EL: 2, PAN: true}, true},
		{vmsa.Perms{R0: true, R1: true, X0: true}, kindS2, vmsa.Access{Kind: vmsa.Fetch, EL: 0}, true},
		{vmsa.Perms{R0: true, R1: true, X0: true}, kindS2, ex1, false},
	}
	for i, c := range cases {
		if got := permits(permMask(&c.p, c.kind), c.acc); got != c.want {
			t.Errorf("case %d: permits(%+v, %d, %+v) = %v", i, c.p, c.kind, c.acc, got)
		}
	}
}

// TestStaleUntilTLBI: a TLB in front of the walker keeps the old
// translation after the table changes (as the architecture allows) until
// the TLBI that covers it; a TLBI of another page or ASID does not help.
func TestStaleUntilTLBI(t *testing.T) {
	g := newWalkRig(t, false)
	g.put(rL3+1*8, 0x4000_1000|dPage|dAF|dIS|dNG)
	tl := MustNew(Config{})
	ctx := ContextFromRegs(&g.r, 1)
	translate := func(va uint64) uint64 {
		if pa, r := tl.LookupPA(vmsa.RegimeEL10, ctx.VMID, 7, mem.VA(va), rd1); r == Hit {
			return uint64(pa)
		}
		tr := g.walk(va, rd1)
		tl.Fill(vmsa.RegimeEL10, ctx.VMID, mem.VA(va), &tr)
		return uint64(tr.OA)
	}
	if pa := translate(0x1008); pa != 0x4000_1008 {
		t.Fatalf("first walk: %#x", pa)
	}
	g.put(rL3+1*8, 0x4000_9000|dPage|dAF|dIS|dNG) // remap without TLBI
	if pa := translate(0x1008); pa != 0x4000_1008 {
		t.Fatalf("stale entry not used: %#x", pa)
	}
	for _, miss := range []uint64{xtVA(7, 0, 0x2000), xtVA(8, 0, 0x1000)} {
		if _, err := tl.Invalidate(OpVAE1.IS(), miss, ctx); err != nil {
			t.Fatal(err)
		}
		if pa := translate(0x1008); pa != 0x4000_1008 {
			t.Fatalf("TLBI %#x out of scope removed the entry", miss)
		}
	}
	if _, err := tl.Invalidate(OpVALE1.IS(), xtVA(7, 0b0111, 0x1000), ctx); err != nil {
		t.Fatal(err)
	}
	if pa := translate(0x1008); pa != 0x4000_9008 {
		t.Fatalf("after TLBI VALE1IS: %#x", pa)
	}
}

func TestContextFromRegs(t *testing.T) {
	r := vmsa.DefaultRegs()
	r.VTTBR_EL2 = sysreg.VTTBR(0x1234 << 48)
	r.TCR_EL1 = sysreg.TCR(1<<36 | 1<<59) // AS, DS
	r.HCR_EL2 = sysreg.HCR_E2H | sysreg.HCR_TGE
	r.TCR_EL2 = 0 // EL2&0: AS=0
	c := ContextFromRegs(&r, 1)
	if c.VMID != 0x34 || !c.ASID16 || !c.DS || c.EL != 1 {
		t.Errorf("EL1: %+v", c)
	}
	r.VTCR_EL2 = sysreg.VTCR(1<<19 | 1<<32) // VS, DS
	r.TCR_EL2 = 1 << 59                     // EL2&0 (E2H=1): DS, AS=0
	c = ContextFromRegs(&r, 2)
	if c.VMID != 0x1234 || !c.ASID16 || !c.DS || c.EL2ASID16 || !c.EL2DS || !c.VDS {
		t.Errorf("EL2 VHE: %+v", c)
	}
	r.HCR_EL2 = 0
	r.TCR_EL2 = 1 << 32 // EL2 (E2H=0): DS is bit 32
	if c = ContextFromRegs(&r, 2); !c.EL2DS || c.EL2ASID16 {
		t.Errorf("EL2: %+v", c)
	}
	// Without FEAT_VMID16 and 16-bit ASIDs, VTCR_EL2.VS and TCR_ELx.AS are
	// RES0: VMID 0x107 is used as 0x07, and ASIDs are 8 bits.
	r.MMFR1 = sysreg.MMFR1(uint64(r.MMFR1) &^ (0xf << 4)) // VMIDBits = 0b0000
	r.MMFR0 = sysreg.MMFR0(uint64(r.MMFR0) &^ (0xf << 4)) // ASIDBits = 0b0000
	r.VTTBR_EL2 = sysreg.VTTBR(0x107 << 48)
	r.HCR_EL2 = sysreg.HCR_E2H
	r.TCR_EL2 = 1 << 36 // AS
	if c = ContextFromRegs(&r, 2); c.VMID != 0x07 || c.ASID16 || c.EL2ASID16 {
		t.Errorf("8-bit VMIDs and ASIDs: %+v", c)
	}
}

// TestRefillAfterPermissionMiss: a permission miss from a micro-TLB
// copy, then a walk whose result permits the access (e.g. the descriptor
// became writable), then Fill: the next lookup hits.
func TestRefillAfterPermissionMiss(t *testing.T) {
	tl := MustNew(Config{})
	ro := vmsa.Translation{OA: 0x8000_0000, Level: 3, BlockBits: 12, Perms: vmsa.Perms{R1: true}}
	tl.Fill(vmsa.RegimeEL10, 1, 0x5000, &ro)
	for i := 0; i < 2; i++ { // the second miss comes from the micro-TLB copy
		if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 0, 0x5000, wr1); r != PermissionMiss {
			t.Fatalf("lookup %d: %v", i, r)
		}
	}
	rw := ro
	rw.Perms.W1 = true
	tl.Fill(vmsa.RegimeEL10, 1, 0x5000, &rw)
	if _, r := tl.Lookup(vmsa.RegimeEL10, 1, 0, 0x5000, wr1); r != Hit {
		t.Fatalf("after refill: %v", r)
	}
}
