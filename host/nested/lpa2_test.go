package nested_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// 52-bit IPA for nested guests (FEAT_LPA2), beyond mainline KVM, which
// caps a guest hypervisor's PARange at 48 bits: on a host with FEAT_LPA2
// and a 52-bit PARange, L0 gives L1 a 52-bit VM, and L1 runs an L2 whose
// memory is at an L2 IPA above 2^48 backed by L1 memory above 2^48.
const (
	l1High = 0x4_0000_0000_0000 // L1 IPA 2^50: a second memslot of L1's VM
	l2High = 0x8_0000_0000_0000 // L2 IPA 2^51
)

// TestLPA2Nested: L1 reads PARange 52 bits with FEAT_LPA2 (TGran4 0b0001,
// TGran4_2 0b0011) and builds its stage 2 with VTCR_EL2.DS=1; L2's stores
// and loads above 2^48 reach L1's memory there (the shadow is a 52-bit
// stage 2 with DS); a fault of L1's stage 2 above 2^48 reports the whole
// IPA in HPFAR_EL2.FIPA (bits [43:4] hold IPA[51:12]); and an L1 remap with
// TLBI IPAS2E1IS (IPA[51:12] in Xt[39:0]) removes the old shadow entry.
func TestLPA2Nested(t *testing.T) {
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		for _, e2h := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/E2H=%v", mode, e2h), func(t *testing.T) { testLPA2(t, mode, e2h) })
		}
	}
}

// lpa2Rig boots a guest hypervisor on a 52-bit VM of a host with
// FEAT_LPA2 (through el2 when it is not nil, wrapping the vCPU) and runs
// its VM 1, whose 16 MiB at L2 IPA l2High are L1's at l1High.
func lpa2Rig(t *testing.T, mode nested.Mode, e2h bool, el2 func(nested.EL2) nested.EL2) *rig {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 256 << 20})
	must(err)
	vm, err := h.NewVM(kvm.VMConfig{IPABits: 52})
	must(err)
	_, err = vm.AddMemory(0, l1RAM, l1Size, 0, 0)
	must(err)
	_, err = vm.AddMemory(1, l1High, 16<<20, 0, 0)
	must(err)
	kv, err := vm.NewVCPU(0)
	must(err)
	nvm, err := nested.New(vm, nested.Config{Mode: mode, E2H: e2h})
	must(err)
	v, err := nvm.NewVCPU(kv, nil)
	must(err)
	t.Cleanup(func() { _ = v.PutCPU(); _ = nvm.Close(); _ = vm.Destroy(); _ = h.Close() })
	must(v.LoadCPU(0))
	mmfr0, err := v.MRS(cpu.ID_AA64MMFR0_EL1)
	must(err)
	m0 := sysreg.MMFR0(mmfr0)
	if m0.PARange() != 6 || m0.TGran4() != 1 || m0.TGran4_2() != 3 {
		t.Fatalf("L1 reads ID_AA64MMFR0_EL1 %#x: PARange %d TGran4 %d TGran4_2 %d, want 6 (52 bits), 1, 3 (FEAT_LPA2)", mmfr0, m0.PARange(), m0.TGran4(), m0.TGran4_2())
	}
	var c nested.EL2 = v
	if el2 != nil {
		c = el2(v)
	}
	hyp, err := guesthyp.Boot(c, guesthyp.Config{E2H: e2h, IPABits: 52, Tables: l1Tables, TablesSize: 4 << 20, VBAR: 0x4000_0800})
	must(err)
	v.SetGuestHypervisor(hyp)
	a, err := hyp.NewVM(1)
	must(err)
	if !a.Stage2().VTCR().DS() {
		t.Fatalf("L1's VTCR_EL2 %#x: DS=0 for a 52-bit IPA with 4K", uint64(a.Stage2().VTCR()))
	}
	must(a.AddSlot(l2High, l1High, 16<<20))
	must(hyp.Run(a))
	return &rig{host: h, kvm: vm, nvm: nvm, v: v, hyp: hyp, a: a}
}

