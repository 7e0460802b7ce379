// Package ptdump lists the mappings of the translation tables reachable
// from a TTBR or VTTBR, in the style of Linux's ptdump: runs of input
// addresses mapped alike are coalesced into one range, shown with its
// output address, leaf level, effective permissions, memory attributes and
// descriptor flags; entries that make the walk fault (a reserved
// descriptor, a block where none is allowed, an output address beyond the
// output size, a table outside memory) are listed with the fault.
//
// The tables are read by the modelled MMU itself (vmsa.Walker with a
// Trace), one walk per leaf or hole, so start levels, concatenated stage-2
// roots, the 52-bit formats, hierarchical permissions, WXN and stage 2 for
// the stage-1 table walks are exactly those of the translation model.
// The walks are made with permission checks off and hardware Access flag
// updates on, against a private overlay of memory: the dump never writes
// the memory it reads, and a leaf with AF=0 is shown (with its AF flag
// clear) rather than skipped.
package ptdump

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Range is a run of input addresses [Start, End) mapped alike: output
// addresses contiguous from OA, one leaf level and kind, the same
// permissions, attributes and descriptor attribute bits. A fault range
// has Fault set and no mapping.
type Range struct {
	Start, End uint64
	OA         uint64
	Level      int
	Kind       desc.Kind
	// Leaves is the number of descriptors coalesced into the range.
	Leaves int
	// Perms are the effective permissions (stage 1: after APTable,
	// UXNTable/PXNTable unless HPD, and WXN; stage 2: S2AP and XN).
	Perms vmsa.Perms
	// Attrs are the memory attributes of this stage alone.
	Attrs vmsa.MemAttrs
	// Desc is the first leaf descriptor as read from memory.
	Desc uint64
	// Fault describes the fault the walk takes for these addresses.
	Fault string
}

// Size returns End - Start (0 for the whole 2^64 space).
func (r Range) Size() uint64 { return r.End - r.Start }

// Table is the dump of one TTBR's or the VTTBR's tables.
type Table struct {
	// Name is the base register: TTBR0_EL1, TTBR1_EL1, TTBR0_EL2,
	// TTBR1_EL2 or VTTBR_EL2.
	Name   string
	Stage  int
	Regime string // "EL1&0", "EL2&0", "EL2" or "stage 2"
	// Base is the base register's value.
	Base uint64
	// Output names the output address space: "PA", or "IPA" for EL1&0
	// stage 1 with stage 2 enabled.
	Output  string
	Granule sysreg.Granule
	// InputBits is the input-address size; the range dumped is
	// [First, First + 2^InputBits).
	InputBits uint
	First     uint64
	Ranges    []Range
	// Walks counts the walks made.
	Walks int
	Notes []string
}

// Options bound a dump.
type Options struct {
	// MaxWalks stops a table's dump after this many walks (one per leaf or
	// hole); 0 means DefaultMaxWalks.
	MaxWalks int
}

// DefaultMaxWalks is the walk budget per table when Options.MaxWalks is 0.
const DefaultMaxWalks = 1 << 22

// overlay is memory whose writes (hardware updates) stay private.
type overlay struct {
	m mem.Memory
	w map[mem.PA]uint64
}

func (o *overlay) Read64(pa mem.PA) (uint64, bool) {
	if v, ok := o.w[pa]; ok {
		return v, true
	}
	return o.m.Read64(pa)
}

func (o *overlay) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	v, ok := o.Read64(pa)
	if !ok {
		return false, false
	}
	if v != old {
		return false, true
	}
	o.w[pa] = new
	return true, true
}

// withHA returns regs with hardware Access flag updates on for both stages
// (and the feature present), so that AF=0 leaves translate.
func withHA(r vmsa.Regs) vmsa.Regs {
	if r.MMFR1.HAFDBS() == 0 {
		r.MMFR1 |= 1
	}
	r.TCR_EL1 |= 1 << 39
	if r.HCR_EL2.E2H() {
		r.TCR_EL2 |= 1 << 39
	} else {
		r.TCR_EL2 |= 1 << 21
	}
	r.VTCR_EL2 |= 1 << 21
	return r
}

