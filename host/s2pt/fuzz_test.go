package s2pt

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// FuzzWalkerOnRandomTables writes random descriptor bits into live stage-2
// tables behind the manager's back, then runs every operation and the
// hardware walker over them: no panic, no hang; garbage is refused with an
// error or handled.
func FuzzWalkerOnRandomTables(f *testing.F) {
	le := binary.LittleEndian
	seed := func(cfg byte, words ...uint64) []byte {
		b := []byte{cfg, 0x5a}
		for i, w := range words {
			b = append(b, byte(i*7), byte(i*13), byte(i))
			b = le.AppendUint64(b, w)
		}
		return b
	}
	f.Add(seed(0))
	f.Add(seed(0, 0xffff_ffff_ffff_ffff, 3, 1, 0x8000_0003))
	f.Add(seed(1, 0x0040_0000_0000_0741, 0x8000_1003, 0x3))
	f.Add(seed(2, 0x0060_0000_0000_07c5, 1<<54|0x4c5))
	f.Add(seed(3, 0x1, 0x8000_0000|3, 0xfff0_0000_0000_0003))
	f.Add(seed(4, 0x0004_0000_4000_07ff, 0x7))
	f.Add(seed(5, 2, 0x8001_0003, 0x3ff))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		cfgs := []Config{
			defaultCfg(40, sysreg.Granule4K), defaultCfg(48, sysreg.Granule4K), defaultCfg(48, sysreg.Granule16K),
			defaultCfg(42, sysreg.Granule64K), defaultCfg(52, sysreg.Granule4K), defaultCfg(32, sysreg.Granule4K),
		}
		cfg := cfgs[int(data[0])%len(cfgs)]
		cfg.HA = data[1]&1 != 0
		tm, err := NewFlatTables(tableBase, 4*mib)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := New(cfg, tm, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := vm.Layout()
		g := l.TableBytes
		c := vm.NewCache()
		mapAt := func(ipa mem.IPA, pa mem.PA, size uint64, fl MapFlags) {
			if c.Topup(vm.MapPagesNeeded(ipa, pa, size, fl)) == nil {
				_ = vm.Map(c, ipa, pa, size, ProtR|ProtW, fl)
			}
		}
		blk := uint64(2 * mib)
		if bs := l.BlockSizes(); len(bs) > 0 {
			blk = bs[len(bs)-1]
		}
		mapAt(0, mem.PA(blk), blk, MapBlocks)
		mapAt(mem.IPA(blk), 0x1000_0000, 16*g, 0)
		mapAt(mem.IPA(1)<<(l.IPABits-1), 0x2000_0000, 4*g, 0)
		// The garbage: (table selector, entry, value) records.
		var tables []mem.PA
		vm.mu.Lock()
		tables = append(tables, vm.root.pa)
		for pa, t := range vm.tables {
			if t.inUse {
				tables = append(tables, pa)
			}
		}
		vm.mu.Unlock()
		sortPAs(tables)
		rest := data[2:]
		var ipas []uint64
		for len(rest) >= 11 {
			tsel, e := rest[0], uint64(rest[1])|uint64(rest[2])<<8
			v := le.Uint64(rest[3:11])
			rest = rest[11:]
			tb := tables[int(tsel)%len(tables)]
			n := l.TableBytes / 8
			if tb == vm.root.pa {
				n = l.RootEntries
			}
			_ = tm.Write64(tb+mem.PA(e%n*8), v)
			ipas = append(ipas, v%(1<<l.IPABits))
		}
		ipas = append(ipas, 0, blk, blk+g, uint64(1)<<(l.IPABits-1))
		regs := vmsa.DefaultRegs()
		vm.ApplyRegs(&regs)
		w := vmsa.Walker{Mem: tm}
		for _, ipa := range ipas {
			w.TranslateS2(&regs, mem.IPA(ipa), vmsa.Access{Kind: vmsa.Write, EL: 1})
		}
		// Every operation over a range covering the garbage.
		for _, ipa := range ipas {
			s := mem.IPA(ipa &^ (g - 1))
			size := min(uint64(4)*blk, uint64(1)<<l.IPABits-uint64(s))
			size = min(size, 64*mib)
			_, _, _ = vm.Lookup(s)
			_, _ = vm.TestYoung(s, size)
			_, _ = vm.MkOld(s, size)
			_, _ = vm.MkYoung(s)
			_ = vm.Walk(s, s+mem.IPA(size), VisitorFunc(func(c *Ctx, at WalkFlags) error { return nil }), VisitLeaf|VisitTablePre|VisitTablePost)
			_ = vm.WriteProtect(s, size)
			if c.Topup(vm.EdgePagesNeeded(s, size)) == nil {
				_ = vm.Relax(c, s, size, ProtR|ProtX)
			}
			if c.Topup(vm.SplitPagesNeeded(s, min(size, blk))) == nil {
				_ = vm.Split(c, s, min(size, blk))
			}
			_, _ = vm.Collapse(s, size)
			mapAt(s, mem.PA(ipa&^(g-1)), g, 0)
			_ = vm.Unmap(s, size)
			w.TranslateS2(&regs, mem.IPA(ipa), vmsa.Access{Kind: vmsa.Read, EL: 1})
		}
		_ = c.Release()
		if err := vm.Destroy(); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if tm.InUse() != 0 {
			t.Fatalf("%d bytes of table memory leaked", tm.InUse())
		}
	})
}

func sortPAs(l []mem.PA) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j] < l[j-1]; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}
