package vmsa_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// TestMAIRRoundTrip: every defined MAIR attribute encoding reported back in
// PAR_EL1.ATTR (same encoding, EncodePARAttrs) is unchanged when stage 1
// alone translates: Device 0b0000dd00 and (FEAT_XS) 0b0000dd01; Normal
// 0boooo_iiii with both nibbles non-zero; and 0x40, 0xa0, 0xf0.
func TestMAIRRoundTrip(t *testing.T) {
	for a := 0; a < 256; a++ {
		hi, lo := a>>4, a&0xf
		defined := (hi == 0 && lo&2 == 0) || (hi != 0 && lo != 0) || a == 0x40 || a == 0xa0 || a == 0xf0
		if !defined {
			continue
		}
		m := vmsa.DecodeMAIR(uint8(a))
		if got := vmsa.EncodePARAttrs(m); got != uint8(a) {
			t.Errorf("MAIR %#02x -> %+v -> %#02x", a, m, got)
		}
		// Decoding: type, and for Normal the cacheability of each nibble.
		if hi == 0 {
			if m.Type != vmsa.Device || m.Device != uint8(lo>>2) {
				t.Errorf("MAIR %#02x: %+v, want Device type %d", a, m, lo>>2)
			}
			continue
		}
		if m.Type != vmsa.Normal {
			t.Errorf("MAIR %#02x: %+v, want Normal", a, m)
		}
		if a == 0x40 || a == 0xa0 || a == 0xf0 {
			continue
		}
		for _, c := range []struct {
			n   int
			got vmsa.CacheAttrs
		}{{hi, m.Outer}, {lo, m.Inner}} {
			var want vmsa.Cacheability
			switch {
			case c.n == 0b0100:
				want = vmsa.NonCacheable
			case c.n>>2 == 0b00 || c.n>>2 == 0b10:
				want = vmsa.WriteThrough
			default:
				want = vmsa.WriteBack
			}
			if c.got.Attrs != want {
				t.Errorf("MAIR %#02x nibble %04b: %v, want %v", a, c.n, c.got.Attrs, want)
			}
			if want != vmsa.NonCacheable && (c.got.Hints != uint8(c.n&3) || c.got.Transient != (c.n>>3 == 0)) {
				t.Errorf("MAIR %#02x nibble %04b: hints %d transient %v", a, c.n, c.got.Hints, c.got.Transient)
			}
		}
	}
}

// TestPARShareability: PAREncodeShareability reports Device and Normal
// Inner+Outer Non-cacheable as Outer Shareable, others as they are.
func TestPARShareability(t *testing.T) {
	nc := vmsa.CacheAttrs{Attrs: vmsa.NonCacheable}
	wb := vmsa.CacheAttrs{Attrs: vmsa.WriteBack, Hints: 3}
	cases := []struct {
		m    vmsa.MemAttrs
		want uint8
	}{
		{vmsa.MemAttrs{Type: vmsa.Device, Shareability: 0}, 2},
		{vmsa.MemAttrs{Type: vmsa.Normal, Inner: nc, Outer: nc, Shareability: 3}, 2},
		{vmsa.MemAttrs{Type: vmsa.Normal, Inner: wb, Outer: nc, Shareability: 3}, 3},
		{vmsa.MemAttrs{Type: vmsa.Normal, Inner: nc, Outer: wb, Shareability: 0}, 0},
		{vmsa.MemAttrs{Type: vmsa.Normal, Inner: wb, Outer: wb, Shareability: 2}, 2},
	}
	for _, c := range cases {
		if got := vmsa.PARShareability(c.m); got != c.want {
			t.Errorf("%+v: %d, want %d", c.m, got, c.want)
		}
	}
}

// TestFaultFSC: the fault status codes (ESR_ELx.DFSC, PAR_EL1.FST).
func TestFaultFSC(t *testing.T) {
	cases := []struct {
		k     vmsa.FaultKind
		level int8
		want  uint8
	}{
		{vmsa.FaultAddressSize, -1, 0b101001}, {vmsa.FaultAddressSize, 0, 0b000000}, {vmsa.FaultAddressSize, 3, 0b000011},
		{vmsa.FaultTranslation, -1, 0b101011}, {vmsa.FaultTranslation, 0, 0b000100}, {vmsa.FaultTranslation, 2, 0b000110},
		{vmsa.FaultAccessFlag, 0, 0b001000}, {vmsa.FaultAccessFlag, 3, 0b001011},
		{vmsa.FaultPermission, 0, 0b001100}, {vmsa.FaultPermission, 1, 0b001101},
		{vmsa.FaultSyncExternalOnWalk, -1, 0b010011}, {vmsa.FaultSyncExternalOnWalk, 0, 0b010100}, {vmsa.FaultSyncExternalOnWalk, 3, 0b010111},
		{vmsa.FaultNone, 0, 0},
	}
	for _, c := range cases {
		f := vmsa.Fault{Kind: c.k, Level: c.level}
		if got := f.FSC(); got != c.want {
			t.Errorf("%v level %d: FSC %#06b, want %#06b", c.k, c.level, got, c.want)
		}
		if f.String() == "" || c.k.String() == "" {
			t.Errorf("%v: empty description", c.k)
		}
	}
	for _, r := range []vmsa.Regime{vmsa.RegimeEL10, vmsa.RegimeEL20, vmsa.RegimeEL2, vmsa.Regime(9)} {
		if r.String() == "" {
			t.Errorf("regime %d has no name", r)
		}
	}
}