// Stage1 dumps the stage-1 tables of a regime: TTBR0 and TTBR1 for EL1&0
// and EL2&0, TTBR0_EL2 for EL2. For EL1&0 with stage 2 enabled
// (HCR_EL2.VM or DC), table addresses are IPAs translated by stage 2 and
// output addresses are IPAs. Stage 1 is dumped even when disabled
// (SCTLR_ELx.M=0, HCR_EL2.{DC,TGE}); a note says so.
func Stage1(m mem.Memory, regs *vmsa.Regs, regime vmsa.Regime, opt Options) ([]Table, error) {
	r := withHA(*regs)
	var notes []string
	if !vmsa.S1Enabled(regs, regime) {
		notes = append(notes, "stage 1 is disabled by the registers (SCTLR_ELx.M, HCR_EL2.{DC,TGE}); the tables are shown as if enabled")
	}
	type region struct {
		name   string
		base   uint64
		tsz    uint
		tg     sysreg.Granule
		upper  bool
		access uint8
		epd    bool // walks disabled by TCR_ELx.EPDn
	}
	var regions []region
	switch regime {
	case vmsa.RegimeEL10:
		r.SCTLR_EL1 |= 1
		r.HCR_EL2 &^= sysreg.HCR_DC | sysreg.HCR_TGE
		t := r.TCR_EL1
		regions = []region{{"TTBR0_EL1", uint64(r.TTBR0_EL1), t.T0SZ(), t.TG0(), false, 1, t.EPD0()},
			{"TTBR1_EL1", uint64(r.TTBR1_EL1), t.T1SZ(), t.TG1(), true, 1, t.EPD1()}}
	case vmsa.RegimeEL20:
		r.SCTLR_EL2 |= 1
		r.HCR_EL2 |= sysreg.HCR_E2H
		t := sysreg.TCR(r.TCR_EL2)
		regions = []region{{"TTBR0_EL2", uint64(r.TTBR0_EL2), t.T0SZ(), t.TG0(), false, 2, t.EPD0()},
			{"TTBR1_EL2", uint64(r.TTBR1_EL2), t.T1SZ(), t.TG1(), true, 2, t.EPD1()}}
	case vmsa.RegimeEL2:
		r.SCTLR_EL2 |= 1
		r.HCR_EL2 &^= sysreg.HCR_E2H
		t := sysreg.TCR2(r.TCR_EL2)
		regions = []region{{"TTBR0_EL2", uint64(r.TTBR0_EL2), t.T0SZ(), t.TG0(), false, 2, false}}
	default:
		return nil, fmt.Errorf("ptdump: unknown regime %v", regime)
	}
	var out []Table
	for _, g := range regions {
		if g.epd {
			n := "0"
			if g.upper {
				n = "1"
			}
			out = append(out, Table{Name: g.name, Stage: 1, Regime: regime.String(), Base: g.base, Output: "PA",
				Notes: append(append([]string{}, notes...), "walks of this range are disabled (TCR.EPD"+n+"=1): every access faults at level 0")})
			continue
		}
		tg, note := effectiveGranule(&r, g.tg, false)
		t := Table{Name: g.name, Stage: 1, Regime: regime.String(), Base: g.base, Granule: tg, Output: "PA"}
		t.Notes = append(t.Notes, notes...)
		if note != "" {
			t.Notes = append(t.Notes, note)
		}
		if regime == vmsa.RegimeEL10 && vmsa.S2Enabled(&r) {
			t.Output = "IPA"
		}
		if g.tsz > 63 || g.tsz == 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("TxSZ %d leaves no input addresses", g.tsz))
			out = append(out, t)
			continue
		}
		t.InputBits = 64 - g.tsz
		if g.upper {
			t.First = -(uint64(1) << t.InputBits)
		}
		acc := vmsa.Access{Kind: vmsa.Read, EL: g.access, AT: true, NoPerm: true}
		d := dumper{t: &t, format: desc.Format{Granule: tg}, max: opt.MaxWalks, stage: 1}
		d.run(m, func(w *vmsa.Walker, va uint64) vmsa.Translation {
			return w.Translate(&r, regime, mem.VA(va), acc, vmsa.TranslateOptions{Stage1Only: true})
		})
		out = append(out, t)
	}
	return out, nil
}

