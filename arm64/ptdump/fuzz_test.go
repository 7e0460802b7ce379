package ptdump_test

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/ptdump"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// FuzzDump dumps tables made of arbitrary words (guest-controlled memory)
// under arbitrary TCR_EL1/VTCR_EL2 values: no panic, no hang (the walk
// budget holds), and the ranges are ordered, disjoint, inside the input
// range, and made of whole leaves.
func FuzzDump(f *testing.F) {
	seed := make([]byte, 16+8*64)
	binary.LittleEndian.PutUint64(seed, uint64(sysreg.TCRFields{T0SZ: 25, TG0: sysreg.Granule4K, IPS: sysreg.PS48, EPD1: true}.Value()))
	binary.LittleEndian.PutUint64(seed[8:], uint64(sysreg.VTCRFields{T0SZ: 25, SL0: 1, TG0: sysreg.Granule4K, PS: sysreg.PS48}.Value()))
	binary.LittleEndian.PutUint64(seed[16:], 0x4000_0003|0x1000)
	binary.LittleEndian.PutUint64(seed[16+8:], 0x4000_0701)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 16 || len(data) > 16+8*1024 {
			return
		}
		const base = 0x4000_0000
		ram, _ := mem.NewSparse([]mem.Range{{Base: base, Size: 0x2000}})
		for i := 16; i+8 <= len(data); i += 8 {
			ram.Write64(mem.PA(base+uint64(i-16)%0x2000), binary.LittleEndian.Uint64(data[i:]))
		}
		regs := vmsa.DefaultRegs()
		regs.TCR_EL1 = sysreg.TCR(binary.LittleEndian.Uint64(data))
		regs.VTCR_EL2 = sysreg.VTCR(binary.LittleEndian.Uint64(data[8:]))
		regs.TTBR0_EL1 = base
		regs.TTBR1_EL1 = base + 0x1000
		regs.VTTBR_EL2 = base
		regs.HCR_EL2 = sysreg.HCR(data[0]&1) | sysreg.HCR_RW // stage 2 for the tables, sometimes
		opt := ptdump.Options{MaxWalks: 3000}
		tabs, err := ptdump.Stage1(ram, &regs, vmsa.RegimeEL10, opt)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ptdump.Stage2(ram, &regs, opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range append(tabs, s2) {
			if tb.Walks > opt.MaxWalks {
				t.Fatalf("%s: %d walks", tb.Name, tb.Walks)
			}
			prev := tb.First
			for i, r := range tb.Ranges {
				if r.Start < prev && i > 0 || r.Start < tb.First || r.End-tb.First > 1<<tb.InputBits || r.End-r.Start == 0 && r.End != 0 {
					t.Fatalf("%s: range %d %#x-%#x out of order or outside [%#x, +2^%d)", tb.Name, i, r.Start, r.End, tb.First, tb.InputBits)
				}
				if r.Fault == "" && r.Leaves < 1 {
					t.Fatalf("%s: range %d has %d leaves", tb.Name, i, r.Leaves)
				}
				prev = r.End
			}
		}
	})
}
