package sysreg_test

import (
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// Field positions below are written from the register descriptions in
// DDI 0487 (chapter D24), not from the package. Each case builds a value
// with one field set (and, where possible, every other bit set too, to
// catch overlapping extractions) and checks the accessor.

type boolField struct {
	name string
	bit  uint
	get  func(v uint64) bool
}

func checkBools(t *testing.T, reg string, fs []boolField) {
	t.Helper()
	for _, f := range fs {
		if !f.get(1 << f.bit) {
			t.Errorf("%s.%s: bit %d set reads false", reg, f.name, f.bit)
		}
		if f.get(^uint64(0) &^ (1 << f.bit)) {
			t.Errorf("%s.%s: bit %d clear (others set) reads true", reg, f.name, f.bit)
		}
	}
}

type uintField struct {
	name   string
	hi, lo uint
	get    func(v uint64) uint64
}

func checkUints(t *testing.T, reg string, fs []uintField) {
	t.Helper()
	for _, f := range fs {
		width := f.hi - f.lo + 1
		max := uint64(1)<<width - 1
		for _, x := range []uint64{1, max, max >> 1, 0} {
			v := x << f.lo
			if got := f.get(v); got != x {
				t.Errorf("%s.%s[%d:%d] of %#x = %#x, want %#x", reg, f.name, f.hi, f.lo, v, got, x)
			}
			// Neighbouring bits must not leak in.
			mask := max << f.lo
			if got := f.get(^mask | v); got != x {
				t.Errorf("%s.%s[%d:%d] with other bits set = %#x, want %#x", reg, f.name, f.hi, f.lo, got, x)
			}
		}
	}
}

func TestSCTLR(t *testing.T) {
	checkBools(t, "SCTLR", []boolField{
		{"M", 0, func(v uint64) bool { return sysreg.SCTLR(v).M() }},
		{"A", 1, func(v uint64) bool { return sysreg.SCTLR(v).A() }},
		{"C", 2, func(v uint64) bool { return sysreg.SCTLR(v).C() }},
		{"I", 12, func(v uint64) bool { return sysreg.SCTLR(v).I() }},
		{"WXN", 19, func(v uint64) bool { return sysreg.SCTLR(v).WXN() }},
		{"SPAN", 23, func(v uint64) bool { return sysreg.SCTLR(v).SPAN() }},
		{"E0E", 24, func(v uint64) bool { return sysreg.SCTLR(v).E0E() }},
		{"EE", 25, func(v uint64) bool { return sysreg.SCTLR(v).EE() }},
		{"EPAN", 57, func(v uint64) bool { return sysreg.SCTLR(v).EPAN() }},
	})
}

func TestTCR(t *testing.T) {
	checkBools(t, "TCR", []boolField{
		{"EPD0", 7, func(v uint64) bool { return sysreg.TCR(v).EPD0() }},
		{"A1", 22, func(v uint64) bool { return sysreg.TCR(v).A1() }},
		{"EPD1", 23, func(v uint64) bool { return sysreg.TCR(v).EPD1() }},
		{"AS", 36, func(v uint64) bool { return sysreg.TCR(v).AS() }},
		{"TBI0", 37, func(v uint64) bool { return sysreg.TCR(v).TBI0() }},
		{"TBI1", 38, func(v uint64) bool { return sysreg.TCR(v).TBI1() }},
		{"HA", 39, func(v uint64) bool { return sysreg.TCR(v).HA() }},
		{"HD", 40, func(v uint64) bool { return sysreg.TCR(v).HD() }},
		{"HPD0", 41, func(v uint64) bool { return sysreg.TCR(v).HPD0() }},
		{"HPD1", 42, func(v uint64) bool { return sysreg.TCR(v).HPD1() }},
		{"TBID0", 51, func(v uint64) bool { return sysreg.TCR(v).TBID0() }},
		{"TBID1", 52, func(v uint64) bool { return sysreg.TCR(v).TBID1() }},
		{"E0PD0", 55, func(v uint64) bool { return sysreg.TCR(v).E0PD0() }},
		{"E0PD1", 56, func(v uint64) bool { return sysreg.TCR(v).E0PD1() }},
		{"DS", 59, func(v uint64) bool { return sysreg.TCR(v).DS() }},
	})
	checkUints(t, "TCR", []uintField{
		{"T0SZ", 5, 0, func(v uint64) uint64 { return uint64(sysreg.TCR(v).T0SZ()) }},
		{"SH0", 13, 12, func(v uint64) uint64 { return uint64(sysreg.TCR(v).SH0()) }},
		{"T1SZ", 21, 16, func(v uint64) uint64 { return uint64(sysreg.TCR(v).T1SZ()) }},
		{"SH1", 29, 28, func(v uint64) uint64 { return uint64(sysreg.TCR(v).SH1()) }},
		{"IPS", 34, 32, func(v uint64) uint64 { return sysreg.TCR(v).IPS() }},
	})
	// TG0 [15:14]: 00 4K, 01 64K, 10 16K, 11 reserved.
	// TG1 [31:30]: 01 16K, 10 4K, 11 64K, 00 reserved.
	tg0 := []sysreg.Granule{sysreg.Granule4K, sysreg.Granule64K, sysreg.Granule16K, sysreg.GranuleInvalid}
	tg1 := []sysreg.Granule{sysreg.GranuleInvalid, sysreg.Granule16K, sysreg.Granule4K, sysreg.Granule64K}
	for enc := uint64(0); enc < 4; enc++ {
		if got := sysreg.TCR(enc << 14).TG0(); got != tg0[enc] {
			t.Errorf("TCR.TG0 %02b = %v, want %v", enc, got, tg0[enc])
		}
		if got := sysreg.TCR(enc << 30).TG1(); got != tg1[enc] {
			t.Errorf("TCR.TG1 %02b = %v, want %v", enc, got, tg1[enc])
		}
		if got := sysreg.VTCR(enc << 14).TG0(); got != tg0[enc] {
			t.Errorf("VTCR.TG0 %02b = %v, want %v", enc, got, tg0[enc])
		}
		if got := sysreg.TCR2(enc << 14).TG0(); got != tg0[enc] {
			t.Errorf("TCR_EL2.TG0 %02b = %v, want %v", enc, got, tg0[enc])
		}
	}
}

// TCR_EL2 with HCR_EL2.E2H=0.
func TestTCR2(t *testing.T) {
	checkBools(t, "TCR_EL2", []boolField{
		{"TBI", 20, func(v uint64) bool { return sysreg.TCR2(v).TBI() }},
		{"HA", 21, func(v uint64) bool { return sysreg.TCR2(v).HA() }},
		{"HD", 22, func(v uint64) bool { return sysreg.TCR2(v).HD() }},
		{"HPD", 24, func(v uint64) bool { return sysreg.TCR2(v).HPD() }},
		{"TBID", 29, func(v uint64) bool { return sysreg.TCR2(v).TBID() }},
		{"DS", 32, func(v uint64) bool { return sysreg.TCR2(v).DS() }},
	})
	checkUints(t, "TCR_EL2", []uintField{
		{"T0SZ", 5, 0, func(v uint64) uint64 { return uint64(sysreg.TCR2(v).T0SZ()) }},
		{"SH0", 13, 12, func(v uint64) uint64 { return uint64(sysreg.TCR2(v).SH0()) }},
		{"PS", 18, 16, func(v uint64) uint64 { return sysreg.TCR2(v).PS() }},
	})
}

func TestVTCR(t *testing.T) {
	checkBools(t, "VTCR", []boolField{
		{"VS", 19, func(v uint64) bool { return sysreg.VTCR(v).VS() }},
		{"HA", 21, func(v uint64) bool { return sysreg.VTCR(v).HA() }},
		{"HD", 22, func(v uint64) bool { return sysreg.VTCR(v).HD() }},
		{"DS", 32, func(v uint64) bool { return sysreg.VTCR(v).DS() }},
		{"SL2", 33, func(v uint64) bool { return sysreg.VTCR(v).SL2() }},
	})
	checkUints(t, "VTCR", []uintField{
		{"T0SZ", 5, 0, func(v uint64) uint64 { return uint64(sysreg.VTCR(v).T0SZ()) }},
		{"SL0", 7, 6, func(v uint64) uint64 { return uint64(sysreg.VTCR(v).SL0()) }},
		{"SH0", 13, 12, func(v uint64) uint64 { return uint64(sysreg.VTCR(v).SH0()) }},
		{"PS", 18, 16, func(v uint64) uint64 { return sysreg.VTCR(v).PS() }},
	})
}

func TestTTBRs(t *testing.T) {
	v := uint64(0xabcd_0000_4400_103d) // ASID 0xabcd, BADDR, bits [5:2]=0b1111, CnP
	r := sysreg.TTBR(v)
	if r.ASID() != 0xabcd || !r.CnP() || r.BADDR() != 0x4400_103c || r.BADDRHigh() != 0xf {
		t.Errorf("TTBR %#x: ASID %#x CnP %v BADDR %#x high %#x", v, r.ASID(), r.CnP(), r.BADDR(), r.BADDRHigh())
	}
	vt := sysreg.VTTBR(v)
	// VMID: [63:48] with 16-bit VMIDs, [55:48] with 8-bit.
	if vt.VMID(true) != 0xabcd || vt.VMID(false) != 0xcd || !vt.CnP() || vt.BADDR() != 0x4400_103c || vt.BADDRHigh() != 0xf {
		t.Errorf("VTTBR %#x: VMID %#x/%#x CnP %v BADDR %#x high %#x", v, vt.VMID(true), vt.VMID(false), vt.CnP(), vt.BADDR(), vt.BADDRHigh())
	}
	// WithVMID replaces bits [63:48] only; an 8-bit VMID leaves [63:56] 0.
	if got := vt.WithVMID(0x12); uint64(got) != 0x0012_0000_4400_103d {
		t.Errorf("WithVMID(0x12) = %#x, want 0x0012_0000_4400_103d", uint64(got))
	}
	if got := sysreg.VTTBR(0x4400_1000).WithVMID(0xfedc); got.VMID(true) != 0xfedc || got.BADDR() != 0x4400_1000 {
		t.Errorf("WithVMID(0xfedc) = %#x", uint64(got))
	}
}

func TestMAIR(t *testing.T) {
	m := sysreg.MAIR(0x0807_0605_0403_0201)
	for n := uint(0); n < 8; n++ {
		if got := m.Attr(n); got != uint8(n+1) {
			t.Errorf("Attr%d = %#x, want %#x", n, got, n+1)
		}
	}
}

func TestHCR(t *testing.T) {
	checkBools(t, "HCR", []boolField{
		{"VM", 0, func(v uint64) bool { return sysreg.HCR(v).VM() }},
		{"PTW", 2, func(v uint64) bool { return sysreg.HCR(v).PTW() }},
		{"DC", 12, func(v uint64) bool { return sysreg.HCR(v).DC() }},
		{"TTLB", 25, func(v uint64) bool { return sysreg.HCR(v).TTLB() }},
		{"TGE", 27, func(v uint64) bool { return sysreg.HCR(v).TGE() }},
		{"RW", 31, func(v uint64) bool { return sysreg.HCR(v).RW() }},
		{"CD", 32, func(v uint64) bool { return sysreg.HCR(v).CD() }},
		{"ID", 33, func(v uint64) bool { return sysreg.HCR(v).ID() }},
		{"E2H", 34, func(v uint64) bool { return sysreg.HCR(v).E2H() }},
		{"NV", 42, func(v uint64) bool { return sysreg.HCR(v).NV() }},
		{"NV1", 43, func(v uint64) bool { return sysreg.HCR(v).NV1() }},
		{"AT", 44, func(v uint64) bool { return sysreg.HCR(v).AT() }},
		{"NV2", 45, func(v uint64) bool { return sysreg.HCR(v).NV2() }},
		{"FWB", 46, func(v uint64) bool { return sysreg.HCR(v).FWB() }},
	})
	consts := map[string]struct {
		c   sysreg.HCR
		bit uint
	}{
		"VM": {sysreg.HCR_VM, 0}, "PTW": {sysreg.HCR_PTW, 2}, "DC": {sysreg.HCR_DC, 12}, "TTLB": {sysreg.HCR_TTLB, 25},
		"TVM": {sysreg.HCR_TVM, 26}, "TGE": {sysreg.HCR_TGE, 27}, "RW": {sysreg.HCR_RW, 31}, "CD": {sysreg.HCR_CD, 32},
		"ID": {sysreg.HCR_ID, 33}, "E2H": {sysreg.HCR_E2H, 34}, "NV": {sysreg.HCR_NV, 42}, "NV1": {sysreg.HCR_NV1, 43},
		"AT": {sysreg.HCR_AT, 44}, "NV2": {sysreg.HCR_NV2, 45}, "FWB": {sysreg.HCR_FWB, 46},
		"TTLBIS": {sysreg.HCR_TTLBIS, 54}, "TTLBOS": {sysreg.HCR_TTLBOS, 55},
	}
	for n, c := range consts {
		if uint64(c.c) != 1<<c.bit {
			t.Errorf("HCR_%s = %#x, want bit %d", n, uint64(c.c), c.bit)
		}
	}
	if !sysreg.HCR(0x7).Has(sysreg.HCR_VM|sysreg.HCR_PTW) || sysreg.HCR(0x1).Has(sysreg.HCR_VM|sysreg.HCR_PTW) {
		t.Error("Has must require every bit")
	}
}

func TestPAR(t *testing.T) {
	// F=1: FST [6:1], PTW bit 8, S bit 9.
	f := sysreg.PAR(1 | 0x2b<<1 | 1<<8 | 1<<9 | 1<<11)
	if !f.F() || f.FST() != 0x2b || !f.PTW() || !f.S() {
		t.Errorf("PAR %#x: F %v FST %#x PTW %v S %v", uint64(f), f.F(), f.FST(), f.PTW(), f.S())
	}
	// F=0: SH [8:7], NS bit 9, PA [51:12], ATTR [63:56].
	s := sysreg.PAR(0xa5<<56 | 0xf_1234_5678_9000 | 2<<7 | 1<<9 | 1<<11 | 0xf<<52)
	if s.F() || s.SH() != 2 || !s.NS() || s.PA() != 0xf_1234_5678_9000 || s.ATTR() != 0xa5 {
		t.Errorf("PAR %#x: SH %d NS %v PA %#x ATTR %#x", uint64(s), s.SH(), s.NS(), s.PA(), s.ATTR())
	}
}

func TestESR(t *testing.T) {
	checkBools(t, "ESR", []boolField{
		{"IL", 25, func(v uint64) bool { return sysreg.ESR(v).IL() }},
		{"ISV", 24, func(v uint64) bool { return sysreg.ESR(v).ISV() }},
		{"SSE", 21, func(v uint64) bool { return sysreg.ESR(v).SSE() }},
		{"SF", 15, func(v uint64) bool { return sysreg.ESR(v).SF() }},
		{"AR", 14, func(v uint64) bool { return sysreg.ESR(v).AR() }},
		{"FnV", 10, func(v uint64) bool { return sysreg.ESR(v).FnV() }},
		{"EA", 9, func(v uint64) bool { return sysreg.ESR(v).EA() }},
		{"CM", 8, func(v uint64) bool { return sysreg.ESR(v).CM() }},
		{"S1PTW", 7, func(v uint64) bool { return sysreg.ESR(v).S1PTW() }},
		{"WnR", 6, func(v uint64) bool { return sysreg.ESR(v).WnR() }},
	})
	checkUints(t, "ESR", []uintField{
		{"EC", 31, 26, func(v uint64) uint64 { return uint64(sysreg.ESR(v).EC()) }},
		{"ISS", 24, 0, func(v uint64) uint64 { return uint64(sysreg.ESR(v).ISS()) }},
		{"SAS", 23, 22, func(v uint64) uint64 { return uint64(sysreg.ESR(v).SAS()) }},
		{"SRT", 20, 16, func(v uint64) uint64 { return uint64(sysreg.ESR(v).SRT()) }},
		{"DFSC", 5, 0, func(v uint64) uint64 { return uint64(sysreg.ESR(v).FSC()) }},
	})
	ecs := map[uint8]uint8{sysreg.ECUnknown: 0x00, sysreg.ECSysRegTrap: 0x18, sysreg.ECInstrAbortLower: 0x20,
		sysreg.ECInstrAbortSame: 0x21, sysreg.ECDataAbortLower: 0x24, sysreg.ECDataAbortSame: 0x25}
	for got, want := range ecs {
		if got != want {
			t.Errorf("EC constant %#x, want %#x", got, want)
		}
	}
}

func TestHPFAR(t *testing.T) {
	// HPFAR_EL2.FIPA [43:4] holds IPA[51:12].
	for _, ipa := range []uint64{0x4000_1234, 0xf_ffff_ffff_f000, 0x1000} {
		h := sysreg.HPFARFor(ipa)
		if uint64(h) != (ipa>>12)<<4 {
			t.Errorf("HPFARFor(%#x) = %#x, want %#x", ipa, uint64(h), (ipa>>12)<<4)
		}
		if h.IPA() != ipa&^0xfff {
			t.Errorf("HPFAR(%#x).IPA() = %#x", uint64(h), h.IPA())
		}
	}
}

func TestIDRegisters(t *testing.T) {
	checkUints(t, "MMFR0", []uintField{
		{"PARange", 3, 0, func(v uint64) uint64 { return sysreg.MMFR0(v).PARange() }},
		{"ASIDBits", 7, 4, func(v uint64) uint64 { return sysreg.MMFR0(v).ASIDBits() }},
		{"BigEnd", 11, 8, func(v uint64) uint64 { return sysreg.MMFR0(v).BigEnd() }},
		{"TGran16", 23, 20, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran16() }},
		{"TGran64", 27, 24, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran64() }},
		{"TGran4", 31, 28, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran4() }},
		{"TGran16_2", 35, 32, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran16_2() }},
		{"TGran64_2", 39, 36, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran64_2() }},
		{"TGran4_2", 43, 40, func(v uint64) uint64 { return sysreg.MMFR0(v).TGran4_2() }},
	})
	checkUints(t, "MMFR1", []uintField{
		{"HAFDBS", 3, 0, func(v uint64) uint64 { return sysreg.MMFR1(v).HAFDBS() }},
		{"VMIDBits", 7, 4, func(v uint64) uint64 { return sysreg.MMFR1(v).VMIDBits() }},
		{"VH", 11, 8, func(v uint64) uint64 { return sysreg.MMFR1(v).VH() }},
		{"HPDS", 15, 12, func(v uint64) uint64 { return sysreg.MMFR1(v).HPDS() }},
		{"PAN", 23, 20, func(v uint64) uint64 { return sysreg.MMFR1(v).PAN() }},
		{"XNX", 31, 28, func(v uint64) uint64 { return sysreg.MMFR1(v).XNX() }},
	})
	checkUints(t, "MMFR2", []uintField{
		{"CnP", 3, 0, func(v uint64) uint64 { return sysreg.MMFR2(v).CnP() }},
		{"VARange", 19, 16, func(v uint64) uint64 { return sysreg.MMFR2(v).VARange() }},
		{"NV", 27, 24, func(v uint64) uint64 { return sysreg.MMFR2(v).NV() }},
		{"ST", 31, 28, func(v uint64) uint64 { return sysreg.MMFR2(v).ST() }},
		{"FWB", 43, 40, func(v uint64) uint64 { return sysreg.MMFR2(v).FWB() }},
		{"TTL", 51, 48, func(v uint64) uint64 { return sysreg.MMFR2(v).TTL() }},
		{"BBM", 55, 52, func(v uint64) uint64 { return sysreg.MMFR2(v).BBM() }},
		{"E0PD", 63, 60, func(v uint64) uint64 { return sysreg.MMFR2(v).E0PD() }},
	})
	checkUints(t, "ISAR2", []uintField{
		{"ATS1A", 63, 60, func(v uint64) uint64 { return sysreg.ISAR2(v).ATS1A() }},
	})
	if sysreg.DefaultISAR2.ATS1A() != 0 {
		t.Errorf("DefaultISAR2 %#x: QEMU 10.0 has no FEAT_ATS1A", uint64(sysreg.DefaultISAR2))
	}
	// The QEMU 10.0 -cpu max values decode to the features the project
	// relies on (shared/reference/qemu-oracle.md).
	m0, m1, m2 := sysreg.DefaultMMFR0, sysreg.DefaultMMFR1, sysreg.DefaultMMFR2
	if m0.PARange() != 6 || m0.ASIDBits() != 2 || m0.TGran4() != 1 || m0.TGran16() != 2 || m0.TGran64() != 0 ||
		m0.TGran4_2() != 3 || m0.TGran16_2() != 3 || m0.TGran64_2() != 2 {
		t.Errorf("DefaultMMFR0 %#x decodes wrongly", uint64(m0))
	}
	if m1.HAFDBS() != 2 || m1.PAN() != 3 || m1.HPDS() != 2 || m1.XNX() != 1 || m1.VH() != 1 || m1.VMIDBits() != 2 {
		t.Errorf("DefaultMMFR1 %#x decodes wrongly", uint64(m1))
	}
	if m2.NV() != 2 || m2.ST() != 1 || m2.FWB() != 1 || m2.TTL() != 1 || m2.BBM() != 2 || m2.E0PD() != 1 || m2.VARange() != 1 {
		t.Errorf("DefaultMMFR2 %#x decodes wrongly", uint64(m2))
	}
}

