package cpu_test

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

const (
	fuzzRAM     = 0x4000_0000
	fuzzRAMSize = 64 << 10
	fuzzTables  = 24 << 10 // the first 24KB of RAM come from the input
	fuzzMaxOps  = 64
)

// fuzzInput reads the fuzzer's bytes as a stream; past the end it yields zeros.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) u8() uint8 {
	if len(in.b) == 0 {
		return 0
	}
	v := in.b[0]
	in.b = in.b[1:]
	return v
}

func (in *fuzzInput) u64() uint64 {
	var buf [8]byte
	n := copy(buf[:], in.b)
	in.b = in.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

// inRAM points the table base of a TTBR/VTTBR value into the fuzzed table
// memory (keeping its ASID/VMID and CnP), unless keep says to leave it wild.
func inRAM(v uint64, keep bool) uint64 {
	if keep {
		return v
	}
	return v&^0x0000_ffff_ffff_fffe | fuzzRAM | v&(fuzzTables-1)&^0xfff
}

// FuzzPEAccess feeds random register values, random translation tables
// and random sequences of loads, stores, fetches, AT, TLBI, MSR, MRS and
// ERET to a PE at a random EL. The PE must never panic or hang, and every
// exception it reports must be architecturally well-formed: an EC the
// kind allows (Data Abort 0x24/0x25, Instruction Abort 0x20/0x21, PC
// alignment 0x22, trapped System instruction 0x18, Unknown 0x00), the
// lower-EL class exactly when the target is above the source, IL=1, a
// fault status code the ISS encoding defines, ISV only on stage-2 Data
// Aborts to EL2, stage-2 faults only to EL2 from EL0/EL1, and the PE at
// the target EL afterwards.
//
// Input layout: 13 little-endian words (SCTLR_EL1, TCR_EL1, TTBR0_EL1,
// TTBR1_EL1, MAIR_EL1, SCTLR_EL2, TCR_EL2, TTBR0_EL2, HCR_EL2, VTCR_EL2,
// VTTBR_EL2, mode), an operation count, the operations (an opcode byte
// and an address word each), then the table memory at the start of RAM.
func FuzzPEAccess(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03})
	f.Add(fuzzSeed(f, false))
	f.Add(fuzzSeed(f, true))

	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		r := vmsa.DefaultRegs()
		r.SCTLR_EL1 = sysreg.SCTLR(in.u64())
		r.TCR_EL1 = sysreg.TCR(in.u64())
		t0, t1 := in.u64(), in.u64()
		r.MAIR_EL1 = sysreg.MAIR(in.u64())
		r.SCTLR_EL2 = sysreg.SCTLR(in.u64())
		r.TCR_EL2 = in.u64()
		t2 := in.u64()
		r.HCR_EL2 = sysreg.HCR(in.u64())
		r.VTCR_EL2 = sysreg.VTCR(in.u64())
		vt := in.u64()
		mode := in.u64()
		wild := mode&0x100 != 0
		r.TTBR0_EL1 = sysreg.TTBR(inRAM(t0, wild))
		r.TTBR1_EL1 = sysreg.TTBR(inRAM(t1, wild))
		r.TTBR0_EL2 = sysreg.TTBR(inRAM(t2, wild))
		r.TTBR1_EL2 = r.TTBR1_EL1
		r.VTTBR_EL2 = sysreg.VTTBR(inRAM(vt, wild))
		type fop struct {
			op uint8
			va uint64
		}
		ops := make([]fop, int(in.u8())%(fuzzMaxOps+1))
		for i := range ops {
			ops[i] = fop{in.u8(), in.u64()}
		}
		ram, err := mem.NewFlat(fuzzRAM, fuzzRAMSize)
		if err != nil {
			t.Fatal(err)
		}
		for pa := uint64(fuzzRAM); pa < fuzzRAM+fuzzTables && len(in.b) > 0; pa += 8 {
			_ = ram.Write64(mem.PA(pa), in.u64())
		}
		var tl *tlb.TLB
		if mode&0x400 == 0 {
			tl = tlb.MustNew(tlb.Config{Sets: 16, Ways: 2, Micro: 4})
		}
		pe := cpu.New(0, r, uint8(mode%3), ram, tl)
		pe.PAN = mode&0x800 != 0
		pe.VNCR = inRAM(t0^t1, wild) &^ 0xfff // FEAT_NV2 redirections land in RAM unless wild
		for _, o := range ops {
			op, va := o.op, o.va
			el := pe.EL
			var e cpu.Exception
			switch op % 9 {
			case 0, 1:
				size := 1 << (op >> 4 & 3)
				_, e = pe.Read(mem.VA(va), size, cpu.Insn{Valid: op&0x40 != 0, Reg: op, AcqRel: op&0x80 != 0})
			case 2:
				size := 1 << (op >> 4 & 3)
				e = pe.Write(mem.VA(va), size, va, cpu.Insn{Valid: op&0x40 != 0, Reg: op >> 3, SixtyFour: true})
			case 3:
				_, e = pe.Fetch(mem.VA(va))
			case 4:
				old := pe.PAR
				e = pe.AT(at.Op(op>>4), op&31, mem.VA(va))
				if e.Taken() && pe.PAR != old {
					t.Fatalf("AT %s took %s and wrote PAR_EL1", at.Op(op>>4), e)
				}
				if !e.Taken() && pe.PAR.F() && !legalFSC(pe.PAR.FST(), false) {
					t.Fatalf("AT %s: PAR %#x has FST %#x", at.Op(op>>4), uint64(pe.PAR), pe.PAR.FST())
				}
			case 5:
				e = pe.MSR(cpu.SysReg(op>>2), op&31, va)
			case 6:
				_, e = pe.MRS(cpu.SysReg(op>>2), op&31)
			case 7:
				e = pe.TLBI(tlb.Op(op>>1), op&31, va)
			case 8:
				e = pe.ERET()
				if e.Taken() != (el == 0 || (el == 1 && pe.Regs.HCR_EL2.NV())) {
					t.Fatalf("ERET at EL%d: %v", el, e)
				}
				if pe.EL > 2 {
					t.Fatalf("ERET to EL%d", pe.EL)
				}
				continue
			}
			checkWellFormed(t, pe, el, e)
		}
	})
}

