package nested

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
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
	} {
		ids := IDRegs{MMFR2: sysreg.MMFR2(c.level << 24)}
		if got := effectiveControls(c.h, &ids); got != c.want {
			t.Errorf("HCR_EL2 %#x with NV=%d: %#x, want %#x", uint64(c.h), c.level, uint64(got), uint64(c.want))
		}
	}
}
