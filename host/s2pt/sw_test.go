package s2pt

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// TestMapSW: the software bits MapSW asks for are in the leaves Map
// writes (a page and a block), in bits [58:55], and nowhere else.
func TestMapSW(t *testing.T) {
	tm, err := NewFlatTables(0x4000_0000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := New(Config{IPABits: 40, Granule: sysreg.Granule4K, MMFR0: sysreg.DefaultMMFR0, MMFR1: sysreg.DefaultMMFR1}, tm, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := vm.NewCache()
	if err := c.Topup(8); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		ipa  mem.IPA
		size uint64
		sw   uint8
	}{{0x1000, 4096, 0xa}, {0x20_0000, 2 << 20, 0x5}} {
		if err := vm.Map(c, m.ipa, mem.PA(m.ipa)+0x1_0000_0000, m.size, ProtR, MapBlocks|MapSW(m.sw)); err != nil {
			t.Fatal(err)
		}
		d, _, err := vm.Lookup(m.ipa)
		if err != nil || SW(d) != m.sw || d>>55&0xf != uint64(m.sw) {
			t.Errorf("IPA %#x: descriptor %#x (%v), want software bits %#x", uint64(m.ipa), d, err, m.sw)
		}
	}
	if d, _, _ := vm.Lookup(0x3000); SW(d) != 0 {
		t.Errorf("an unmapped entry has software bits %#x", SW(d))
	}
}
