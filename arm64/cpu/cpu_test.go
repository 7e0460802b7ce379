package cpu_test

import (
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
	ramBase  = 0x4000_0000
	s1Tables = 0x4010_0000
	s2Tables = 0x4400_0000
	dataIPA  = 0x4020_0000 // stage-1 output of vaData
	vaData   = 0x0000_0000_1234_5000
	vaRO     = 0x0000_0000_1234_6000 // read-only page
	vaHole   = 0x0000_0000_1234_7000 // unmapped at stage 1
	vaS2Hole = 0x0000_0000_1234_8000 // maps to an IPA stage 2 does not map
	holeIPA  = 0x4800_0000
)

var f4k = desc.Format{Granule: sysreg.Granule4K}

type machine struct {
	ram *mem.Flat
	s1  *ttbuild.Tables
	s2  *ttbuild.Tables // nil without stage 2
	pe  *cpu.PE
	// base is the register state newMachine set up, for fresh PEs.
	base vmsa.Regs
}

// fresh replaces m.pe by a new PE at EL1 with the base registers and an
// empty TLB, over the same memory and tables.
func (m *machine) fresh() *cpu.PE {
	m.pe = cpu.New(0, m.base, 1, m.ram, tlb.MustNew(tlb.Config{}))
	return m.pe
}

// newMachine: EL1&0 4K stage 1 (48-bit VA) over an optional 4K stage 2
// (40-bit IPA, start level 1 with 2 concatenated tables) that
// identity-maps [ramBase, ramBase+64M) with 2M blocks.
func newMachine(t testing.TB, stage2 bool) *machine {
	t.Helper()
	ram, err := mem.NewFlat(ramBase, 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := ttbuild.New(ram, &ttbuild.Alloc{Next: s1Tables, End: s1Tables + 1<<20}, f4k, false, 48, 0)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s1.MapS1(vaData, 3, desc.S1Leaf{OA: dataIPA, AP: 0b01, SH: 3, AF: true}))
	must(s1.MapS1(vaRO, 3, desc.S1Leaf{OA: dataIPA + 0x1000, AP: 0b11, SH: 3, AF: true}))
	must(s1.MapS1(vaS2Hole, 3, desc.S1Leaf{OA: holeIPA, AP: 0b01, SH: 3, AF: true}))
	r := vmsa.DefaultRegs()
	r.HCR_EL2 = sysreg.HCR_RW
	r.SCTLR_EL1 = 1 | 1<<2 | 1<<12 | 1<<23 // M, C, I, SPAN
	r.TCR_EL1 = sysreg.TCR(16 | 3<<12 | 5<<32 | 1<<23)
	r.TTBR0_EL1 = sysreg.TTBR(s1.Root | 5<<48) // ASID 5
	r.MAIR_EL1 = 0xff
	var s2 *ttbuild.Tables
	if stage2 {
		var err error
		s2, err = ttbuild.New(ram, &ttbuild.Alloc{Next: s2Tables, End: s2Tables + 1<<20}, f4k, true, 40, 1)
		if err != nil {
			t.Fatal(err)
		}
		for off := uint64(0); off < 64<<20; off += 2 << 20 {
			must(s2.MapS2(ramBase+off, 2, desc.S2Leaf{OA: ramBase + off, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}))
		}
		r.HCR_EL2 |= sysreg.HCR_VM
		r.VTCR_EL2 = sysreg.VTCR(24 | 1<<6 | 3<<12 | 2<<16 | 1<<19) // T0SZ=24, SL0=1, PS=40, VS
		r.VTTBR_EL2 = sysreg.VTTBR(s2.Root | 7<<48)                 // VMID 7
	}
	pe := cpu.New(0, r, 1, ram, tlb.MustNew(tlb.Config{}))
	return &machine{ram: ram, s1: s1, s2: s2, pe: pe, base: r}
}

func TestLoadStoreThroughTLB(t *testing.T) {
	for _, two := range []bool{false, true} {
		m := newMachine(t, two)
		pe := m.pe
		if e := pe.Write(vaData+0x10, 8, 0x1122334455667788, cpu.Insn{}); e.Taken() {
			t.Fatalf("store: %s", e)
		}
		if v, _ := m.ram.Read64(dataIPA + 0x10); v != 0x1122334455667788 {
			t.Fatalf("two-stage=%v: memory holds %#x", two, v)
		}
		v, e := pe.Read(vaData+0x12, 2, cpu.Insn{})
		if e.Taken() || v != 0x5566 {
			t.Fatalf("two-stage=%v: load %#x %s", two, v, e)
		}
		if pe.Stats.Walks != 1 || pe.Stats.TLBHits != 1 {
			t.Errorf("two-stage=%v: %d walks %d hits, want 1 and 1 (second access hits the TLB)", two, pe.Stats.Walks, pe.Stats.TLBHits)
		}
	}
}

