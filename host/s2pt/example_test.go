package s2pt_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/s2pt"
)

// A VM with a 40-bit IPA space and the 4K granule: stage 2 starts at level 1
// with two concatenated tables. A 2 MiB block is mapped and the modelled
// MMU translates through it.
func Example() {
	regs := vmsa.DefaultRegs()
	tm, _ := s2pt.NewFlatTables(0x8000_0000, 1<<20)
	vm, err := s2pt.New(s2pt.Config{IPABits: 40, Granule: sysreg.Granule4K, MMFR0: regs.MMFR0, MMFR1: regs.MMFR1}, tm, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	l := vm.Layout()
	fmt.Printf("VTCR_EL2 %#x: start level %d, %d concatenated root tables\n", uint64(l.VTCR), l.StartLevel, l.RootTables)

	// Prepare (may allocate, outside the MMU lock), then commit.
	cache := vm.NewCache()
	const ipa, pa, size = 0x4020_0000, 0x1_0000_0000, 2 << 20
	if err := cache.Topup(vm.MapPagesNeeded(ipa, pa, size, s2pt.MapBlocks)); err != nil {
		fmt.Println(err)
		return
	}
	if err := vm.Map(cache, ipa, pa, size, s2pt.ProtR|s2pt.ProtW, s2pt.MapBlocks); err != nil {
		fmt.Println(err)
		return
	}
	vm.ApplyRegs(&regs)
	w := vmsa.Walker{Mem: tm}
	t := w.TranslateS2(&regs, ipa+0x1234, vmsa.Access{Kind: vmsa.Write, EL: 1})
	fmt.Printf("IPA %#x -> PA %#x, level-%d leaf, %d table bytes\n", ipa+0x1234, t.OA, t.S2Level, vm.Stats().TableBytes)
	// Output:
	// VTCR_EL2 0x800d3558: start level 1, 2 concatenated root tables
	// IPA 0x40201234 -> PA 0x100001234, level-2 leaf, 12288 table bytes
}
