package conform

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/conform/qemu"
	"github.com/nestmmu/nestmmu/mem"
)

// Case is one generated scenario: the machine state and operations QEMU
// and the model both run, plus what the generator knows about it.
type Case struct {
	// ID is "seed:index"; Generate(seed, index+1)[index] rebuilds it.
	ID string
	// Kind names the scenario family (el10-s1, el10-s12, el2, el20).
	Kind string
	// Q is the case as the oracle runs it (and, with RAM, as at-json
	// describes it).
	Q qemu.Case
	// Feats lists the features the configuration exercises (coverage).
	Feats []string
	// Protected holds the words that keep the RunnerCodePage contract (the
	// EL2 or EL2&0 walk of the runner's own instruction fetches); the
	// minimizer never drops them.
	Protected map[uint64]bool
}

// Register bits the generator sets (DDI 0487, D23 register descriptions).
const (
	hcrVM   = 1 << 0
	hcrPTW  = 1 << 2
	hcrDC   = 1 << 12
	hcrTGE  = 1 << 27
	hcrRW   = 1 << 31
	hcrCD   = 1 << 32
	hcrID   = 1 << 33
	hcrE2H  = 1 << 34
	hcrFWB  = 1 << 46
	sctlrM  = 1 << 0
	sctlrC  = 1 << 2
	sctlrWX = 1 << 19
	sctlrEE = 1 << 25
	// SCTLR_ELx.EPAN (FEAT_PAN3): PAN also covers EL0-executable pages.
	sctlrEPAN = 1 << 57
	// RES1 bits of SCTLR_EL1 and of SCTLR_EL2 with E2H=0.
	sctlr1RES1 = 0x30d00800
	sctlr2RES1 = 0x30c50830
)

// Case RAM layout used by the generator: table pools, the region stray
// table pointers aim at (never allocated from, so a walk through a stray
// pointer cannot reach a protected word), and the top of case RAM.
const (
	s1Pool     = 0x44000000 // stage-1 tables (identity-mapped at stage 2)
	s1PoolEnd  = 0x44800000
	s2Pool     = 0x45000000 // stage-2 tables
	s2PoolEnd  = 0x45800000
	el2Pool    = 0x46000000 // EL2 / EL2&0 tables (runner mapping)
	el2PoolEnd = 0x46800000
	strayBase  = 0x48000000
	strayEnd   = 0x4e000000
)

// genMem is the generator's memory: case RAM as a sparse map, no other
// memory. Zero words are not stored. pages records the 4 KiB pages that
// ever held a non-zero word, so zeroing a fresh table (ttbuild zeroes
// every table it allocates) costs next to nothing.
type genMem struct {
	w     map[uint64]uint64
	pages map[uint64]bool
	// last caches pages[lastPage] (lastPage+1 == 0 means no cache).
	lastPage  uint64
	lastDirty bool
}

func newGenMem() *genMem {
	return &genMem{w: map[uint64]uint64{}, pages: map[uint64]bool{}, lastPage: ^uint64(0)}
}

func (m *genMem) Read64(pa mem.PA) (uint64, bool) {
	if !qemu.CaseRAM().Contains(uint64(pa), 8) || pa%8 != 0 {
		return 0, false
	}
	return m.w[uint64(pa)], true
}

func (m *genMem) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	v, ok := m.Read64(pa)
	if !ok || v != old {
		return false, ok
	}
	_ = m.Write64(pa, new)
	return true, true
}

func (m *genMem) Write64(pa mem.PA, v uint64) error {
	if !qemu.CaseRAM().Contains(uint64(pa), 8) || pa%8 != 0 {
		return fmt.Errorf("conform: %#x is not an aligned case-RAM word", uint64(pa))
	}
	page := uint64(pa) >> 12
	if page != m.lastPage {
		m.lastPage, m.lastDirty = page, m.pages[page]
	}
	switch {
	case v != 0:
		m.w[uint64(pa)] = v
		m.pages[page], m.lastDirty = true, true
	case m.lastDirty:
		delete(m.w, uint64(pa))
	}
	return nil
}

// gen builds one case.
type gen struct {
	r         *rand.Rand
	m         *genMem
	feats     map[string]bool
	protected map[uint64]bool
	regs      map[string]uint64
	// vas are candidate input addresses for operations; ipas are stage-1
	// output addresses stage 2 should map.
	vas  []uint64
	ipas []uint64
	// s2ia is the IPA size stage 2 accepts (0: no stage 2).
	s2ia uint
	s2   *s2state
}

// Generate returns n cases derived from seed. Case i depends only on seed
// and i, so any case can be rebuilt alone.
func Generate(seed int64, n int) []Case {
	cs := make([]Case, n)
	for i := range cs {
		cs[i] = GenerateOne(seed, i)
	}
	return cs
}

