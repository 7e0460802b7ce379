package s2pt

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmem"
	"github.com/nestmmu/nestmmu/mem"
)

// TestConcurrentHardwareWalks runs hardware walkers (HA=1: they set AF by
// compare-and-swap) while the manager write-protects, relaxes, splits,
// collapses and unmaps. A page a walker made young must stay young unless
// it was unmapped: the manager's CAS loops never lose a hardware AF update.
// Run with -race. Tables live in a hostmem arena, as in the hypervisor.
func TestConcurrentHardwareWalks(t *testing.T) {
	a, err := hostmem.New(hostmem.Config{Size: 64 * mib})
	if err != nil {
		t.Fatalf("host arena: %v", err)
	}
	defer a.Close()
	cfg := defaultCfg(40, sysreg.Granule4K)
	cfg.HA = true
	vm, err := New(cfg, ArenaTables{a}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const region = 8 * mib
	const pages = region / 4096
	c := vm.NewCache()
	must := func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
	must(c.Topup(vm.MapPagesNeeded(0, 0x1_0000_0000, region, 0)))
	must(vm.Map(c, 0, 0x1_0000_0000, region, ProtR|ProtW, MapOld))
	regs := vmsa.DefaultRegs()
	vm.ApplyRegs(&regs)

	var touched [pages]atomic.Bool // a walker saw AF set by its access
	var stop atomic.Bool
	var walks atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w := vmsa.Walker{Mem: a}
			r := regs
			i := uint64(g)
			for !stop.Load() {
				i = (i*2654435761 + 12345) % pages
				tr := w.TranslateS2(&r, mem.IPA(i*4096), vmsa.Access{Kind: vmsa.Read, EL: 1})
				if !tr.Fault.IsFault() {
					touched[i].Store(true)
				}
				walks.Add(1)
			}
		}(g)
	}
	// The unmapped window: the last 2 MiB (pages [pages-512, pages)) is
	// unmapped at the end.
	iters := 300
	if testing.Short() {
		iters = 60
	}
	for walks.Load() < 1000 {
		runtime.Gosched()
	}
	start := walks.Load()
	for it := 0; it < iters || walks.Load()-start < 20000; it++ {
		base := mem.IPA(uint64(it%4) * 2 * mib)
		must(c.Topup(vm.SplitPagesNeeded(base, 2*mib) + 4))
		switch it % 5 {
		case 0:
			must(vm.WriteProtect(base, 2*mib))
		case 1:
			must(vm.Relax(c, base, 2*mib, ProtW))
		case 2:
			_, err := vm.Collapse(base, 2*mib)
			must(err)
		case 3:
			must(vm.Split(c, base, 2*mib))
		case 4:
			must(vm.WriteProtect(base+4096, 8192))
		}
	}
	must(vm.Unmap(mem.IPA(region-2*mib), 2*mib))
	stop.Store(true)
	wg.Wait()
	lost, young := 0, 0
	for i := uint64(0); i < pages-512; i++ {
		if !touched[i].Load() {
			continue
		}
		young++
		if y, err := vm.TestYoung(mem.IPA(i*4096), 4096); err != nil || !y {
			lost++
		}
	}
	if young == 0 {
		t.Fatal("no walk succeeded")
	}
	if lost != 0 {
		t.Fatalf("%d of %d pages made young by hardware lost their Access flag", lost, young)
	}
	must(c.Release())
	must(vm.Destroy())
	if st := a.Stats(); st.InUse != 0 {
		t.Fatalf("%d frames still in use after Destroy", st.InUse)
	}
}

// afMem simulates the hardware setting AF at the worst moment: just before
// the manager's first write to each leaf descriptor, the word's AF bit is
// set by an atomic compare-and-swap, as AArch64.S2Walk's update would.
type afMem struct {
	TableMemory // a *FlatTables, used through the interface only (no direct words)
	armed       bool
	hit         map[mem.PA]bool
	n           int
}

func (m *afMem) interfere(pa mem.PA) {
	if !m.armed || m.hit[pa] {
		return
	}
	m.hit[pa] = true
	v, _ := m.TableMemory.Read64(pa)
	if v&1 != 0 && v&desc.AFBit == 0 && v>>2&0xf != 0 { // a leaf (our tables have MemAttr != 0)
		if ok, _ := m.TableMemory.CompareAndSwap64(pa, v, v|desc.AFBit); ok {
			m.n++
		}
	}
}

func (m *afMem) Write64(pa mem.PA, v uint64) error {
	m.interfere(pa)
	return m.TableMemory.Write64(pa, v)
}

func (m *afMem) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	m.interfere(pa)
	return m.TableMemory.CompareAndSwap64(pa, old, new)
}

