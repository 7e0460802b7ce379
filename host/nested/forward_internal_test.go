package nested

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// TestEffectiveControls: the guest hypervisor's FEAT_NV controls take
// effect only as far as its ID_AA64MMFR2_EL1.NV offers them (NV and AT with
// NV=1, NV2 with NV=2), NV1 and NV2 only with NV (EffectiveHCR_EL2_NVx);
// controls outside the mirrored set (VM, E2H, TGE, FB) are never mirrored.
func TestEffectiveControls(t *testing.T) {
	const (
		nv, nv1, nv2, atb = sysreg.HCR_NV, sysreg.HCR_NV1, sysreg.HCR_NV2, sysreg.HCR_AT
		tvm, ttlb         = sysreg.HCR_TVM, sysreg.HCR_TTLB
	)
	for _, c := range []struct {
		h     sysreg.HCR
		level uint64
		want  sysreg.HCR
	}{
		{nv | nv1 | nv2 | atb | tvm, 2, nv | nv1 | nv2 | atb | tvm},
		{nv | nv2 | atb, 1, nv | atb},
		{nv | nv1 | nv2 | atb | ttlb, 0, ttlb},
		{nv1 | nv2 | atb, 2, atb},
		{sysreg.HCR_VM | sysreg.HCR_E2H | sysreg.HCR_TGE | 1<<9 | tvm, 2, tvm},
		{hcrTRVM | hcrTID3 | sysreg.HCR_TTLBIS | sysreg.HCR_TTLBOS, 0, hcrTRVM | hcrTID3 | sysreg.HCR_TTLBIS | sysreg.HCR_TTLBOS},
		{hcrTACR | sysreg.HCR_VM, 0, hcrTACR},
	} {
		ids := IDRegs{MMFR2: sysreg.MMFR2(c.level << 24)}
		if got := effectiveControls(c.h, &ids); got != c.want {
			t.Errorf("HCR_EL2 %#x with NV=%d: %#x, want %#x", uint64(c.h), c.level, uint64(got), uint64(c.want))
		}
	}
}

// FuzzTrapOracle feeds the triage any syndrome of a trapped System
// instruction or ERET, any HCR_EL2, FEAT_NV level and EL: it must not
// panic; with no trap control nothing traps; at EL1 the decision depends
// only on the controls L0 mirrors (effectiveControls), so forwarding what
// the guest hypervisor asked for is exactly what its own PE would trap.
func FuzzTrapOracle(f *testing.F) {
	f.Add(uint64(0x62300400), uint64(sysreg.HCR_TVM), uint8(2), uint8(1))
	f.Add(uint64(0x6a000000), uint64(sysreg.HCR_NV), uint8(2), uint8(1))
	f.Add(uint64(0x62310403), uint64(sysreg.HCR_NV|sysreg.HCR_NV2), uint8(2), uint8(1))
	f.Add(uint64(0x6212200e), uint64(sysreg.HCR_TTLB|sysreg.HCR_E2H|sysreg.HCR_TGE), uint8(1), uint8(0))
	f.Add(uint64(0x62111c10), uint64(sysreg.HCR_AT|sysreg.HCR_NV), uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, esr, h uint64, nv, el uint8) {
		el %= 2
		ids := IDRegs{MMFR2: sysreg.MMFR2(uint64(nv%3) << 24)}
		d, ok := decodeTrap(sysreg.ESR(esr))
		if !ok {
			return
		}
		var o trapOracle
		got := o.traps(el, d, sysreg.HCR(h), &ids)
		if o.traps(el, d, 0, &ids) {
			t.Fatalf("ESR %#x at EL%d traps with HCR_EL2 0", esr, el)
		}
		if el == 1 {
			if eff := o.traps(el, d, effectiveControls(sysreg.HCR(h), &ids), &ids); eff != got {
				t.Fatalf("ESR %#x HCR_EL2 %#x NV=%d: traps %v, with the mirrored controls %v", esr, h, nv%3, got, eff)
			}
		}
	})
}

// TestFaultAccess: the access of a stage-2 abort, from its syndrome (ISS
// for a Data or Instruction Abort: WnR bit 6, S1PTW bit 7, CM bit 8): a
// stage-1 walk reads (WnR=0) or, for its hardware update of a descriptor,
// writes (WnR=1, AArch64.S1Walk); a fetch's or an AT's walk (no WnR, or
// WnR always 1 with CM) writes only for a Permission fault, which the
// caller rechecks as a read first; an access is a write with WnR and no
// CM, a fetch for an Instruction Abort.
func TestFaultAccess(t *testing.T) {
	const (
		wnr, s1ptw, cm = 1 << 6, 1 << 7, 1 << 8
		trans, perm    = 0b000111, 0b001111
	)
	for _, c := range []struct {
		fetch   bool
		iss     uint64
		kind    vmsa.AccessKind
		recheck bool
	}{
		{false, trans, vmsa.Read, false},
		{false, wnr | trans, vmsa.Write, false},
		{false, cm | wnr | trans, vmsa.Read, false},
		{true, trans, vmsa.Fetch, false},
		{false, s1ptw | trans, vmsa.Read, false},
		{false, s1ptw | perm, vmsa.Read, false},
		{false, s1ptw | wnr | perm, vmsa.Write, false},
		{true, s1ptw | trans, vmsa.Read, false},
		{true, s1ptw | perm, vmsa.Write, true},
		{false, cm | s1ptw | wnr | trans, vmsa.Read, false},
		{false, cm | s1ptw | wnr | perm, vmsa.Write, true},
	} {
		esr := sysreg.ESR(uint64(0x24)<<26 | 1<<25 | c.iss)
		if c.fetch {
			esr = sysreg.ESR(uint64(0x20)<<26 | 1<<25 | c.iss)
		}
		acc, re := faultAccess(c.fetch, esr, 1)
		if acc.Kind != c.kind || re != c.recheck || acc.EL != 1 {
			t.Errorf("fetch %v ISS %#x: %v (recheck %v) at EL%d, want %v (recheck %v) at EL1", c.fetch, c.iss, acc.Kind, re, acc.EL, c.kind, c.recheck)
		}
	}
}
