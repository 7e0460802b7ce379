package sysreg_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

// Values taken apart by hand from the register descriptions: the at-json
// contract's example TCR_EL1 (0x8580190019: T0SZ=T1SZ=25, TG1=0b10 4K,
// IPS=0b101 48 bits, HA) and a 40-bit 4K stage 2 starting at level 1
// (0x800d3558: T0SZ=24, SL0=1, IRGN0=ORGN0=WBWA, SH0=Inner, PS=48 bits,
// VS, RES1 bit 31).
func TestBuilderKnownValues(t *testing.T) {
	cases := []struct {
		name      string
		got, want uint64
	}{
		{"TCR_EL1 of the contract example", uint64(sysreg.TCRFields{T0SZ: 25, T1SZ: 25, TG0: sysreg.Granule4K,
			TG1: sysreg.Granule4K, IPS: sysreg.PS48, HA: true}.Value()), 0x8580190019},
		{"VTCR_EL2 40-bit IPA, 4K, level 1", uint64(sysreg.VTCRFields{T0SZ: sysreg.TxSZ(40), SL0: 1,
			IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner, TG0: sysreg.Granule4K,
			PS: sysreg.PS48, VS: true}.Value()), 0x800d3558},
		// TCR_EL2 (E2H=0): RES1 bits 31 and 23, PS=40 bits in [18:16], TG0=64K.
		{"TCR_EL2 E2H=0", uint64(sysreg.TCR2Fields{T0SZ: 16, TG0: sysreg.Granule64K, PS: sysreg.PS40}.Value()),
			1<<31 | 1<<23 | 2<<16 | 1<<14 | 16},
		{"SCTLR M C I", uint64(sysreg.SCTLRFields{M: true, C: true, I: true}.Value()), 0x1005},
		{"SCTLR EE WXN EPAN", uint64(sysreg.SCTLRFields{EE: true, WXN: true, EPAN: true}.Value()), 1<<57 | 1<<25 | 1<<19},
		{"HCR VM RW", uint64(sysreg.HCRFields{VM: true, RW: true}.Value()), 0x80000001},
		{"HCR E2H TGE", uint64(sysreg.HCRFields{E2H: true, TGE: true}.Value()), 1<<34 | 1<<27},
		{"HCR other", uint64(sysreg.HCRFields{Other: sysreg.HCR_NV | sysreg.HCR_FWB}.Value()), 1<<42 | 1<<46},
		{"TTBR", uint64(sysreg.TTBRFields{BADDR: 0x4400_0000, ASID: 0x12, CnP: true}.Value()), 0x0012_0000_4400_0001},
		// 52-bit base: BADDR[51:48] = 0xa goes to TTBR[5:2].
		{"TTBR 52-bit", uint64(sysreg.TTBRFields{BADDR: 0xa_0000_4400_0000}.Value()), 0x4400_0000 | 0xa<<2},
		{"VTTBR", uint64(sysreg.VTTBRFields{BADDR: 0x8000_0000, VMID: 7}.Value()), 0x0007_0000_8000_0000},
		{"MAIR", uint64(sysreg.MAIROf(sysreg.MAIRNormalWB, sysreg.MAIRDevicenGnRE, sysreg.MAIRNormalNC)), 0x4404ff},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// Every named field survives the round trip builder -> accessor, for random
// field values (masked to their widths).
func TestBuilderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := func() bool { return r.IntN(2) == 1 }
	gr := func() sysreg.Granule { return sysreg.Granule(1 + r.IntN(3)) }
	for i := 0; i < 2000; i++ {
		tf := sysreg.TCRFields{T0SZ: uint(r.IntN(64)), EPD0: b(), SH0: uint(r.IntN(4)), TG0: gr(),
			T1SZ: uint(r.IntN(64)), A1: b(), EPD1: b(), SH1: uint(r.IntN(4)), TG1: gr(), IPS: uint64(r.IntN(8)),
			AS: b(), TBI0: b(), TBI1: b(), HA: b(), HD: b(), HPD0: b(), HPD1: b(), TBID0: b(), TBID1: b(),
			E0PD0: b(), E0PD1: b(), DS: b()}
		tv := tf.Value()
		if tv.T0SZ() != tf.T0SZ || tv.EPD0() != tf.EPD0 || tv.SH0() != tf.SH0 || tv.TG0() != tf.TG0 ||
			tv.T1SZ() != tf.T1SZ || tv.A1() != tf.A1 || tv.EPD1() != tf.EPD1 || tv.SH1() != tf.SH1 ||
			tv.TG1() != tf.TG1 || tv.IPS() != tf.IPS || tv.AS() != tf.AS || tv.TBI0() != tf.TBI0 ||
			tv.TBI1() != tf.TBI1 || tv.HA() != tf.HA || tv.HD() != tf.HD || tv.HPD0() != tf.HPD0 ||
			tv.HPD1() != tf.HPD1 || tv.TBID0() != tf.TBID0 || tv.TBID1() != tf.TBID1 ||
			tv.E0PD0() != tf.E0PD0 || tv.E0PD1() != tf.E0PD1 || tv.DS() != tf.DS {
			t.Fatalf("TCR round trip: %+v -> %#x", tf, uint64(tv))
		}
		t2 := sysreg.TCR2Fields{T0SZ: uint(r.IntN(64)), SH0: uint(r.IntN(4)), TG0: gr(), PS: uint64(r.IntN(8)),
			TBI: b(), HA: b(), HD: b(), HPD: b(), TBID: b(), DS: b()}
		v2 := t2.Value()
		if v2.T0SZ() != t2.T0SZ || v2.SH0() != t2.SH0 || v2.TG0() != t2.TG0 || v2.PS() != t2.PS || v2.TBI() != t2.TBI ||
			v2.HA() != t2.HA || v2.HD() != t2.HD || v2.HPD() != t2.HPD || v2.TBID() != t2.TBID || v2.DS() != t2.DS {
			t.Fatalf("TCR2 round trip: %+v -> %#x", t2, uint64(v2))
		}
		vf := sysreg.VTCRFields{T0SZ: uint(r.IntN(64)), SL0: uint(r.IntN(4)), SH0: uint(r.IntN(4)), TG0: gr(),
			PS: uint64(r.IntN(8)), VS: b(), HA: b(), HD: b(), DS: b(), SL2: b()}
		vv := vf.Value()
		if vv.T0SZ() != vf.T0SZ || vv.SL0() != vf.SL0 || vv.SH0() != vf.SH0 || vv.TG0() != vf.TG0 || vv.PS() != vf.PS ||
			vv.VS() != vf.VS || vv.HA() != vf.HA || vv.HD() != vf.HD || vv.DS() != vf.DS || vv.SL2() != vf.SL2 {
			t.Fatalf("VTCR round trip: %+v -> %#x", vf, uint64(vv))
		}
		sf := sysreg.SCTLRFields{M: b(), A: b(), C: b(), I: b(), WXN: b(), SPAN: b(), E0E: b(), EE: b(), EPAN: b()}
		sv := sf.Value()
		if sv.M() != sf.M || sv.A() != sf.A || sv.C() != sf.C || sv.I() != sf.I || sv.WXN() != sf.WXN ||
			sv.SPAN() != sf.SPAN || sv.E0E() != sf.E0E || sv.EE() != sf.EE || sv.EPAN() != sf.EPAN {
			t.Fatalf("SCTLR round trip: %+v -> %#x", sf, uint64(sv))
		}
		hf := sysreg.HCRFields{VM: b(), PTW: b(), DC: b(), TTLB: b(), TVM: b(), TGE: b(), RW: b(), CD: b(), ID: b(),
			E2H: b(), NV: b(), NV1: b(), AT: b(), NV2: b(), FWB: b()}
		hv := hf.Value()
		if hv.VM() != hf.VM || hv.PTW() != hf.PTW || hv.DC() != hf.DC || hv.TTLB() != hf.TTLB || hv.TGE() != hf.TGE ||
			hv.RW() != hf.RW || hv.CD() != hf.CD || hv.ID() != hf.ID || hv.E2H() != hf.E2H || hv.NV() != hf.NV ||
			hv.NV1() != hf.NV1 || hv.AT() != hf.AT || hv.NV2() != hf.NV2 || hv.FWB() != hf.FWB ||
			hv.Has(sysreg.HCR_TVM) != hf.TVM {
			t.Fatalf("HCR round trip: %+v -> %#x", hf, uint64(hv))
		}
		base := r.Uint64() & 0x0000_ffff_ffff_f000
		asid := uint16(r.Uint32())
		tt := sysreg.TTBRFields{BADDR: base, ASID: asid, CnP: b()}.Value()
		if tt.BADDR() != base || tt.ASID() != asid || tt.CnP() != (uint64(tt)&1 == 1) {
			t.Fatalf("TTBR round trip: %#x %#x -> %#x", base, asid, uint64(tt))
		}
		vt := sysreg.VTTBRFields{BADDR: base, VMID: asid}.Value()
		if vt.BADDR() != base || vt.VMID(true) != asid {
			t.Fatalf("VTTBR round trip: %#x %#x -> %#x", base, asid, uint64(vt))
		}
		var attrs [8]uint8
		for j := range attrs {
			attrs[j] = uint8(r.Uint32())
		}
		m := sysreg.MAIROf(attrs[:]...)
		for j := range attrs {
			if m.Attr(uint(j)) != attrs[j] {
				t.Fatalf("MAIR round trip: %x -> %#x", attrs, uint64(m))
			}
		}
	}
}

// A zero builder is zero except for the RES1 bits the architecture
// requires; Other is ORed in unchanged; fields are masked to their widths.
func TestBuilderZeroAndOther(t *testing.T) {
	if v := (sysreg.TCRFields{}).Value(); v != 0 {
		t.Errorf("zero TCRFields = %#x", uint64(v))
	}
	if v := (sysreg.VTCRFields{}).Value(); v != 1<<31 {
		t.Errorf("zero VTCRFields = %#x, want RES1 bit 31", uint64(v))
	}
	if v := (sysreg.TCR2Fields{}).Value(); v != 1<<31|1<<23 {
		t.Errorf("zero TCR2Fields = %#x, want RES1 bits 31 and 23", uint64(v))
	}
	if v := (sysreg.SCTLRFields{Other: 1 << 29}).Value(); v != 1<<29 {
		t.Errorf("SCTLRFields Other = %#x", uint64(v))
	}
	if v := (sysreg.TCRFields{T0SZ: 0x7f}).Value(); v != 0x3f {
		t.Errorf("T0SZ 0x7f packs as %#x, want masked 0x3f", uint64(v))
	}
	if got := sysreg.TxSZ(48); got != 16 {
		t.Errorf("TxSZ(48) = %d", got)
	}
	for enc := uint64(0); enc <= 6; enc++ {
		if bits, ok := sysreg.PASizeBits(enc); !ok || bits != []uint{32, 36, 40, 42, 44, 48, 52}[enc] {
			t.Errorf("PASizeBits(%d) = %d %v", enc, bits, ok)
		}
	}
	for _, bits := range []uint{32, 36, 40, 42, 44, 48, 52} {
		enc, ok := sysreg.PSFor(bits)
		if back, _ := sysreg.PASizeBits(enc); !ok || back != bits {
			t.Errorf("PSFor(%d) = %d %v", bits, enc, ok)
		}
	}
	if _, ok := sysreg.PSFor(47); ok {
		t.Error("PSFor(47) succeeded")
	}
	if sysreg.PS48 != 5 || sysreg.PS52 != 6 || sysreg.PS40 != 2 {
		t.Error("PS constants do not match the PASizeBits encodings")
	}
}