// Stage2 dumps the stage-2 tables of VTTBR_EL2 with VTCR_EL2's layout.
func Stage2(m mem.Memory, regs *vmsa.Regs, opt Options) (Table, error) {
	r := withHA(*regs)
	v := r.VTCR_EL2
	tg, note := effectiveGranule(&r, v.TG0(), true)
	t := Table{Name: "VTTBR_EL2", Stage: 2, Regime: "stage 2", Base: uint64(r.VTTBR_EL2), Granule: tg, Output: "PA"}
	if note != "" {
		t.Notes = append(t.Notes, note)
	}
	if v.T0SZ() == 0 {
		t.Notes = append(t.Notes, "VTCR_EL2.T0SZ 0 leaves a 64-bit IPA space, which no granule supports")
		return t, nil
	}
	if !vmsa.S2Enabled(regs) {
		t.Notes = append(t.Notes, "stage 2 is disabled by HCR_EL2 (VM=0, or TGE=1); the tables are shown as if enabled")
	}
	t.InputBits = 64 - v.T0SZ()
	acc := vmsa.Access{Kind: vmsa.Read, EL: 1, AT: true, NoPerm: true}
	d := dumper{t: &t, format: desc.Format{Granule: tg}, max: opt.MaxWalks, stage: 2}
	d.run(m, func(w *vmsa.Walker, ipa uint64) vmsa.Translation { return w.TranslateS2(&r, mem.IPA(ipa), acc) })
	return t, nil
}

// effectiveGranule is the granule the walk uses for a TGx value: a
// reserved or unimplemented encoding selects an IMPLEMENTATION DEFINED
// granule, which the model (like QEMU) takes as the smallest implemented
// one. The note says so.
func effectiveGranule(r *vmsa.Regs, g sysreg.Granule, stage2 bool) (sysreg.Granule, string) {
	if g != sysreg.GranuleInvalid && r.MMFR0.GranuleSupported(g, stage2) {
		return g, ""
	}
	for _, c := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		if r.MMFR0.GranuleSupported(c, stage2) {
			why := "reserved"
			if g != sysreg.GranuleInvalid {
				why = fmt.Sprintf("%v, not implemented (ID_AA64MMFR0_EL1 %#x)", g, uint64(r.MMFR0))
			}
			return c, fmt.Sprintf("the TGx encoding is %s: the granule is IMPLEMENTATION DEFINED; the model uses %v", why, c)
		}
	}
	return sysreg.Granule4K, "no granule is implemented (ID_AA64MMFR0_EL1): the model uses 4K"
}

// dumper walks one input-address range with probe and collects ranges.
type dumper struct {
	t      *Table
	format desc.Format
	max    int
	stage  uint8
}

func (d *dumper) run(m mem.Memory, probe func(w *vmsa.Walker, in uint64) vmsa.Translation) {
	max := d.max
	if max <= 0 {
		max = DefaultMaxWalks
	}
	tr := &vmsa.Trace{}
	w := &vmsa.Walker{Mem: &overlay{m: m, w: map[mem.PA]uint64{}}, Trace: tr}
	end := d.t.First + 1<<d.t.InputBits // 0 for the TTBR1 range: the top of the space
	for in := d.t.First; ; {
		if d.t.Walks == max {
			d.t.Notes = append(d.t.Notes, fmt.Sprintf("stopped after %d walks at %#x (raise the walk limit to see more)", max, in))
			return
		}
		d.t.Walks++
		tr.Steps = tr.Steps[:0]
		bits, rg, stop := d.classify(probe(w, in), tr)
		if stop != "" {
			d.t.Notes = append(d.t.Notes, stop)
			return
		}
		// The entry covering in spans the aligned 2^bits around it.
		next := in&^(1<<bits-1) + 1<<bits
		if next-d.t.First > end-d.t.First || next == 0 {
			next = end // the last entry of the range
		}
		if rg != nil {
			rg.Start, rg.End = in, next
			d.add(*rg)
		}
		if next == end {
			return
		}
		in = next
	}
}

// entryBits returns log2 of the input range one descriptor at level covers.
func (d *dumper) entryBits(level int) uint { return d.format.LeafBits(level) }

