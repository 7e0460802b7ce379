package tlb

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// refRequired is the reference scope: a direct reading of each TLBI
// description, written independently of ScopeOf. It reports whether the
// architecture requires op (operand xt, issued in c) to remove e, with
// TTL and TG hints honoured (what may be left is not required).
func refRequired(op Op, xt uint64, c Context, e *Entry) bool {
	vhe := c.EL == 2 && c.HCR&sysreg.HCR_E2H != 0 && c.HCR&sysreg.HCR_TGE != 0
	// The targeted regime's TCR: EL2's for EL2 ops and redirected EL1 ops.
	el2Op := false
	switch op.Base() {
	case OpALLE1, OpALLE2, OpVAE2, OpVALE2, OpVMALLS12E1, OpIPAS2E1, OpIPAS2LE1, OpRVAE2, OpRVALE2, OpRIPAS2E1, OpRIPAS2LE1:
		el2Op = true
	}
	as16, ds := c.ASID16, c.DS
	if el2Op || vhe {
		as16, ds = c.EL2ASID16, c.EL2DS
	}
	asid := uint16(xt >> 48)
	if !as16 {
		asid &= 0xff
	}
	// s1E1 is "a stage 1 entry of the regime the EL1 forms target".
	s1E1 := func() bool {
		if e.Stage2Only {
			return false
		}
		if vhe {
			return e.Regime == vmsa.RegimeEL20
		}
		return e.Regime == vmsa.RegimeEL10 && e.VMID == c.VMID
	}
	s1E2 := !e.Stage2Only && (e.Regime == vmsa.RegimeEL2 || e.Regime == vmsa.RegimeEL20)
	asidOK := func() bool { return e.Global || e.Regime == vmsa.RegimeEL2 || e.ASID == asid }
	e2asidOK := func() bool { return c.HCR&sysreg.HCR_E2H == 0 || asidOK() }
	ttlOK := func(ttl uint64) bool {
		g, l := ttl>>2&3, int8(ttl&3)
		switch {
		case g == 0,
			g == 1 && l == 0 && !c.LPA2,
			g == 2 && (l == 0 || l == 1 && !c.LPA2),
			g == 3 && l == 0:
			return true // no (usable) hint
		}
		return e.GranuleBits == uint8(10+2*g) && e.Level == l
	}
	// span: the input range of the translation table entry the TLB entry
	// caches. A combined entry may hold only part of its stage-1 leaf
	// (stage 2 maps it with smaller leaves); the TLBI by-address forms
	// invalidate "cached copies of translation table entries ... that
	// would be required to translate" the address, so the whole stage-1
	// leaf counts.
	span := e.SizeBits
	if e.Combined {
		if leaf := e.GranuleBits + (e.GranuleBits-3)*uint8(3-e.Level); leaf > span {
			span = leaf
		}
	}
	// covers: the entry translates the page of VA[55:12] or IPA[51:12].
	covers := func(page uint64) bool { return e.input()>>span == (page<<12)>>span }
	vaOp := func() bool { return covers(xt&(1<<44-1)) && ttlOK(xt>>44&15) }
	// inRange: the entry overlaps [start, start+len) of a range operand,
	// in full 64-bit addresses (entries of a two-range regime with bit 55
	// set are in the TTBR1 half).
	inRange := func(ds, sext bool) bool {
		tg := xt >> 46 & 3
		if tg == 0 {
			return false // reserved: nothing required
		}
		gb := 10 + 2*tg
		if uint64(e.GranuleBits) != gb {
			return false
		}
		if ttl := xt >> 37 & 3; ttl != 0 && !(ttl == 1 && gb == 14 && !c.LPA2) && e.Level != int8(ttl) {
			return false
		}
		shift := gb
		if ds {
			shift = 16
		}
		base := int64(xt<<27) >> 27 // BaseADDR sign-extended from bit 36
		if !sext {
			base = int64(xt & (1<<37 - 1))
		}
		start := uint64(base) << shift
		end := start + (xt>>39&31+1)<<(5*(xt>>44&3)+1+gb) - 1
		if end < start {
			end = ^uint64(0)
		}
		eb := e.input() >> span << span
		if sext && eb>>55 == 1 {
			eb |= 0xff << 56
		}
		ee := eb + 1<<span - 1
		return eb <= end && start <= ee
	}
	ipaPage := xt & (1<<40 - 1)
	switch op.Base() {
	case OpVMALLE1:
		return s1E1()
	case OpVAE1, OpVALE1:
		return s1E1() && asidOK() && vaOp()
	case OpVAAE1, OpVAALE1:
		return s1E1() && vaOp()
	case OpASIDE1:
		return s1E1() && !e.Global && e.ASID == asid
	case OpALLE1:
		return e.Stage2Only || e.Regime == vmsa.RegimeEL10
	case OpVMALLS12E1:
		return (e.Stage2Only || e.Regime == vmsa.RegimeEL10) && e.VMID == c.VMID
	case OpALLE2:
		return s1E2
	case OpVAE2, OpVALE2:
		return s1E2 && e2asidOK() && vaOp()
	case OpIPAS2E1, OpIPAS2LE1:
		return e.Stage2Only && e.VMID == c.VMID && covers(ipaPage) && ttlOK(xt>>44&15)
	case OpRVAE1, OpRVALE1:
		return s1E1() && asidOK() && inRange(ds, true)
	case OpRVAAE1, OpRVAALE1:
		return s1E1() && inRange(ds, true)
	case OpRVAE2, OpRVALE2:
		return s1E2 && e2asidOK() && inRange(ds, c.HCR&sysreg.HCR_E2H != 0)
	case OpRIPAS2E1, OpRIPAS2LE1:
		return e.Stage2Only && e.VMID == c.VMID && inRange(c.VDS, false)
	}
	return false
}

