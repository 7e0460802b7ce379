package vmsa_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// TestTBID: TCR_ELx.TBIDn limits top-byte-ignore to data accesses
// (AArch64.AddrTop): a tagged VA translates for a load, not for a fetch.
func TestTBID(t *testing.T) {
	g := newRig(t)
	g.std4k()
	g.r.TCR_EL1 |= 1<<37 | 1<<51 // TBI0, TBID0
	const va = 0x7f00_0000_0000_1234
	if tr := g.tr(va, rd1); tr.Fault.IsFault() || tr.OA != 0x4000_1234 {
		t.Errorf("data access: %v OA %#x", tr.Fault, tr.OA)
	}
	tr := g.tr(va, vmsa.Access{Kind: vmsa.Fetch, EL: 1})
	wantFault(t, tr.Fault, vmsa.FaultTranslation, 0, false)
	g.r.TCR_EL1 &^= 1 << 51
	if tr := g.tr(va, vmsa.Access{Kind: vmsa.Fetch, EL: 1}); tr.Fault.IsFault() {
		t.Errorf("fetch with TBI0, TBID0=0: %v", tr.Fault)
	}
}

// TestASIDAndNG: the ASID comes from TTBR0 or TTBR1 by TCR_EL1.A1, 16 bits
// only with TCR_EL1.AS=1 and 16-bit ASID support; nG is reported.
func TestASIDAndNG(t *testing.T) {
	cases := []struct {
		a1, as   bool
		asidBits uint64 // ID_AA64MMFR0_EL1.ASIDBits
		want     uint16
	}{
		{false, true, 2, 0xa1b2},
		{true, true, 2, 0xc3d4},
		{false, false, 2, 0xb2},
		{true, false, 2, 0xd4},
		{false, true, 0, 0xb2},
	}
	for _, c := range cases {
		g := newRig(t)
		g.std4k()
		g.r.TTBR0_EL1 |= 0xa1b2 << 48
		g.r.TTBR1_EL1 = 0xc3d4 << 48
		if c.a1 {
			g.r.TCR_EL1 |= 1 << 22
		}
		if c.as {
			g.r.TCR_EL1 |= 1 << 36
		}
		g.r.MMFR0 = sysreg.MMFR0(uint64(g.r.MMFR0)&^0xf0 | c.asidBits<<4)
		g.put(rL3+8, 0x4000_1000|xTable|xAF|xIS|1<<11)
		tr := g.tr(0x1234, rd1)
		if tr.Fault.IsFault() || tr.ASID != c.want || !tr.NG {
			t.Errorf("A1=%v AS=%v ASIDBits=%d: fault %v ASID %#x nG %v; want ASID %#x nG", c.a1, c.as, c.asidBits, tr.Fault, tr.ASID, tr.NG, c.want)
		}
	}
}

// TestStage2Execute: stage-2 XN[1:0] (bits [54:53]). Without FEAT_XNX only
// XN[1] counts. With FEAT_XNX: 00 executable at EL0 and EL1, 01 not at
// EL1, 10 at neither, 11 not at EL0.
func TestStage2Execute(t *testing.T) {
	for _, xnx := range []bool{false, true} {
		for xn := uint64(0); xn < 4; xn++ {
			var x0, x1 bool
			if xnx {
				x0 = xn == 0 || xn == 1
				x1 = xn == 0 || xn == 3
			} else {
				x0 = xn&2 == 0
				x1 = x0
			}
			for el, want := range []bool{x0, x1} {
				g := newRig(t)
				g.std2()
				if !xnx {
					g.r.MMFR1 = sysreg.MMFR1(uint64(g.r.MMFR1) &^ (0xf << 28))
				}
				g.s2page(0x4000_1000, 0x4000_1000|xTable|0xf<<2|3<<6|xIS|xAF|xn<<53)
				tr := g.w.TranslateS2(&g.r, 0x4000_1000, vmsa.Access{Kind: vmsa.Fetch, EL: uint8(el)})
				if ok := !tr.Fault.IsFault(); ok != want {
					t.Errorf("XNX=%v XN=%02b EL%d: fetch allowed=%v (%v), want %v", xnx, xn, el, ok, tr.Fault, want)
				}
			}
		}
	}
}

