package qemu

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// newOracle returns an Oracle, skipping the test when QEMU is absent unless
// NESTMMU_REQUIRE_QEMU=1.
func newOracle(t testing.TB, opts Options) *Oracle {
	t.Helper()
	if _, err := Find(); err != nil {
		if os.Getenv("NESTMMU_REQUIRE_QEMU") == "1" {
			t.Fatalf("NESTMMU_REQUIRE_QEMU=1 but: %v", err)
		}
		t.Skipf("skipping: %v (install qemu-system-arm 10 from bookworm-backports)", err)
	}
	o, err := New(opts)
	if errors.Is(err, ErrTooOld) && os.Getenv("NESTMMU_REQUIRE_QEMU") != "1" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// run runs cases and fails the test on a batch error.
func run(t *testing.T, o *Oracle, cases ...Case) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := o.Run(ctx, cases)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res) != len(cases) {
		t.Fatalf("Run returned %d results for %d cases", len(res), len(cases))
	}
	return res
}

// parMask clears the PAR_EL1 bits a comparison must ignore: NS (bit 9,
// UNKNOWN for a Non-secure regime) and the IMPLEMENTATION DEFINED bits
// [55:52], and [63:56] as well when F=1.
func parMask(par uint64) uint64 {
	par &^= 1<<9 | 0xf<<52
	if par&1 != 0 {
		par &^= 0xff << 56
	}
	return par
}

// expectPARs checks r's operations against want (masked with parMask).
func expectPARs(t *testing.T, name string, r Result, want ...uint64) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: %v", name, r.Err)
	}
	if len(r.Ops) != len(want) {
		t.Fatalf("%s: %d op results, want %d", name, len(r.Ops), len(want))
	}
	for i, w := range want {
		got := r.Ops[i]
		if got.Exception {
			t.Errorf("%s: op %d: exception ESR %#x FAR %#x, want PAR %#x", name, i, got.ESR, got.FAR, w)
			continue
		}
		if parMask(got.PAR) != parMask(w) {
			t.Errorf("%s: op %d: PAR %#x, want %#x (ignoring NS and IMPLEMENTATION DEFINED bits)", name, i, got.PAR, w)
		}
	}
}

// Register values used by the hand-derived cases (Arm ARM D23).
const (
	hcrVM      = 1 << 0
	hcrTGE     = 1 << 27
	hcrE2H     = 1 << 34
	sctlrEL1M  = 0x30d00801 // RES1 bits of SCTLR_EL1 | M
	sctlrEL2M  = 0x30c50831 // RES1 bits of SCTLR_EL2 (E2H=0) | M
	tcr39      = 0x19       // T0SZ=25: 39-bit VA, 4K granule, level-1 start
	tcrHA      = 1 << 39    // TCR_EL1.HA
	tcrIPS40   = 2 << 32    // TCR_EL1.IPS = 40 bits
	tcrEL2PS40 = 1<<31 | 1<<23 | 2<<16 | 0x19
	vtcr39     = 1<<31 | 2<<16 | 3<<12 | 1<<10 | 1<<8 | 1<<6 | 0x19 // PS 40, SH0 inner, WBWA, SL0=1, T0SZ=25
	mairWB     = 0xff                                               // Attr0: Normal, Inner/Outer WB RW-allocate
	// Stage-1 descriptors: block/page | AttrIndx 0 | SH inner | AF, with
	// AP[2:1] in bits [7:6].
	s1Table = 0b11
	s1Block = 0b01 | 3<<8 | 1<<10
	s1Page  = 0b11 | 3<<8 | 1<<10
	// Stage-2 block: MemAttr 0b1111 (Normal WB) | S2AP RW | SH inner | AF.
	s2Block = 0b01 | 0xf<<2 | 3<<6 | 3<<8 | 1<<10
)

// atJSONExample is the complete example of docs/AT-JSON.md.
func atJSONExample() Case {
	return Case{
		EL: 2,
		Regs: map[string]uint64{"HCR_EL2": 0x80000000, "SCTLR_EL1": 0x30d00805,
			"TCR_EL1": 0x8580190019, "TTBR0_EL1": 0x44000000, "MAIR_EL1": 0xff},
		Mem: map[uint64]uint64{0x44000000: 0x44001003, 0x44001000: 0x44002003,
			0x44002008: 0x40001703, 0x44002010: 0x40002343},
		Ops:   []Op{{"S1E1R", 0x1234}, {"S1E0R", 0x1234}, {"S1E1R", 0x2010}, {"S1E1W", 0x3000}},
		Watch: []uint64{0x44002010},
	}
}

