package s2pt

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// TestHotPathsDoNotAllocate: walks over existing tables allocate nothing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	r := newRig(t, defaultCfg(40, sysreg.Granule4K), 16*mib)
	r.mapRange(0, 0x4000_0000, 4*mib, ProtR|ProtW, 0)
	r.unmap(mem.IPA(2*mib+4096), 2*mib-4096) // the second level-3 table holds one page
	r.topup(8)
	vm, c := r.vm, r.c
	cases := map[string]func(){
		"TestYoung":    func() { _, _ = vm.TestYoung(0, 4*mib) },
		"MkOld":        func() { _, _ = vm.MkOld(0, 64*kib) },
		"MkYoung":      func() { _, _ = vm.MkYoung(8192) },
		"WriteProtect": func() { _ = vm.WriteProtect(0, 64*kib) },
		"Relax":        func() { _ = vm.Relax(c, 0, 64*kib, ProtW) },
		"Lookup":       func() { _, _, _ = vm.Lookup(12345) },
		"Map+Unmap page": func() {
			_ = vm.Unmap(8192, 4096)
			_ = vm.Map(c, 8192, 0x4000_2000, 4096, ProtR|ProtW, 0)
		},
		"Map+UnmapExact page": func() {
			_ = vm.UnmapExact(c, 8192, 4096)
			_ = vm.Map(c, 8192, 0x4000_2000, 4096, ProtR|ProtW, 0)
		},
		"Unmap+Map of a table's last page": func() {
			_ = vm.Unmap(mem.IPA(2*mib), 4096)
			_ = vm.Map(c, mem.IPA(2*mib), 0x4020_0000, 4096, ProtR|ProtW, 0)
		},
	}
	for name, f := range cases {
		f()
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}

// archMin returns the architectural minimum of table bytes to map size
// bytes with leaves of leafBits: one table per entry of the level above the
// leaves (and so on up to the root), the root counted as the layout's.
func archMin(l Layout, size uint64, leafLevel int) uint64 {
	total := l.RootBytes
	for lvl := leafLevel; lvl > l.StartLevel; lvl-- {
		// Tables at lvl needed to hold the leaves (or tables) below.
		span := uint64(1) << l.leafBits(lvl-1)
		total += (size + span - 1) / span * l.TableBytes
	}
	return total
}

// benchMapUnmap maps and unmaps size bytes at ipa to pa with the given
// flags, as a hypervisor does it: top up the cache, map, unmap (which
// frees the tables again), all timed, with the tables in a host/hostmem
// arena. It reports the table bytes the mapping used (per GiB) and the
// architectural minimum.
func benchMapUnmap(b *testing.B, cfg Config, ipa mem.IPA, pa mem.PA, size uint64, flags MapFlags, leafLevel int) {
	a, err := hostmem.New(hostmem.Config{Size: 64 * mib})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	vm, err := New(cfg, ArenaTables{Arena: a}, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := vm.NewCache()
	need := vm.MapPagesNeeded(ipa, pa, size, flags)
	var used uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Topup(need); err != nil {
			b.Fatal(err)
		}
		if err := vm.Map(c, ipa, pa, size, ProtR|ProtW, flags); err != nil {
			b.Fatal(err)
		}
		used = vm.Stats().TableBytes
		if err := vm.Unmap(ipa, size); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gibs := float64(size) / float64(gib)
	b.ReportMetric(float64(used)/gibs, "tableB/GiB")
	b.ReportMetric(float64(archMin(vm.Layout(), size, leafLevel))/gibs, "minB/GiB")
}

func BenchmarkMapUnmap1GiB(b *testing.B) {
	c4 := defaultCfg(40, sysreg.Granule4K)
	c64 := defaultCfg(42, sysreg.Granule64K)
	for _, bc := range []struct {
		name  string
		cfg   Config
		flags MapFlags
		leaf  int
	}{
		{"4K-pages", c4, 0, 3},
		{"4K-2M-blocks", c4, MapBlocks, 2},
		{"4K-1G-blocks", c4, MapBlocks, 1},
		{"64K-512M-blocks", c64, MapBlocks, 2},
		{"64K-pages", c64, 0, 3},
	} {
		cfg := bc.cfg
		b.Run(bc.name, func(b *testing.B) {
			pa := mem.PA(1 << 34)
			if bc.name == "4K-2M-blocks" {
				// Only 2M: an IPA/PA pair congruent modulo 2M but not
				// 1G, so no level-1 block is possible.
				pa += 2 << 20
			}
			benchMapUnmap(b, cfg, 1<<30, pa, gib, bc.flags, bc.leaf)
		})
	}
}

// BenchmarkTestYoung1GiB measures an aging pass over 1 GiB of 4K pages.
func BenchmarkTestYoung1GiB(b *testing.B) {
	tm, _ := NewFlatTables(tableBase, 64*mib)
	vm, err := New(defaultCfg(40, sysreg.Granule4K), tm, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := vm.NewCache()
	if err := c.Topup(vm.MapPagesNeeded(0, 0, gib, 0)); err != nil {
		b.Fatal(err)
	}
	if err := vm.Map(c, 0, 0, gib, ProtR, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := vm.MkOld(0, gib); err != nil {
			b.Fatal(err)
		}
	}
}