// GenerateOne returns case i of seed.
func GenerateOne(seed int64, i int) Case {
	g := &gen{r: rand.New(rand.NewPCG(uint64(seed), uint64(i)*0x9e3779b97f4a7c15+1)),
		m: newGenMem(), feats: map[string]bool{}, protected: map[uint64]bool{},
		regs: map[string]uint64{}}
	c := Case{ID: fmt.Sprintf("%d:%d", seed, i)}
	var ops []string
	switch x := g.r.IntN(100); {
	case x < 30:
		c.Kind = "el10-s1"
		ops = g.el10(false)
	case x < 65:
		c.Kind = "el10-s12"
		ops = g.el10(true)
	case x < 82:
		c.Kind = "el2"
		ops = g.el2(false)
	default:
		c.Kind = "el20"
		ops = g.el2(true)
	}
	g.feat("kind/" + c.Kind)
	c.Q.PAN = g.r.IntN(3) == 0
	if c.Q.PAN {
		g.feat("pstate.pan")
	}
	c.Q.EL = 2
	c.Q.Regs = g.regs
	c.Q.Mem = g.m.w
	c.Q.Ops = g.ops(ops)
	c.Q.Watch = g.watch()
	c.Protected = g.protected
	for f := range g.feats {
		c.Feats = append(c.Feats, f)
	}
	sort.Strings(c.Feats)
	return c
}

func (g *gen) feat(f string) { g.feats[f] = true }

func (g *gen) pct(p int) bool { return g.r.IntN(100) < p }

func pick[T any](g *gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

var granules = []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K}

// tg0 encodes a TCR.TG0 / VTCR.TG0 field; tg1 a TCR.TG1 field.
func tg0(gr sysreg.Granule) uint64 {
	return map[sysreg.Granule]uint64{sysreg.Granule4K: 0, sysreg.Granule64K: 1, sysreg.Granule16K: 2}[gr]
}

func tg1(gr sysreg.Granule) uint64 {
	return map[sysreg.Granule]uint64{sysreg.Granule16K: 1, sysreg.Granule4K: 2, sysreg.Granule64K: 3}[gr]
}

func format(gr sysreg.Granule) desc.Format { return formatDS(gr, false) }

// formatDS is the descriptor format for a granule with TCR/VTCR.DS.
func formatDS(gr sysreg.Granule, ds bool) desc.Format {
	// QEMU's -cpu max has PARange 52 (FEAT_LPA): 64K descriptors carry
	// OA[51:48] in bits [15:12] (AArch64.LeafBase); with DS=1 (FEAT_LPA2)
	// 4K/16K descriptors carry OA[51:50] in bits [9:8].
	return desc.Format{Granule: gr, OA52: gr == sysreg.Granule64K, DS: ds && gr != sysreg.Granule64K}
}

// paBits decodes an IPS/PS encoding (AArch64.PAMax clamps to 52).
func paBits(enc uint64) uint { return [...]uint{32, 36, 40, 42, 44, 48, 52, 52}[enc&7] }

// oaLimit is the effective output size: 52-bit only with 64K or DS=1.
func oaLimit(enc uint64, gr sysreg.Granule, ds ...bool) uint {
	b := paBits(enc)
	if b == 52 && gr != sysreg.Granule64K && !(len(ds) > 0 && ds[0]) {
		return 48
	}
	return b
}

// randTxSZ returns a legal TxSZ for gr (FEAT_TTST: up to 48 for 4K/16K,
// 47 for 64K; FEAT_LVA: 12 for 64K), biased to common sizes.
func (g *gen) randTxSZ(gr sysreg.Granule) uint {
	lo := uint(16)
	if gr == sysreg.Granule64K && g.pct(10) {
		lo = 12
	}
	hi := uint(39)
	if g.pct(15) {
		hi = 47
		if gr != sysreg.Granule64K {
			hi = 48
		}
		g.feat("txsz/ttst-range")
	}
	return lo + uint(g.r.IntN(int(hi-lo+1)))
}

// mairAttr returns a legal MAIR attribute byte: Device-nGnRnE..GRE, or
// Normal with any non-zero inner and outer nibble.
func (g *gen) mairAttr() uint64 {
	if g.pct(25) {
		return pick(g, uint64(0x00), 0x04, 0x08, 0x0c)
	}
	if g.pct(40) {
		return pick(g, uint64(0xff), 0x44, 0xbb, 0xee, 0x4f, 0xf4, 0xaa)
	}
	return uint64(1+g.r.IntN(15))<<4 | uint64(1+g.r.IntN(15))
}

func (g *gen) mair() uint64 {
	var v uint64
	for i := range 8 {
		v |= g.mairAttr() << (8 * i)
	}
	return v
}

// s1Regime describes one stage-1 table set to build.
type s1Regime struct {
	gr       sysreg.Granule
	iasize   uint
	oaBits   uint // PA (or IPA) size limit for the output
	be       bool
	stage2   bool // output addresses are IPAs
	high     bool // TTBR1 range: VAs are ^0 << iasize | ia
	oneRange bool
	ds       bool // TCR.DS (FEAT_LPA2)
}

// buildS1 builds stage-1 tables and populates them with n random
// descriptors; it returns the root (TTBR value).
func (g *gen) buildS1(rg s1Regime, a *ttbuild.Alloc, n int) (uint64, *ttbuild.Tables) {
	f := formatDS(rg.gr, rg.ds)
	t, err := ttbuild.New(g.m, a, f, false, rg.iasize, ttbuild.StartLevel(rg.gr, rg.iasize))
	if err != nil {
		return a.Next, nil
	}
	t.BigEndian = rg.be
	g.populate(t, rg, n, false)
	return t.Root, t
}

// leafBits returns log2 of the size mapped at level.
func leafBits(gr sysreg.Granule, level int) uint {
	return format(gr).LeafBits(level)
}