// fuzzSeed builds an input with real tables: EL1&0 stage 1 (4K, 39-bit
// VA, from level 1) mapping a few pages of every kind, and (with stage2)
// a stage 2 (4K, 32-bit IPA, from level 1) mapping the RAM's 2MB with a
// block, plus operations on those pages at EL1.
func fuzzSeed(f *testing.F, stage2 bool) []byte {
	ram, err := mem.NewFlat(fuzzRAM, fuzzRAMSize)
	if err != nil {
		f.Fatal(err)
	}
	alloc := &ttbuild.Alloc{Next: fuzzRAM, End: fuzzRAM + fuzzTables}
	s1, err := ttbuild.New(ram, alloc, f4k, false, 39, 1)
	if err != nil {
		f.Fatal(err)
	}
	const page = fuzzRAM + fuzzTables // first page after the tables
	leaves := []desc.S1Leaf{
		{OA: page, AP: 0b01, SH: 3, AF: true},
		{OA: page + 0x1000, AP: 0b10, SH: 3, AF: true, UXN: true},
		{OA: page + 0x2000, AttrIndx: 1, AP: 0b00, AF: true},
		{OA: page, AP: 0b00, SH: 3, AF: false, NG: true},
		{OA: 0x8000_0000, AP: 0b01, SH: 3, AF: true},
	}
	for i, l := range leaves {
		if err := s1.MapS1(uint64(i+1)<<12, 3, l); err != nil {
			f.Fatal(err)
		}
	}
	var vtcr, vttbr uint64
	hcr := uint64(sysreg.HCR_RW)
	if stage2 {
		s2, err := ttbuild.New(ram, alloc, f4k, true, 32, 1)
		if err != nil {
			f.Fatal(err)
		}
		if err := s2.MapS2(fuzzRAM, 2, desc.S2Leaf{OA: fuzzRAM, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}); err != nil {
			f.Fatal(err)
		}
		vtcr, vttbr, hcr = 32|1<<6|3<<12|2<<16, s2.Root|7<<48, hcr|uint64(sysreg.HCR_VM)
	}
	var b []byte
	for _, v := range []uint64{
		1 | 1<<23, 25 | 3<<12 | 5<<32, s1.Root | 5<<48, 0, 0x00ff, // EL1: SCTLR (M, SPAN), TCR, TTBR0, TTBR1, MAIR
		0, 0, 0, // SCTLR_EL2, TCR_EL2, TTBR0_EL2
		hcr, vtcr, vttbr,
		0x100, // mode: TTBRs as given; 0x100%3 = 1: EL1
	} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	// Per page: an aligned 8-byte load, an unaligned 4-byte load, a
	// 4-byte store, a fetch and AT S1E1R, each exception followed by ERET
	// (opcode byte: kind = op%9, size = 1<<(op>>4&3), AT op = op>>4).
	var ops [][2]uint64
	for p := uint64(0); p < 6; p++ {
		va := p << 12
		ops = append(ops, [2]uint64{54, va + 8}, [2]uint64{8, 0}, [2]uint64{36, va + 2}, [2]uint64{8, 0},
			[2]uint64{38, va + 4}, [2]uint64{8, 0}, [2]uint64{3, va}, [2]uint64{8, 0}, [2]uint64{40, va})
	}
	b = append(b, byte(len(ops)))
	for _, o := range ops {
		b = append(b, byte(o[0]))
		b = binary.LittleEndian.AppendUint64(b, o[1])
	}
	for pa := uint64(fuzzRAM); pa < fuzzRAM+fuzzTables; pa += 8 {
		v, _ := ram.Read64(mem.PA(pa))
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// legalFSC reports whether fsc is a fault status code the Data/Instruction
// Abort ISS (and PAR_EL1.FST) defines for what the model can report:
// Address size 0b0000LL and 0b101001 (level -1), Translation 0b0001LL and
// 0b101011, Access flag 0b0010LL, Permission 0b0011LL, synchronous External
// abort 0b010000, on a walk 0b0101LL and 0b010011, and Alignment 0b100001
// (data accesses only).
func legalFSC(fsc uint8, data bool) bool {
	switch {
	case fsc <= 0b001111:
		return true
	case fsc == 0b010000, fsc == 0b010011, fsc >= 0b010100 && fsc <= 0b010111:
		return true
	case fsc == 0b101001, fsc == 0b101011:
		return true
	case fsc == 0b100001:
		return data
	}
	return false
}

func checkWellFormed(t *testing.T, pe *cpu.PE, from uint8, e cpu.Exception) {
	t.Helper()
	if !e.Taken() {
		if pe.EL != from {
			t.Fatalf("no exception, but EL%d -> EL%d", from, pe.EL)
		}
		return
	}
	esr := e.ESR
	bad := func(why string) { t.Fatalf("%s: %s (fault %s)", why, e, e.Fault) }
	if e.FromEL != from || pe.EL != e.TargetEL || e.TargetEL < 1 || e.TargetEL > 2 || e.TargetEL < from {
		bad("bad exception levels")
	}
	if !esr.IL() || uint64(esr)>>32 != 0 {
		bad("ESR IL=0 or bits above 31 set")
	}
	if pe.ESR[e.TargetEL] != esr {
		bad("ESR of the target EL not written")
	}
	lower := e.TargetEL > from
	ec := esr.EC()
	switch e.Kind {
	case cpu.DataAbort:
		if ec != 0x24 && ec != 0x25 || (ec == 0x24) != lower {
			bad("Data Abort EC")
		}
		if !legalFSC(esr.FSC(), true) {
			bad("DFSC")
		}
		if esr.ISV() && (!e.Fault.Stage2 || e.TargetEL != 2 || esr.S1PTW()) {
			bad("ISV outside a stage-2 Data Abort")
		}
		if pe.FAR[e.TargetEL] != uint64(e.FAR) {
			bad("FAR not written")
		}
	case cpu.InstructionAbort:
		switch {
		case ec == 0x22:
			if esr.ISS() != 0 || e.FAR&3 == 0 {
				bad("PC alignment syndrome")
			}
		case ec == 0x20 || ec == 0x21:
			if (ec == 0x20) != lower {
				bad("Instruction Abort EC")
			}
			if !legalFSC(esr.FSC(), false) || esr.ISV() || esr.WnR() {
				bad("IFSC or ISS bits")
			}
		default:
			bad("Instruction Abort EC")
		}
	case cpu.SysTrap:
		if ec != 0x18 {
			bad("trap EC")
		}
	case cpu.Undefined:
		if ec != 0 || esr.ISS() != 0 {
			bad("UNDEFINED syndrome")
		}
	case cpu.ERETTrap:
		if ec != 0x1a || esr.ISS() != 0 || e.TargetEL != 2 || from != 1 {
			bad("ERET trap syndrome")
		}
	default:
		bad("unknown kind")
	}
	if e.Fault.Stage2 && (e.TargetEL != 2 || from == 2) {
		bad("stage-2 fault not from EL0/EL1 to EL2")
	}
	if e.Fault.Stage2 && e.Kind != cpu.SysTrap && pe.HPFAR != e.HPFAR {
		bad("HPFAR_EL2 not written")
	}
}