// TestIDRegs checks the ID registers the runner read against the values
// recorded in the reference (QEMU 10.0 -cpu max).
func TestIDRegs(t *testing.T) {
	o := newOracle(t, Options{})
	want := IDRegs{MMFR0: 0x2100032310201126, MMFR1: 0x0110112010312122,
		MMFR2: 0x1221011112011011, MMFR3: 0x1000000000000000}
	if got := o.IDRegs(); got != want {
		t.Errorf("IDRegs = %+x, want %+x", got, want)
	}
	if v := o.Version(); v == "" {
		t.Error("no QEMU version")
	} else {
		t.Logf("QEMU %s", v)
	}
	if o.sctlr2&1 != 0 {
		t.Errorf("SCTLR_EL2 at reset %#x has M=1", o.sctlr2)
	}
}

// TestATJSONExample runs the contract's complete example; the expected
// PARs are those stated in docs/AT-JSON.md.
func TestATJSONExample(t *testing.T) {
	o := newOracle(t, Options{})
	res := run(t, o, atJSONExample())
	expectPARs(t, "at-json example", res[0], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	if len(res[0].Watch) != 1 || res[0].Watch[0] != 0x40002743 {
		t.Errorf("watched descriptor = %#x, want [0x40002743] (AF set by the walk, HA=1)", res[0].Watch)
	}
}

// TestStage1 covers stage-1 faults and PAN by hand-derived cases.
func TestStage1(t *testing.T) {
	o := newOracle(t, Options{})
	regs := map[string]uint64{"HCR_EL2": hcrRW, "SCTLR_EL1": sctlrEL1M,
		"TCR_EL1": tcr39 | tcrIPS40, "TTBR0_EL1": 0x44000000, "MAIR_EL1": mairWB}
	// Empty level-1 table: the level-1 descriptor is invalid, so the
	// fault is a translation fault at level 1: FST 0b000101, PAR
	// F=1 | FST<<1 | RES1 bit 11 = 0x80b.
	l1fault := Case{Regs: regs, Ops: []Op{{"S1E1R", 0x1000}, {"S1E0W", 0x7fff_f000}}}
	// Level-3 page with AP[2:1]=0b01 (EL0 and EL1 RW): PAN applies to
	// S1E1RP/S1E1WP only, and only when PSTATE.PAN=1 (Arm ARM, AT S1E1RP:
	// "taking account of PSTATE.PAN"; AT S1E1R does not check PAN).
	mem := map[uint64]uint64{0x44000000: 0x44001000 | s1Table, 0x44001000: 0x44002000 | s1Table,
		0x44002020: 0x40004000 | s1Page | 1<<6}
	pan := Case{Regs: regs, PAN: true, Mem: mem,
		Ops: []Op{{"S1E1R", 0x4008}, {"S1E1RP", 0x4008}, {"S1E1WP", 0x4008}, {"S1E0W", 0x4008}}}
	nopan := pan
	nopan.PAN = false
	res := run(t, o, l1fault, pan, nopan)
	expectPARs(t, "level-1 translation fault", res[0], 0x80b, 0x80b)
	// Permission fault level 3: FST 0b001111 -> PAR 0x81f.
	expectPARs(t, "PAN=1", res[1], 0xff00000040004b80, 0x81f, 0x81f, 0xff00000040004b80)
	expectPARs(t, "PAN=0", res[2], 0xff00000040004b80, 0xff00000040004b80, 0xff00000040004b80, 0xff00000040004b80)
}

// twoStage returns a case with stage 1 (39-bit, level-1 table at IPA
// 0x44000000, a 1 GiB block VA 0x40000000 -> IPA 0x40000000) and stage 2
// (39-bit IPA, level-1 table at 0x45000000 pointing to a level-2 table with
// 2 MiB blocks IPA 0x40000000 -> PA s2out and IPA 0x44000000 -> PA
// 0x44000000).
func twoStage(s2out uint64, mapS1Table bool) Case {
	mem := map[uint64]uint64{
		0x44000008: 0x40000000 | s1Block, // VA [1 GiB, 2 GiB)
		0x45000008: 0x45001000 | s1Table, // IPA [1 GiB, 2 GiB) -> level 2
		0x45001000: s2out | s2Block,      // IPA 0x40000000 (2 MiB)
	}
	if mapS1Table {
		mem[0x45001000+8*0x20] = 0x44000000 | s2Block // IPA 0x44000000
	}
	return Case{
		Regs: map[string]uint64{"HCR_EL2": hcrRW | hcrVM, "SCTLR_EL1": sctlrEL1M,
			"TCR_EL1": tcr39 | tcrIPS40, "TTBR0_EL1": 0x44000000, "MAIR_EL1": mairWB,
			"VTCR_EL2": vtcr39, "VTTBR_EL2": 0x45000000},
		Mem: mem,
		Ops: []Op{{"S12E1R", 0x40000000}, {"S1E1R", 0x40000000}, {"S12E1W", 0x40001008}, {"S12E0R", 0x40000000}},
	}
}

// TestTwoStage checks stage 1 + stage 2 with hand-derived PARs.
func TestTwoStage(t *testing.T) {
	o := newOracle(t, Options{})
	res := run(t, o, twoStage(0x40000000, true), twoStage(0x48000000, true), twoStage(0x48000000, false))
	// Identity: the reference value of qemu-oracle.md. S1 ATTR 0xff with
	// S2 Normal WB combines to 0xff; SH inner (0b11 in PAR[8:7]); S12E0R
	// faults at stage 1 (AP[2:1]=0b00: no EL0 access, level-1 permission,
	// FST 0b001101 -> 0x81b).
	expectPARs(t, "two-stage identity", res[0], 0xff00000040000b80, 0xff00000040000b80, 0xff00000040001b80, 0x81b)
	// Stage 2 moves IPA 0x40000000 to PA 0x48000000; S1E1R stops at the IPA.
	expectPARs(t, "two-stage", res[1], 0xff00000048000b80, 0xff00000040000b80, 0xff00000048001b80, 0x81b)
	// Stage 2 does not map the stage-1 table's IPA: stage-2 translation
	// fault at level 2 on the stage-1 walk: F | FST 0b000110 | PTW (bit 8)
	// | S (bit 9) | RES1 bit 11 = 0xb0d, for S1E1R too (HCR_EL2.VM=1).
	expectPARs(t, "stage-2 fault on walk", res[2], 0xb0d, 0xb0d, 0xb0d, 0xb0d)

	// Faults of the final stage-2 lookup (level-2 block for IPA
	// 0x40000000): S=1, PTW=0; S1E1R is not affected.
	unmapped := twoStage(0x48000000, true)
	delete(unmapped.Mem, 0x45001000)
	noAF := twoStage(0x48000000, true)
	noAF.Mem[0x45001000] &^= 1 << 10 // AF=0 and VTCR_EL2.HA=0
	tooBig := twoStage(0x48000000, true)
	tooBig.Mem[0x45001000] |= 1 << 41 // output above VTCR_EL2.PS (40 bits)
	res = run(t, o, unmapped, noAF, tooBig)
	// Translation level 2: FST 0b000110 -> 0xa0d.
	expectPARs(t, "final stage-2 translation", res[0], 0xa0d, 0xff00000040000b80, 0xa0d, 0x81b)
	// Access flag level 2: FST 0b001010 -> 0xa15.
	expectPARs(t, "final stage-2 access flag", res[1], 0xa15, 0xff00000040000b80, 0xa15, 0x81b)
	// Address size level 2: FST 0b000010 -> 0xa05.
	expectPARs(t, "final stage-2 address size", res[2], 0xa05, 0xff00000040000b80, 0xa05, 0x81b)
}

// TestExternalAbortOnWalk checks that a walk read of an address in
// AbortRanges makes AT take a Data Abort to EL2 (EC 0x25, DFSC 0b0101xx:
// synchronous External abort on translation table walk at level 1) rather
// than write PAR_EL1, and that the runner resumes after it.
func TestExternalAbortOnWalk(t *testing.T) {
	o := newOracle(t, Options{})
	var cases []Case
	for _, r := range AbortRanges() {
		for _, pa := range []uint64{r.Base, r.Base + r.Size/2&^0xfff, r.End() - 0x1000, 0x80000000, 0x1_0000_0000} {
			if !r.Contains(pa, 8) {
				continue
			}
			cases = append(cases, Case{
				Regs: map[string]uint64{"HCR_EL2": hcrRW, "SCTLR_EL1": sctlrEL1M,
					"TCR_EL1": tcr39 | 5<<32, "TTBR0_EL1": pa, "MAIR_EL1": mairWB},
				Ops: []Op{{"S1E1R", 0x1000}, {"S1E1W", 0x2000}},
			})
		}
	}
	res := run(t, o, cases...)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("case %d: %v", i, r.Err)
		}
		for j, op := range r.Ops {
			pa := cases[i].Regs["TTBR0_EL1"]
			if !op.Exception {
				t.Errorf("TTBR0 %#x op %d: PAR %#x, want a synchronous External abort", pa, j, op.PAR)
				continue
			}
			dfsc := op.ESR & 0x3f
			if op.EC() != 0x25 || op.Vector != 4 || dfsc != 0x15 {
				t.Errorf("TTBR0 %#x op %d: vector %d ESR %#x (EC %#x DFSC %#x), want vector 4 (current EL, SP_ELx, synchronous), EC 0x25, DFSC 0x15",
					pa, j, op.Vector, op.ESR, op.EC(), dfsc)
			}
			if i == 0 && j == 0 {
				t.Logf("SEA on walk: ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x", op.ESR, op.FAR, op.HPFAR)
			}
		}
	}
}