// randIA picks an input address at level: clustered near a few bases so
// random mappings share tables.
func (g *gen) randIA(t *ttbuild.Tables, level int, bases []uint64) uint64 {
	lb := leafBits(t.Format.Granule, level)
	base := bases[g.r.IntN(len(bases))]
	span := uint64(1) << min(lb+4, t.IASize)
	ia := (base + g.r.Uint64N(span)) &^ (1<<lb - 1)
	if t.IASize < 64 {
		ia &= 1<<t.IASize - 1
	}
	return ia
}

// oa returns an output address for a leaf of size 1<<lb under limit bits.
// A safe leaf may be read through as translation tables (a stage-2 output
// can hold stage-1 tables at any offset): all of [oa, oa+1<<lb) is in case
// RAM or in an abort range, or oa is beyond the output size, never a
// device, flash or the runner's reserved RAM.
func (g *gen) oa(lb, limit uint, ipa, safe bool) uint64 {
	if safe {
		return g.safeOA(lb, limit)
	}
	var a uint64
	switch x := g.r.IntN(100); {
	case x < 55:
		a = qemu.RAMBase + g.r.Uint64N(qemu.RAMSize)
		if ipa && g.pct(50) {
			// Stage-1 output near the table pools: often identity-mapped at stage 2.
			a = s1Pool + g.r.Uint64N(s2PoolEnd-s1Pool)
		}
	case x < 75:
		a = g.r.Uint64N(1 << limit)
	case x < 88 && limit < 48:
		a = 1<<limit | g.r.Uint64N(1<<limit)
		g.feat("oa/beyond-ps")
	default:
		a = g.r.Uint64N(1 << 48)
	}
	return a &^ (1<<lb - 1)
}

// safeOA is oa for a leaf that may be read through.
func (g *gen) safeOA(lb, limit uint) uint64 {
	size := uint64(1) << lb
	x := g.r.IntN(100)
	if x < 60 && size <= (qemu.ReservedBase-qemu.RAMBase)/2 {
		// RAMBase is aligned to any block size that fits.
		return (qemu.RAMBase + g.r.Uint64N(qemu.ReservedBase-qemu.RAMBase-size+1)) &^ (size - 1)
	}
	r := qemu.AbortRanges()[0]
	end := r.End()
	if limit < 64 {
		end = min(end, 1<<limit)
	}
	start := (r.Base + size - 1) &^ (size - 1)
	if x < 90 && start < end && end-start >= size {
		return start + g.r.Uint64N((end-start)/size)*size
	}
	if limit < 48 {
		g.feat("oa/beyond-ps")
		return (1<<limit | g.r.Uint64N(1<<limit)) &^ (size - 1)
	}
	return qemu.RAMBase // only for blocks too big for case RAM with a 48-bit PS: RAM plus the abort range
}

// abortAddr returns an address in the abort range below 1<<limit, or one
// beyond the limit when the range starts above it.
func (g *gen) abortAddr(limit uint) uint64 {
	r := qemu.AbortRanges()[0]
	if limit < 64 && r.Base >= 1<<limit {
		return 1<<limit | g.r.Uint64N(1<<limit)
	}
	end := r.End()
	if limit < 64 {
		end = min(end, 1<<limit)
	}
	return r.Base + g.r.Uint64N(end-r.Base)
}

// emptyTable returns an address in the stray region: zero words, so a
// walk there finds invalid descriptors.
func (g *gen) emptyTable() uint64 {
	return (strayBase + g.r.Uint64N(strayEnd-strayBase)) &^ 0xffff
}

