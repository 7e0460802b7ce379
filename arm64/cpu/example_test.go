package cpu_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Run a guest load on a PE at EL1: the first load walks the tables and
// fills the TLB, the second hits it; a store to the read-only page takes a
// Data Abort to EL1 with the syndrome the architecture defines.
func ExamplePE_Read() {
	ram, _ := mem.NewFlat(0x4000_0000, 1<<20)
	f := desc.Format{Granule: sysreg.Granule4K}
	tables, _ := ttbuild.New(ram, &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4001_0000}, f, false, 39, 1)
	tables.MapS1(0x8000, 3, desc.S1Leaf{OA: 0x4008_0000, AP: 0b10, SH: sysreg.SHInner, AF: true}) // EL1 read-only
	ram.Write(0x4008_0010, 8, 0x1122_3344_5566_7788)

	regs := vmsa.DefaultRegs()
	regs.HCR_EL2 = sysreg.HCRFields{RW: true}.Value()
	regs.SCTLR_EL1 = sysreg.SCTLRFields{M: true, C: true}.Value()
	regs.TCR_EL1 = sysreg.TCRFields{T0SZ: sysreg.TxSZ(39), TG0: sysreg.Granule4K, IPS: sysreg.PS48, EPD1: true}.Value()
	regs.TTBR0_EL1 = sysreg.TTBRFields{BADDR: tables.Root}.Value()
	regs.MAIR_EL1 = sysreg.MAIROf(sysreg.MAIRNormalWB)
	pe := cpu.New(0, regs, 1, ram, tlb.MustNew(tlb.Config{}))

	for i := 0; i < 2; i++ {
		v, ex := pe.Read(0x8010, 8, cpu.Insn{})
		fmt.Printf("LDR: %#x, %v, walks %d, TLB hits %d\n", v, ex, pe.Stats.Walks, pe.Stats.TLBHits)
	}
	ex := pe.Write(0x8010, 8, 0, cpu.Insn{})
	fmt.Printf("STR: %v\n", ex.Kind)
	fmt.Printf("EL%d, ESR_EL1 EC %#x DFSC %#x WnR %v, FAR_EL1 %#x\n", pe.EL, pe.ESR[1].EC(), pe.ESR[1].FSC(), pe.ESR[1].WnR(), pe.FAR[1])
	// Output:
	// LDR: 0x1122334455667788, no exception, walks 1, TLB hits 0
	// LDR: 0x1122334455667788, no exception, walks 1, TLB hits 1
	// STR: data abort
	// EL1, ESR_EL1 EC 0x25 DFSC 0xf WnR true, FAR_EL1 0x8010
}