// TestFlashReadsData checks that a walk read of the flash at PA 0 returns
// data (no abort), so a generator must keep walks away from it.
func TestFlashReadsData(t *testing.T) {
	o := newOracle(t, Options{})
	c := Case{Regs: map[string]uint64{"HCR_EL2": hcrRW, "SCTLR_EL1": sctlrEL1M,
		"TCR_EL1": tcr39 | 5<<32, "TTBR0_EL1": 0, "MAIR_EL1": mairWB},
		Ops: []Op{{"S1E1R", 0x1000}, {"S1E1R", 0x40000000}}}
	res := run(t, o, c)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	for i, op := range res[0].Ops {
		if op.Exception {
			t.Errorf("op %d: walk read of flash took an exception (ESR %#x)", i, op.ESR)
		}
		t.Logf("flash walk op %d: PAR %#x", i, op.PAR)
	}
}

// TestMemoryIsolation checks that RAM reads as zero outside a case's words:
// the device tree QEMU put at the start of RAM is gone, and words written
// by an earlier case (and the access flag the walk set in them) do not
// leak into the next.
func TestMemoryIsolation(t *testing.T) {
	o := newOracle(t, Options{Instances: 1})
	probe := Case{Watch: []uint64{RAMBase, RAMBase + 8, RAMBase + 0x1000, RAMBase + bootZeroSize - 8,
		0x44000000, 0x44002010, 0x44002008, CaseRAM().End() - 8}}
	// Every word of the first 8 KiB, every 4 KiB of the first 4 MiB, every
	// 64 KiB of the rest of case RAM.
	for pa := uint64(RAMBase); pa < RAMBase+8<<10; pa += 8 {
		probe.Watch = append(probe.Watch, pa)
	}
	for pa := uint64(RAMBase); pa < RAMBase+4<<20; pa += 4 << 10 {
		probe.Watch = append(probe.Watch, pa)
	}
	for pa := uint64(RAMBase); pa < CaseRAM().End(); pa += 64 << 10 {
		probe.Watch = append(probe.Watch, pa)
	}
	writer := Case{Mem: map[uint64]uint64{CaseRAM().End() - 8: 0x1234}}
	res := run(t, o, probe, atJSONExample(), probe, writer, probe)
	for _, i := range []int{0, 2, 4} {
		if res[i].Err != nil {
			t.Fatal(res[i].Err)
		}
		for j, w := range res[i].Watch {
			if w != 0 {
				t.Errorf("case %d: word %#x = %#x, want 0", i, probe.Watch[j], w)
			}
		}
	}
}