// refTLB is the reference model: every entry filled and not yet
// invalidated, in a plain slice.
type refTLB struct{ es []Entry }

func (r *refTLB) lookupMatches(e *Entry, s2 bool, regime vmsa.Regime, vmid, asid uint16, in uint64) bool {
	if e.Stage2Only != s2 {
		return false
	}
	if !s2 && e.Regime != regime {
		return false
	}
	if (s2 || regime == vmsa.RegimeEL10) && e.VMID != vmid {
		return false
	}
	if !s2 && !e.Global && e.ASID != asid {
		return false
	}
	return e.input()>>e.SizeBits == (in&(1<<56-1))>>e.SizeBits
}

// randEntry draws an entry in a small space so that tags collide.
func randEntry(rng *rand.Rand) Entry {
	sizes := []struct {
		bits, level, gran uint8
	}{{12, 3, 12}, {16, 3, 12}, {21, 2, 12}, {30, 1, 12}, {14, 3, 14}, {25, 2, 14}, {16, 3, 16}, {21, 3, 16}, {29, 2, 16}}
	sz := sizes[rng.IntN(len(sizes))]
	e := Entry{
		Regime:      vmsa.Regime(rng.IntN(3)),
		VMID:        uint16(rng.IntN(3)),
		ASID:        uint16(rng.IntN(3)),
		Global:      rng.IntN(3) == 0,
		SizeBits:    sz.bits,
		Level:       int8(sz.level),
		GranuleBits: sz.gran,
		Perms:       vmsa.Perms{R0: rng.IntN(2) == 0, W0: rng.IntN(2) == 0, X0: rng.IntN(2) == 0, R1: true, W1: rng.IntN(2) == 0, X1: rng.IntN(2) == 0},
		Attr:        uint8(rng.Uint32()),
	}
	va := uint64(rng.IntN(64)) << 12 * uint64(1+rng.IntN(2)*0x1ff)
	if rng.IntN(4) == 0 {
		va |= 0x00ff_ffff_ff00_0000 // TTBR1 half
	}
	e.VA = mem.VA(va &^ (1<<e.SizeBits - 1))
	e.OA = mem.PA(rng.Uint64() & (1<<48 - 1) &^ (1<<e.SizeBits - 1))
	switch rng.IntN(5) {
	case 0:
		e.Stage2Only, e.Regime, e.Global, e.ASID = true, 0, true, 0
		e.IPA, e.VA = mem.IPA(e.VA&(1<<48-1)), 0
	case 1:
		if e.Regime == vmsa.RegimeEL10 {
			e.Combined, e.IPA = true, mem.IPA(e.OA)
			if (sz.level < 3 || sz.gran > 12) && rng.IntN(2) == 0 {
				// A piece of a stage-1 block, or of a 16KB or 64KB
				// page: stage 2 maps it with smaller pages.
				e.SizeBits = sz.gran
				if sz.level == 3 {
					e.SizeBits = 12
				}
				e.VA = mem.VA(va &^ (1<<e.SizeBits - 1))
				e.OA &^= 1<<e.SizeBits - 1
				e.IPA = mem.IPA(e.OA)
			}
		}
	}
	if e.Regime != vmsa.RegimeEL10 && !e.Stage2Only {
		e.VMID = 0
	}
	if e.Regime == vmsa.RegimeEL2 && !e.Stage2Only {
		e.Global = true
	}
	if e.Global {
		e.ASID = 0
	}
	return e
}