// Changing a descriptor without TLB maintenance leaves the old translation
// usable (R_: a TLB may hold any entry until invalidated); TLBI VAE1 with
// the VA and ASID in Xt (Xt[43:0] = VA[55:12], Xt[63:48] = ASID) removes it.
func TestStaleUntilTLBI(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	_, addr, _ := m.s1.Get(vaData, 3)
	nd := uint64(desc.S1Leaf{OA: dataIPA + 0x3000, AP: 0b01, SH: 3, AF: true}.Encode(f4k, 3))
	if err := m.ram.Write64(mem.PA(addr), nd); err != nil {
		t.Fatal(err)
	}
	_ = m.ram.Write(dataIPA+0x3000, 8, 0xabcd)
	if v, _ := pe.Read(vaData, 8, cpu.Insn{}); v == 0xabcd {
		t.Fatal("new mapping visible without TLBI: the TLB did not cache")
	}
	xt := uint64(5)<<48 | vaData>>12
	if e := pe.TLBI(tlb.OpVAE1, 0, xt); e.Taken() {
		t.Fatalf("TLBI: %s", e)
	}
	if v, _ := pe.Read(vaData, 8, cpu.Insn{}); v != 0xabcd {
		t.Fatalf("after TLBI VAE1 read %#x, want the new page's 0xabcd", v)
	}
}

func TestAbortSyndromes(t *testing.T) {
	type tc struct {
		name       string
		stage2     bool
		el         uint8
		tge        bool
		va         uint64
		write      bool
		insn       cpu.Insn
		size       int
		wantTarget uint8
		wantESR    uint64
		wantHPFAR  uint64
	}
	const il = 1 << 25
	cases := []tc{
		// Stage-1 translation fault at level 3 from EL1: taken to EL1,
		// EC 0x25 (same EL), DFSC 0b000111, ISV=0.
		{"s1 translation EL1", false, 1, false, vaHole, false, cpu.Insn{}, 8, 1, 0x25<<26 | il | 0b000111, 0},
		// From EL0 to EL1: EC 0x24. EL0 has no access to AP=01? AP[2:1]=01
		// grants EL0 RW, so use the read-only page for a write: permission
		// fault level 3, WnR=1.
		{"s1 permission EL0 write", false, 0, false, vaRO, true, cpu.Insn{}, 4, 1, 0x24<<26 | il | 1<<6 | 0b001111, 0},
		// HCR_EL2.TGE routes EL0 stage-1 faults to EL2 (E2H=0: EL1&0 stage 1
		// is off, so use an address-size fault of the flat map instead).
		// Stage-2 translation fault on the final IPA from EL1, single
		// register load with syndrome: EC 0x24 to EL2, ISV=1, SAS=2 (4
		// bytes), SSE=1, SRT=3, SF=1, DFSC level 2 translation (the 40-bit
		// IPA space starts at level 1: the hole's level-2 entry is invalid).
		{"s2 translation ISV", true, 1, false, vaS2Hole, false, cpu.Insn{Valid: true, Reg: 3, SignExtend: true, SixtyFour: true}, 4, 2,
			0x24<<26 | il | 1<<24 | 2<<22 | 1<<21 | 3<<16 | 1<<15 | 0b000110, holeIPA >> 12 << 4},
		// Same with a store and no valid syndrome: ISV=0, WnR=1.
		{"s2 translation store no ISV", true, 1, false, vaS2Hole, true, cpu.Insn{}, 8, 2, 0x24<<26 | il | 1<<6 | 0b000110, holeIPA >> 12 << 4},
	}
	for _, c := range cases {
		m := newMachine(t, c.stage2)
		pe := m.pe
		pe.EL = c.el
		pe.RegsChanged()
		var e cpu.Exception
		if c.write {
			e = pe.Write(mem.VA(c.va), c.size, 0, c.insn)
		} else {
			_, e = pe.Read(mem.VA(c.va), c.size, c.insn)
		}
		if !e.Taken() {
			t.Errorf("%s: no exception", c.name)
			continue
		}
		if e.TargetEL != c.wantTarget || uint64(e.ESR) != c.wantESR {
			t.Errorf("%s: EL%d ESR %#x, want EL%d ESR %#x", c.name, e.TargetEL, uint64(e.ESR), c.wantTarget, c.wantESR)
		}
		if pe.EL != c.wantTarget || uint64(pe.ESR[c.wantTarget]) != c.wantESR || pe.FAR[c.wantTarget] != c.va {
			t.Errorf("%s: PE state after entry: EL%d ESR %#x FAR %#x", c.name, pe.EL, uint64(pe.ESR[c.wantTarget]), pe.FAR[c.wantTarget])
		}
		if c.wantHPFAR != 0 && uint64(pe.HPFAR) != c.wantHPFAR {
			t.Errorf("%s: HPFAR %#x, want %#x", c.name, uint64(pe.HPFAR), c.wantHPFAR)
		}
		if err := pe.ERET(); err.Taken() || pe.EL != c.el {
			t.Errorf("%s: ERET to EL%d (%v)", c.name, pe.EL, err)
		}
	}
}