// TestEL2Regime runs AT S1E2* and the EL2&0 regime with SCTLR_EL2.M=1,
// keeping the identity-map contract for RunnerCodePage.
func TestEL2Regime(t *testing.T) {
	o := newOracle(t, Options{})
	// EL2 regime (E2H=0): level-1 table at 0x46000000. Entry 1 is a 1 GiB
	// identity block over RAM, which covers RunnerCodePage (AP[2:1]=0b01:
	// AP[1] is RES1 in a one-privilege regime; RW, executable). Entry 2
	// maps VA 0x80000000 read-only (AP[2]=1) to PA 0x40000000.
	el2 := Case{
		Regs: map[string]uint64{"HCR_EL2": hcrRW, "SCTLR_EL2": sctlrEL2M,
			"TCR_EL2": tcrEL2PS40, "TTBR0_EL2": 0x46000000, "MAIR_EL2": mairWB},
		Mem: map[uint64]uint64{0x46000008: 0x40000000 | s1Block | 1<<6,
			0x46000010: 0x40000000 | s1Block | 3<<6},
		Ops: []Op{{"S1E2R", 0x40001000}, {"S1E2W", RunnerCodePage + 0x10}, {"S1E2R", 0x1000},
			{"S1E2R", 0x80002000}, {"S1E2W", 0x80002000}},
	}
	// EL2&0 regime (E2H=1, TGE=1): AT S1E1R/S1E0R at EL2 translate the
	// EL2&0 regime with TCR_EL2 in its TCR_EL1 layout (EPD1=1, IPS 40).
	// AP[2:1]=0b00: EL2 RW, no EL0 access.
	el20 := Case{
		Regs: map[string]uint64{"HCR_EL2": hcrRW | hcrE2H | hcrTGE, "SCTLR_EL2": sctlrEL1M,
			"TCR_EL2": tcr39 | 1<<23 | tcrIPS40, "TTBR0_EL2": 0x46000000, "MAIR_EL2": mairWB},
		Mem: map[uint64]uint64{0x46000008: 0x40000000 | s1Block},
		Ops: []Op{{"S1E1R", 0x40002000}, {"S1E0R", 0x40002000}, {"S1E2R", 0x40003000}, {"S1E1W", 0x3000}},
	}
	// Stage 1 of EL1&0 with SCTLR_EL2.M=1 as well: the EL2 regime only
	// carries the runner.
	el1 := atJSONExample()
	el1.Regs["SCTLR_EL2"], el1.Regs["TCR_EL2"], el1.Regs["TTBR0_EL2"], el1.Regs["MAIR_EL2"] =
		sctlrEL2M, tcrEL2PS40, 0x46000000, mairWB
	el1.Mem[0x46000008] = 0x40000000 | s1Block | 1<<6
	res := run(t, o, el2, el20, el1)
	// Level-1 block faults: translation 0x80b, permission 0x81b.
	expectPARs(t, "EL2", res[0], 0xff00000040001b80, 0xff0000004f000b80, 0x80b, 0xff00000040002b80, 0x81b)
	expectPARs(t, "EL2&0", res[1], 0xff00000040002b80, 0x81b, 0xff00000040003b80, 0x80b)
	expectPARs(t, "EL1&0 under an EL2 MMU", res[2], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
}

// TestEL2ContractViolation checks that a case with SCTLR_EL2.M=1 which does
// not map RunnerCodePage fails alone (instruction-abort loop caught by the
// case timeout) and that the batch resumes with the next case.
func TestEL2ContractViolation(t *testing.T) {
	o := newOracle(t, Options{Instances: 1, CaseTimeout: 3 * time.Second})
	bad := Case{Regs: map[string]uint64{"HCR_EL2": hcrRW, "SCTLR_EL2": sctlrEL2M,
		"TCR_EL2": tcrEL2PS40, "TTBR0_EL2": 0x46000000},
		Ops: []Op{{"S1E2R", 0x1000}}}
	res := run(t, o, atJSONExample(), bad, atJSONExample())
	if res[1].Err == nil || !(errors.Is(res[1].Err, ErrTimeout) || errors.Is(res[1].Err, ErrRunnerFault)) {
		t.Errorf("contract violation: Err = %v, want ErrTimeout or ErrRunnerFault", res[1].Err)
	} else {
		t.Logf("contract violation reported as: %v", res[1].Err)
	}
	expectPARs(t, "case before", res[0], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	expectPARs(t, "case after", res[2], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
}

// TestCrashResume kills QEMU right after case 3's result, as if QEMU had
// aborted while running case 4, and checks that case 4 alone is reported
// as a QEMU failure and the batch resumes with case 5 in a new launch.
func TestCrashResume(t *testing.T) {
	// Three cases per launch: launches [0 1 2], [3 4 5] (killed after 3),
	// then [5 6 7].
	o := newOracle(t, Options{Instances: 1, MaxCasesPerLaunch: 3})
	killed := false
	o.onResult = func(i int) bool {
		if i == 3 && !killed {
			killed = true
			return true
		}
		return false
	}
	cases := make([]Case, 8)
	for i := range cases {
		cases[i] = atJSONExample()
	}
	res := run(t, o, cases...)
	for i, r := range res {
		if i == 4 {
			if !errors.Is(r.Err, ErrQEMUCrashed) {
				t.Errorf("case 4: Err = %v, want ErrQEMUCrashed", r.Err)
			} else {
				t.Logf("case 4: %v", r.Err)
			}
			continue
		}
		expectPARs(t, "case", r, 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	}
}

// TestInvalidCases checks that cases the runner cannot run faithfully are
// rejected with ErrInvalidCase and a message naming the bad value, without
// disturbing the valid cases around them.
func TestInvalidCases(t *testing.T) {
	o := newOracle(t, Options{})
	id := o.IDRegs()
	tests := []struct {
		name string
		c    Case
	}{
		{"unknown register", Case{Regs: map[string]uint64{"TCR2_EL1": 1}}},
		{"ID register differs", Case{Regs: map[string]uint64{"ID_AA64MMFR0_EL1": id.MMFR0 ^ 0xf}}},
		{"unaligned word", Case{Mem: map[uint64]uint64{0x44000004: 1}}},
		{"word in runner area", Case{Mem: map[uint64]uint64{ReservedBase: 1}}},
		{"word outside RAM", Case{Mem: map[uint64]uint64{0x1000: 1}}},
		{"watch outside case RAM", Case{Watch: []uint64{RunnerCodePage}}},
		{"unknown op", Case{Ops: []Op{{"S1E3R", 0}}}},
		{"EL1", Case{EL: 1}},
	}
	cases := []Case{atJSONExample()}
	for _, tt := range tests {
		cases = append(cases, tt.c)
	}
	same := atJSONExample()
	same.Regs["ID_AA64MMFR0_EL1"], same.Regs["ID_AA64MMFR1_EL1"], same.Regs["ID_AA64MMFR2_EL1"] = id.MMFR0, id.MMFR1, id.MMFR2
	cases = append(cases, same)
	res := run(t, o, cases...)
	expectPARs(t, "first", res[0], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	expectPARs(t, "ID registers equal to QEMU's", res[len(res)-1], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	for i, tt := range tests {
		if err := res[i+1].Err; !errors.Is(err, ErrInvalidCase) {
			t.Errorf("%s: Err = %v, want ErrInvalidCase", tt.name, err)
		} else {
			t.Logf("%s: %v", tt.name, err)
		}
	}
}

// TestATS1A records that QEMU 10.0 does not implement FEAT_ATS1A: AT
// S1E1A and AT S1E2A are UNDEFINED (exception class 0, unknown reason),
// which the runner reports as an exception and skips.
func TestATS1A(t *testing.T) {
	o := newOracle(t, Options{})
	c := atJSONExample()
	c.Ops = []Op{{"S1E1A", 0x1234}, {"S1E2A", 0x1234}, {"S1E1R", 0x1234}}
	res := run(t, o, c)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	for i, op := range res[0].Ops[:2] {
		if !op.Exception || op.EC() != 0 {
			t.Errorf("op %d (%s): %+v, want an UNDEFINED exception (EC 0)", i, c.Ops[i].Name, op)
		}
	}
	expectPARs(t, "after", Result{Ops: res[0].Ops[2:]}, 0xff00000040001b80)
}

// TestRunEmptyAndCancel checks the trivial batch and a cancelled context.
func TestRunEmptyAndCancel(t *testing.T) {
	o := newOracle(t, Options{})
	if res, err := o.Run(context.Background(), nil); err != nil || len(res) != 0 {
		t.Errorf("Run(nil) = %v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := o.Run(ctx, []Case{atJSONExample(), atJSONExample()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Run: err = %v", err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("cancelled Run: case %d Err = %v", i, r.Err)
		}
	}
}

// TestQEMUAbortsOnFinalStage2Permission runs the QEMU 10.0.2 crash this
// harness must survive: AT S12E* whose final stage-2 lookup takes a
// Permission fault makes QEMU abort (assertion !res.cacheattrs.is_s2_format
// in do_ats_write). The case must be reported as ErrQEMUCrashed and the
// batch resumed. The architecture's answer, should QEMU be fixed, is a
// stage-2 Permission fault at level 2 without PTW: F | FST 0b001110 | S
// (bit 9) | RES1 bit 11 = 0xa1d.
func TestQEMUAbortsOnFinalStage2Permission(t *testing.T) {
	o := newOracle(t, Options{Instances: 1})
	noAccess := twoStage(0x48000000, true)
	noAccess.Mem[0x45001000] &^= 3 << 6 // S2AP = 0b00
	noAccess.Ops = []Op{{"S12E1R", 0x40000000}}
	readOnly := twoStage(0x48000000, true)
	readOnly.Mem[0x45001000] &^= 2 << 6 // S2AP = 0b01
	readOnly.Ops = []Op{{"S12E1R", 0x40000000}, {"S12E1W", 0x40000000}}
	res := run(t, o, atJSONExample(), noAccess, atJSONExample(), readOnly, atJSONExample())
	for _, i := range []int{0, 2, 4} {
		expectPARs(t, "good case", res[i], 0xff00000040001b80, 0x81f, 0xff00000040002b80, 0x80f)
	}
	for _, c := range []struct {
		i    int
		want []uint64
	}{{1, []uint64{0xa1d}}, {3, []uint64{0xff00000048000b80, 0xa1d}}} {
		r := res[c.i]
		if r.Err == nil {
			t.Logf("case %d: QEMU no longer aborts; checking the architectural PARs", c.i)
			expectPARs(t, "stage-2 permission", r, c.want...)
			continue
		}
		if !errors.Is(r.Err, ErrQEMUCrashed) || !strings.Contains(r.Err.Error(), "is_s2_format") {
			t.Errorf("case %d: Err = %v, want ErrQEMUCrashed with the assertion message", c.i, r.Err)
		}
	}
}

// TestKnownDeviations logs QEMU answers that differ from the architecture
// (docs/QEMU-ORACLE.md lists them with the deciding rule); it fails only
// if QEMU's answer is neither the architectural one nor the known one.
func TestKnownDeviations(t *testing.T) {
	o := newOracle(t, Options{})
	// HCR_EL2.PTW=1 and the stage-1 table lies in stage-2 Device memory:
	// a stage-2 Permission fault on the walk. AArch64.SecondStageWalk /
	// AArch64.S2Translate report it at the level of the stage-2 leaf (a
	// level-2 block here): PAR F | FST 0b001110 | PTW | S | RES1 = 0xb1d.
	// QEMU 10.0 reports level 0 (0xb19).
	c := twoStage(0x48000000, true)
	c.Mem[0x45001000+8*0x20] &^= 0xf << 2 // MemAttr 0b0000: Device-nGnRnE
	c.Regs["HCR_EL2"] |= 1 << 2           // PTW
	c.Ops = []Op{{"S12E1R", 0x40000000}, {"S1E1R", 0x40000000}}
	res := run(t, o, c)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	for i, op := range res[0].Ops {
		switch parMask(op.PAR) {
		case parMask(0xb1d):
			t.Logf("op %d: PTW Device permission fault at level 2 (architectural)", i)
		case parMask(0xb19):
			t.Logf("op %d: PAR %#x: known QEMU deviation (PTW fault reported at level 0)", i, op.PAR)
		default:
			t.Errorf("op %d: %v, want PAR 0xb1d", i, op)
		}
	}
}
