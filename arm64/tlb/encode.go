package tlb

import "github.com/nestmmu/nestmmu/mem"

// Invalidation is one TLBI operation with its operand.
type Invalidation struct {
	Op Op
	Xt uint64
}

// TTL encodes the four-bit FEAT_TTL hint of a by-address operand
// (Xt[47:44]) for a leaf at level with a granule of 1<<granuleBits bytes:
// TTL[3:2] the granule, TTL[1:0] the level. It is 0 (no information) for
// an unknown level (< 0) and for the reserved encodings DecodeTTL treats
// as no hint.
func TTL(granuleBits uint, level int, lpa2 bool) uint64 {
	var g uint64
	switch granuleBits {
	case 12:
		g = 1
	case 14:
		g = 2
	case 16:
		g = 3
	}
	if g == 0 || level < 0 || level > 3 {
		return 0
	}
	ttl := g<<2 | uint64(level)
	if DecodeTTL(uint8(ttl), lpa2).GranuleBits == 0 {
		return 0
	}
	return ttl
}

// IPAOperandOf encodes the operand of TLBI IPAS2E1 / IPAS2LE1 for ipa:
// Xt[39:0] = IPA[51:12], Xt[47:44] = ttl.
func IPAOperandOf(ipa mem.IPA, ttl uint64) uint64 {
	return uint64(ipa)>>12&(1<<40-1) | ttl&0xf<<44
}

// MaxRangePages is the largest number of granules one range operation
// covers: (NUM+1) * 2^(5*SCALE+1) with NUM=31, SCALE=3.
const MaxRangePages = 32 << 16

// AppendIPARange appends to dst the operations that invalidate the
// stage-2 entries translating [start, start+size) with a granule of
// 1<<granuleBits bytes: RIPAS2E1 range operations (RIPAS2LE1 when
// lastLevel), largest first, and IPAS2E1 (IPAS2LE1) for a single granule
// the ranges leave, or while the start is not 64KB-aligned with LPA2
// (BaseADDR is then in 64KB units). level is the leaf level of the entries
// (the TTL hint), or < 0 when unknown. sh is the shareability qualifier
// (Op.IS, Op.OS) applied to each operation. It reports false, appending
// nothing, when the range is longer than a long batch of range
// operations should be (more than MaxRangePages granules): invalidate the
// VMID instead, as Linux does above MAX_TLBI_RANGE_PAGES.
func AppendIPARange(dst []Invalidation, start mem.IPA, size uint64, granuleBits uint, level int, lastLevel, ds, lpa2 bool, sh func(Op) Op) ([]Invalidation, bool) {
	g := uint64(1) << granuleBits
	pages := (size + uint64(start)%g + g - 1) / g
	start &^= mem.IPA(g - 1)
	if pages > MaxRangePages {
		return dst, false
	}
	single, ranged := OpIPAS2E1, OpRIPAS2E1
	if lastLevel {
		single, ranged = OpIPAS2LE1, OpRIPAS2LE1
	}
	ttl4 := TTL(granuleBits, level, lpa2)
	var ttl2, tg uint64
	if level >= 1 && level <= 3 && decodeRangeTTL(uint8(level), uint8(granuleBits), lpa2).GranuleBits != 0 {
		ttl2 = uint64(level)
	}
	switch granuleBits {
	case 12:
		tg = 1
	case 14:
		tg = 2
	case 16:
		tg = 3
	}
	unit := granuleBits
	if ds {
		unit = 16 // LPA2: BaseADDR in 64KB units
	}
	for pages > 0 {
		if pages == 1 || uint64(start)%(1<<unit) != 0 {
			dst = append(dst, Invalidation{sh(single), IPAOperandOf(start, ttl4)})
			start += mem.IPA(g)
			pages--
			continue
		}
		scale := uint(3)
		for pages>>(5*scale+1) == 0 {
			scale--
		}
		num := min(pages>>(5*scale+1), 32)
		xt := tg<<46 | uint64(scale)<<44 | (num-1)<<39 | ttl2<<37 | uint64(start)>>unit&(1<<37-1)
		dst = append(dst, Invalidation{sh(ranged), xt})
		n := num << (5*scale + 1)
		start += mem.IPA(n * g)
		pages -= n
	}
	return dst, true
}
