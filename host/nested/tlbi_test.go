package nested_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// shadowMaps reports whether the shadow of guest VMID vmid maps ipa.
func shadowMaps(t *testing.T, r *rig, vmid uint16, ipa nested.NestedIPA) bool {
	t.Helper()
	for _, s := range r.nvm.Shadows() {
		if s.GuestVMID != vmid || !s.GuestVM {
			continue
		}
		d, _, err := s.Stage2.Lookup(mem.IPA(ipa))
		return err == nil && d&1 == 1
	}
	return false
}

// TestRemapAfterTLBI: L1 unmaps a 2 MiB block of VM A with
// break-before-make and TLBI IPAS2E1IS + VMALLE1IS, maps it to other L1
// memory, and L2 then reads what L1 put there; no shadow or TLB entry of
// the old mapping survives the TLBI (Check).
func TestRemapAfterTLBI(t *testing.T) {
	const fresh = 0x4380_0000 // other L1 memory
	for _, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRig(t, mode, true, 0)
			r.run(t, r.a)
			r.store(t, l2RAM+0x1000, 0x1111)
			r.store(t, l2RAM+0x5000, 0x5555)
			r.toL1(t)
			if !shadowMaps(t, r, 1, l2RAM+0x1000) {
				t.Fatal("the shadow does not map the page L2 wrote")
			}
			if err := r.a.Unmap(l2RAM, 2<<20); err != nil {
				t.Fatal(err)
			}
			if shadowMaps(t, r, 1, l2RAM+0x1000) || shadowMaps(t, r, 1, l2RAM+0x5000) {
				t.Error("shadow entries survive L1's unmap and TLBI")
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
			if err := r.v.Store(fresh+0x1000, 8, 0x2222); err != nil {
				t.Fatal(err)
			}
			if err := r.a.Map(l2RAM, fresh, 2<<20); err != nil {
				t.Fatal(err)
			}
			r.run(t, r.a)
			if got := r.load(t, l2RAM+0x1000); got != 0x2222 {
				t.Errorf("L2 reads %#x after the remap, want 0x2222", got)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestIPAS2E1Range: the range an IPAS2E1IS from vEL2 removes from the
// shadow of its VMID: the TTL hint's leaf when it names the guest's
// granule; otherwise the guest leaf the shadow remembers (a 2 MiB block
// here); VMALLS12E1IS empties only the shadows of the current VMID;
// ALLE1IS all.
func TestIPAS2E1Range(t *testing.T) {
	pages := []nested.NestedIPA{l2RAM, l2RAM + 0x1000, l2RAM + 0x10_0000}
	ttl := func(g, level uint64) uint64 { return (g<<2 | level) << 44 }
	xt := func(ipa nested.NestedIPA, hint uint64) uint64 { return uint64(ipa)>>12 | hint }
	cases := []struct {
		name string
		op   tlb.Op
		xt   uint64
		gone []bool // pages of VM A removed
		b    bool   // VM B's page removed
	}{
		{"TTL 4K level 3", tlb.OpIPAS2E1.IS(), xt(l2RAM, ttl(1, 3)), []bool{true, false, false}, false},
		{"TTL 4K level 2", tlb.OpIPAS2E1.IS(), xt(l2RAM, ttl(1, 2)), []bool{true, true, true}, false},
		{"no TTL: the remembered guest level (2)", tlb.OpIPAS2E1.IS(), xt(l2RAM+0x1000, 0), []bool{true, true, true}, false},
		{"TTL of another granule: as no TTL", tlb.OpIPAS2LE1, xt(l2RAM, ttl(3, 3)), []bool{true, true, true}, false},
		{"RIPAS2E1IS of two pages", tlb.OpRIPAS2E1.IS(), 1<<46 | 0<<39 | uint64(l2RAM+0x1000)>>12, []bool{false, true, false}, false},
		{"VMALLS12E1IS", tlb.OpVMALLS12E1.IS(), 0, []bool{true, true, true}, false},
		{"ALLE1IS", tlb.OpALLE1.IS(), 0, []bool{true, true, true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, 0)
			r.run(t, r.b)
			r.store(t, l2RAM, 0xb)
			r.toL1(t)
			r.run(t, r.a)
			for _, p := range pages {
				r.store(t, mem.VA(p), uint64(p))
			}
			r.toL1(t) // vVTTBR_EL2 still names VM A (VMID 1)
			if err := r.v.TLBI(c.op, c.xt); err != nil {
				t.Fatal(err)
			}
			for i, p := range pages {
				if gone := !shadowMaps(t, r, 1, p); gone != c.gone[i] {
					t.Errorf("VM A page %#x removed: %v, want %v", uint64(p), gone, c.gone[i])
				}
			}
			if gone := !shadowMaps(t, r, 2, l2RAM); gone != c.b {
				t.Errorf("VM B page removed: %v, want %v", gone, c.b)
			}
			if err := r.nvm.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// l2MMUOn gives VM A a stage 1 that maps VA [0x8000_0000, +1 GiB) to the
// same IPAs with one level-1 block (39-bit VA, 4K granule), its table in
// L2 memory at l2RAM + 2 MiB, written by L1.
func l2MMUOn(t *testing.T, r *rig) {
	t.Helper()
	const table = l2RAM + 2<<20
	block := uint64(0x8000_0000) | 1<<10 | 3<<8 | 0b01 // AF, inner shareable, AttrIndx 0, block
	if err := r.v.Store(mem.VA(l1VMA+2<<20+2*8), 8, block); err != nil {
		t.Fatal(err)
	}
	r.a.SetGuestReg(cpu.SCTLR_EL1, 1)
	r.a.SetGuestReg(cpu.TCR_EL1, 25|1<<23|3<<12|1<<8|1<<10|2<<32)
	r.a.SetGuestReg(cpu.TTBR0_EL1, table)
	r.a.SetGuestReg(cpu.MAIR_EL1, 0xff)
}

// TestVMALLE1FromVEL2: TLBI VMALLE1IS from vEL2 (HCR_EL2.TGE=0) removes the
// stage-1 and combined entries of the shadows of the guest's VMID from
// every TLB (not the stage-2-only ones, as the instruction's scope says).
func TestVMALLE1FromVEL2(t *testing.T) {
	r := newRig(t, nested.ModeNV, true, 0)
	l2MMUOn(t, r)
	r.run(t, r.a)
	r.store(t, l2RAM+8, 1)
	if got := r.load(t, l2RAM+8); got != 1 {
		t.Fatalf("L2 with its MMU on reads %#x", got)
	}
	r.toL1(t)
	count := func(vmid uint16) int {
		n := 0
		for _, s := range r.nvm.Shadows() {
			if s.GuestVMID != vmid {
				continue
			}
			for _, e := range r.host.TLBEntries(0) {
				if e.VMID == s.VMID && !e.Stage2Only {
					n++
				}
			}
		}
		return n
	}
	if count(1) == 0 {
		t.Fatal("no combined TLB entry of VM A's shadow to remove")
	}
	if err := r.v.TLBI(tlb.OpVMALLE1.IS(), 0); err != nil {
		t.Fatal(err)
	}
	if n := count(1); n != 0 {
		t.Errorf("%d TLB entries of VM A's shadow survive VMALLE1IS", n)
	}
	if err := r.nvm.Check(); err != nil {
		t.Error(err)
	}
}

// TestExitsNVvsNV2: the same work (boot, two VMs entered and left, faults
// handled by L1) costs fewer exits with FEAT_NV2: its register accesses to
// HCR_EL2, VTTBR_EL2, VTCR_EL2 and the guest's EL1 registers are memory
// accesses and ELR/SPSR/ESR/FAR_EL2 reach EL1 registers, while with NV
// each one traps. ERETs and TLBIs trap alike.
func TestExitsNVvsNV2(t *testing.T) {
	for _, e2h := range []bool{true, false} {
		var st [2]nested.Stats
		for i, mode := range []nested.Mode{nested.ModeNV, nested.ModeNV2} {
			r := newRig(t, mode, e2h, 0)
			for round := 0; round < 4; round++ {
				for _, vm := range []*guesthyp.VM{r.a, r.b} {
					r.run(t, vm)
					r.store(t, mem.VA(l2RAM+uint64(round)<<21), uint64(round))
					r.toL1(t)
				}
			}
			if err := r.a.Unmap(l2RAM, 2<<20); err != nil {
				t.Fatal(err)
			}
			st[i] = r.v.Stats()
			t.Logf("E2H=%v %v: %d exits (%+v)", e2h, mode, st[i].Exits(), st[i])
		}
		nv, nv2 := st[0], st[1]
		if nv2.SysRegTraps >= nv.SysRegTraps || nv2.Exits() >= nv.Exits() {
			t.Errorf("E2H=%v: NV2 %d register traps (%d exits), NV %d (%d)", e2h, nv2.SysRegTraps, nv2.Exits(), nv.SysRegTraps, nv.Exits())
		}
		if nv2.ERETTraps != nv.ERETTraps || nv2.TLBITraps != nv.TLBITraps || nv2.Forwarded != nv.Forwarded {
			t.Errorf("E2H=%v: ERET/TLBI traps or forwarded faults differ: NV %+v, NV2 %+v", e2h, nv, nv2)
		}
	}
}
