package vmsa_test

import (
	"math/rand"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// This file holds a deliberately simple, independently written stage-1
// walker for the EL1&0 regime, restricted to what it needs to be obviously
// right: 4K/16K/64K granules, no hardware updates, no PAN, no DS, no TBI,
// data accesses only. It reads registers by raw bit positions (not through
// package sysreg) and descriptors by raw bit positions (not through package
// desc), so it shares no code with the model. TestReferenceModel runs
// Walker.Translate and the reference on random-but-structured tables.

// refOut is the reference model's answer.
type refOut struct {
	kind  vmsa.FaultKind
	level int
	pa    uint64
	// stage2 and s1ptw locate a stage-2 fault (two-stage reference only).
	stage2, s1ptw bool
}

// refReader reads a stage-1 descriptor at a table address. A nil *refOut
// with ok=false is an External abort; a non-nil *refOut is a fault of the
// stage that translated the address (stage 2).
type refReader func(addr uint64) (v uint64, ok bool, f *refOut)

func memReader(m mem.Memory) refReader {
	return func(a uint64) (uint64, bool, *refOut) {
		v, ok := m.Read64(mem.PA(a))
		return v, ok, nil
	}
}

func bitsOf(v uint64, hi, lo uint) uint64 { return v >> lo & (1<<(hi-lo+1) - 1) }

// refS1 translates va for a data access at EL0 (el0) or EL1 in the EL1&0
// regime. Only HCR_EL2.{DC,TGE}=0 and stage 2 off are supported.
func refS1(rd refReader, sctlr, tcr, ttbr0, ttbr1, mmfr0, mmfr2 uint64, va uint64, write, el0 bool) refOut {
	// Implemented physical address size: ID_AA64MMFR0_EL1.PARange.
	paMax := map[uint64]uint{0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}[bitsOf(mmfr0, 3, 0)]
	if sctlr&1 == 0 {
		// MMU off: flat mapping; VA bits at or above PAMax fault.
		if va>>paMax != 0 {
			return refOut{kind: vmsa.FaultAddressSize, level: 0}
		}
		return refOut{pa: va}
	}
	upper := va>>55&1 == 1
	var txsz, gbits uint
	var epd, hpd bool
	var ttbr uint64
	if upper {
		txsz = uint(bitsOf(tcr, 21, 16))
		gbits = map[uint64]uint{1: 14, 2: 12, 3: 16}[bitsOf(tcr, 31, 30)]
		epd, hpd, ttbr = tcr>>23&1 == 1, tcr>>42&1 == 1, ttbr1
	} else {
		txsz = uint(bitsOf(tcr, 5, 0))
		gbits = map[uint64]uint{0: 12, 1: 16, 2: 14}[bitsOf(tcr, 15, 14)]
		epd, hpd, ttbr = tcr>>7&1 == 1, tcr>>41&1 == 1, ttbr0
	}
	lpa := paMax == 52 && gbits == 16 // 52-bit output with 64K (FEAT_LPA)
	lva := bitsOf(mmfr2, 19, 16) == 1 && gbits == 16
	minTxSZ, maxTxSZ := uint(16), uint(48)
	if lva {
		minTxSZ = 12
	}
	if gbits == 16 {
		maxTxSZ = 47
	}
	if txsz < minTxSZ || txsz > maxTxSZ {
		return refOut{kind: vmsa.FaultTranslation, level: 0}
	}
	ia := 64 - txsz
	// VA[63:ia] must be all zeros (TTBR0) or all ones (TTBR1).
	top := va >> ia
	if (!upper && top != 0) || (upper && top != (^uint64(0))>>ia) {
		return refOut{kind: vmsa.FaultTranslation, level: 0}
	}
	if epd {
		return refOut{kind: vmsa.FaultTranslation, level: 0}
	}
	// Output size: TCR_EL1.IPS capped by PAMax, and by 48 unless 64K+LPA.
	ipsEnc := bitsOf(tcr, 34, 32)
	ps := map[uint64]uint{0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}[ipsEnc]
	if ps > paMax {
		ps = paMax
	}
	if ps > 48 && !lpa {
		ps = 48
	}
	stride := gbits - 3
	// Number of levels needed to resolve ia-gbits bits, stride at a time.
	levels := int((ia - gbits + stride - 1) / stride)
	level := 4 - levels
	startBits := ia - gbits - stride*uint(levels-1) // index bits at the start level
	tableBytes := uint64(8) << startBits
	var base uint64
	if lpa && ipsEnc == 6 {
		base = bitsOf(ttbr, 5, 2)<<48 | bitsOf(ttbr, 47, 6)<<6
		if tableBytes < 64 {
			tableBytes = 64
		}
	} else {
		base = bitsOf(ttbr, 47, 1) << 1
	}
	base &^= tableBytes - 1
	if base>>ps != 0 {
		return refOut{kind: vmsa.FaultAddressSize, level: 0}
	}
	oaHigh := func(d uint64) uint64 {
		if lpa {
			return bitsOf(d, 15, 12) << 48
		}
		return 0
	}
	var noEL0, noWrite bool // APTable[0], APTable[1] accumulated
	for ; ; level++ {
		lo := gbits + stride*uint(3-level)
		width := stride
		if level == 4-levels {
			width = startBits
		}
		idx := bitsOf(va, lo+width-1, lo)
		d, ok, f2 := rd(base + idx*8)
		if f2 != nil {
			return *f2
		}
		if !ok {
			return refOut{kind: vmsa.FaultSyncExternalOnWalk, level: level}
		}
		if d&1 == 0 {
			return refOut{kind: vmsa.FaultTranslation, level: level}
		}
		isTable := d&2 != 0 && level < 3
		if isTable {
			base = bitsOf(d, 47, gbits)<<gbits | oaHigh(d)
			if base>>ps != 0 {
				return refOut{kind: vmsa.FaultAddressSize, level: level}
			}
			if !hpd {
				noEL0 = noEL0 || d>>61&1 == 1
				noWrite = noWrite || d>>62&1 == 1
			}
			continue
		}
		if level == 3 && d&2 == 0 {
			return refOut{kind: vmsa.FaultTranslation, level: level} // reserved
		}
		if level < 3 {
			// Blocks: 4K at levels 1 and 2, 16K at level 2, 64K at level 2
			// and (with 52-bit PA) level 1.
			legal := level == 2 || (level == 1 && (gbits == 12 || lpa))
			if !legal {
				return refOut{kind: vmsa.FaultTranslation, level: level}
			}
		}
		size := lo // log2 of the leaf's size
		oa := bitsOf(d, 47, size)<<size | oaHigh(d)
		if oa>>ps != 0 {
			return refOut{kind: vmsa.FaultAddressSize, level: level}
		}
		if d>>10&1 == 0 {
			return refOut{kind: vmsa.FaultAccessFlag, level: level}
		}
		ro := d>>7&1 == 1 || noWrite
		el0ok := d>>6&1 == 1 && !noEL0
		switch {
		case el0 && !el0ok, write && ro:
			return refOut{kind: vmsa.FaultPermission, level: level}
		}
		return refOut{pa: oa | va&(1<<size-1)}
	}
}

// refGen builds one random case.
type refGen struct {
	rng *rand.Rand
	m   *mem.Sparse
	// next free table page
	next uint64
}

const (
	refRAM     = 0x4000_0000
	refRAMSize = 0x0100_0000 // 16 MiB
)

func (g *refGen) chance(pct int) bool { return g.rng.Intn(100) < pct }

// tablePage returns a new table address for a granule, mostly in RAM.
func (g *refGen) tablePage(gbits uint) uint64 {
	a := (g.next + 1<<gbits - 1) &^ (1<<gbits - 1)
	g.next = a + 1<<gbits
	return a
}

// addr returns an output or table address: in RAM, outside RAM, or
// beyond 48 bits (via the 64K high bits when lpa).
func (g *refGen) addr(align uint, lpa bool) (lowPart uint64, high uint64) {
	switch r := g.rng.Intn(100); {
	case r < 70:
		return (refRAM + g.rng.Uint64()%refRAMSize) &^ (1<<align - 1), 0
	case r < 85:
		return (g.rng.Uint64() & (1<<48 - 1)) &^ (1<<align - 1), 0
	case r < 92:
		return (1<<32 + g.rng.Uint64()%(1<<36)) &^ (1<<align - 1), 0
	default:
		if lpa {
			return (refRAM + g.rng.Uint64()%refRAMSize) &^ (1<<align - 1), uint64(g.rng.Intn(16))
		}
		return (1<<47 | g.rng.Uint64()&(1<<47-1)) &^ (1<<align - 1), 0
	}
}

// s1Case is one generated stage-1 case.
type s1Case struct {
	r          vmsa.Regs
	sctlr, tcr uint64
	va         uint64
	write, el0 bool
}

// genS1 builds random stage-1 tables in m (only inside [refRAM,
// refRAM+refRAMSize)) and registers for one case.
func genS1(rng *rand.Rand, m *mem.Sparse) s1Case {
	g := &refGen{rng: rng, m: m, next: refRAM + refRAMSize/2}
	r := vmsa.DefaultRegs()
	r.HCR_EL2 = sysreg.HCR_RW
	if g.chance(50) {
		// Without FEAT_LPA: PARange 48 bits.
		r.MMFR0 = sysreg.MMFR0(uint64(r.MMFR0)&^0xf | 5)
	}
	lpaImpl := uint64(r.MMFR0)&0xf == 6
	upper := g.chance(30)
	gsel := rng.Intn(3)
	gbits := []uint{12, 14, 16}[gsel]
	tg0 := []uint64{0, 2, 1}[gsel]
	tg1 := []uint64{2, 1, 3}[gsel]
	lpa := lpaImpl && gbits == 16
	minT, maxT := 16, 48
	if gbits == 16 {
		minT, maxT = 12, 47
	}
	txsz := uint64(minT + rng.Intn(maxT-minT+1))
	if g.chance(3) {
		txsz = uint64(rng.Intn(64))
	}
	ips := uint64(5)
	switch r := rng.Intn(10); {
	case r < 4:
		ips = 6
	case r < 6:
		ips = uint64(rng.Intn(5))
	}
	tcr := ips << 32
	if upper {
		tcr |= txsz<<16 | tg1<<30 | 1<<7 // TTBR0 disabled: it must not be used
		tcr |= uint64(rng.Intn(64)) | tg0<<14
	} else {
		tcr |= txsz | tg0<<14 | 1<<23
		tcr |= uint64(rng.Intn(64))<<16 | tg1<<30
	}
	if g.chance(3) {
		tcr ^= 1 << 7
		tcr ^= 1 << 23
	}
	if g.chance(20) {
		tcr |= 1 << 41
	}
	if g.chance(20) {
		tcr |= 1 << 42
	}
	sctlr := uint64(1 | 1<<2)
	if g.chance(3) {
		sctlr = 0
	}
	r.SCTLR_EL1 = sysreg.SCTLR(sctlr)
	r.TCR_EL1 = sysreg.TCR(tcr)
	r.MAIR_EL1 = sysreg.MAIR(rng.Uint64())

	// The VA: in range for the chosen TTBR, sometimes not.
	ia := 64 - uint(txsz&63)
	if ia > 52 {
		ia = 52
	}
	va := rng.Uint64() & (1<<ia - 1)
	if upper {
		va |= ^uint64(0) << ia
	}
	if g.chance(4) {
		va ^= 1 << (ia + uint(rng.Intn(int(64-ia))))
	}
	if g.chance(3) && sctlr == 0 {
		va &= 1<<52 - 1
	}

	// Start table.
	stride := gbits - 3
	nlev := int((ia - gbits + stride - 1) / stride)
	if nlev < 1 {
		nlev = 1
	}
	root := g.tablePage(gbits + 1) // big enough for any start table
	ttbr := root
	if g.chance(3) {
		ttbr = 0x8000_0000 // outside RAM
	}
	if lpa && ips == 6 && g.chance(5) {
		ttbr |= uint64(1+rng.Intn(15)) << 2 // BADDR[51:48]
	}
	ttbr |= uint64(rng.Intn(1<<16)) << 48 // ASID: ignored by translation
	if upper {
		r.TTBR1_EL1 = sysreg.TTBR(ttbr)
		r.TTBR0_EL1 = sysreg.TTBR(g.tablePage(gbits))
	} else {
		r.TTBR0_EL1 = sysreg.TTBR(ttbr)
		r.TTBR1_EL1 = sysreg.TTBR(g.tablePage(gbits))
	}

	// Build the path for va, with decoys at neighbouring indices.
	base := root
	validT := int(txsz) >= minT && int(txsz) <= maxT // else no table is read
	for level := 4 - nlev; validT && level <= 3 && base >= refRAM && base < refRAM+refRAMSize; level++ {
		lo := gbits + stride*uint(3-level)
		width := stride
		if level == 4-nlev {
			width = ia - gbits - stride*uint(nlev-1)
		}
		idx := va >> lo & (1<<width - 1)
		var d, next uint64
		switch k := rng.Intn(100); {
		case k < 8:
			d = rng.Uint64() &^ 1 // invalid
		case level < 3 && k < 75:
			var hi uint64
			next, hi = g.addr(gbits, lpa)
			if next >= refRAM && next < refRAM+refRAMSize && g.chance(80) {
				next = g.tablePage(gbits)
			}
			d = next | hi<<12 | 3 | uint64(rng.Intn(4))<<61
			if g.chance(10) {
				d |= 1<<59 | 1<<60 | 1<<63 // PXN/UXN/NSTable: no effect on data
			}
			if hi != 0 {
				next = 0 // not built further
			}
		default:
			oa, hi := g.addr(lo, lpa)
			d = oa | hi<<12 | uint64(rng.Intn(1<<10))&^3 | rng.Uint64()&(0x3f<<53) | 1
			if g.chance(85) {
				d |= 1 << 10 // AF
			}
			d &^= 1 << 51 // DBM (no effect without HD, kept clear)
			if level == 3 {
				d |= 2
				if g.chance(5) {
					d &^= 2 // reserved encoding
				}
			}
			next = 0
		}
		// Decoys: the entries next to ours lead somewhere valid-looking.
		n := uint64(1) << width
		for _, j := range []uint64{idx ^ 1, idx ^ n>>1, (idx + 3) % n} {
			if j != idx && j < n {
				_ = m.Write64(mem.PA(base+j*8), 0x4000_0000|1<<10|3)
			}
		}
		_ = m.Write64(mem.PA(base+idx*8), d)
		if next == 0 {
			break
		}
		base = next
	}

	write := g.chance(50)
	el0 := g.chance(40)
	return s1Case{r: r, sctlr: sctlr, tcr: tcr, va: va, write: write, el0: el0}
}

func TestReferenceModel(t *testing.T) {
	const cases = 20000
	rng := rand.New(rand.NewSource(20261121))
	stats := map[vmsa.FaultKind]int{}
	levels := map[int]int{}
	for i := 0; i < cases; i++ {
		m, err := mem.NewSparse([]mem.Range{{Base: refRAM, Size: refRAMSize}})
		if err != nil {
			t.Fatal(err)
		}
		c := genS1(rng, m)
		r, va, write, el0 := c.r, c.va, c.write, c.el0
		want := refS1(memReader(m), c.sctlr, c.tcr, uint64(r.TTBR0_EL1), uint64(r.TTBR1_EL1), uint64(r.MMFR0), uint64(r.MMFR2), va, write, el0)
		acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
		if write {
			acc.Kind = vmsa.Write
		}
		if el0 {
			acc.EL = 0
		}
		var w vmsa.Walker
		w.Mem = m
		got := w.Translate(&r, vmsa.RegimeEL10, mem.VA(va), acc, vmsa.TranslateOptions{})
		stats[want.kind]++
		levels[want.level]++
		if got.Fault.Kind != want.kind || (want.kind != vmsa.FaultNone && int(got.Fault.Level) != want.level) ||
			(want.kind == vmsa.FaultNone && got.OA != mem.PA(want.pa)) {
			t.Errorf("case %d: VA %#x write=%v el0=%v SCTLR %#x TCR %#x TTBR0 %#x TTBR1 %#x MMFR0 %#x:\n model: %v OA %#x\n  ref: %v level %d PA %#x",
				i, va, write, el0, c.sctlr, c.tcr, uint64(r.TTBR0_EL1), uint64(r.TTBR1_EL1), uint64(r.MMFR0),
				got.Fault, got.OA, want.kind, want.level, want.pa)
			t.Fatalf("memory: %x", m.Words())
		}
	}
	// The generator must exercise every outcome.
	for _, k := range []vmsa.FaultKind{vmsa.FaultNone, vmsa.FaultTranslation, vmsa.FaultAddressSize, vmsa.FaultAccessFlag, vmsa.FaultPermission, vmsa.FaultSyncExternalOnWalk} {
		if stats[k] < 200 {
			t.Errorf("only %d cases with outcome %v", stats[k], k)
		}
	}
	t.Logf("outcomes: %v; levels: %v", stats, levels)
}

// TestReferenceModelTwoStage: the same stage-1 cases under a stage 2 that
// maps the 16 MiB window with 2MB blocks in random states. The reference
// stage 2 is a lookup in its own table of block states (it reads no
// memory); the model walks real stage-2 tables built from those states.
func TestReferenceModelTwoStage(t *testing.T) {
	const (
		cases   = 5000
		s2Base  = 0x3000_0000 // stage-2 tables, outside the IPA window
		blocks  = refRAMSize >> 21
		outside = 0x8000_0000 // PA with no RAM
	)
	const (
		stRW = iota
		stInvalid
		stRO
		stNone
		stNoAF
		stNoRAM
	)
	rng := rand.New(rand.NewSource(7))
	stats := map[string]int{}
	for i := 0; i < cases; i++ {
		m, err := mem.NewSparse([]mem.Range{{Base: refRAM, Size: refRAMSize}, {Base: s2Base, Size: 0x2000}})
		if err != nil {
			t.Fatal(err)
		}
		c := genS1(rng, m)
		var state [blocks]int
		for j := range state {
			state[j] = []int{stRW, stRW, stRW, stRW, stRW, stRW, stInvalid, stRO, stNone, stNoAF, stNoRAM}[rng.Intn(11)]
		}
		// Stage 2: 4K, T0SZ=32, SL0=1 (start level 1), PS=48.
		r := c.r
		r.HCR_EL2 |= sysreg.HCR_VM
		r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 5<<16)
		r.VTTBR_EL2 = s2Base
		_ = m.Write64(s2Base+8, (s2Base+0x1000)|3)
		for j, st := range state {
			ipa := uint64(refRAM + j<<21)
			d := ipa | 1 | 0xf<<2 | 3<<6 | 3<<8 | 1<<10
			switch st {
			case stInvalid:
				d = 0
			case stRO:
				d &^= 2 << 6
			case stNone:
				d &^= 3 << 6
			case stNoAF:
				d &^= 1 << 10
			case stNoRAM:
				d = d&^(1<<48-1<<21) | (outside + uint64(j)<<21)
			}
			_ = m.Write64(mem.PA(s2Base+0x1000+(ipa>>21&511)*8), d)
		}
		refS2 := func(ipa uint64, write, s1ptw bool) (uint64, *refOut) {
			fault := func(k vmsa.FaultKind, level int) (uint64, *refOut) {
				return 0, &refOut{kind: k, level: level, stage2: true, s1ptw: s1ptw}
			}
			switch {
			case ipa>>32 != 0:
				return fault(vmsa.FaultTranslation, 0)
			case ipa>>30 != 1:
				return fault(vmsa.FaultTranslation, 1)
			case ipa < refRAM || ipa >= refRAM+refRAMSize:
				return fault(vmsa.FaultTranslation, 2)
			}
			j := (ipa - refRAM) >> 21
			switch state[j] {
			case stInvalid:
				return fault(vmsa.FaultTranslation, 2)
			case stNoAF:
				return fault(vmsa.FaultAccessFlag, 2)
			case stNone:
				return fault(vmsa.FaultPermission, 2)
			case stRO:
				if write {
					return fault(vmsa.FaultPermission, 2)
				}
			case stNoRAM:
				return outside + j<<21 + ipa&(1<<21-1), nil
			}
			return ipa, nil
		}
		rd := func(a uint64) (uint64, bool, *refOut) {
			pa, f := refS2(a, false, true)
			if f != nil {
				return 0, false, f
			}
			v, ok := m.Read64(mem.PA(pa))
			return v, ok, nil
		}
		want := refS1(rd, c.sctlr, c.tcr, uint64(r.TTBR0_EL1), uint64(r.TTBR1_EL1), uint64(r.MMFR0), uint64(r.MMFR2), c.va, c.write, c.el0)
		if want.kind == vmsa.FaultNone {
			pa, f := refS2(want.pa, c.write, false)
			if f != nil {
				want = *f
			} else {
				want.pa = pa
			}
		}
		acc := vmsa.Access{Kind: vmsa.Read, EL: 1}
		if c.write {
			acc.Kind = vmsa.Write
		}
		if c.el0 {
			acc.EL = 0
		}
		w := vmsa.Walker{Mem: m}
		got := w.Translate(&r, vmsa.RegimeEL10, mem.VA(c.va), acc, vmsa.TranslateOptions{})
		key := want.kind.String()
		if want.stage2 {
			key = "stage 2 " + key
			if want.s1ptw {
				key += " on walk"
			}
		}
		stats[key]++
		f := got.Fault
		if f.Kind != want.kind || f.Stage2 != want.stage2 || f.S1PTW != want.s1ptw ||
			(want.kind != vmsa.FaultNone && int(f.Level) != want.level) || (want.kind == vmsa.FaultNone && got.OA != mem.PA(want.pa)) {
			t.Fatalf("case %d: VA %#x write=%v el0=%v SCTLR %#x TCR %#x TTBR0 %#x TTBR1 %#x states %v:\n model: %v OA %#x\n  ref: %+v",
				i, c.va, c.write, c.el0, c.sctlr, c.tcr, uint64(r.TTBR0_EL1), uint64(r.TTBR1_EL1), state, f, got.OA, want)
		}
	}
	for _, k := range []string{"none", "stage 2 translation on walk", "stage 2 permission", "stage 2 access flag on walk", "stage 2 translation", "synchronous external abort on walk"} {
		if stats[k] < 20 {
			t.Errorf("only %d cases of %q", stats[k], k)
		}
	}
	t.Logf("outcomes: %v", stats)
}