// populate writes n random descriptors into t.
func (g *gen) populate(t *ttbuild.Tables, rg s1Regime, n int, stage2 bool) {
	gr := t.Format.Granule
	bases := []uint64{g.r.Uint64N(1 << t.IASize), g.r.Uint64N(1 << 32), 0}
	if stage2 {
		bases = append(bases, qemu.RAMBase, s1Pool)
	}
	for range n {
		level := t.Start + g.r.IntN(4-t.Start)
		if level < 3 && g.pct(40) {
			level = 3
		}
		ia := g.randIA(t, level, bases)
		var extra uint64
		if !stage2 && g.pct(15) {
			// Hierarchical attributes on the tables created on the way.
			extra = uint64(g.r.IntN(16)) << 59
			g.feat("s1/table-attrs")
		}
		addr, err := t.EntryAddr(ia, level, extra)
		if err != nil || g.protected[addr] {
			continue
		}
		if old, _ := g.m.Read64(mem.PA(addr)); old != 0 && g.pct(70) {
			continue
		}
		lb := leafBits(gr, level)
		var d uint64
		kind := ""
		switch x := g.r.IntN(100); {
		case x < 62:
			if stage2 {
				d = uint64(g.s2Leaf(t.Format, level, g.oa(lb, rg.oaBits, false, true)))
			} else {
				d = uint64(g.s1Leaf(t.Format, level, g.oa(lb, rg.oaBits, rg.stage2, false), rg))
			}
			kind = "leaf"
			if level < 3 {
				kind = "block"
			}
		case x < 72:
			d = g.r.Uint64() &^ 1
			kind = "invalid"
		case x < 80 && level == 3:
			d = g.r.Uint64()&^3 | 1
			kind = "reserved"
		case x < 92 && level < 3:
			// A table descriptor to somewhere unusual.
			var to uint64
			switch y := g.r.IntN(3); y {
			case 0:
				to = strayBase + g.r.Uint64N(strayEnd-strayBase)
				kind = "table-stray"
			case 1:
				to = g.abortAddr(rg.oaBits)
				kind = "table-abort"
			default:
				to = g.abortAddr(48)
				kind = "table-wild"
			}
			to &^= 1<<gr.Bits() - 1
			if stage2 {
				d = uint64(desc.S2Table(t.Format, to))
			} else {
				d = uint64(desc.S1Table{Addr: to, APTable: uint(g.r.IntN(4)), PXNTable: g.pct(20), UXNTable: g.pct(20)}.Encode(t.Format))
			}
			if g.pct(10) && rg.oaBits < 52 {
				// Bits [15:12] of a 64KB table descriptor: OA[51:48]
				// (FEAT_LPA), beyond a PS below 52 bits.
				d |= 1 << (12 + g.r.IntN(4))
			}
		default:
			if stage2 {
				d = uint64(g.s2Leaf(t.Format, level, g.oa(lb, rg.oaBits, false, true)))
			} else {
				d = uint64(g.s1Leaf(t.Format, level, g.oa(lb, rg.oaBits, rg.stage2, false), rg))
			}
			// Stray address bits below the leaf size (RES0). With a
			// 64KB granule and a 52-bit PS, bits [15:12] are OA[51:48]:
			// keep them clear so no walk reads above the abort range.
			low := uint(12)
			if gr == sysreg.Granule64K && rg.oaBits >= 52 {
				low = 16
			}
			if lb > low {
				d |= 1 << (low + uint(g.r.IntN(int(lb-low))))
			}
			kind = "leaf-misaligned"
			if level == 3 {
				kind = "leaf"
			}
			d &^= 1 << 1
			if level == 3 {
				d |= 2
			}
		}
		if err := g.write(t, addr, d); err != nil {
			continue
		}
		st := "s1"
		if stage2 {
			st = "s2"
		}
		g.feat(fmt.Sprintf("%s/%s/%s/L%d", st, gr, kind, level))
		if stage2 {
			continue
		}
		va := ia
		if rg.high {
			va |= ^uint64(0) << rg.iasize
		}
		g.vas = append(g.vas, va, va+g.r.Uint64N(1<<lb)&^7)
		if rg.stage2 && (kind == "leaf" || kind == "block") {
			g.ipas = append(g.ipas, t.Format.LeafOA(d, level))
		}
	}
}

func (g *gen) write(t *ttbuild.Tables, addr, d uint64) error {
	if t.BigEndian {
		d = swap64(d)
	}
	return g.m.Write64(mem.PA(addr), d)
}

func swap64(v uint64) uint64 {
	var r uint64
	for range 8 {
		r = r<<8 | v&0xff
		v >>= 8
	}
	return r
}

// s1Leaf returns a random stage-1 block or page.
func (g *gen) s1Leaf(f desc.Format, level int, oa uint64, rg s1Regime) desc.S1 {
	l := desc.S1Leaf{OA: oa, AttrIndx: uint(g.r.IntN(8)), NS: g.pct(10), AP: uint(g.r.IntN(4)),
		SH: pick(g, uint(0), 2, 3), AF: g.pct(80), NG: g.pct(30), DBM: g.pct(20), Contig: g.pct(5),
		PXN: g.pct(20), UXN: g.pct(20)}
	if !l.AF {
		g.feat("s1/af-clear")
	}
	if l.DBM {
		g.feat("s1/dbm")
	}
	g.feat(fmt.Sprintf("s1/ap%02b", l.AP))
	return l.Encode(f, level)
}

// s2Leaf returns a random stage-2 block or page.
func (g *gen) s2Leaf(f desc.Format, level int, oa uint64) desc.S2 {
	l := desc.S2Leaf{OA: oa, MemAttr: uint(g.r.IntN(16)), S2AP: uint(g.r.IntN(4)),
		SH: pick(g, uint(0), 2, 3), AF: g.pct(85), DBM: g.pct(15), Contig: g.pct(5), XN: uint(g.r.IntN(4))}
	if g.pct(50) {
		l.MemAttr = 0xf
		l.S2AP = 3
	}
	if !l.AF {
		g.feat("s2/af-clear")
	}
	if l.DBM {
		g.feat("s2/dbm")
	}
	g.feat(fmt.Sprintf("s2/s2ap%02b", l.S2AP))
	return l.Encode(f, level)
}

