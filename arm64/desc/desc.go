// Package desc encodes and decodes VMSAv8-64 translation table descriptors
// (64-bit formats) for the 4K, 16K and 64K granules, at stage 1 and stage 2:
// the descriptor type at a level, the output address including the 52-bit
// forms (FEAT_LPA with 64K, FEAT_LPA2 with DS=1), and the attribute fields.
//
// S1 and S2 are distinct types so a stage-2 descriptor cannot be mistaken
// for a stage-1 one. Format carries what the output-address layout depends
// on. Nothing here checks whether a block is legal at a level for an
// implementation: that is the walker's AArch64.BlockDescSupported.
package desc

import (
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// Format is what the descriptor layout depends on.
type Format struct {
	Granule sysreg.Granule
	// DS selects the FEAT_LPA2 layout (4K/16K): OA[51:50] in bits [9:8]
	// and OA[49:48] in bits [49:48]; shareability comes from TCR/VTCR.
	DS bool
	// OA52 selects the 64K FEAT_LPA layout: OA[51:48] in bits [15:12]
	// (AArch64.LeafBase: used whenever PAMax is 52).
	OA52 bool
}

// Kind is a descriptor type as AArch64.DecodeDescriptorType sees it.
type Kind uint8

// Descriptor kinds.
const (
	Invalid Kind = iota
	Table
	Block
	Page
	// Reserved is bits[1:0]=0b01 at level 3.
	Reserved
)

func (k Kind) String() string {
	return [...]string{"invalid", "table", "block", "page", "reserved"}[k]
}

// KindAt returns the kind of descriptor d at level (-1..3), ignoring
// whether a block is supported at that level.
func KindAt(d uint64, level int) Kind {
	switch {
	case d&1 == 0:
		return Invalid
	case level == 3 && d&2 != 0:
		return Page
	case level == 3:
		return Reserved
	case d&2 != 0:
		return Table
	}
	return Block
}

// Stride returns the number of input-address bits resolved per level.
func (f Format) Stride() uint { return f.Granule.Bits() - 3 }

// LeafBits returns log2 of the size mapped by a leaf at level.
func (f Format) LeafBits(level int) uint {
	return f.Granule.Bits() + f.Stride()*uint(3-level)
}

// addrHigh returns output address bits [51:48] from d, per the format.
func (f Format) addrHigh(d uint64) uint64 {
	switch {
	case f.Granule == sysreg.Granule64K && f.OA52:
		return (d >> 12 & 0xf) << 48
	case f.DS && f.Granule != sysreg.Granule64K:
		return (d>>8&3)<<50 | d&(3<<48)
	}
	return 0
}

// LeafOA returns the output address of a block or page descriptor at level
// (AArch64.LeafBase).
func (f Format) LeafOA(d uint64, level int) uint64 {
	mask := uint64(0x0000_ffff_ffff_ffff) &^ (1<<f.LeafBits(level) - 1)
	return d&mask | f.addrHigh(d)
}

// TableOA returns the next-level table address of a table descriptor
// (AArch64.NextTableBase).
func (f Format) TableOA(d uint64) uint64 {
	mask := uint64(0x0000_ffff_ffff_ffff) &^ (1<<f.Granule.Bits() - 1)
	return d&mask | f.addrHigh(d)
}

// WithOA returns d with its output-address fields replaced by oa (which must
// be aligned to what the descriptor maps).
func (f Format) WithOA(d, oa uint64) uint64 {
	lowmask := uint64(0x0000_ffff_ffff_ffff) &^ (1<<f.Granule.Bits() - 1)
	d &^= lowmask
	switch {
	case f.Granule == sysreg.Granule64K && f.OA52:
		d &^= 0xf << 12
		d |= (oa >> 48 & 0xf) << 12
	case f.DS && f.Granule != sysreg.Granule64K:
		d &^= 3<<8 | 3<<48
		// FEAT_LPA2 layout (AArch64.LeafBase, AArch64.NextTableBase): OA[49:48] in bits [49:48].
		d |= (oa>>50&3)<<8 | oa&(3<<48)
	}
	return d | oa&lowmask
}

// Descriptor bit masks (DDI 0487, "VMSAv8-64 translation table format
// descriptors"). Every package uses these by name; they are untyped so
// that they apply to uint64, S1 and S2 alike.
const (
	// ValidBit is bit 0 of every descriptor.
	ValidBit = 1 << 0
	// TypeBit is bit 1: a table descriptor at levels -1 to 2, a page at
	// level 3 (clear: a block, or reserved at level 3).
	TypeBit = 1 << 1
	// AFBit is the Access flag of a block or page.
	AFBit = 1 << 10
	// DBMBit is the dirty bit modifier of a block or page.
	DBMBit = 1 << 51
	// ContigBit is the Contiguous hint of a block or page.
	ContigBit = 1 << 52
	// SWMask covers the software-use bits [58:55] of a block or page.
	SWMask = 0xf << 55
	// SHMask is the shareability field [9:8] of a block or page (output
	// address bits with FEAT_LPA2, DS=1).
	SHMask = 3 << 8

	// S1AttrIndxMask is AttrIndx[2:0], bits [4:2], of a stage-1 leaf.
	S1AttrIndxMask = 7 << 2
	// S1NSBit is the NS bit of a stage-1 leaf.
	S1NSBit = 1 << 5
	// S1AP1Bit is AP[1], EL0 access, of a stage-1 leaf.
	S1AP1Bit = 1 << 6
	// S1AP2Bit is AP[2], read-only (not dirty with DBM), of a stage-1 leaf.
	S1AP2Bit = 1 << 7
	// S1NGBit is the not-global bit of a stage-1 leaf.
	S1NGBit = 1 << 11
	// S1PXNBit is PXN of a stage-1 leaf.
	S1PXNBit = 1 << 53
	// S1UXNBit is UXN (XN in one-range regimes) of a stage-1 leaf.
	S1UXNBit = 1 << 54
	// S1PXNTableBit, S1UXNTableBit, S1APTableMask and S1NSTableBit are the
	// hierarchical controls of a stage-1 table descriptor.
	S1PXNTableBit = 1 << 59
	S1UXNTableBit = 1 << 60
	S1APTableMask = 3 << 61
	S1NSTableBit  = 1 << 63

	// S2MemAttrMask is MemAttr[3:0], bits [5:2], of a stage-2 leaf.
	S2MemAttrMask = 0xf << 2
	// S2APReadBit is S2AP[0], read access, of a stage-2 leaf.
	S2APReadBit = 1 << 6
	// S2APWriteBit is S2AP[1], write access (dirty with DBM), of a
	// stage-2 leaf.
	S2APWriteBit = 1 << 7
	// S2XNMask is XN[1:0], bits [54:53], of a stage-2 leaf.
	S2XNMask = 3 << 53
)

// S1 is a stage-1 descriptor.
type S1 uint64

// Valid is bit 0.
func (d S1) Valid() bool { return d&ValidBit != 0 }

// AttrIndx indexes MAIR (leaf).
func (d S1) AttrIndx() uint { return uint(Field(uint64(d), S1AttrIndxMask)) }

// NS is the non-secure bit (leaf).
func (d S1) NS() bool { return d&S1NSBit != 0 }

// AP returns AP[2:1] (leaf): bit 1 read-only, bit 0 EL0 access.
func (d S1) AP() uint { return uint(Field(uint64(d), S1AP2Bit|S1AP1Bit)) }

// SH is the shareability field (leaf, DS=0).
func (d S1) SH() uint { return uint(Field(uint64(d), SHMask)) }

// AF is the access flag (leaf).
func (d S1) AF() bool { return d&AFBit != 0 }

// NG is the not-global bit (leaf).
func (d S1) NG() bool { return d&S1NGBit != 0 }

// DBM is the dirty bit modifier (leaf).
func (d S1) DBM() bool { return d&DBMBit != 0 }

// Contiguous is the contiguous hint (leaf).
func (d S1) Contiguous() bool { return d&ContigBit != 0 }

// PXN is privileged execute-never (leaf, two-range regimes).
func (d S1) PXN() bool { return d&S1PXNBit != 0 }

// UXN is unprivileged execute-never, or XN in one-range regimes (leaf).
func (d S1) UXN() bool { return d&S1UXNBit != 0 }

// PXNTable is the hierarchical PXN (table).
func (d S1) PXNTable() bool { return d&S1PXNTableBit != 0 }

// UXNTable is the hierarchical UXN, or XNTable in one-range regimes (table).
func (d S1) UXNTable() bool { return d&S1UXNTableBit != 0 }

// APTable returns APTable[1:0] (table).
func (d S1) APTable() uint { return uint(Field(uint64(d), S1APTableMask)) }

// NSTable is the hierarchical NS (table).
func (d S1) NSTable() bool { return d&S1NSTableBit != 0 }

// S1Leaf describes a stage-1 block or page for encoding.
type S1Leaf struct {
	OA       uint64
	AttrIndx uint
	NS       bool
	AP       uint // AP[2:1]
	SH       uint
	AF       bool
	NG       bool
	DBM      bool
	Contig   bool
	PXN      bool
	UXN      bool
}

// Encode returns the descriptor for a leaf at level (a page at level 3).
func (l S1Leaf) Encode(f Format, level int) S1 {
	d := uint64(ValidBit)
	if level == 3 {
		d |= TypeBit
	}
	d |= Put(uint64(l.AttrIndx), S1AttrIndxMask)
	d |= flag(l.NS, S1NSBit)
	d |= Put(uint64(l.AP), S1AP2Bit|S1AP1Bit)
	if !f.DS {
		d |= Put(uint64(l.SH), SHMask)
	}
	d |= flag(l.AF, AFBit) | flag(l.NG, S1NGBit) | flag(l.DBM, DBMBit) | flag(l.Contig, ContigBit)
	d |= flag(l.PXN, S1PXNBit) | flag(l.UXN, S1UXNBit)
	return S1(f.WithOA(d, l.OA))
}

// S1Table describes a stage-1 table descriptor for encoding.
type S1Table struct {
	Addr     uint64
	PXNTable bool
	UXNTable bool
	APTable  uint
	NSTable  bool
}

// Encode returns the table descriptor.
func (t S1Table) Encode(f Format) S1 {
	d := uint64(ValidBit | TypeBit)
	d |= flag(t.PXNTable, S1PXNTableBit) | flag(t.UXNTable, S1UXNTableBit)
	d |= Put(uint64(t.APTable), S1APTableMask) | flag(t.NSTable, S1NSTableBit)
	return S1(f.WithOA(d, t.Addr))
}

// S2 is a stage-2 descriptor.
type S2 uint64

// Valid is bit 0.
func (d S2) Valid() bool { return d&ValidBit != 0 }

// MemAttr returns MemAttr[3:0] (leaf).
func (d S2) MemAttr() uint { return uint(Field(uint64(d), S2MemAttrMask)) }

// S2AP returns S2AP[1:0] (leaf): bit 0 read, bit 1 write.
func (d S2) S2AP() uint { return uint(Field(uint64(d), S2APWriteBit|S2APReadBit)) }

// SH is the shareability field (leaf, DS=0).
func (d S2) SH() uint { return uint(Field(uint64(d), SHMask)) }

// AF is the access flag (leaf).
func (d S2) AF() bool { return d&AFBit != 0 }

// DBM is the dirty bit modifier (leaf).
func (d S2) DBM() bool { return d&DBMBit != 0 }

// Contiguous is the contiguous hint (leaf).
func (d S2) Contiguous() bool { return d&ContigBit != 0 }

// XN returns XN[1:0] (bits [54:53]); without FEAT_XNX only bit 1 counts.
func (d S2) XN() uint { return uint(Field(uint64(d), S2XNMask)) }

// SW returns the software-use bits [58:55] (leaf).
func (d S2) SW() uint { return uint(Field(uint64(d), SWMask)) }

// S2Leaf describes a stage-2 block or page for encoding.
type S2Leaf struct {
	OA      uint64
	MemAttr uint
	S2AP    uint
	SH      uint
	AF      bool
	DBM     bool
	Contig  bool
	XN      uint
	// SW holds the software-use bits [58:55].
	SW uint
}

// Encode returns the descriptor for a leaf at level.
func (l S2Leaf) Encode(f Format, level int) S2 {
	d := uint64(ValidBit)
	if level == 3 {
		d |= TypeBit
	}
	d |= Put(uint64(l.MemAttr), S2MemAttrMask) | Put(uint64(l.S2AP), S2APWriteBit|S2APReadBit)
	if !f.DS {
		d |= Put(uint64(l.SH), SHMask)
	}
	d |= flag(l.AF, AFBit) | flag(l.DBM, DBMBit) | flag(l.Contig, ContigBit)
	d |= Put(uint64(l.XN), S2XNMask) | Put(uint64(l.SW), SWMask)
	return S2(f.WithOA(d, l.OA))
}

// S2Table returns a stage-2 table descriptor pointing at addr.
func S2Table(f Format, addr uint64) S2 {
	return S2(f.WithOA(ValidBit|TypeBit, addr))
}

// Field returns the field of d under mask, shifted down to bit 0.
func Field(d, mask uint64) uint64 { return d & mask >> bits.TrailingZeros64(mask) }

// Put returns v placed in the field under mask (bits of v beyond the
// field's width are dropped).
func Put(v, mask uint64) uint64 { return v << bits.TrailingZeros64(mask) & mask }

func flag(b bool, bit uint64) uint64 {
	if b {
		return bit
	}
	return 0
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