// randOp draws a TLBI and an operand aimed at the drawn space.
func randOp(rng *rand.Rand) (Op, uint64, Context) {
	op := Op(rng.IntN(int(numBaseOps)))
	c := Context{EL: 2, VMID: uint16(rng.IntN(3)), ASID16: rng.IntN(4) != 0, LPA2: rng.IntN(2) == 0,
		DS: rng.IntN(6) == 0, VDS: rng.IntN(6) == 0, EL2ASID16: rng.IntN(4) != 0, EL2DS: rng.IntN(6) == 0}
	if rng.IntN(2) == 0 {
		c.HCR |= sysreg.HCR_E2H
	}
	if rng.IntN(2) == 0 {
		c.HCR |= sysreg.HCR_TGE
	}
	if op.opEL() == 1 && rng.IntN(2) == 0 {
		c.EL = 1
	}
	var xt uint64
	page := uint64(rng.IntN(64)) * uint64(1+rng.IntN(2)*0x1ff)
	if rng.IntN(4) == 0 {
		page |= 0x00ff_ffff_ff00_0000 >> 12 // TTBR1 half, VA[55:12]
	}
	switch rng.IntN(3) {
	case 0: // by-VA/IPA layout with a TTL
		xt = uint64(rng.IntN(3))<<48 | uint64(rng.IntN(16))<<44 | page
	case 1: // range layout
		tg := uint64(rng.IntN(4))
		xt = uint64(rng.IntN(3))<<48 | tg<<46 | uint64(rng.IntN(4))<<44 | uint64(rng.IntN(32))<<39 |
			uint64(rng.IntN(4))<<37 | (page>>(2*max(tg, 1)-2))&(1<<37-1)
	default:
		xt = rng.Uint64()
	}
	return op, xt, c
}

