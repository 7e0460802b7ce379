package bench

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// TableBytes is comparison 4: the stage-2 table bytes host/s2pt uses to
// map 1 GiB (root included) against the architectural minimum for the
// same leaves (the root, and one table under every entry of each level
// above the leaves that the range touches). Goal: at most 1.01x.
func TableBytes() (Comparison, error) {
	c := Comparison{Title: "stage-2 table bytes per GiB mapped (host/s2pt) against the architectural minimum",
		Method: "map 1 GiB at a 1 GiB-aligned IPA (PA congruent for the leaves named, not for larger ones), read Stats().TableBytes (tables kept empty included); the minimum computed from the layout"}
	regs := vmsa.DefaultRegs()
	for _, tc := range []struct {
		name  string
		ipa   uint
		g     sysreg.Granule
		flags s2pt.MapFlags
		leaf  uint64
		churn bool // a page mapped and unmapped far away first: its tables kept empty count
	}{
		{"4K granule, 40-bit IPA, 4K pages", 40, sysreg.Granule4K, 0, 4 << 10, false},
		{"4K granule, 48-bit IPA, 4K pages", 48, sysreg.Granule4K, 0, 4 << 10, false},
		{"4K granule, 48-bit IPA, 4K pages, a page unmapped elsewhere (its tables kept empty)", 48, sysreg.Granule4K, 0, 4 << 10, true},
		{"4K granule, 48-bit IPA, 2M blocks", 48, sysreg.Granule4K, s2pt.MapBlocks, 2 << 20, false},
		{"4K granule, 48-bit IPA, 1G block", 48, sysreg.Granule4K, s2pt.MapBlocks, 1 << 30, false},
		{"16K granule, 48-bit IPA, 16K pages", 48, sysreg.Granule16K, 0, 16 << 10, false},
		{"64K granule, 42-bit IPA, 64K pages", 42, sysreg.Granule64K, 0, 64 << 10, false},
		{"64K granule, 42-bit IPA, 512M blocks", 42, sysreg.Granule64K, s2pt.MapBlocks, 512 << 20, false},
	} {
		tm, err := s2pt.NewFlatTables(0x8000_0000, 64<<20)
		if err != nil {
			return c, err
		}
		vm, err := s2pt.New(s2pt.Config{IPABits: tc.ipa, Granule: tc.g, MMFR0: regs.MMFR0, MMFR1: regs.MMFR1}, tm, nil)
		if err != nil {
			return c, fmt.Errorf("%s: %w", tc.name, err)
		}
		const size = 1 << 30
		ipa, pa := mem.IPA(1<<30), mem.PA(1<<34)
		if tc.leaf < size && tc.flags&s2pt.MapBlocks != 0 {
			pa += mem.PA(tc.leaf) // congruent for these blocks, not for larger ones
		}
		cache := vm.NewCache()
		if tc.churn {
			// In another level-0 entry: the kept level-3 table holds
			// its level-2 and level-1 tables too.
			const far = mem.IPA(1) << 46
			if err := cache.Topup(vm.MapPagesNeeded(far, pa, 4096, 0)); err != nil {
				return c, err
			}
			if err := vm.Map(cache, far, pa, 4096, s2pt.ProtR, 0); err != nil {
				return c, err
			}
			if err := vm.Unmap(far, 4096); err != nil {
				return c, err
			}
		}
		if err := cache.Topup(vm.MapPagesNeeded(ipa, pa, size, tc.flags)); err != nil {
			return c, err
		}
		if err := vm.Map(cache, ipa, pa, size, s2pt.ProtR|s2pt.ProtW, tc.flags); err != nil {
			return c, fmt.Errorf("%s: %w", tc.name, err)
		}
		used := vm.Stats().TableBytes
		min := archMin(vm.Layout(), uint64(ipa), size, tc.leaf)
		r := Row{Name: tc.name, A: "s2pt", ANs: float64(used), B: "minimum", BNs: float64(min), Unit: "bytes/GiB", Ratio: float64(used) / float64(min)}
		atMost(&r, 1.01)
		c.Rows = append(c.Rows, r)
		_ = cache.Release()
		_ = vm.Destroy()
	}
	return c, nil
}

// archMin is the fewest table bytes that map [ipa, ipa+size) with leaves
// of leaf bytes: the root, and at each level from the root's down to the
// leaves' one table under every entry of the level above that the range
// touches.
func archMin(l s2pt.Layout, ipa, size, leaf uint64) uint64 {
	total := l.RootBytes
	for lvl := l.StartLevel + 1; lvl <= 3; lvl++ {
		entry := uint64(1) << l.Format.LeafBits(lvl-1) // what one table at lvl covers
		if entry <= leaf {
			break // the leaves are at lvl-1 or above: no table at lvl
		}
		total += ((ipa+size-1)/entry - ipa/entry + 1) * l.TableBytes
	}
	return total
}
