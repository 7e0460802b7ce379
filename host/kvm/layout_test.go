package kvm

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
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