// classify turns one probe into log2 of the aligned input range it
// settles and, unless that is a hole, the range to record. stop is set
// when nothing more can be read (a register-level fault, an unreadable
// root).
func (d *dumper) classify(t vmsa.Translation, tr *vmsa.Trace) (bits uint, rg *Range, stop string) {
	var leaf *vmsa.Step
	nOwn := 0
	for i := range tr.Steps {
		if tr.Steps[i].Stage == d.stage && !tr.Steps[i].ForS1Walk {
			leaf = &tr.Steps[i]
			nOwn++
		}
	}
	if !t.Fault.IsFault() {
		return d.entryBits(int(leaf.Level)), &Range{OA: leaf.OA, Level: int(leaf.Level), Kind: leaf.Kind, Leaves: 1,
			Perms: t.Perms, Attrs: t.Attrs, Desc: leaf.Desc}, ""
	}
	f := t.Fault
	// The table holding the failed read: skip it whole (the parent entry's
	// range, or everything when it is the root).
	skipTable := func(level int, why string) (uint, *Range, string) {
		if nOwn == 0 || level <= int(d.firstLevel(tr)) {
			return 0, nil, fmt.Sprintf("%s: nothing below the root can be read", why)
		}
		return d.entryBits(level - 1), &Range{Level: level, Fault: why}, ""
	}
	if f.Stage2 && d.stage == 1 {
		// A stage-2 fault translating a stage-1 table address.
		level := 0
		if nOwn > 0 {
			level = int(leaf.Level) + 1
		}
		why := fmt.Sprintf("the level-%d table's IPA does not translate at stage 2 (%s)", level, f)
		if nOwn == 0 {
			return 0, nil, "the root table's IPA does not translate at stage 2 (" + f.String() + ")"
		}
		return skipTable(level, why)
	}
	if nOwn == 0 {
		return 0, nil, registerFault(f)
	}
	level := int(leaf.Level)
	if leaf.ReadFailed {
		why := fmt.Sprintf("the level-%d table at PA %#x is not memory (synchronous External abort)", level, leaf.PA&^(1<<d.format.Granule.Bits()-1))
		return skipTable(level, why)
	}
	size := d.entryBits(level)
	switch {
	case leaf.Kind == desc.Invalid:
		return size, nil, ""
	case leaf.Kind == desc.Reserved:
		return size, &Range{Level: level, Kind: leaf.Kind, Desc: leaf.Desc, Fault: "reserved descriptor encoding (0b01 at level 3): translation fault"}, ""
	case f.Kind == vmsa.FaultTranslation && leaf.Kind == desc.Block:
		return size, &Range{Level: level, Kind: leaf.Kind, Desc: leaf.Desc, Fault: fmt.Sprintf("block descriptor not allowed at level %d: translation fault", level)}, ""
	case f.Kind == vmsa.FaultAddressSize && leaf.Kind == desc.Table:
		return size, &Range{Level: level, Kind: leaf.Kind, Desc: leaf.Desc, Fault: fmt.Sprintf("next-level table address %#x beyond the output size: address size fault", leaf.OA)}, ""
	case f.Kind == vmsa.FaultAddressSize:
		return size, &Range{Level: level, Kind: leaf.Kind, Desc: leaf.Desc, OA: leaf.OA, Fault: fmt.Sprintf("output address %#x beyond the output size: address size fault", leaf.OA)}, ""
	}
	return size, &Range{Level: level, Kind: leaf.Kind, Desc: leaf.Desc, Fault: f.String()}, ""
}

// firstLevel returns the level of the first own-stage step (the root).
func (d *dumper) firstLevel(tr *vmsa.Trace) int8 {
	for _, s := range tr.Steps {
		if s.Stage == d.stage && !s.ForS1Walk {
			return s.Level
		}
	}
	return 0
}

// registerFault explains a fault taken before any descriptor was read.
func registerFault(f vmsa.Fault) string {
	switch f.Kind {
	case vmsa.FaultTranslation:
		return "the walk faults before reading a descriptor (TxSZ out of range, the range disabled by EPDn/E0PDn, or an invalid stage-2 configuration): translation fault level 0"
	case vmsa.FaultAddressSize:
		return "the table base address is beyond the output size: address size fault level 0"
	}
	return "the walk faults before reading a descriptor: " + f.String()
}

// attrBits returns the descriptor's bits that are not output address or
// type: what must match for two leaves to coalesce.
func (d *dumper) attrBits(v uint64, level int) uint64 {
	oa := uint64(0x0000_ffff_ffff_ffff) &^ (1<<d.format.LeafBits(level) - 1)
	return v &^ (oa | 3)
}

// add appends r, merging it into the previous range when they continue
// each other.
func (d *dumper) add(r Range) {
	rs := d.t.Ranges
	if n := len(rs); n > 0 {
		p := &rs[n-1]
		same := p.End == r.Start && p.Level == r.Level && p.Kind == r.Kind && p.Fault == r.Fault &&
			p.Perms == r.Perms && p.Attrs == r.Attrs
		if same && r.Fault == "" {
			same = p.OA+p.Size() == r.OA && d.attrBits(p.Desc, p.Level) == d.attrBits(r.Desc, r.Level)
		}
		if same {
			p.End = r.End
			p.Leaves++
			return
		}
	}
	if r.Leaves == 0 {
		r.Leaves = 1
	}
	d.t.Ranges = append(rs, r)
}