// el10 configures the EL1&0 regime, optionally with stage 2.
func (g *gen) el10(s2 bool) []string {
	hcr := uint64(hcrRW)
	sctlr := uint64(sctlr1RES1)
	if g.pct(92) {
		sctlr |= sctlrM
	} else {
		g.feat("sctlr_el1.m=0")
	}
	if g.pct(50) {
		sctlr |= sctlrC
	}
	if g.pct(15) {
		sctlr |= sctlrWX
		g.feat("sctlr_el1.wxn")
	}
	be := g.pct(10)
	if be {
		sctlr |= sctlrEE
		g.feat("sctlr_el1.ee")
	}
	if g.pct(15) {
		sctlr |= sctlrEPAN
		g.feat("sctlr_el1.epan")
	}
	gr0, gr1 := pick(g, granules...), pick(g, granules...)
	t0, t1 := g.randTxSZ(gr0), g.randTxSZ(gr1)
	ips := uint64(g.r.IntN(7))
	if g.pct(50) {
		ips = pick(g, uint64(2), 5)
	}
	// FEAT_LPA2: 52-bit VA and PA with 4K/16K, level -1 with 4K, blocks at
	// level 0 (4K) and 1 (16K).
	ds := gr0 != sysreg.Granule64K && gr1 != sysreg.Granule64K && g.pct(12)
	if ds {
		g.feat("tcr.ds(lpa2)")
		if g.pct(50) {
			ips = 6
		}
		if g.pct(40) {
			t0 = 12 + uint(g.r.IntN(4))
			g.feat("lpa2/52-bit-va")
		}
		if g.pct(40) {
			t1 = 12 + uint(g.r.IntN(4))
		}
	}
	tcr := uint64(t0) | tg0(gr0)<<14 | uint64(t1)<<16 | tg1(gr1)<<30 | ips<<32
	tcr |= uint64(g.r.IntN(4))<<8 | uint64(g.r.IntN(4))<<10 | uint64(pick(g, 0, 2, 3))<<12
	useT1 := g.pct(40)
	flags := []struct {
		bit  uint
		p    int
		name string
	}{{7, 4, "tcr.epd0"}, {22, 20, "tcr.a1"}, {36, 30, "tcr.as"}, {37, 20, "tcr.tbi0"}, {38, 20, "tcr.tbi1"},
		{39, 35, "tcr.ha"}, {40, 15, "tcr.hd"}, {41, 15, "tcr.hpd0"}, {42, 15, "tcr.hpd1"}, {55, 10, "tcr.e0pd0"}, {56, 10, "tcr.e0pd1"}}
	for _, f := range flags {
		if g.pct(f.p) {
			tcr |= 1 << f.bit
			g.feat(f.name)
		}
	}
	if ds {
		tcr |= 1 << 59
	}
	if !useT1 && g.pct(70) {
		tcr |= 1 << 23
		g.feat("tcr.epd1")
	}
	g.feat("s1.granule/" + gr0.String())
	g.feat(fmt.Sprintf("tcr.ips/%d", paBits(ips)))
	oaBits := oaLimit(ips, gr0, ds)
	if s2 {
		hcr |= hcrVM
		g.s2config()
		// Independent HCR_EL2 controls, each drawn in this order.
		for _, b := range []struct {
			pct  int
			bit  uint64
			name string
		}{{20, hcrPTW, "hcr.ptw"}, {20, hcrFWB, "hcr.fwb"}, {5, hcrDC, "hcr.dc"}, {5, hcrCD, "hcr.cd"}, {5, hcrID, "hcr.id"}} {
			if g.pct(b.pct) {
				hcr |= b.bit
				g.feat(b.name)
			}
		}
	} else if g.pct(5) {
		hcr |= hcrDC
		g.feat("hcr.dc-without-vm")
	}
	if g.pct(5) {
		hcr |= hcrTGE
		g.feat("hcr.tge-e2h0")
	} else if g.pct(8) {
		hcr |= hcrE2H
		g.feat("hcr.e2h-tge0")
	}
	a := &ttbuild.Alloc{Next: s1Pool + g.r.Uint64N(16)<<16, End: s1PoolEnd}
	rg := s1Regime{gr: gr0, iasize: 64 - t0, oaBits: oaBits, be: be, stage2: s2, ds: ds}
	root0, _ := g.buildS1(rg, a, 4+g.r.IntN(10))
	root1 := g.emptyTable()
	if useT1 {
		rg1 := rg
		rg1.gr, rg1.iasize, rg1.oaBits, rg1.high = gr1, 64-t1, oaLimit(ips, gr1, ds), true
		root1, _ = g.buildS1(rg1, a, 2+g.r.IntN(6))
		g.feat("s1.ttbr1/" + gr1.String())
	}
	g.regs["HCR_EL2"] = hcr
	g.regs["SCTLR_EL1"] = sctlr
	g.regs["TCR_EL1"] = tcr
	g.regs["TTBR0_EL1"] = g.ttbr(root0, oaBits, 0)
	g.regs["TTBR1_EL1"] = g.ttbr(root1, oaBits, 1)
	g.regs["MAIR_EL1"] = g.mair()
	if s2 {
		g.s2build(a.Next)
	}
	if g.pct(10) {
		g.regs["SCTLR_EL2"] = sctlrEE
		g.feat("sctlr_el2.ee(s2 tables big-endian)")
		g.bigEndianS2()
	}
	ops := []string{"S1E0R", "S1E0W", "S1E1R", "S1E1W", "S1E1RP", "S1E1WP", "S12E0R", "S12E0W", "S12E1R", "S12E1W"}
	if g.pct(3) {
		ops = append(ops, "S1E1A")
	}
	return ops
}

// ttbr returns a TTBR value for root: mostly root itself with a random
// ASID, sometimes an address that aborts or is beyond the output size.
func (g *gen) ttbr(root uint64, oaBits uint, n int) uint64 {
	asid := g.r.Uint64N(1<<16) << 48
	switch x := g.r.IntN(100); {
	case x < 3:
		g.feat(fmt.Sprintf("ttbr%d/abort-range", n))
		return asid | (qemu.RAMBase+qemu.RAMSize)<<g.r.IntN(3)
	case x < 6 && oaBits < 48:
		g.feat(fmt.Sprintf("ttbr%d/beyond-ps", n))
		return asid | 1<<oaBits | root
	case x < 8:
		g.feat(fmt.Sprintf("ttbr%d/cnp", n))
		return asid | root | 1
	}
	return asid | root
}

