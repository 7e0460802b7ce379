package vmsa

import "github.com/nestmmu/nestmmu/arm64/desc"

// decodeCacheNibble decodes one MAIR Normal-memory nibble (outer or inner).
func decodeCacheNibble(n uint8) (CacheAttrs, bool) {
	switch {
	case n == 0b0100:
		return CacheAttrs{Attrs: NonCacheable}, true
	case n>>2 == 0b00 && n&3 != 0:
		return CacheAttrs{Attrs: WriteThrough, Hints: n & 3, Transient: true}, true
	case n>>2 == 0b01:
		return CacheAttrs{Attrs: WriteBack, Hints: n & 3, Transient: true}, true
	case n>>2 == 0b10:
		return CacheAttrs{Attrs: WriteThrough, Hints: n & 3}, true
	case n>>2 == 0b11:
		return CacheAttrs{Attrs: WriteBack, Hints: n & 3}, true
	}
	return CacheAttrs{}, false
}

// DecodeMAIR decodes one MAIR attribute byte (AArch64.S1DecodeMemAttrs).
// Encodings the architecture leaves UNPREDICTABLE, and the FEAT_XS/MTE
// special encodings 0x40, 0xa0 and 0xf0, keep their raw value for PAR.
func DecodeMAIR(attr uint8) MemAttrs {
	hi, lo := attr>>4, attr&0xf
	if hi == 0 {
		if lo&3 == 0 {
			return MemAttrs{Type: Device, Device: lo >> 2, XS: true}
		}
		// 0b0000dd01 is Device with XS=0 (FEAT_XS); others UNPREDICTABLE.
		return MemAttrs{Type: Device, Device: lo >> 2, XS: lo&3 != 1, Raw: attr, RawValid: lo&3 != 1}
	}
	switch attr {
	case 0x40:
		nc := CacheAttrs{Attrs: NonCacheable}
		return MemAttrs{Type: Normal, Inner: nc, Outer: nc, Raw: attr, RawValid: true}
	case 0xa0:
		wt := CacheAttrs{Attrs: WriteThrough, Hints: 2}
		return MemAttrs{Type: Normal, Inner: wt, Outer: wt, Raw: attr, RawValid: true}
	case 0xf0:
		wb := CacheAttrs{Attrs: WriteBack, Hints: 3}
		return MemAttrs{Type: Normal, Inner: wb, Outer: wb, Raw: attr, RawValid: true}
	}
	outer, ok1 := decodeCacheNibble(hi)
	inner, ok2 := decodeCacheNibble(lo)
	m := MemAttrs{Type: Normal, Inner: inner, Outer: outer}
	if !ok1 || !ok2 {
		m.Raw, m.RawValid = attr, true
	}
	return m
}

func encodeCacheNibble(c CacheAttrs) uint8 {
	switch c.Attrs {
	case WriteThrough:
		if c.Transient {
			return c.Hints & 3
		}
		return 0b1000 | c.Hints&3
	case WriteBack:
		if c.Transient {
			return 0b0100 | c.Hints&3
		}
		return 0b1100 | c.Hints&3
	}
	return 0b0100
}

// EncodePARAttrs returns the PAR_EL1.ATTR byte for m (EncodePARAttrs).
func EncodePARAttrs(m MemAttrs) uint8 {
	if m.RawValid {
		return m.Raw
	}
	if m.Type == Device {
		a := m.Device << 2
		if !m.XS {
			a |= 1
		}
		return a
	}
	return encodeCacheNibble(m.Outer)<<4 | encodeCacheNibble(m.Inner)
}

// PARShareability is PAREncodeShareability: Device and Normal
// Non-cacheable memory report Outer Shareable.
func PARShareability(m MemAttrs) uint8 {
	if m.Type == Device || (m.Inner.Attrs == NonCacheable && m.Outer.Attrs == NonCacheable) {
		return OuterShareable
	}
	return m.Shareability
}

// effectiveShareability is EffectiveShareability.
func effectiveShareability(m MemAttrs) MemAttrs {
	if m.Type == Device || (m.Inner.Attrs == NonCacheable && m.Outer.Attrs == NonCacheable) {
		m.Shareability = OuterShareable
	}
	return m
}

// s1MemAttrs computes the stage-1 output attributes of a leaf (p's MAIR
// attributes decoded by s1Params.derive).
func s1MemAttrs(p *s1Params, d desc.S1, acc Access) MemAttrs {
	m := p.attrs[d.AttrIndx()&7]
	sh := d.SH()
	if p.ds {
		sh = p.sh // FEAT_LPA2: descriptor bits [9:8] are OA bits
	}
	m.Shareability = uint8(sh)
	nc := CacheAttrs{Attrs: NonCacheable}
	switch {
	case acc.Kind == Fetch && (m.Type == Device || !p.sctlr.I()):
		m = MemAttrs{Type: Normal, Inner: nc, Outer: nc, XS: m.XS, Shareability: m.Shareability}
	case acc.Kind != Fetch && m.Type == Normal && !p.sctlr.C():
		// SCTLR_ELx.C=0: stage-1 Normal data accesses are Non-cacheable.
		m = MemAttrs{Type: Normal, Inner: nc, Outer: nc, XS: m.XS, Shareability: m.Shareability}
	}
	return effectiveShareability(m)
}

