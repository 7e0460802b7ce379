package at_test

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Execute AT S1E1R and AT S1E0R at EL2 on a page only EL1 may access (AP
// = 0b00), and AT S1E2R at EL1, which is UNDEFINED there.
func ExampleExecute() {
	ram, _ := mem.NewSparse([]mem.Range{{Base: 0x4000_0000, Size: 1 << 20}})
	f := desc.Format{Granule: sysreg.Granule4K}
	tables, _ := ttbuild.New(ram, &ttbuild.Alloc{Next: 0x4000_0000, End: 0x4001_0000}, f, false, 39, 1)
	tables.MapS1(0x1000, 3, desc.S1Leaf{OA: 0x4008_0000, AP: 0b00, SH: sysreg.SHInner, AF: true})

	regs := vmsa.DefaultRegs()
	regs.HCR_EL2 = sysreg.HCRFields{RW: true}.Value()
	regs.SCTLR_EL1 = sysreg.SCTLRFields{M: true, C: true}.Value()
	regs.TCR_EL1 = sysreg.TCRFields{T0SZ: sysreg.TxSZ(39), TG0: sysreg.Granule4K, IPS: sysreg.PS48, EPD1: true}.Value()
	regs.TTBR0_EL1 = sysreg.TTBRFields{BADDR: tables.Root}.Value()
	regs.MAIR_EL1 = sysreg.MAIROf(sysreg.MAIRNormalWB)

	w := &vmsa.Walker{Mem: ram}
	el2 := at.PSTATE{EL: 2}
	r := at.Execute(w, &regs, el2, at.S1E1R, 0x1234, 0)
	fmt.Printf("AT S1E1R: PAR_EL1 %#x (PA %#x, ATTR %#x)\n", uint64(r.PAR), r.PAR.PA(), r.PAR.ATTR())
	r = at.Execute(w, &regs, el2, at.S1E0R, 0x1234, r.PAR)
	fmt.Printf("AT S1E0R: PAR_EL1 %#x (%v)\n", uint64(r.PAR), r.Fault())
	r = at.Execute(w, &regs, at.PSTATE{EL: 1}, at.S1E2R, 0x1234, r.PAR)
	fmt.Printf("AT S1E2R at EL1: %v\n", r.Exception)
	// Output:
	// AT S1E1R: PAR_EL1 0xff00000040080b80 (PA 0x40080000, ATTR 0xff)
	// AT S1E0R: PAR_EL1 0x81f (permission level 3)
	// AT S1E2R at EL1: UNDEFINED: AT S1E2R at EL1
}