func TestPASizeBits(t *testing.T) {
	want := []uint{32, 36, 40, 42, 44, 48, 52}
	for enc, w := range want {
		got, ok := sysreg.PASizeBits(uint64(enc))
		if !ok || got != w {
			t.Errorf("PASizeBits(%d) = %d, %v; want %d", enc, got, ok, w)
		}
	}
	if _, ok := sysreg.PASizeBits(7); ok {
		t.Error("PASizeBits(7) is reserved")
	}
	for g, bits := range map[sysreg.Granule]uint{sysreg.Granule4K: 12, sysreg.Granule16K: 14, sysreg.Granule64K: 16, sysreg.GranuleInvalid: 0} {
		if g.Bits() != bits {
			t.Errorf("%v.Bits() = %d, want %d", g, g.Bits(), bits)
		}
		if g.String() == "" {
			t.Errorf("%d has no name", g)
		}
	}
}

// ID_AA64MMFR0_EL1.TGran* (stage 1: 4K/64K 0b1111 = not implemented, 16K
// 0b0000 = not implemented; 4K 0b0001 and 16K 0b0010 add FEAT_LPA2) and
// TGran*_2 (0b0000 = as stage 1, 0b0001 = no, 0b0010 = yes, 0b0011 = yes
// with 52-bit).
func TestGranuleSupport(t *testing.T) {
	q := sysreg.DefaultMMFR0 // QEMU max: TGran4=1 TGran16=2 TGran64=0, TGran*_2 = 3/2/3
	for _, g := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		for _, s2 := range []bool{false, true} {
			if !q.GranuleSupported(g, s2) {
				t.Errorf("QEMU max: %v stage2=%v unsupported", g, s2)
			}
		}
	}
	if !q.GranuleLPA2(sysreg.Granule4K, false) || !q.GranuleLPA2(sysreg.Granule16K, true) || q.GranuleLPA2(sysreg.Granule64K, false) {
		t.Error("QEMU max: LPA2 support wrong")
	}
	// TGran4=0xf, TGran16=0, TGran64=0; TGran4_2=0 (defer), TGran16_2=2, TGran64_2=1.
	m := sysreg.MMFR0(0xf<<28 | 0<<20 | 0<<24 | 0<<40 | 2<<32 | 1<<36)
	cases := []struct {
		g    sysreg.Granule
		s2   bool
		want bool
	}{
		{sysreg.Granule4K, false, false}, {sysreg.Granule4K, true, false}, // deferred to stage 1
		{sysreg.Granule16K, false, false}, {sysreg.Granule16K, true, true},
		{sysreg.Granule64K, false, true}, {sysreg.Granule64K, true, false},
		{sysreg.GranuleInvalid, false, false},
	}
	for _, c := range cases {
		if got := m.GranuleSupported(c.g, c.s2); got != c.want {
			t.Errorf("MMFR0 %#x: %v stage2=%v supported=%v, want %v", uint64(m), c.g, c.s2, got, c.want)
		}
	}
}
