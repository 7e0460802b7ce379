package desc

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// FuzzOARoundTrip: for every granule and layout, writing an aligned output
// address into any descriptor and reading it back gives the address, and
// leaves every non-address bit alone.
func FuzzOARoundTrip(f *testing.F) {
	f.Add(uint64(0x0040_0000_4000_0703), uint64(0x4000_1000), uint8(0), int8(3))
	f.Add(^uint64(0), uint64(0x000f_ffff_ffff_0000), uint8(7), int8(1))
	f.Fuzz(func(t *testing.T, d, oa uint64, sel uint8, lvl int8) {
		g := []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K}[sel%3]
		fm := Format{Granule: g, DS: sel&4 != 0 && g != sysreg.Granule64K, OA52: sel&8 != 0 && g == sysreg.Granule64K}
		level := int(lvl%4+4) % 4
		width := uint(48)
		if fm.DS || fm.OA52 {
			width = 52
		}
		oa &= (1<<width - 1) &^ (1<<fm.LeafBits(level) - 1)
		nd := fm.WithOA(d, oa)
		if got := fm.LeafOA(nd, level); got != oa {
			t.Fatalf("%+v level %d: LeafOA(WithOA(%#x, %#x)) = %#x", fm, level, d, oa, got)
		}
		// Bits outside the address fields are preserved.
		addrBits := uint64(0x0000_ffff_ffff_ffff) &^ (1<<g.Bits() - 1)
		switch {
		case fm.OA52:
			addrBits |= 0xf << 12
		case fm.DS:
			addrBits |= 3<<8 | 3<<48
		}
		if nd&^addrBits != d&^addrBits {
			t.Fatalf("%+v: WithOA changed non-address bits: %#x -> %#x", fm, d, nd)
		}
	})
}