func TestAgainstReference(t *testing.T) {
	n := 200_000
	if s := os.Getenv("TLB_SOAK"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, cfg := range []Config{
		{Sets: 16, Ways: 2, Micro: 4, Seed: 1},
		{Sets: 4, Ways: 4, Micro: 2, Replacement: Random, Seed: 2, StrictHints: true},
		{Sets: 1, Ways: 8, Micro: -1, StrictHints: true},
		{Sets: 64, Ways: 1, Micro: 1},
	} {
		runReference(t, cfg, n, uint64(cfg.Sets*31+cfg.Ways))
	}
}

func runReference(t *testing.T, cfg Config, n int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	tl := MustNew(cfg)
	var ref refTLB
	var buf []Entry
	for i := 0; i < n; i++ {
		switch k := rng.IntN(10); {
		case k < 4:
			e := randEntry(rng)
			tl.FillEntry(e)
			ref.es = append(ref.es, e)
		case k < 9:
			s2 := rng.IntN(5) == 0
			regime := vmsa.Regime(rng.IntN(3))
			vmid, asid := uint16(rng.IntN(3)), uint16(rng.IntN(3))
			in := uint64(rng.IntN(64))<<12*uint64(1+rng.IntN(2)*0x1ff) | uint64(rng.IntN(4096))
			if rng.IntN(4) == 0 {
				in |= 0xffff_ffff_ff00_0000
			}
			acc := vmsa.Access{Kind: vmsa.AccessKind(rng.IntN(3)), EL: uint8(rng.IntN(2))}
			var got Entry
			var r Result
			if s2 {
				got, r = tl.LookupS2(vmid, mem.IPA(in), acc)
			} else {
				got, r = tl.Lookup(regime, vmid, asid, mem.VA(in), acc)
			}
			if r == Miss {
				continue
			}
			found := false
			for j := range ref.es {
				if ref.es[j] == got && ref.lookupMatches(&ref.es[j], s2, regime, vmid, asid, in) {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("step %d: %v of %#x (s2=%v %v vmid %d asid %d) returned %+v, not a live reference entry", i, r, in, s2, regime, vmid, asid, got)
			}
			if want := permits(permMask(&got.Perms, kindOf(&got)), acc); (r == Hit) != want {
				t.Fatalf("step %d: result %v for perms %+v access %+v", i, r, got.Perms, acc)
			}
		default:
			op, xt, c := randOp(rng)
			if _, err := tl.Invalidate(op, xt, c); err != nil {
				continue
			}
			kept := ref.es[:0]
			for _, e := range ref.es {
				if !refRequired(op, xt, c, &e) {
					kept = append(kept, e)
				}
			}
			ref.es = kept
			buf = tl.Entries(buf[:0])
			for _, e := range buf {
				if refRequired(op, xt, c, &e) {
					t.Fatalf("step %d: TLBI %v %#x ctx %+v left %+v", i, op, xt, c, e)
				}
			}
		}
	}
	// Every entry of the real TLB is a live reference entry.
	buf = tl.Entries(buf[:0])
	for _, e := range buf {
		found := false
		for j := range ref.es {
			if ref.es[j] == e {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("cfg %+v: TLB holds %+v, which the reference does not", cfg, e)
		}
	}
	t.Logf("cfg %+v: ref %d entries, hits %d micro %d perm %d misses %d fills %d evictions %d invalidated %d", cfg, len(ref.es), tl.Stats.Hits, tl.Stats.MicroHits, tl.Stats.PermissionMisses, tl.Stats.Misses, tl.Stats.Fills, tl.Stats.Evictions, tl.Stats.Invalidated)
	if tl.Stats.Evictions == 0 || tl.Stats.Hits == 0 || tl.Stats.Invalidated == 0 {
		t.Errorf("cfg %+v: weak run: %+v", cfg, tl.Stats)
	}
}

func kindOf(e *Entry) uint8 {
	if e.Stage2Only {
		return kindS2
	}
	return uint8(e.Regime)
}

// TestSizeMaskShrinks checks the size-class bookkeeping: after the last
// entry of a size goes, lookups stop probing it.
func TestSizeMaskShrinks(t *testing.T) {
	tl := MustNew(Config{})
	fillFixture(t, tl)
	if tl.sizes[0] != 1<<12|1<<16|1<<21 {
		t.Fatalf("EL1&0 sizes %#x", tl.sizes[0])
	}
	if _, err := tl.Invalidate(OpALLE1, 0, ctxEL2); err != nil {
		t.Fatal(err)
	}
	if tl.sizes[0] != 0 || tl.sizes[kindS2] != 0 || tl.sizes[uint8(vmsa.RegimeEL2)] != 1<<12 {
		t.Errorf("sizes after ALLE1: %#x", tl.sizes)
	}
}