// A stage-2 fault on the stage-1 walk: S1PTW=1 and ISV=0 even for an
// instruction with a syndrome; HPFAR holds the table's IPA.
func TestS1PTWSyndrome(t *testing.T) {
	m := newMachine(t, true)
	pe := m.pe
	// Point the level-3 table of vaHole's 2M region at an unmapped IPA.
	_, addr, ok := m.s1.Get(vaHole, 2)
	if !ok {
		t.Fatal("no level-2 entry")
	}
	_ = m.ram.Write64(mem.PA(addr), holeIPA|3)
	_, e := pe.Read(vaHole, 4, cpu.Insn{Valid: true, Reg: 1})
	want := uint64(0x24<<26 | 1<<25 | 1<<7 | 0b000110)
	if !e.Taken() || uint64(e.ESR) != want || e.TargetEL != 2 {
		t.Fatalf("got %s, want ESR %#x to EL2", e, want)
	}
	if uint64(e.HPFAR) != holeIPA>>12<<4 {
		t.Fatalf("HPFAR %#x, want %#x", uint64(e.HPFAR), uint64(holeIPA>>12<<4))
	}
}

func TestMSRRules(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	// EL1 cannot reach EL2 registers: UNDEFINED (EC 0).
	if e := pe.MSR(cpu.HCR_EL2, 0, 0); e.Kind != cpu.Undefined || e.ESR.EC() != 0 {
		t.Errorf("MSR HCR_EL2 at EL1: %s", e)
	}
	_ = pe.ERET()
	// HCR_EL2.TVM traps EL1 writes of TTBR0_EL1: EC 0x18, ISS Op0=3 Op2=0
	// Op1=0 CRn=2 Rt=9 CRm=0 Direction=0.
	pe.Regs.HCR_EL2 |= sysreg.HCR_TVM
	e := pe.MSR(cpu.TTBR0_EL1, 9, 0x1234)
	wantISS := uint64(3<<20 | 0<<17 | 0<<14 | 2<<10 | 9<<5 | 0<<1)
	if e.Kind != cpu.SysTrap || e.ESR.EC() != 0x18 || uint64(e.ESR.ISS()) != wantISS || e.TargetEL != 2 {
		t.Errorf("MSR TTBR0_EL1 with TVM: %s, want trap ISS %#x", e, wantISS)
	}
	_ = pe.ERET()
	// At EL2 with E2H=1, SCTLR_EL1 means SCTLR_EL2 and SCTLR_EL12 means SCTLR_EL1.
	pe.EL = 2
	pe.Regs.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_E2H
	pe.RegsChanged()
	if e := pe.MSR(cpu.SCTLR_EL1, 0, 0xabc); e.Taken() {
		t.Fatal(e)
	}
	if e := pe.MSR(cpu.SCTLR_EL12, 0, 0xdef); e.Taken() {
		t.Fatal(e)
	}
	if pe.Regs.SCTLR_EL2 != 0xabc || pe.Regs.SCTLR_EL1 != 0xdef {
		t.Errorf("E2H redirection: SCTLR_EL2 %#x SCTLR_EL1 %#x", uint64(pe.Regs.SCTLR_EL2), uint64(pe.Regs.SCTLR_EL1))
	}
	// Without E2H the *_EL12 names are UNDEFINED.
	pe.Regs.HCR_EL2 = sysreg.HCR_RW
	if _, e := pe.MRS(cpu.SCTLR_EL12, 0); e.Kind != cpu.Undefined {
		t.Errorf("MRS SCTLR_EL12 with E2H=0: %s", e)
	}
	_ = pe.ERET()
	pe.EL = 2
	if e := pe.MSR(cpu.ID_AA64MMFR0_EL1, 0, 0); e.Kind != cpu.Undefined {
		t.Errorf("MSR to an ID register: %s", e)
	}
}

