// Package demo builds an example two-stage machine state (the one `nestmmu
// run` demonstrated before the simulator, now the source of the generated
// example inputs in testdata/ and of the ptdump tests): a guest with
// 4-level stage-1 tables living in its own IPA space, over a 4-level
// stage 2, and a list of AT operations
// that show a two-stage success, a stage-1 permission fault, a stage-2
// fault on the stage-1 walk, a stage-2 fault on the final IPA and a
// hardware Access flag update.
package demo

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/mem"
)

// Layout of the demonstration machine.
const (
	RAMBase = 0x4000_0000
	RAMSize = 0x4000_0000 // 1 GiB of host RAM

	S2Tables = 0x4800_0000 // host-owned stage-2 tables
	GuestPA  = 0x5000_0000 // where guest RAM lives in host PA
	GuestIPA = 0x8000_0000 // guest RAM in the guest's IPA space
	GuestLen = 0x0400_0000 // 64 MiB mapped by stage 2

	GuestTables = GuestIPA + 0x0010_0000 // guest stage-1 tables (IPA)
	HoleIPA     = 0x9000_0000            // an IPA stage 2 does not map

	VAData     = 0x0000_0012_3456_7000 // read/write data page
	VAReadOnly = 0x0000_0012_3456_8000 // read-only page
	VAYoung    = 0x0000_0012_3456_9000 // AF=0 page (HA=1 sets it)
	VAHole     = 0x0000_0012_3480_0000 // its level-3 table is at an unmapped IPA
	VAOutside  = 0x0000_0012_3456_a000 // maps to an IPA stage 2 does not map
)

// ipaMem lets the table builder write guest tables by IPA: guest RAM is
// one linear range of host memory.
type ipaMem struct{ m *mem.Sparse }

func (g ipaMem) pa(ipa mem.PA) mem.PA { return ipa - GuestIPA + GuestPA }
func (g ipaMem) Read64(a mem.PA) (uint64, bool) {
	return g.m.Read64(g.pa(a))
}
func (g ipaMem) CompareAndSwap64(a mem.PA, o, n uint64) (bool, bool) {
	return g.m.CompareAndSwap64(g.pa(a), o, n)
}
func (g ipaMem) Write64(a mem.PA, v uint64) error { return g.m.Write64(g.pa(a), v) }

// TwoStage builds the demonstration machine.
func TwoStage() (*atjson.Machine, error) {
	ram, err := mem.NewSparse([]mem.Range{{Base: RAMBase, Size: RAMSize}})
	if err != nil {
		return nil, err
	}
	f4k := desc.Format{Granule: sysreg.Granule4K}

	// Stage 2: 48-bit IPA, 4K granule, start level 0 (SL0=2), 48-bit PA.
	s2, err := ttbuild.New(ram, &ttbuild.Alloc{Next: S2Tables, End: S2Tables + 0x10_0000}, f4k, true, 48, 0)
	if err != nil {
		return nil, err
	}
	// The first 4 MiB of guest RAM (its page tables and data) with 4K
	// pages, so that a translation there walks all four stage-2 levels;
	// the rest with 2M blocks.
	rw := desc.S2Leaf{MemAttr: 0b1111, S2AP: 3, SH: 3, AF: true}
	for off := uint64(0); off < GuestLen; {
		rw.OA = GuestPA + off
		size, level := uint64(2<<20), 2
		if off < 4<<20 {
			size, level = 4<<10, 3
		}
		if err := s2.MapS2(GuestIPA+off, level, rw); err != nil {
			return nil, err
		}
		off += size
	}

	// Guest stage 1: 48-bit VA, 4K granule, tables in guest IPA space.
	gm := ipaMem{ram}
	s1, err := ttbuild.New(gm, &ttbuild.Alloc{Next: GuestTables, End: GuestTables + 0x10_0000}, f4k, false, 48, 0)
	if err != nil {
		return nil, err
	}
	page := func(va, ipa uint64, ap uint, af bool) error {
		return s1.MapS1(va, 3, desc.S1Leaf{OA: ipa, AttrIndx: 0, AP: ap, SH: 3, AF: af})
	}
	if err := page(VAData, GuestIPA+0x20_0000, 0b00, true); err != nil {
		return nil, err
	}
	if err := page(VAReadOnly, GuestIPA+0x20_1000, 0b10, true); err != nil {
		return nil, err
	}
	if err := page(VAYoung, GuestIPA+0x20_2000, 0b00, false); err != nil {
		return nil, err
	}
	if err := page(VAOutside, HoleIPA+0x5000, 0b00, true); err != nil {
		return nil, err
	}
	// A level-2 table descriptor pointing at an IPA that stage 2 leaves unmapped.
	if err := s1.Set(VAHole, 2, uint64(desc.S1Table{Addr: HoleIPA}.Encode(f4k))); err != nil {
		return nil, err
	}
	_, youngAddr, _ := s1.Get(VAYoung, 3)

	regs := vmsa.DefaultRegs()
	regs.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_VM
	regs.SCTLR_EL1 = 0x30d00805 // M, C, I
	// TCR_EL1: T0SZ=16, IRGN0/ORGN0 WB, SH0 inner, TG0 4K, EPD1, IPS 48-bit, HA.
	regs.TCR_EL1 = sysreg.TCR(16 | 1<<8 | 1<<10 | 3<<12 | 1<<23 | 5<<32 | 1<<39)
	regs.TTBR0_EL1 = sysreg.TTBR(s1.Root)
	regs.MAIR_EL1 = 0x44_00_ff // Attr0 Normal WB, Attr1 Device-nGnRnE, Attr2 Normal NC
	// VTCR_EL2: T0SZ=16, SL0=2 (level 0), IRGN/ORGN WB, SH inner, TG0 4K, PS 48-bit.
	regs.VTCR_EL2 = sysreg.VTCR(16 | 2<<6 | 1<<8 | 1<<10 | 3<<12 | 5<<16)
	regs.VTTBR_EL2 = sysreg.VTTBR(s2.Root | 1<<48) // VMID 1

	m := &atjson.Machine{Mem: ram, Regs: regs}
	m.PSTATE = at.PSTATE{EL: 2}
	m.Ops = []atjson.Op{
		{Op: at.S12E1R, VA: VAData + 0x123},
		{Op: at.S12E1W, VA: VAReadOnly},
		{Op: at.S1E1R, VA: VAHole},
		{Op: at.S12E1R, VA: VAOutside},
		{Op: at.S12E1R, VA: VAYoung + 8},
	}
	m.Watch = []uint64{uint64(gm.pa(mem.PA(youngAddr)))}
	return m, nil
}

// WalkCost translates va through both stages of m and returns the number
// of descriptor reads: (n+1)(m+1)-1 for an n-level stage 1 over an m-level
// stage 2 when nothing is cached.
func WalkCost(m *atjson.Machine, va uint64) (uint64, error) {
	w := &vmsa.Walker{Mem: m.Mem}
	t := w.Translate(&m.Regs, vmsa.RegimeEL10, mem.VA(va), vmsa.Access{Kind: vmsa.Read, EL: 1}, vmsa.TranslateOptions{})
	if t.Fault.IsFault() {
		return 0, fmt.Errorf("demo: %#x does not translate: %s", va, t.Fault)
	}
	return w.Stats.DescReads, nil
}