func TestNoLostAccessFlag(t *testing.T) {
	ops := []struct {
		name string
		op   func(vm *VM, c *Cache) error
	}{
		{"write-protect", func(vm *VM, c *Cache) error { return vm.WriteProtect(0, 2*mib) }},
		{"relax", func(vm *VM, c *Cache) error { return vm.Relax(c, 0, 2*mib, ProtW|ProtX) }},
		{"map restrict", func(vm *VM, c *Cache) error { return vm.Map(c, 0, 0x4000_0000, 2*mib, ProtR, MapOld) }},
		{"split", func(vm *VM, c *Cache) error { return vm.Split(c, 0, 2*mib) }},
	}
	for _, o := range ops {
		for _, flags := range []MapFlags{MapOld, MapOld | MapBlocks} {
			tm, _ := NewFlatTables(tableBase, 16*mib)
			m := &afMem{TableMemory: tm, hit: map[mem.PA]bool{}}
			cfg := defaultCfg(40, sysreg.Granule4K)
			cfg.HA = true
			vm, err := New(cfg, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := vm.NewCache()
			if err := c.Topup(8); err != nil {
				t.Fatal(err)
			}
			if err := vm.Map(c, 0, 0x4000_0000, 2*mib, ProtR|ProtW, flags); err != nil {
				t.Fatal(err)
			}
			m.armed = true
			if err := o.op(vm, c); err != nil {
				t.Fatal(err)
			}
			m.armed = false
			if m.n == 0 && (o.name != "split" || flags&MapBlocks != 0) {
				t.Fatalf("%s flags %d: the simulated hardware never interfered", o.name, flags)
			}
			if m.n > 0 {
				if y, err := vm.TestYoung(0, 2*mib); err != nil || !y {
					t.Errorf("%s flags %d: hardware set AF on %d descriptors, none is young afterwards (%v)", o.name, flags, m.n, err)
				}
			}
		}
	}
}

// TestArenaTables stores tables (and concatenated roots) in host frames for
// each granule and translates through them.
func TestArenaTables(t *testing.T) {
	for _, cfg := range []Config{defaultCfg(40, sysreg.Granule4K), defaultCfg(48, sysreg.Granule16K), defaultCfg(46, sysreg.Granule64K)} {
		a, err := hostmem.New(hostmem.Config{Size: 16 * mib})
		if err != nil {
			t.Fatalf("host arena: %v", err)
		}
		vm, err := New(cfg, ArenaTables{a}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := vm.Layout()
		if uint64(vm.Root())%l.RootBytes != 0 {
			t.Errorf("%v: root %#x not aligned to its %d bytes", cfg.Granule, uint64(vm.Root()), l.RootBytes)
		}
		c := vm.NewCache()
		blk := l.BlockSizes()[len(l.BlockSizes())-1]
		top := mem.IPA(uint64(1)<<l.IPABits - blk)
		for _, ipa := range []mem.IPA{0, top} {
			if err := c.Topup(vm.MapPagesNeeded(ipa, 0x40_0000_0000, blk, MapBlocks)); err != nil {
				t.Fatal(err)
			}
			if err := vm.Map(c, ipa, 0x40_0000_0000, blk, ProtR, MapBlocks); err != nil {
				t.Fatal(err)
			}
			if err := c.Topup(vm.MapPagesNeeded(ipa+mem.IPA(blk)-mem.IPA(l.TableBytes), 0x50_0000_0000, l.TableBytes, 0)); err != nil {
				t.Fatal(err)
			}
			// Replace the block's last granule by a page elsewhere (split).
			if err := vm.Map(c, ipa+mem.IPA(blk-l.TableBytes), 0x50_0000_0000, l.TableBytes, ProtR, 0); err != nil {
				t.Fatal(err)
			}
		}
		regs := vmsa.DefaultRegs()
		vm.ApplyRegs(&regs)
		w := vmsa.Walker{Mem: a}
		for _, tc := range []struct{ ipa, oa uint64 }{
			{8, 0x40_0000_0008}, {blk - l.TableBytes + 16, 0x50_0000_0010}, {uint64(top) + 24, 0x40_0000_0018},
		} {
			tr := w.TranslateS2(&regs, mem.IPA(tc.ipa), vmsa.Access{Kind: vmsa.Read, EL: 1})
			if tr.Fault.IsFault() || tr.OA != mem.PA(tc.oa) {
				t.Errorf("%v: IPA %#x: %v OA %#x, want %#x", cfg.Granule, tc.ipa, tr.Fault, tr.OA, tc.oa)
			}
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if err := vm.Destroy(); err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st.InUse != 0 {
			t.Errorf("%v: %d frames in use after Destroy", cfg.Granule, st.InUse)
		}
		a.Close()
	}
}