// s2state is the stage-2 configuration being built.
type s2state struct {
	gr    sysreg.Granule
	ia    uint
	start int
	legal bool
	ps    uint64
	vtcr  uint64
	t     *ttbuild.Tables
	ds    bool
}

// s2start returns the start level VTCR_EL2.SL0 selects (DS=0).
func s2start(gr sysreg.Granule, sl0 uint64) (int, bool) {
	switch gr {
	case sysreg.Granule4K:
		return [...]int{2, 1, 0, 3}[sl0], true
	case sysreg.Granule16K:
		return [...]int{3, 2, 1, 0}[sl0], true
	}
	return [...]int{3, 2, 1, 0}[sl0], sl0 != 3
}

func (g *gen) s2config() {
	gr := pick(g, granules...)
	ds := gr != sysreg.Granule64K && g.pct(12)
	var ia uint
	var sl0 uint64
	var legal bool
	// Mostly legal combinations (AArch64.S2InconsistentSL: the start
	// table resolves 1..stride+4 bits, up to 16 concatenated tables).
	for try := 0; try < 20; try++ {
		ia = 64 - g.randTxSZ(gr)
		if ia > 48 && gr != sysreg.Granule64K {
			ia = 48
		}
		if ds && g.pct(40) {
			ia = 49 + uint(g.r.IntN(4))
		}
		if ia < 32 && !g.pct(15) {
			// The stage-1 tables live at IPAs 0x44000000 and up.
			continue
		}
		sl0 = g.r.Uint64N(4)
		start, ok := s2start(gr, sl0)
		lsb := leafBits(gr, start)
		legal = ok && ia > lsb && ia <= lsb+gr.Bits()-3+4
		if legal || g.pct(3) {
			break
		}
	}
	if !legal {
		g.feat("vtcr/inconsistent-sl0")
	}
	ps := uint64(g.r.IntN(7))
	if g.pct(50) {
		ps = pick(g, uint64(2), 5)
	}
	vtcr := uint64(1<<31) | uint64(64-ia) | sl0<<6 | uint64(g.r.IntN(4))<<8 | uint64(g.r.IntN(4))<<10 |
		uint64(pick(g, 0, 2, 3))<<12 | tg0(gr)<<14 | ps<<16
	if ds {
		vtcr |= 1 << 32
		if g.pct(50) {
			ps = 6
			vtcr = vtcr&^(7<<16) | ps<<16
		}
		g.feat("vtcr.ds(lpa2)")
	}
	if g.pct(30) {
		vtcr |= 1 << 21
		g.feat("vtcr.ha")
	}
	if g.pct(10) {
		vtcr |= 1 << 22
		g.feat("vtcr.hd")
	}
	if g.pct(20) {
		vtcr |= 1 << 19
		g.feat("vtcr.vs")
	}
	start, _ := s2start(gr, sl0)
	if ds && gr == sysreg.Granule4K && g.pct(25) {
		// VTCR_EL2.SL2=1 with SL0=0: a level -1 start (4K, FEAT_LPA2),
		// for a 49- to 52-bit IPA space.
		sl0, start = 0, -1
		ia = 49 + uint(g.r.IntN(4))
		legal = true
		vtcr = vtcr&^(3<<6|63) | uint64(64-ia) | 1<<33
		g.feat("vtcr.sl2")
	}
	g.feat("s2.granule/" + gr.String())
	g.feat(fmt.Sprintf("s2.start/L%d", start))
	if entries := ia - leafBits(gr, start); legal && entries > gr.Bits()-3 {
		g.feat("s2/concatenated")
	}
	g.regs["VTCR_EL2"] = vtcr
	g.s2 = &s2state{gr: gr, ia: ia, start: start, legal: legal, ps: ps, vtcr: vtcr, ds: ds}
	g.s2ia = ia
}

