package decode

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// BlockAllowed reports whether the architecture allows a block descriptor
// at level for the format (AArch64.BlockDescSupported): 4K at levels 1 and
// 2 (0 with DS=1), 16K at level 2 (1 with DS=1), 64K at level 2 (1 with
// 52-bit output addresses, FEAT_LPA).
func BlockAllowed(f desc.Format, level int) bool {
	switch f.Granule {
	case sysreg.Granule4K:
		return level == 1 || level == 2 || level == 0 && f.DS
	case sysreg.Granule16K:
		return level == 2 || level == 1 && f.DS
	case sysreg.Granule64K:
		return level == 2 || level == 1 && f.OA52
	}
	return false
}

var (
	s1AP  = choose("EL1 read/write, EL0 none", "EL1 and EL0 read/write", "EL1 read-only, EL0 none", "EL1 and EL0 read-only")
	s2AP  = choose("no access", "read-only", "write-only", "read/write")
	s2XN  = choose("executable at EL1 and EL0", "not executable at EL1 (PXN)", "not executable", "not executable at EL0 (UXN)")
	apTbl = choose("no effect", "no EL0 access below", "read-only below", "read-only, no EL0 access below")
)

// s2MemAttr describes a stage-2 MemAttr[3:0] with HCR_EL2.FWB=0.
func s2MemAttr(m uint64) string {
	if m>>2 == 0 {
		return "Device-" + [...]string{"nGnRnE", "nGnRE", "nGRE", "GRE"}[m&3]
	}
	if m&3 == 0 {
		return "UNPREDICTABLE (Normal, inner 0b00)"
	}
	c := [...]string{"", "Non-cacheable", "Write-Through", "Write-Back"}
	return fmt.Sprintf("Normal, outer %s, inner %s", c[m>>2], c[m&3])
}

// Descriptor decodes a translation table descriptor read at level (-1..3)
// of a stage-1 (stage 1) or stage-2 (stage 2) walk with format f.
func Descriptor(v uint64, stage, level int, f desc.Format) Decoded {
	k := desc.KindAt(v, level)
	name := fmt.Sprintf("stage-%d descriptor, level %d, %v granule", stage, level, f.Granule)
	if f.DS {
		name += ", DS=1"
	}
	if f.OA52 {
		name += ", 52-bit OA"
	}
	var layout []spec
	typ := spec{"type", 1, 0, func(uint64) string { return k.String() }}
	oaLo := uint8(f.Granule.Bits())
	if level < -1 || level > 3 || oaLo == 0 {
		return Decoded{Name: name, Value: v, Summary: "no such level or granule", Notes: []string{"levels are -1..3; granules 4K, 16K, 64K"}}
	}
	switch k {
	case desc.Invalid:
		d := apply(name, v, []spec{{"valid", 0, 0, choose("invalid: the walk takes a translation fault", "")}})
		d.Summary = "invalid (bits [63:1] are ignored by the walk, free for software)"
		d.Notes = nil
		return d
	case desc.Reserved:
		d := apply(name, v, []spec{typ})
		d.Summary = "reserved encoding 0b01 at level 3: the walk takes a translation fault"
		d.Notes = nil
		return d
	case desc.Table:
		layout = append(layout, typ, spec{"next-level table address", 47, oaLo, nil})
		if stage == 1 {
			layout = append(layout,
				spec{"PXNTable", 59, 59, on("no privileged execution below")},
				spec{"UXNTable", 60, 60, on("no unprivileged execution below (XNTable in one-range regimes)")},
				spec{"APTable", 62, 61, apTbl},
				spec{"NSTable", 63, 63, nil})
		}
	case desc.Block, desc.Page:
		layout = append(layout, typ)
		if lo := f.LeafBits(level); lo <= 47 {
			layout = append(layout, spec{"output address", 47, uint8(lo), nil})
		}
		layout = append(layout, spec{"AF", 10, 10, choose("Access flag clear: access flag fault unless hardware sets it", "accessed")},
			spec{"DBM", 51, 51, on("dirty bit modifier: hardware may make it writable")},
			spec{"Contiguous", 52, 52, on("part of a contiguous run")},
			spec{"SW", 58, 55, nil})
		if !f.DS {
			layout = append(layout, spec{"SH", 9, 8, shNames})
		} else {
			layout = append(layout, spec{"OA[51:50]", 9, 8, nil})
		}
		if stage == 1 {
			layout = append(layout,
				spec{"AttrIndx", 4, 2, func(x uint64) string { return fmt.Sprintf("MAIR Attr%d", x) }},
				spec{"NS", 5, 5, nil},
				spec{"AP", 7, 6, s1AP},
				spec{"nG", 11, 11, choose("global", "not global (ASID-tagged)")},
				spec{"PXN", 53, 53, on("privileged execute-never")},
				spec{"UXN", 54, 54, on("unprivileged execute-never (XN in one-range regimes)")})
		} else {
			layout = append(layout,
				spec{"MemAttr", 5, 2, s2MemAttr},
				spec{"S2AP", 7, 6, s2AP},
				spec{"XN", 54, 53, s2XN})
		}
	}
	if f.DS && k != desc.Invalid {
		layout = append(layout, spec{"OA[49:48]", 49, 48, nil})
	}
	if f.Granule == sysreg.Granule64K && f.OA52 && k != desc.Invalid {
		layout = append(layout, spec{"OA[51:48]", 15, 12, nil})
	}
	d := apply(name, v, layout)
	switch k {
	case desc.Table:
		d.Summary = fmt.Sprintf("table: next level at %#x", f.TableOA(v))
	case desc.Block, desc.Page:
		size := uint64(1) << f.LeafBits(level)
		d.Summary = fmt.Sprintf("%s mapping %s at output address %#x", k, textfmt.Size(size), f.LeafOA(v, level))
		if k == desc.Block && !BlockAllowed(f, level) {
			d.Summary += fmt.Sprintf(" (not a valid block at level %d for this granule: the walk takes a translation fault)", level)
		}
	}
	if stage == 2 {
		d.Notes = append(d.Notes, "MemAttr shown as with HCR_EL2.FWB=0")
	}
	return d
}