// TestPTWWithFWB: with HCR_EL2.FWB=1 a stage-2 MemAttr[2]=0 is Device, so
// HCR_EL2.PTW=1 makes the stage-1 walk there a stage-2 permission fault.
func TestPTWWithFWB(t *testing.T) {
	for _, c := range []struct {
		memattr uint64
		fault   bool
	}{{0b0001, true}, {0b0111, false}, {0b0110, false}, {0b0100, false}} {
		g := newRig(t)
		g.std4k()
		g.std2()
		g.r.HCR_EL2 |= sysreg.HCR_FWB | sysreg.HCR_PTW
		g.s2page(rL2, rL2|xTable|c.memattr<<2|3<<6|xIS|xAF)
		tr := g.tr(0x1234, rd1)
		if c.fault {
			wantFault(t, tr.Fault, vmsa.FaultPermission, 3, true)
			if !tr.Fault.S1PTW || tr.Fault.IPA != rL2 {
				t.Errorf("MemAttr %04b: %+v, want S1PTW at IPA %#x", c.memattr, tr.Fault, rL2)
			}
		} else if tr.Fault.IsFault() {
			t.Errorf("MemAttr %04b: fault %v", c.memattr, tr.Fault)
		}
	}
}

// TestStage2WithDC: HCR_EL2.DC=1 disables stage 1 (Normal WB NSH output)
// and enables stage 2 even with VM=0.
func TestStage2WithDC(t *testing.T) {
	g := newRig(t)
	g.std2()
	g.r.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_DC
	g.r.SCTLR_EL1 = 1 // ignored
	tr := g.tr(0x4000_1234, rd1)
	if tr.Fault.IsFault() || !tr.S2 || tr.OA != 0x4000_1234 {
		t.Fatalf("fault %v S2 %v OA %#x", tr.Fault, tr.S2, tr.OA)
	}
	// Stage-1 WB NSH with stage-2 WB ISH: WB, ISH.
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.WriteBack || tr.Attrs.Shareability != vmsa.InnerShareable {
		t.Errorf("attrs %+v", tr.Attrs)
	}
	g.s2page(0x4000_1000, 0)
	tr = g.tr(0x4000_1234, rd1)
	wantFault(t, tr.Fault, vmsa.FaultTranslation, 3, true)
	// TGE=1 turns stage 2 off again.
	g.r.HCR_EL2 |= sysreg.HCR_TGE
	if tr := g.tr(0x4000_1234, rd1); tr.Fault.IsFault() || tr.S2 {
		t.Errorf("TGE=1: fault %v S2 %v", tr.Fault, tr.S2)
	}
}

// TestTrace: the trace lists every descriptor read, in order, with the
// stage-2 reads for stage-1 table addresses marked.
func TestTrace(t *testing.T) {
	g := newRig(t)
	g.std4k()
	g.std2()
	tr := &vmsa.Trace{}
	g.w.Trace = tr
	res := g.tr(0x1234, rd1)
	if res.Fault.IsFault() {
		t.Fatal(res.Fault)
	}
	// Each of 4 stage-1 tables needs a 2-level stage-2 walk, then the final
	// IPA another: 4*2 + 4 + 2 = 14 reads.
	if len(tr.Steps) != 14 {
		t.Fatalf("%d steps: %+v", len(tr.Steps), tr.Steps)
	}
	var desc []string
	for _, s := range tr.Steps {
		desc = append(desc, fmt.Sprintf("%d/%d/%v", s.Stage, s.Level, s.ForS1Walk))
	}
	want := "[2/1/true 2/2/true 1/0/false 2/1/true 2/2/true 1/1/false 2/1/true 2/2/true 1/2/false 2/1/true 2/2/true 1/3/false 2/1/false 2/2/false]"
	if fmt.Sprint(desc) != want {
		t.Errorf("steps %v, want %s", desc, want)
	}
	if s := tr.Steps[11]; s.Addr != rL3+8 || s.Desc != 0x4000_1000|xTable|xAF|xIS || s.OA != 0x4000_1000 {
		t.Errorf("leaf step %+v", s)
	}
	if tr.Result.OA != 0x4000_1234 || tr.Input != 0x1234 {
		t.Errorf("trace result %#x input %#x", tr.Result.OA, tr.Input)
	}
	// A failed read is marked.
	g.put(rL2, 0x8000_0000|xTable)
	g.r.HCR_EL2 &^= sysreg.HCR_VM
	res = g.tr(0x1234, rd1)
	last := tr.Steps[len(tr.Steps)-1]
	if res.Fault.Kind != vmsa.FaultSyncExternalOnWalk || !last.ReadFailed || last.PA != 0x8000_0008 || tr.StopKind != vmsa.FaultSyncExternalOnWalk || tr.StopLevel != 3 {
		t.Errorf("fault %v last step %+v stop %v %d", res.Fault, last, tr.StopKind, tr.StopLevel)
	}
}

