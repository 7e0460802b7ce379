package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// TestIPASizes: VMs of every IPA size the ID registers allow run guest
// accesses at the top of their IPA space; sizes they do not allow are
// refused with an error naming the size.
func TestIPASizes(t *testing.T) {
	def := vmsa.DefaultRegs()
	noLPA2 := def
	// ID_AA64MMFR0_EL1.TGran4 (bits 31:28) = 0: 4K without FEAT_LPA2, and
	// TGran4_2 (bits 43:40) = 0b0010: stage-2 4K, no 52-bit.
	noLPA2.MMFR0 = sysreg.MMFR0(uint64(def.MMFR0)&^(0xf<<28|0xf<<40) | 0b0010<<40)
	for _, c := range []struct {
		name string
		id   *vmsa.Regs
		ipa  uint
		ok   bool
		page uint64
	}{
		{"32-bit", nil, 32, true, 0},
		{"36-bit", nil, 36, true, 0},
		{"40-bit", nil, 40, true, 0},
		{"44-bit", nil, 44, true, 0},
		{"48-bit", nil, 48, true, 0},
		{"52-bit with FEAT_LPA2", nil, 52, def.MMFR0.PARange() == 6, 0},
		{"52-bit without FEAT_LPA2", &noLPA2, 52, false, 0},
		{"31-bit", nil, 31, false, 0},
		{"49-bit with FEAT_LPA2", nil, 49, def.MMFR0.PARange() == 6, 0},
		{"49-bit without FEAT_LPA2", &noLPA2, 49, false, 0},
		{"52-bit, 64K granule (FEAT_LPA)", nil, 52, def.MMFR0.PARange() == 6, 65536},
		{"42-bit, 16K granule", nil, 42, true, 16384},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, Config{ID: c.id, PageSize: c.page, MemBytes: 64 * mib})
			vm, err := h.NewVM(VMConfig{IPABits: c.ipa})
			if !c.ok {
				if err == nil {
					t.Fatalf("IPA size %d accepted (VTCR %#x)", c.ipa, uint64(vm.VTCR()))
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := uint(64 - uint64(vm.VTCR())&0x3f); got != c.ipa {
				t.Errorf("VTCR_EL2.T0SZ gives %d bits", got)
			}
			top := uint64(1)<<c.ipa - 2*mib
			addMem(t, vm, 0, top, 2*mib, 0, 0)
			v := loadedVCPU(t, vm, 0, 0)
			defer destroy(t, vm, v)
			str(t, v, top+2*mib-8, 0x77)
			if got := ldr(t, v, top+2*mib-8); got != 0x77 {
				t.Fatalf("read %#x", got)
			}
		})
	}
}

// TestIPABeyondIPASpace is issue 14's item 4. A guest whose stage 1
// outputs an IPA at or above 2^IPABits (here 2^44 in a 40-bit VM, within
// PARange and the guest's TCR_EL1.IPS) takes a stage-2 Translation fault at
// level 0 (AArch64.IPAIsOutOfRange). The hypervisor does what KVM's
// kvm_handle_guest_abort does: it injects a synchronous External abort
// (data or prefetch) into the guest; it never exits to the VMM as MMIO. At
// or above the host's IPA limit it injects an Address size fault at level
// 0 (kvm_inject_size_fault), which a guest cannot reach through a stage 1
// that respects PARange, so that branch is checked directly.
func TestIPABeyondIPASpace(t *testing.T) {
	const tbl, code = 0x4000_0000, 0x4000_1000 // L1 table and a code page in RAM
	h := newHost(t, Config{})
	vm := newVM(t, h, 40)
	hva := addMem(t, vm, 0, tbl, 2*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	defer destroy(t, vm, v)
	as := vm.AddressSpace()
	// VA [0, 1G) -> IPA [2^44, 2^44+1G); VA [1G, 2G) -> IPA [1G, 2G).
	for i, ipa := range []uint64{1 << 44, 1 << 30} {
		if err := as.Write(hva+hostmm.HVA(8*i), 8, ipa|1<<10|1); err != nil {
			t.Fatal(err)
		}
	}
	r := &v.PE().Regs
	r.TCR_EL1 = sysreg.TCR(25 | 1<<23 | 0b101<<32) // 39-bit VA, IPS 48 bits
	r.TTBR0_EL1 = sysreg.TTBR(tbl)
	r.SCTLR_EL1 = sysreg.SCTLR(1)
	r.MAIR_EL1 = 0xff
	v.PE().RegsChanged()
	v.PE().VBAR[1] = 1<<30 + 0x8000
	v.PE().PC = 1<<30 + (code - tbl)
	check := func(what string, ex Exit, err error, ec uint8, far uint64) {
		t.Helper()
		e := ex.Exception
		if err != nil || ex.Reason != ExitException || e.TargetEL != 1 || e.ESR.EC() != ec || e.ESR.FSC() != 0b010000 || uint64(e.FAR) != far {
			t.Fatalf("%s: exit %v %v, %v; want a synchronous External abort (EC %#x, FSC 0x10) at FAR %#x", what, ex.Reason, e, err, ec, far)
		}
	}
	ex, err := v.Ldr(1, 0x1238, 8)
	check("load from IPA 2^44+0x1238", ex, err, sysreg.ECDataAbortSame, 0x1238)
	v.PE().PC = 0x40
	_, ex, err = v.Fetch()
	check("fetch from IPA 2^44+0x40", ex, err, 0x21, 0x40)
	if st := vm.Stats(); st.MMIOExits != 0 || st.Injected != 2 {
		t.Fatalf("%d MMIO exits, %d injected aborts; want 0 and 2", st.MMIOExits, st.Injected)
	}
	// The host's IPA limit (PARange 52 with FEAT_LPA2 here).
	if h.ipaLimit != 52 {
		t.Fatalf("IPA limit %d, want 52", h.ipaLimit)
	}
	for _, c := range []struct {
		ipa    uint64
		beyond bool
		fsc    uint8
	}{
		{1<<40 - 8, false, 0},
		{1 << 40, true, 0b010000},
		{1<<52 - 8, true, 0b010000},
		{1 << 52, true, 0b000000},
	} {
		ex, beyond := vm.beyondIPASpace(false, 0x1238, mem.IPA(c.ipa))
		if beyond != c.beyond || (beyond && (ex.Exception.ESR.FSC() != c.fsc || ex.Exception.FAR != 0x1238)) {
			t.Errorf("IPA %#x: beyond %v, %v; want %v FSC %#x", c.ipa, beyond, ex.Exception, c.beyond, c.fsc)
		}
	}
}
