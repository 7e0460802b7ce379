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

func testLPA2(t *testing.T, mode nested.Mode, e2h bool) {
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
	hyp, err := guesthyp.Boot(v, guesthyp.Config{E2H: e2h, IPABits: 52, Tables: l1Tables, TablesSize: 4 << 20, VBAR: 0x4000_0800})
	must(err)
	v.SetGuestHypervisor(hyp)
	a, err := hyp.NewVM(1)
	must(err)
	if !a.Stage2().VTCR().DS() {
		t.Fatalf("L1's VTCR_EL2 %#x: DS=0 for a 52-bit IPA with 4K", uint64(a.Stage2().VTCR()))
	}
	must(a.AddSlot(l2High, l1High, 16<<20))
	must(hyp.Run(a))
	r := &rig{host: h, kvm: vm, nvm: nvm, v: v, hyp: hyp, a: a}
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
