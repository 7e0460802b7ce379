package vmsa_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Translate a VA through the EL1&0 regime: 4K granule, 48-bit VAs (four
// levels from level 0), one read-only page at EL1 and EL0.
func ExampleWalker_Translate() {
	ram, _ := mem.NewSparse([]mem.Range{{Base: 0x4000_0000, Size: 1 << 20}})
	f := desc.Format{Granule: sysreg.Granule4K}
	tables, _ := ttbuild.New(ram, &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4001_0000}, f, false, 48, 0)
	tables.MapS1(0x7f00_1234_5000, 3, desc.S1Leaf{OA: 0x4008_0000, AP: 0b11, SH: sysreg.SHInner, AF: true})

	regs := vmsa.DefaultRegs()
	regs.SCTLR_EL1 = sysreg.SCTLRFields{M: true, C: true}.Value()
	regs.TCR_EL1 = sysreg.TCRFields{T0SZ: sysreg.TxSZ(48), TG0: sysreg.Granule4K, IPS: sysreg.PS48, EPD1: true}.Value()
	regs.TTBR0_EL1 = sysreg.TTBRFields{BADDR: tables.Root}.Value()
	regs.MAIR_EL1 = sysreg.MAIROf(sysreg.MAIRNormalWB)

	w := vmsa.Walker{Mem: ram}
	t := w.Translate(&regs, vmsa.RegimeEL10, 0x7f00_1234_5678, vmsa.Access{Kind: vmsa.Read, EL: 0}, vmsa.TranslateOptions{})
	fmt.Printf("PA %#x, level %d, %d descriptor reads, EL0 may write: %v\n", t.OA, t.Level, w.Stats.DescReads, t.Perms.W0)

	t = w.Translate(&regs, vmsa.RegimeEL10, 0x7f00_1234_5678, vmsa.Access{Kind: vmsa.Write, EL: 1}, vmsa.TranslateOptions{})
	fmt.Printf("write: %v fault (FSC %#x)\n", t.Fault, t.Fault.FSC())
	// Output:
	// PA 0x40080678, level 3, 4 descriptor reads, EL0 may write: false
	// write: permission level 3 fault (FSC 0xf)
}
