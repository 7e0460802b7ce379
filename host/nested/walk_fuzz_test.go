package nested

import (
	"encoding/binary"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/mem"
)

// FuzzGuestStage2Walk feeds the guest stage-2 walk what a guest hypervisor
// controls: VTCR_EL2, VTTBR_EL2, HCR_EL2, SCTLR_EL2.EE and the descriptors
// of its tables (written into its memory), for any L2 IPA and access. The
// walk must not panic or hang; a fault must have a legal kind and level;
// a translation must output an L1 IPA below the output size its PARange
// allows, from a leaf whose size is a power of two of at least 4 KiB that
// holds the IPA, with the IPA's offset kept.
func FuzzGuestStage2Walk(f *testing.F) {
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: 32 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close()
	vm, err := h.NewVM(kvm.VMConfig{IPABits: 40})
	if err != nil {
		f.Fatal(err)
	}
	defer vm.Destroy()
	const base, size = 0x4000_0000, 1 << 20
	if _, err := vm.AddMemory(0, base, size, 0, 0); err != nil {
		f.Fatal(err)
	}
	id := h.ID()
	ids := sanitizeIDs(&id, 40)
	as := vm.AddressSpace()
	slot := vm.Lookup(base)

	seed := make([]byte, 40+8*64)
	binary.LittleEndian.PutUint64(seed[0:], 24|1<<6|3<<12|2<<16) // 40-bit IPA, SL0=1, PS=40
	binary.LittleEndian.PutUint64(seed[8:], base)
	binary.LittleEndian.PutUint64(seed[24:], 0x1234_5678)
	binary.LittleEndian.PutUint64(seed[40:], base+0x2000|3)
	f.Add(seed)
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 40 {
			return
		}
		u := func(i int) uint64 { return binary.LittleEndian.Uint64(data[i:]) }
		g := guestRegs{vtcr: sysreg.VTCR(u(0)), vttbr: sysreg.VTTBR(u(8)&(size-1) | base | u(8)&^(1<<40-1)),
			hcr: sysreg.HCR(u(16)), sctlr: sysreg.SCTLR(u(16) >> 32 << 25 & (1 << 25)), id: ids}
		ipa := NestedIPA(u(24))
		acc := vmsa.Access{Kind: vmsa.AccessKind(u(32) % 3), EL: uint8(u(32) >> 8 % 2)}
		// Descriptors fill the first pages of L1 memory.
		rest := data[40:]
		for i := 0; i+8 <= len(rest) && i < size; i += 8 {
			if err := as.Write(slot.HVAOf(base+mem.IPA(i)), 8, binary.LittleEndian.Uint64(rest[i:])); err != nil {
				t.Fatal(err)
			}
		}
		w := vmsa.Walker{Mem: guestMemory{vm: vm}}
		r := walkGuestS2(&w, &g, ipa, acc)
		if r.Fault.IsFault() {
			if r.Fault.Level < -1 || r.Fault.Level > 3 || !r.Fault.Stage2 {
				t.Fatalf("fault %v", r.Fault)
			}
			return
		}
		ps, _ := sysreg.PASizeBits(ids.MMFR0.PARange())
		if uint64(r.L1)>>ps != 0 {
			t.Fatalf("output L1 IPA %#x beyond %d bits", uint64(r.L1), ps)
		}
		if r.Size < 4096 || r.Size&(r.Size-1) != 0 || ipa < r.Base || uint64(ipa-r.Base) >= r.Size ||
			uint64(r.L1Base)%r.Size != 0 || uint64(r.L1-r.L1Base) != uint64(ipa-r.Base) {
			t.Fatalf("leaf %+v for IPA %#x", r, uint64(ipa))
		}
	})
}

// TestSanitizedIDs: the guest hypervisor's PARange is capped to its VM's
// IPA size (40 bits: 0b0010), FEAT_LPA2 is hidden below 52 bits, and the
// rest (FEAT_NV and NV2 included: recursion) is the host's.
func TestSanitizedIDs(t *testing.T) {
	host := vmsa.DefaultRegs()
	for _, c := range []struct {
		ipa     uint
		parange uint64
	}{{32, 0}, {36, 1}, {40, 2}, {42, 3}, {44, 4}, {47, 4}, {48, 5}} {
		ids := sanitizeIDs(&host, c.ipa)
		if ids.MMFR0.PARange() != c.parange {
			t.Errorf("IPA %d bits: PARange %d, want %d", c.ipa, ids.MMFR0.PARange(), c.parange)
		}
		if ids.MMFR2.NV() != host.MMFR2.NV() {
			t.Errorf("IPA %d bits: NV %d offered, the host has %d", c.ipa, ids.MMFR2.NV(), host.MMFR2.NV())
		}
		if ids.MMFR0.TGran4() == 1 || ids.MMFR0.TGran16() == 2 {
			t.Errorf("IPA %d bits: FEAT_LPA2 offered (MMFR0 %#x)", c.ipa, uint64(ids.MMFR0))
		}
		if ids.MMFR1 != host.MMFR1 {
			t.Errorf("IPA %d bits: MMFR1 %#x, host %#x", c.ipa, uint64(ids.MMFR1), uint64(host.MMFR1))
		}
	}
}
