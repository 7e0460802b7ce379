package vmsa

import "github.com/nestmmu/nestmmu/mem"

// VACheck holds, precomputed for one register state and regime, the checks
// that AArch64.S1Translate (or AArch64.S1DisabledOutput) makes on a VA
// before any table is read: TxSZ limits, the VA range with TBI/TBID, EPD
// and E0PD, or the PAMax check with stage 1 disabled. A TLB may only be
// consulted for a VA that passes them, since its entries ignore VA[63:56];
// VACheck makes that test a few instructions. Recompute it whenever a
// register it depends on changes.
type VACheck struct {
	half [2]vaHalf // [0] TTBR0 region, [1] TTBR1 region
	two  bool
}

type vaHalf struct {
	fault    bool // TxSZ out of range or EPD: every VA faults at level 0
	e0pd     bool
	addrSize bool      // stage 1 disabled: out-of-range bits give an Address size fault
	mask     [2]uint64 // bits that must equal want: [0] data, [1] instruction fetch
	want     uint64    // 0 or mask (upper region: all ones)
}

// NewVACheck computes the checks for regime under r.
func NewVACheck(r *Regs, regime Regime) VACheck {
	f := featuresOf(r)
	c := VACheck{two: regime.twoRanges()}
	for h := 0; h < 2; h++ {
		va := uint64(h) << 55
		hf := &c.half[h]
		if !S1Enabled(r, regime) {
			// AArch64.S1DisabledOutput: va<addrtop:PAMax> must be zero.
			p := getS1Params(r, &f, regime, va)
			hf.addrSize = true
			for k, acc := range []Access{{Kind: Read}, {Kind: Fetch}} {
				top := addrTop(p.tbi, p.tbid, acc)
				hf.mask[k] = bitRange(top, f.paMax)
			}
			continue
		}
		p := getS1Params(r, &f, regime, va)
		hf.fault = p.txsz < s1MinTxSZ(&f, &p) || p.txsz > f.maxTxSZ(p.tgx) || p.epd
		hf.e0pd = p.e0pd
		for k, acc := range []Access{{Kind: Read}, {Kind: Fetch}} {
			hf.mask[k] = bitRange(addrTop(p.tbi, p.tbid, acc), 64-p.txsz)
		}
		if p.upper {
			hf.want = ^uint64(0)
		}
	}
	return c
}

// bitRange returns a mask of bits [hi:lo] (empty when lo > hi).
func bitRange(hi, lo uint) uint64 {
	if lo > hi {
		return 0
	}
	return (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
}

// Check returns the fault the translation of va would take before reading
// any table (FaultNone when it would go on to the walk or the TLB). A
// fault it returns is exactly the one Walker.Translate reports.
func (c *VACheck) Check(vaddr mem.VA, acc Access) Fault {
	if k := c.FaultKind(vaddr, acc); k != FaultNone {
		return Fault{Kind: k, Write: acc.Kind == Write}
	}
	return Fault{}
}

// FaultKind is the kind of the fault Check returns: FaultNone when the
// address passes (for a caller that tests it without the whole Fault).
func (c *VACheck) FaultKind(vaddr mem.VA, acc Access) FaultKind {
	va := uint64(vaddr)
	h := 0
	if c.two && va>>55&1 == 1 {
		h = 1
	}
	hf := &c.half[h]
	k := 0
	if acc.Kind == Fetch {
		k = 1
	}
	m := hf.mask[k]
	if hf.addrSize {
		if va&m != 0 {
			return FaultAddressSize
		}
		return FaultNone
	}
	if hf.fault || va&m != hf.want&m || (acc.EL == 0 && hf.e0pd) {
		return FaultTranslation
	}
	return FaultNone
}

// DataPass is Check for data accesses (Read or Write) at EL0 (el0) or
// above, as masks: a VA passes when va&mask[h] == want[h], h being VA[55]
// where the regime has two VA ranges (two) and 0 otherwise.
func (c *VACheck) DataPass(el0 bool) (two bool, mask, want [2]uint64) {
	for h := range c.half {
		hf := &c.half[h]
		switch {
		case hf.addrSize:
			mask[h] = hf.mask[0]
		case hf.fault || el0 && hf.e0pd:
			want[h] = 1 // no VA passes: va&0 is never 1
		default:
			mask[h], want[h] = hf.mask[0], hf.want&hf.mask[0]
		}
	}
	return c.two, mask, want
}