// s2MemAttrs decodes a stage-2 leaf's own attributes (FWB=0 format).
func s2MemAttrs(p *s2Params, d desc.S2) MemAttrs {
	ma := uint8(d.MemAttr())
	sh := uint8(d.SH())
	if p.ds {
		sh = uint8(p.sh)
	}
	if p.fwb {
		// Interpreted against stage 1 in combineS1S2.
		return MemAttrs{Type: Normal, Shareability: sh, Raw: ma}
	}
	if ma>>2 == 0 {
		return MemAttrs{Type: Device, Device: ma & 3, XS: true, Shareability: sh}
	}
	dec := func(v uint8) CacheAttrs {
		switch v {
		case 1:
			return CacheAttrs{Attrs: NonCacheable}
		case 2:
			return CacheAttrs{Attrs: WriteThrough}
		case 3:
			return CacheAttrs{Attrs: WriteBack}
		}
		// MemAttr[1:0]=00 with MemAttr[3:2]!=00 is reserved: treat as
		// Non-cacheable (CONSTRAINED UNPREDICTABLE).
		return CacheAttrs{Attrs: NonCacheable}
	}
	return MemAttrs{Type: Normal, Outer: dec(ma >> 2), Inner: dec(ma & 3), Shareability: sh}
}

// combineShareability is S2CombineS1Shareability.
func combineShareability(a, b uint8) uint8 {
	switch {
	case a == OuterShareable || b == OuterShareable:
		return OuterShareable
	case a == InnerShareable || b == InnerShareable:
		return InnerShareable
	}
	return NonShareable
}

func combineHints(s1, s2 CacheAttrs) CacheAttrs {
	var c CacheAttrs
	switch {
	case s1.Attrs == NonCacheable || s2.Attrs == NonCacheable:
		c.Attrs = NonCacheable
	case s1.Attrs == WriteThrough || s2.Attrs == WriteThrough:
		c.Attrs = WriteThrough
	default:
		c.Attrs = WriteBack
	}
	if c.Attrs != NonCacheable {
		// Stage 2 assigns no allocation hints: they come from stage 1.
		c.Hints, c.Transient = s1.Hints, s1.Transient
	}
	return c
}

// combineS1S2 is the attribute half of AArch64.S2Translate: HCR_EL2.CD,
// then S2CombineS1MemAttrs (FWB=0) or AArch64.S2ApplyFWBMemAttrs (FWB=1).
func combineS1S2(p *s2Params, s1, s2 MemAttrs, d desc.S2) MemAttrs {
	nc := CacheAttrs{Attrs: NonCacheable}
	var m MemAttrs
	if p.fwb {
		ma := uint8(d.MemAttr())
		switch {
		case ma&4 == 0: // stage-2 Device, whatever stage 1 says
			dev := ma & 3
			if s1.Type == Device && s1.Device < dev {
				dev = s1.Device
			}
			m = MemAttrs{Type: Device, Device: dev, XS: s1.XS || s1.Type != Device}
		case ma&3 == 3: // stage-1 attributes
			m = s1
			m.RawValid = false
			if s1.RawValid {
				m.Raw, m.RawValid = s1.Raw, true
			}
		case ma&3 == 2: // forced Write-Back
			wb := CacheAttrs{Attrs: WriteBack, Hints: 3}
			in, out := wb, wb
			if s1.Type == Normal && s1.Inner.Attrs != NonCacheable {
				in.Hints, in.Transient = s1.Inner.Hints, s1.Inner.Transient
			}
			if s1.Type == Normal && s1.Outer.Attrs != NonCacheable {
				out.Hints, out.Transient = s1.Outer.Hints, s1.Outer.Transient
			}
			m = MemAttrs{Type: Normal, Inner: in, Outer: out}
		default: // Non-cacheable unless stage 1 is Device
			if s1.Type == Device {
				m = s1
			} else {
				m = MemAttrs{Type: Normal, Inner: nc, Outer: nc, XS: s1.XS}
			}
		}
		if p.cd && m.Type == Normal {
			m = MemAttrs{Type: Normal, Inner: nc, Outer: nc, XS: m.XS}
		}
	} else {
		if p.cd && s2.Type == Normal {
			// HCR_EL2.CD: stage-2 Normal data accesses are Non-cacheable.
			s2 = MemAttrs{Type: Normal, Inner: nc, Outer: nc, Shareability: s2.Shareability}
		}
		switch {
		case s1.Type == Device && s2.Type == Device:
			m = MemAttrs{Type: Device, Device: min(s1.Device, s2.Device), XS: s1.XS}
		case s1.Type == Device:
			m = s1
		case s2.Type == Device:
			m = s2
		default:
			m = MemAttrs{Type: Normal, Inner: combineHints(s1.Inner, s2.Inner), Outer: combineHints(s1.Outer, s2.Outer), XS: s1.XS}
			if s1.RawValid && m.Inner == s1.Inner && m.Outer == s1.Outer {
				m.Raw, m.RawValid = s1.Raw, true
			}
		}
	}
	m.Shareability = combineShareability(s1.Shareability, s2.Shareability)
	return effectiveShareability(m)
}