// s2build builds stage-2 tables: identity mappings for the stage-1
// tables' IPAs (mostly usable, sometimes faulting), mappings for the
// stage-1 output IPAs, and random descriptors.
func (g *gen) s2build(s1End uint64) {
	s := g.s2
	a := &ttbuild.Alloc{Next: s2Pool + g.r.Uint64N(16)<<16, End: s2PoolEnd}
	if !s.legal {
		g.regs["VTTBR_EL2"] = g.r.Uint64N(1<<16)<<48 | a.Next
		return
	}
	f := formatDS(s.gr, s.ds)
	t, err := ttbuild.New(g.m, a, f, true, s.ia, s.start)
	if err != nil {
		g.regs["VTTBR_EL2"] = a.Next
		return
	}
	s.t = t
	oaBits := oaLimit(s.ps, s.gr, s.ds)
	// Identity-map the stage-1 table pool with leaves of one level; in a
	// quarter of the cases one of them is unusable for the walk.
	level := max(s.start, 1)
	if s.gr != sysreg.Granule4K || g.pct(50) {
		level = max(level, 2)
	}
	if g.pct(20) {
		level = 3
	}
	lb := leafBits(s.gr, level)
	first := uint64(s1Pool) &^ (1<<lb - 1)
	chunks := int((s1End-first)>>lb) + 1
	bad := -1
	if g.pct(25) {
		bad = g.r.IntN(chunks)
	}
	for k := range chunks {
		base := first + uint64(k)<<lb
		l := desc.S2Leaf{OA: base, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}
		if k == bad {
			switch g.r.IntN(5) {
			case 0:
				l.MemAttr = uint(g.r.IntN(4)) // Device-nGnRnE..GRE
				g.feat("s2/s1-table-in-device")
			case 1:
				l.S2AP = uint(g.r.IntN(3))
				g.feat("s2/s1-table-not-rw")
			case 2:
				l.AF = false
				g.feat("s2/s1-table-af-clear")
			case 3:
				l.MemAttr = uint(g.r.IntN(16))
				g.feat("s2/s1-table-any-memattr")
			case 4:
				g.feat("s2/s1-table-unmapped")
				continue
			}
		}
		addr, err := t.EntryAddr(base, level, 0)
		if err != nil {
			continue
		}
		if old, _ := g.m.Read64(mem.PA(addr)); old == 0 {
			_ = g.write(t, addr, uint64(l.Encode(f, level)))
		}
	}
	// Map the stage-1 output IPAs.
	for _, ipa := range g.ipas {
		if ipa>>s.ia != 0 || g.pct(15) {
			continue
		}
		level := max(s.start, 1) + g.r.IntN(4-max(s.start, 1))
		lb := leafBits(s.gr, level)
		base := ipa &^ (1<<lb - 1)
		addr, err := t.EntryAddr(base, level, 0)
		if err != nil {
			continue
		}
		if old, _ := g.m.Read64(mem.PA(addr)); old != 0 {
			continue
		}
		_ = g.write(t, addr, uint64(g.s2Leaf(f, level, g.oa(lb, oaBits, false, true))))
		g.feat(fmt.Sprintf("s2/%s/mapped-output/L%d", s.gr, level))
	}
	g.populate(t, s1Regime{gr: s.gr, iasize: s.ia, oaBits: oaBits}, g.r.IntN(5), true)
	vttbr := g.r.Uint64N(1<<16)<<48 | t.Root
	if g.pct(3) {
		vttbr = qemu.RAMBase + qemu.RAMSize
		g.feat("vttbr/abort-range")
	}
	g.regs["VTTBR_EL2"] = vttbr
}

// bigEndianS2 rewrites the stage-2 tables big-endian (SCTLR_EL2.EE=1).
func (g *gen) bigEndianS2() {
	for pa, v := range g.m.w {
		if pa >= s2Pool && pa < s2PoolEnd {
			g.m.w[pa] = swap64(v)
		}
	}
}