// HCR_EL2.TTLB traps EL1 TLBIs: EC 0x18 with Op0=1 Op1=0 CRn=8 and the
// operation's CRm/Op2 (TLBI VAE1: CRm=7 Op2=1), Rt in [9:5].
func TestTLBITrapsAndUndefined(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	pe.Regs.HCR_EL2 |= sysreg.HCR_TTLB
	e := pe.TLBI(tlb.OpVAE1, 4, 0)
	want := uint64(1<<20 | 1<<17 | 0<<14 | 8<<10 | 4<<5 | 7<<1)
	if e.Kind != cpu.SysTrap || uint64(e.ESR.ISS()) != want {
		t.Errorf("TLBI VAE1 with TTLB: %s, want ISS %#x", e, want)
	}
	_ = pe.ERET()
	if e := pe.TLBI(tlb.OpALLE2, 0, 0); e.Kind != cpu.Undefined {
		t.Errorf("TLBI ALLE2 at EL1: %s, want UNDEFINED", e)
	}
}

func TestATWritesPAR(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	if e := pe.AT(at.S1E1R, 0, vaData); e.Taken() {
		t.Fatal(e)
	}
	if pe.PAR.F() || pe.PAR.PA() != dataIPA {
		t.Fatalf("PAR %#x", uint64(pe.PAR))
	}
	if e := pe.AT(at.S1E1W, 0, vaRO); e.Taken() || !pe.PAR.F() || pe.PAR.FST() != 0b001111 {
		t.Fatalf("AT S1E1W on a read-only page: PAR %#x %s", uint64(pe.PAR), e)
	}
}

func TestTLBHitAllocatesNothing(t *testing.T) {
	m := newMachine(t, true)
	pe := m.pe
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		t.Fatal(e)
	}
	n := testing.AllocsPerRun(1000, func() { _, _ = pe.Read(vaData+8, 8, cpu.Insn{}) })
	if n != 0 {
		t.Fatalf("TLB-hit load allocates %.1f times", n)
	}
}

// BenchmarkTLBHitLoad: a load that hits the TLB (two-stage VM).
func BenchmarkTLBHitLoad(b *testing.B) {
	m := newMachine(b, true)
	pe := m.pe
	if _, e := pe.Read(vaData, 8, cpu.Insn{}); e.Taken() {
		b.Fatal(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = pe.Read(vaData+8, 8, cpu.Insn{})
	}
}

// BenchmarkTLBMissLoad: every load misses (TLB flushed) and walks 3-over-3... levels.
func BenchmarkTLBMissLoad(b *testing.B) {
	m := newMachine(b, true)
	pe := m.pe
	b.ReportAllocs()
	for b.Loop() {
		pe.TLB.Flush()
		_, _ = pe.Read(vaData+8, 8, cpu.Insn{})
	}
}

// With the guest's stage 1 off (SCTLR_EL1.M=0) and stage 2 on, the output
// of stage 1 is the VA itself (AArch64.S1DisabledOutput) and the TLB holds
// stage-2-only entries: the second access must hit.
func TestStage1OffHitsStage2OnlyEntry(t *testing.T) {
	m := newMachine(t, true)
	pe := m.pe
	pe.Regs.SCTLR_EL1 = 0
	pe.RegsChanged()
	_ = m.ram.Write(dataIPA, 8, 0x77)
	for i := 0; i < 2; i++ {
		v, e := pe.Read(dataIPA, 8, cpu.Insn{})
		if e.Taken() || v != 0x77 {
			t.Fatalf("access %d: %#x %s", i, v, e)
		}
	}
	if pe.Stats.Walks != 1 || pe.Stats.TLBHits != 1 {
		t.Fatalf("%d walks, %d hits: want 1 walk then a TLB hit", pe.Stats.Walks, pe.Stats.TLBHits)
	}
}

// An injected exception is an ordinary exception entry: ERET returns to
// the EL it came from.
func TestTakeExceptionAndERET(t *testing.T) {
	m := newMachine(t, false)
	pe := m.pe
	pe.EL = 0
	pe.Regs.SCTLR_EL1 &^= 1 << 23 // SPAN=0
	pe.RegsChanged()
	e := cpu.Exception{Kind: cpu.DataAbort, TargetEL: 1, FAR: 0x1234, ESR: sysreg.ESR(0x24<<26 | 1<<25 | 0x10)}
	pe.TakeException(&e)
	if pe.EL != 1 || e.FromEL != 0 || pe.FAR[1] != 0x1234 || pe.ESR[1] != e.ESR {
		t.Fatalf("after entry: EL%d from EL%d FAR %#x ESR %#x", pe.EL, e.FromEL, pe.FAR[1], uint64(pe.ESR[1]))
	}
	if !pe.PAN {
		t.Error("entry to EL1 with SCTLR_EL1.SPAN=0 must set PSTATE.PAN")
	}
	if err := pe.ERET(); err.Taken() || pe.EL != 0 || pe.PAN {
		t.Fatalf("ERET: EL%d PAN=%v %v", pe.EL, pe.PAN, err)
	}
}
