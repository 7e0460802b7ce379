package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// TestL2Fetch: L2's instruction fetches (its stage 1 off: VA = L2 IPA) from
// four 2 MiB blocks of L1's stage 2 whose XN[1:0] are 0b00, 0b01, 0b10 and
// 0b11, at EL1 and EL0. With FEAT_XNX (DDI 0487, the stage-2 XN field):
// 0b00 executable at EL0 and EL1, 0b01 at EL0 only, 0b10 at neither, 0b11
// at EL1 only; without it (a host whose ID_AA64MMFR1_EL1.XNX is 0, which L1
// then reads too) only XN[1] counts. A fetch the guest allows completes
// with the word L1 wrote there, and its shadow leaf carries the same
// per-EL permission (so the next fetch takes no shadow fault); one it
// forbids reaches L1 as an Instruction Abort from a lower EL: ESR_EL2 EC
// 0x20, IL, IFSC Permission level 2, FAR_EL2 the VA, HPFAR_EL2 UNKNOWN (a
// Permission fault not on a stage-1 walk). A fetch from L1 memory that
// does not exist is a synchronous External abort L2 takes itself (EC 0x21
// from EL1, IFSC 0b010000).
func TestL2Fetch(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, xnx := range []bool{true, false} {
			for _, el := range []uint8{1, 0} {
				t.Run(fmt.Sprintf("%v/XNX=%v/EL%d", mode, xnx, el), func(t *testing.T) {
					testL2Fetch(t, mode, xnx, el)
				})
			}
		}
	}
}

func testL2Fetch(t *testing.T, mode nested.Mode, xnx bool, el uint8) {
	r := newRigXNX(t, mode, xnx)
	rec := &recorder{v: r.v}
	r.v.SetGuestHypervisor(rec)
	const block = 2 << 20
	if err := r.a.Map(l2RAM, l1VMA, 4*block); err != nil {
		t.Fatal(err)
	}
	if err := r.a.Map(l2RAM+8*block, 0x1000_0000, block); err != nil { // no memslot there
		t.Fatal(err)
	}
	for k := range uint64(4) {
		ipa := nested.NestedIPA(l2RAM + k*block)
		p := ptes(t, r.a.Stage2(), ipa)[2]
		if err := r.v.Store(mem.VA(p[0]), 8, p[1]&^(3<<53)|k<<53); err != nil {
			t.Fatal(err)
		}
		if err := r.v.Store(mem.VA(l1VMA+k*block+0x40), 4, 0xd503201f+k); err != nil {
			t.Fatal(err)
		}
	}
	spsr := uint64(0b0101)
	if el == 0 {
		spsr = 0
	}
	enter := func() {
		t.Helper()
		if err := r.v.MSR(cpu.SPSR_EL2, spsr); err != nil {
			t.Fatal(err)
		}
		if err := r.v.ERET(); err != nil || !r.v.InL2() {
			t.Fatalf("ERET: %v", err)
		}
	}
	r.run(t, r.a)
	r.toL1(t)
	enter()
	for k := range uint64(4) {
		x0, x1 := k == 0 || k == 1, k == 0 || k == 3 // FEAT_XNX
		if !xnx {
			x0, x1 = k&2 == 0, k&2 == 0 // XN[1] alone
		}
		allowed := x1
		if el == 0 {
			allowed = x0
		}
		va := mem.VA(l2RAM + k*block + 0x40)
		before := r.v.Stats()
		insn, exit, err := r.v.RunL2Fetch(va)
		if err != nil {
			t.Fatalf("XN %02b: %v", k, err)
		}
		if allowed {
			if exit.Reason != nested.ExitNone || insn != uint32(0xd503201f+k) || r.v.PE().PC != va {
				t.Errorf("XN %02b: exit %v, word %#x, PC %#x; want the word L1 wrote", k, exit.Reason, insn, uint64(r.v.PE().PC))
			}
			sh := r.nvm.Shadows()
			d, _, _ := sh[0].Stage2.Lookup(mem.IPA(va))
			p := shadowX(desc.S2(d).XN())
			if p.X0 != x0 || p.X1 != x1 {
				t.Errorf("XN %02b: the shadow leaf's XN %02b allows EL0 %v EL1 %v; want %v %v", k, desc.S2(d).XN(), p.X0, p.X1, x0, x1)
			}
			if _, exit, err := r.v.RunL2Fetch(va); err != nil || exit.Reason != nested.ExitNone || r.v.Stats().ShadowFaults != before.ShadowFaults+1 {
				t.Errorf("XN %02b: a second fetch: %v %v, %d shadow faults in all (want 1)", k, exit.Reason, err, r.v.Stats().ShadowFaults-before.ShadowFaults)
			}
			continue
		}
		wantESR := uint64(0x20)<<26 | 1<<25 | 0b001110
		if exit.Reason != nested.ExitVEL2 || rec.esr != wantESR || rec.far != uint64(va) || rec.hpfar != nested.HPFARUnknown {
			t.Errorf("XN %02b: exit %v, ESR_EL2 %#x FAR_EL2 %#x HPFAR_EL2 %#x; want ESR %#x, the VA, UNKNOWN", k, exit.Reason, rec.esr, rec.far, rec.hpfar, wantESR)
		}
		enter()
	}
	va := mem.VA(l2RAM + 8*block + 0x40)
	_, exit, err := r.v.RunL2Fetch(va)
	ec := uint64(0x21)
	if el == 0 {
		ec = 0x20
	}
	if want := ec<<26 | 1<<25 | 0b010000; err != nil || exit.Reason != nested.ExitL2Exception || uint64(exit.Exception.ESR) != want || exit.Exception.FAR != va {
		t.Errorf("fetch from no memory: %v %v %v; want L2 to take ESR %#x", exit.Reason, exit.Exception, err, want)
	}
	if err := r.nvm.Check(); err != nil {
		t.Error(err)
	}
}

// shadowX reads XN[1:0] as FEAT_XNX does.
func shadowX(xn uint) vmsa.Perms {
	return vmsa.Perms{X0: xn == 0 || xn == 1, X1: xn == 0 || xn == 3}
}

// newRigXNX is newRig on a host with or without FEAT_XNX.
func newRigXNX(t *testing.T, mode nested.Mode, xnx bool) *rig {
	id := vmsa.DefaultRegs()
	if !xnx {
		id.MMFR1 &^= 0xf << 28
	}
	return newRig(t, mode, true, 0, func(c *rigConfig) { c.id = &id })
}