// el2 configures the EL2 (e2h=false) or EL2&0 (e2h=true) regime. With
// SCTLR_EL2.M=1 it first maps RunnerCodePage as the oracle's contract
// requires and protects that walk.
func (g *gen) el2(e2h bool) []string {
	hcr := uint64(hcrRW)
	tge := false
	if e2h {
		hcr |= hcrE2H
		if g.pct(70) {
			hcr |= hcrTGE
			tge = true
			g.feat("hcr.e2h+tge")
		}
	}
	mmu := g.pct(88)
	var sctlr uint64 = sctlr2RES1
	if e2h {
		sctlr = sctlr1RES1
	}
	if mmu {
		sctlr |= sctlrM
	} else {
		g.feat("sctlr_el2.m=0")
	}
	if g.pct(50) {
		sctlr |= sctlrC
	}
	wxn := g.pct(15)
	if wxn {
		sctlr |= sctlrWX
		g.feat("sctlr_el2.wxn")
	}
	if e2h && g.pct(15) {
		sctlr |= sctlrEPAN
		g.feat("sctlr_el2.epan")
	}
	gr := pick(g, granules...)
	// The runner's page (< 2^31) must be inside the VA range.
	tsz := g.randTxSZ(gr)
	if mmu {
		tsz = min(tsz, 33)
	}
	ps := uint64(g.r.IntN(7))
	if g.pct(50) {
		ps = pick(g, uint64(2), 5)
	}
	oaBits := oaLimit(ps, gr)
	g.feat("s1.granule/" + gr.String())
	var tcr uint64
	useT1 := false
	if e2h {
		gr1 := pick(g, granules...)
		t1 := g.randTxSZ(gr1)
		useT1 = g.pct(30)
		tcr = uint64(tsz) | tg0(gr)<<14 | uint64(t1)<<16 | tg1(gr1)<<30 | ps<<32 | uint64(pick(g, 0, 2, 3))<<12
		for _, f := range []struct {
			bit  uint
			p    int
			name string
		}{{22, 20, "tcr.a1"}, {37, 20, "tcr.tbi0"}, {38, 20, "tcr.tbi1"}, {39, 35, "tcr.ha"}, {40, 15, "tcr.hd"},
			{41, 15, "tcr.hpd0"}, {42, 15, "tcr.hpd1"}, {55, 10, "tcr.e0pd0"}, {56, 10, "tcr.e0pd1"}} {
			if g.pct(f.p) {
				tcr |= 1 << f.bit
				g.feat("el20/" + f.name)
			}
		}
		if !useT1 {
			tcr |= 1 << 23
		}
	} else {
		tcr = 1<<31 | 1<<23 | uint64(tsz) | tg0(gr)<<14 | ps<<16 | uint64(pick(g, 0, 2, 3))<<12
		for _, f := range []struct {
			bit  uint
			p    int
			name string
		}{{20, 20, "tcr_el2.tbi"}, {21, 35, "tcr_el2.ha"}, {22, 15, "tcr_el2.hd"}, {24, 15, "tcr_el2.hpd"}} {
			if g.pct(f.p) {
				tcr |= 1 << f.bit
				g.feat(f.name)
			}
		}
	}
	mair := g.mair()
	a := &ttbuild.Alloc{Next: el2Pool + g.r.Uint64N(16)<<16, End: el2PoolEnd}
	f := format(gr)
	t, err := ttbuild.New(g.m, a, f, false, 64-tsz, ttbuild.StartLevel(gr, 64-tsz))
	if err != nil {
		panic(fmt.Sprintf("conform: EL2 tables: %v", err)) // sizes are chosen legal above
	}
	if mmu {
		// RunnerCodePage: identity, Normal (Attr0), AF=1, read-only at EL2
		// (so WXN cannot make it XN), no EL0 access, executable.
		mair = mair&^0xff | 0xff
		levels := []int{3, 2}
		if gr == sysreg.Granule4K {
			levels = append(levels, 1)
		}
		level := pick(g, levels...)
		if level < t.Start {
			level = 3
		}
		lb := leafBits(gr, level)
		va := uint64(qemu.RunnerCodePage) &^ (1<<lb - 1)
		l := desc.S1Leaf{OA: va, AttrIndx: 0, AP: pick(g, uint(2), 3), SH: 3, AF: true, UXN: e2h && g.pct(50), NG: g.pct(20)}
		if !e2h {
			l.AP = pick(g, uint(2), 3)
		}
		for lv := t.Start; lv <= level; lv++ {
			addr, err := t.EntryAddr(va, lv, 0)
			if err != nil {
				panic(fmt.Sprintf("conform: runner mapping: %v", err))
			}
			g.protected[addr] = true
		}
		if err := t.MapS1(va, level, l); err != nil {
			panic(fmt.Sprintf("conform: runner mapping: %v", err))
		}
		g.vas = append(g.vas, qemu.RunnerCodePage+0x800)
		g.feat(fmt.Sprintf("runner-map/%s/L%d", gr, level))
	}
	rg := s1Regime{gr: gr, iasize: 64 - tsz, oaBits: oaBits, oneRange: !e2h}
	g.populate(t, rg, 4+g.r.IntN(10), false)
	root1 := g.emptyTable()
	if useT1 {
		gr1 := sysreg.Granule(0)
		switch tcr >> 30 & 3 {
		case 1:
			gr1 = sysreg.Granule16K
		case 2:
			gr1 = sysreg.Granule4K
		case 3:
			gr1 = sysreg.Granule64K
		}
		t1 := uint(tcr >> 16 & 63)
		rg1 := s1Regime{gr: gr1, iasize: 64 - t1, oaBits: oaLimit(ps, gr1), high: true}
		root1, _ = g.buildS1(rg1, a, 2+g.r.IntN(6))
		g.feat("el20.ttbr1/" + gr1.String())
	}
	g.regs["HCR_EL2"] = hcr
	g.regs["SCTLR_EL2"] = sctlr
	g.regs["TCR_EL2"] = tcr
	ttbr0 := g.r.Uint64N(1<<16)<<48 | t.Root
	if !mmu {
		ttbr0 = g.ttbr(t.Root, oaBits, 0)
	}
	g.regs["TTBR0_EL2"] = ttbr0
	if e2h {
		g.regs["TTBR1_EL2"] = g.ttbr(root1, oaBits, 1)
	}
	g.regs["MAIR_EL2"] = mair
	// EL1&0 registers stay zero: S1E1*/S1E0* in the EL2&0 regime (E2H=1,
	// TGE=1) do not read them.
	ops := []string{"S1E2R", "S1E2W"}
	if tge {
		ops = append(ops, "S1E0R", "S1E0W", "S1E1R", "S1E1W", "S1E1RP", "S1E1WP", "S12E0R", "S12E1R", "S12E1W", "S12E0W")
	}
	if g.pct(3) {
		ops = append(ops, "S1E2A")
	}
	return ops
}

// ops picks 3..10 operations on candidate VAs, with tagged and random
// addresses mixed in.
func (g *gen) ops(names []string) []qemu.Op {
	n := 3 + g.r.IntN(8)
	out := make([]qemu.Op, 0, n)
	for range n {
		var va uint64
		switch x := g.r.IntN(100); {
		case x < 75 && len(g.vas) > 0:
			va = g.vas[g.r.IntN(len(g.vas))]
			if g.pct(10) {
				va ^= uint64(g.r.IntN(256)) << 56 // top byte: TBI or not
				g.feat("va/tagged")
			}
		case x < 85:
			va = g.r.Uint64N(1 << 40)
		case x < 92:
			va = ^uint64(0)<<(16+g.r.IntN(33)) | g.r.Uint64N(1<<16)
		default:
			va = g.r.Uint64()
		}
		out = append(out, qemu.Op{Name: names[g.r.IntN(len(names))], VA: va})
	}
	return out
}

// watch lists the words a hardware update may change: valid descriptors
// with AF=0 or DBM=1 (either byte order), except the protected ones.
func (g *gen) watch() []uint64 {
	var out []uint64
	for pa, v := range g.m.w {
		if g.protected[pa] {
			continue
		}
		for _, d := range []uint64{v, swap64(v)} {
			if d&1 == 1 && (d&(1<<10) == 0 || d&(1<<51) != 0) {
				out = append(out, pa)
				break
			}
		}
	}
	slices.Sort(out)
	if len(out) > 24 {
		out = out[:24]
	}
	return out
}

func memPA(a uint64) mem.PA { return mem.PA(a) }