func testLPA2(t *testing.T, mode nested.Mode, e2h bool) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r := lpa2Rig(t, mode, e2h, nil)
	nvm, v, a := r.nvm, r.v, r.a
	for i := range uint64(4) {
		r.store(t, mem.VA(l2High+i*0x2_0000+8), 0x5200+i)
	}
	for i := range uint64(4) {
		if got := r.load(t, mem.VA(l2High+i*0x2_0000+8)); got != 0x5200+i {
			t.Errorf("L2 reads %#x at %#x", got, l2High+i*0x2_0000+8)
		}
	}
	sh := nvm.Shadows()
	if len(sh) != 1 || sh[0].Stage2.Layout().IPABits != 52 || !sh[0].Stage2.VTCR().DS() {
		t.Fatalf("shadow: %d shadows, layout %+v", len(sh), sh[0].Stage2.Layout())
	}
	must(nvm.Check())
	r.toL1(t)
	if got, err := v.Load(mem.VA(l1High+0x2_0000+8), 8); err != nil || got != 0x5201 {
		t.Errorf("L1 reads %#x (%v) at L1 IPA %#x", got, err, uint64(l1High+0x2_0000+8))
	}

	// L1 moves the first 2 MiB to other L1 memory (an Unmap and a Map, with
	// their TLBI IPAS2E1IS): L2 then reads the new memory.
	must(v.Store(mem.VA(l1High+0x20_0000+8), 8, 0xbeef))
	must(a.Unmap(l2High, 2<<20))
	must(a.Map(l2High, l1High+0x20_0000, 2<<20))
	must(nvm.Check())
	r.run(t, a)
	if got := r.load(t, mem.VA(l2High+8)); got != 0xbeef {
		t.Errorf("after L1's remap L2 reads %#x, want the new page's 0xbeef", got)
	}

	// A fault of L1's stage 2 above 2^48: HPFAR_EL2 holds IPA[51:12].
	rec := &recorder{v: v}
	v.SetGuestHypervisor(rec)
	const hole = l2High + 32<<20 // outside the slot: L1's stage 2 does not map it
	exit, err := v.RunL2(kvm.Access{VA: hole + 0x18, Size: 8, Rt: 2})
	if err != nil || exit.Reason != nested.ExitVEL2 {
		t.Fatalf("L2 load at %#x: %v %v", uint64(hole), exit.Reason, err)
	}
	if want := uint64(sysreg.HPFARFor(hole)); rec.hpfar != want || rec.far != hole+0x18 {
		t.Errorf("HPFAR_EL2 %#x FAR_EL2 %#x, want %#x (FIPA = IPA[51:12]) and the VA", rec.hpfar, rec.far, want)
	}
	if rec.hpfar>>40 == 0 {
		t.Errorf("HPFAR_EL2 %#x lacks IPA[51:48]", rec.hpfar)
	}
	// TLBI VMALLS12E1 with L1's VMID empties the shadow.
	must(v.TLBI(tlb.OpVMALLS12E1, 0))
	must(nvm.Check())
}

// tlbiLog is an EL2 interface that records the TLBIs the guest hypervisor
// issues through it.
type tlbiLog struct {
	nested.EL2
	ops []tlb.Invalidation
}

func (l *tlbiLog) TLBI(op tlb.Op, xt uint64) error {
	l.ops = append(l.ops, tlb.Invalidation{Op: op, Xt: xt})
	return l.EL2.TLBI(op, xt)
}

// TestLPA2RangeTLBIOperand: with VTCR_EL2.DS=1 a range TLBI's BaseADDR is
// the IPA in 64KB units for every granule (TLBI RIPAS2E1's BaseADDR,
// IPA[52:16] when the effective DS is 1), so the guest hypervisor's
// RIPAS2E1IS for a 2 MiB block it unmaps above 2^48 must name exactly that
// block when decoded with DS=1. guesthyp encoded it in 4KB units before,
// which named an address 16 times lower (L0's shadow kept the old entries:
// TestLPA2Nested failed once s2pt stopped freeing the emptied tables, whose
// 512 GiB range had fallen back to TLBI VMALLS12E1IS).
func TestLPA2RangeTLBIOperand(t *testing.T) {
	log := &tlbiLog{}
	r := lpa2Rig(t, nested.ModeNV2, true, func(c nested.EL2) nested.EL2 { log.EL2 = c; return log })
	r.store(t, mem.VA(l2High+8), 1) // L1 maps a 2 MiB block on demand
	r.toL1(t)
	log.ops = nil
	if err := r.a.Unmap(l2High, 2<<20); err != nil {
		t.Fatal(err)
	}
	const start, end = uint64(l2High), uint64(l2High + 2<<20)
	covered := uint64(0)
	for _, o := range log.ops {
		switch o.Op.Base() {
		case tlb.OpRIPAS2E1, tlb.OpRIPAS2LE1:
			d := tlb.DecodeRange(o.Xt, true, false, true)
			if d.Start < start || d.Start+d.Length > end || d.GranuleBits != 12 {
				t.Errorf("%v %#x names [%#x, %#x) with %d-bit granules; the block is [%#x, %#x) with 4KB", o.Op, o.Xt, d.Start, d.Start+d.Length, d.GranuleBits, start, end)
				continue
			}
			covered += d.Length
		case tlb.OpIPAS2E1, tlb.OpIPAS2LE1:
			d := tlb.DecodeIPA(o.Xt, true)
			if a := uint64(d.IPA); a < start || a >= end {
				t.Errorf("%v %#x names %#x outside the block", o.Op, o.Xt, a)
				continue
			}
			covered += 4096
		case tlb.OpVMALLE1:
		default:
			t.Errorf("unexpected %v %#x for one block", o.Op, o.Xt)
		}
	}
	if covered < end-start {
		t.Errorf("the TLBIs %v cover %#x bytes of the %#x-byte block", log.ops, covered, end-start)
	}
	if err := r.nvm.Check(); err != nil {
		t.Error(err)
	}
}