// racyMem changes the word at addr once, just before the first
// compare-and-swap there: another agent's write between the walk's read
// and its atomic update.
type racyMem struct {
	*mem.Sparse
	addr, val uint64
	done      bool
}

func (m *racyMem) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	if !m.done && uint64(pa) == m.addr {
		m.done = true
		_ = m.Write64(pa, m.val)
	}
	return m.Sparse.CompareAndSwap64(pa, old, new)
}

// TestUpdateRace: when the descriptor changed under a hardware update the
// compare-and-swap fails and the walk restarts with the new descriptor
// (AArch64.S1Translate's repeat ... until).
func TestUpdateRace(t *testing.T) {
	g := newRig(t)
	g.std4k()
	g.r.TCR_EL1 |= tcrHA
	g.put(rL3+8, 0x4000_1000|xTable|xIS) // AF clear
	newDesc := uint64(0x4000_9000 | xTable | xIS)
	rm := &racyMem{Sparse: g.m, addr: rL3 + 8, val: newDesc}
	g.w.Mem = rm
	tr := g.tr(0x1234, rd1)
	if tr.Fault.IsFault() || tr.OA != 0x4000_9234 {
		t.Fatalf("fault %v OA %#x, want the new descriptor's 0x40009234", tr.Fault, tr.OA)
	}
	if got := g.get(rL3 + 8); got != newDesc|xAF {
		t.Errorf("descriptor %#x, want %#x", got, newDesc|xAF)
	}
	// The new descriptor could also be invalid: then the restarted walk faults.
	g.put(rL3+8, 0x4000_1000|xTable|xIS)
	rm.done, rm.val = false, 0
	tr = g.tr(0x1234, rd1)
	wantFault(t, tr.Fault, vmsa.FaultTranslation, 3, false)
}

// TestEL2HPD: TCR_EL2.HPD (bit 24, E2H=0) disables APTable in the EL2 regime.
func TestEL2HPD(t *testing.T) {
	g := newRig(t)
	g.std4k()
	g.r.SCTLR_EL2 = 1 | 1<<2
	g.r.TCR_EL2 = 16 | 5<<16
	g.r.TTBR0_EL2 = rL0
	g.put(rL1, rL2|xTable|2<<61) // APTable[1]: no writes
	w2 := vmsa.Access{Kind: vmsa.Write, EL: 2}
	tr := g.w.Translate(&g.r, vmsa.RegimeEL2, 0x1234, w2, vmsa.TranslateOptions{})
	wantFault(t, tr.Fault, vmsa.FaultPermission, 3, false)
	g.r.TCR_EL2 |= 1 << 24
	if tr := g.w.Translate(&g.r, vmsa.RegimeEL2, 0x1234, w2, vmsa.TranslateOptions{}); tr.Fault.IsFault() {
		t.Errorf("HPD=1: %v", tr.Fault)
	}
}

// TestDSStage2OA: with VTCR_EL2.DS=1 stage-2 output addresses above 48 bits
// come from descriptor bits [9:8] and [49:48]; shareability from VTCR.SH0.
func TestDSStage2OA(t *testing.T) {
	g := newRig(t)
	g.r.HCR_EL2 |= sysreg.HCR_VM
	g.r.VTCR_EL2 = sysreg.VTCR(32 | 1<<6 | 6<<16 | 2<<12 | 1<<32) // T0SZ=32, SL0=1, PS=52, SH0=OSH, DS
	g.r.VTTBR_EL2 = rS2L1
	f := desc.Format{Granule: sysreg.Granule4K, DS: true}
	g.put(rS2L1+8, uint64(desc.S2Table(f, rS2L2)))
	g.put(rS2L2, 0x4000_0000|xBlock|0xf<<2|3<<6|xAF|3<<8|1<<48) // OA[51:50]=11, OA[49:48]=01
	tr := g.w.TranslateS2(&g.r, 0x4000_1234, rd1)
	if tr.Fault.IsFault() || tr.OA != 0xd_0000_4000_1234 {
		t.Fatalf("fault %v OA %#x, want 0xd000040001234", tr.Fault, tr.OA)
	}
	if tr.Attrs.Shareability != vmsa.OuterShareable {
		t.Errorf("shareability %d, want OSH from VTCR_EL2.SH0", tr.Attrs.Shareability)
	}
	// PS=48: the same block is an address size fault at level 2.
	g.r.VTCR_EL2 = g.r.VTCR_EL2&^(7<<16) | 5<<16
	tr = g.w.TranslateS2(&g.r, 0x4000_1234, rd1)
	wantFault(t, tr.Fault, vmsa.FaultAddressSize, 2, true)
}
