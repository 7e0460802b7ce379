package decode_test

import (
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/decode"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

func field(t *testing.T, d decode.Decoded, name string) decode.Field {
	t.Helper()
	f, ok := d.Field(name)
	if !ok {
		t.Fatalf("%s has no field %s", d.Name, name)
	}
	return f
}

// Values taken apart by hand from the register descriptions.
func TestKnownValues(t *testing.T) {
	cases := []struct {
		reg     string
		v       uint64
		fields  map[string]uint64
		summary string
	}{
		// Data Abort from EL1 (EC 0x24), IL, ISV, SAS=doubleword, SF,
		// DFSC=0b000111 (translation fault, level 3), read.
		{"ESR_EL2", 0x93c08007, map[string]uint64{"EC": 0x24, "IL": 1, "ISV": 1, "SAS": 3, "SRT": 0, "SF": 1, "WnR": 0, "DFSC": 7},
			"Data Abort from a lower Exception level: Translation fault, level 3, read"},
		// AT's Data Abort: CM=1, WnR=1, S1PTW, stage-2 translation level 1.
		{"ESR_EL2", 0x24<<26 | 1<<25 | 1<<8 | 1<<7 | 1<<6 | 0b000101, map[string]uint64{"CM": 1, "S1PTW": 1, "WnR": 1, "DFSC": 5},
			"Translation fault, level 1, write, on a stage-1 table walk, by a cache maintenance or AT instruction"},
		// MSR TTBR0_EL1, X3 trapped (op0=3 op1=0 CRn=2 CRm=0 op2=0, write).
		{"ESR_EL2", 0x18<<26 | 1<<25 | 3<<20 | 2<<10 | 3<<5, map[string]uint64{"Op0": 3, "Op1": 0, "CRn": 2, "CRm": 0, "Op2": 0, "Rt": 3, "Direction": 0},
			"op0=3 op1=0 CRn=2 CRm=0 op2=0, X3, write"},
		{"ESR_EL1", 0x16<<26 | 1<<25 | 0x1234, map[string]uint64{"EC": 0x16, "imm16": 0x1234}, "HVC (AArch64)"},
		// The contract example's PARs (docs/AT-JSON.md).
		{"PAR_EL1", 0xff00000040001b80, map[string]uint64{"F": 0, "SH": 3, "NS": 1, "PA": 0x40001, "ATTR": 0xff}, "PA 0x40001000"},
		{"PAR_EL1", 0x81f, map[string]uint64{"F": 1, "FST": 0xf, "PTW": 0, "S": 0}, "Permission fault, level 3, stage 1"},
		{"PAR_EL1", 0xb0d, map[string]uint64{"F": 1, "FST": 6, "PTW": 1, "S": 1}, "Translation fault, level 2, stage 2 on the stage-1 walk"},
		{"TCR_EL1", 0x8580190019, map[string]uint64{"T0SZ": 25, "T1SZ": 25, "TG0": 0, "TG1": 2, "IPS": 5, "HA": 1},
			"TTBR0: 39-bit VA, 4K; TTBR1: 39-bit VA, 4K; IPS 48 bits"},
		{"VTCR_EL2", 0x800d3558, map[string]uint64{"T0SZ": 24, "SL0": 1, "IRGN0": 1, "ORGN0": 1, "SH0": 3, "TG0": 0, "PS": 5, "VS": 1},
			"stage 2: 40-bit IPA, 4K, start level 1, PS 48 bits"},
		// 64K granule SL0=1: start level 2 (AArch64.S2StartLevel).
		{"VTCR_EL2", 1<<31 | 1<<14 | 1<<6 | 22, map[string]uint64{"TG0": 1, "SL0": 1}, "start level 2"},
		{"TCR_EL2", 1<<31 | 1<<23 | 2<<16 | 1<<14 | 16, map[string]uint64{"T0SZ": 16, "TG0": 1, "PS": 2}, "EL2 (E2H=0): 48-bit VA, 64K, PS 40 bits"},
		{"HCR_EL2", 1<<34 | 1<<27 | 1<<31, map[string]uint64{"E2H": 1, "TGE": 1, "RW": 1, "VM": 0}, "EL2&0 host (E2H, TGE)"},
		{"SCTLR_EL1", 0x30d00805, map[string]uint64{"M": 1, "C": 1, "I": 0, "SPAN": 1, "EIS": 1, "TSCXT": 1, "EOS": 1, "nTLSMD": 1, "LSMAOE": 1},
			"MMU on, data cacheable, instructions non-cacheable, little-endian"},
		{"MAIR_EL1", 0x4404ff, map[string]uint64{"Attr0": 0xff, "Attr1": 0x04, "Attr2": 0x44, "Attr3": 0}, ""},
		{"TTBR0_EL1", 0x0012_0000_4400_0001, map[string]uint64{"ASID": 0x12, "CnP": 1, "BADDR": 0x4400_0000 >> 1}, "table base 0x44000000"},
		{"VTTBR_EL2", 0x0007_0000_8000_0000, map[string]uint64{"VMID": 7}, "VMID 0x7"},
		{"HPFAR_EL2", 0x40200 << 4, map[string]uint64{"FIPA": 0x40200}, "faulting IPA page 0x40200000"},
	}
	for _, c := range cases {
		d, err := decode.Register(c.reg, c.v, false)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range c.fields {
			if got := field(t, d, name).Value; got != want {
				t.Errorf("%s %#x: %s = %#x, want %#x", c.reg, c.v, name, got, want)
			}
		}
		if !strings.Contains(d.Summary, c.summary) {
			t.Errorf("%s %#x: summary %q lacks %q", c.reg, c.v, d.Summary, c.summary)
		}
	}
	if a, _ := decode.Register("MAIR_EL1", 0x4404ff, false); field(t, a, "Attr1").Meaning != "Device-nGnRE" ||
		field(t, a, "Attr2").Meaning != "Normal, outer Non-cacheable, inner Non-cacheable" {
		t.Errorf("MAIR meanings: %+v", a.Fields)
	}
	if _, err := decode.Register("TCR_EL3", 0, false); err == nil {
		t.Error("TCR_EL3 decoded")
	}
}

// No two fields of a layout overlap, for every register and both PAR
// layouts and every ESR class layout.
func TestLayoutsDoNotOverlap(t *testing.T) {
	check := func(d decode.Decoded) {
		var seen uint64
		for _, f := range d.Fields {
			m := (uint64(1)<<(f.Hi-f.Lo+1) - 1) << f.Lo
			if f.Hi == 63 && f.Lo == 0 {
				m = ^uint64(0)
			}
			if seen&m != 0 {
				t.Errorf("%s: field %s %s overlaps another", d.Name, f.Name, f.Bits())
			}
			seen |= m
		}
	}
	for _, r := range decode.Registers() {
		for _, v := range []uint64{0, ^uint64(0), 0x24 << 26, 0x18 << 26, 0x20 << 26, 0x01 << 26, 0x16 << 26} {
			for _, e2h := range []bool{false, true} {
				d, err := decode.Register(r, v, e2h)
				if err != nil {
					t.Fatal(err)
				}
				check(d)
			}
		}
	}
	for _, g := range []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K} {
		for _, f := range []desc.Format{{Granule: g}, {Granule: g, DS: g != sysreg.Granule64K}, {Granule: g, OA52: g == sysreg.Granule64K}} {
			for level := 0; level <= 3; level++ {
				for stage := 1; stage <= 2; stage++ {
					for _, v := range []uint64{^uint64(0), ^uint64(0) &^ 2, 0x1} {
						check(decode.Descriptor(v, stage, level, f))
					}
				}
			}
		}
	}
}

// The decoder's field positions agree with the sysreg accessors and
// builders for random values.
func TestAgreesWithSysreg(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	tgEnc := map[sysreg.Granule]uint64{sysreg.Granule4K: 0, sysreg.Granule64K: 1, sysreg.Granule16K: 2}
	for i := 0; i < 500; i++ {
		v := r.Uint64()
		d, _ := decode.Register("TCR_EL1", v, false)
		tc := sysreg.TCR(v)
		for name, want := range map[string]uint64{"T0SZ": uint64(tc.T0SZ()), "T1SZ": uint64(tc.T1SZ()), "IPS": tc.IPS(),
			"SH0": uint64(tc.SH0()), "SH1": uint64(tc.SH1()), "HA": b(tc.HA()), "HD": b(tc.HD()), "DS": b(tc.DS()),
			"EPD0": b(tc.EPD0()), "EPD1": b(tc.EPD1()), "A1": b(tc.A1()), "AS": b(tc.AS()), "TBI0": b(tc.TBI0()),
			"TBI1": b(tc.TBI1()), "HPD0": b(tc.HPD0()), "HPD1": b(tc.HPD1()), "TBID0": b(tc.TBID0()),
			"TBID1": b(tc.TBID1()), "E0PD0": b(tc.E0PD0()), "E0PD1": b(tc.E0PD1())} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("TCR %#x: %s = %#x, accessor %#x", v, name, got, want)
			}
		}
		if g := tc.TG0(); g != sysreg.GranuleInvalid && field(t, d, "TG0").Value != tgEnc[g] {
			t.Fatalf("TCR %#x: TG0", v)
		}
		d, _ = decode.Register("VTCR_EL2", v, false)
		vt := sysreg.VTCR(v)
		for name, want := range map[string]uint64{"T0SZ": uint64(vt.T0SZ()), "SL0": uint64(vt.SL0()), "PS": vt.PS(),
			"SH0": uint64(vt.SH0()), "VS": b(vt.VS()), "HA": b(vt.HA()), "HD": b(vt.HD()), "DS": b(vt.DS()), "SL2": b(vt.SL2())} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("VTCR %#x: %s = %#x, accessor %#x", v, name, got, want)
			}
		}
		d, _ = decode.Register("TCR_EL2", v, false)
		t2 := sysreg.TCR2(v)
		for name, want := range map[string]uint64{"T0SZ": uint64(t2.T0SZ()), "PS": t2.PS(), "TBI": b(t2.TBI()),
			"HA": b(t2.HA()), "HD": b(t2.HD()), "HPD": b(t2.HPD()), "TBID": b(t2.TBID()), "DS": b(t2.DS())} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("TCR_EL2 %#x: %s = %#x, accessor %#x", v, name, got, want)
			}
		}
		d, _ = decode.Register("SCTLR_EL1", v, false)
		s := sysreg.SCTLR(v)
		for name, want := range map[string]uint64{"M": b(s.M()), "A": b(s.A()), "C": b(s.C()), "I": b(s.I()),
			"WXN": b(s.WXN()), "SPAN": b(s.SPAN()), "E0E": b(s.E0E()), "EE": b(s.EE()), "EPAN": b(s.EPAN())} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("SCTLR %#x: %s", v, name)
			}
		}
		d, _ = decode.Register("HCR_EL2", v, false)
		h := sysreg.HCR(v)
		for name, want := range map[string]uint64{"VM": b(h.VM()), "PTW": b(h.PTW()), "DC": b(h.DC()), "TGE": b(h.TGE()),
			"RW": b(h.RW()), "CD": b(h.CD()), "ID": b(h.ID()), "E2H": b(h.E2H()), "AT": b(h.AT()), "NV": b(h.NV()),
			"NV1": b(h.NV1()), "NV2": b(h.NV2()), "FWB": b(h.FWB()), "TTLB": b(h.TTLB()), "TVM": b(h.Has(sysreg.HCR_TVM)),
			"TTLBIS": b(h.Has(sysreg.HCR_TTLBIS)), "TTLBOS": b(h.Has(sysreg.HCR_TTLBOS))} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("HCR %#x: %s", v, name)
			}
		}
		esrV := v&^(0x3f<<26) | 0x24<<26
		d, _ = decode.Register("ESR_EL2", esrV, false)
		e := sysreg.ESR(esrV)
		for name, want := range map[string]uint64{"EC": uint64(e.EC()), "IL": b(e.IL()), "ISV": b(e.ISV()),
			"FnV": b(e.FnV()), "EA": b(e.EA()), "CM": b(e.CM()), "S1PTW": b(e.S1PTW()), "WnR": b(e.WnR()), "DFSC": uint64(e.FSC())} {
			if got := field(t, d, name).Value; got != want {
				t.Fatalf("ESR %#x: %s", esrV, name)
			}
		}
		if e.ISV() {
			for name, want := range map[string]uint64{"SAS": uint64(e.SAS()), "SSE": b(e.SSE()), "SRT": uint64(e.SRT()), "SF": b(e.SF()), "AR": b(e.AR())} {
				if got := field(t, d, name).Value; got != want {
					t.Fatalf("ESR %#x: %s", esrV, name)
				}
			}
		}
		d, _ = decode.Register("PAR_EL1", v, false)
		p := sysreg.PAR(v)
		if p.F() {
			if field(t, d, "FST").Value != uint64(p.FST()) || field(t, d, "PTW").Value != b(p.PTW()) || field(t, d, "S").Value != b(p.S()) {
				t.Fatalf("PAR %#x", v)
			}
		} else if field(t, d, "PA").Value<<12 != p.PA() || field(t, d, "ATTR").Value != uint64(p.ATTR()) || field(t, d, "SH").Value != uint64(p.SH()) {
			t.Fatalf("PAR %#x", v)
		}
	}
}

func b(x bool) uint64 {
	if x {
		return 1
	}
	return 0
}

// FaultStatus names every fault the model reports with its kind and level
// (vmsa.Fault.FSC is the encoder).
func TestFaultStatusAgreesWithVMSA(t *testing.T) {
	kinds := map[vmsa.FaultKind]string{vmsa.FaultTranslation: "Translation fault", vmsa.FaultAddressSize: "Address size fault",
		vmsa.FaultAccessFlag: "Access flag fault", vmsa.FaultPermission: "Permission fault",
		vmsa.FaultSyncExternalOnWalk: "Synchronous External abort on a translation table walk"}
	for k, name := range kinds {
		for level := int8(-1); level <= 3; level++ {
			if level == -1 && (k == vmsa.FaultAccessFlag || k == vmsa.FaultPermission) {
				continue
			}
			if level == 0 && k == vmsa.FaultAccessFlag {
				continue // 0b001000 is level 0 only with FEAT_LPA2
			}
			fsc := vmsa.Fault{Kind: k, Level: level}.FSC()
			got := decode.FaultStatus(uint64(fsc))
			if !strings.HasPrefix(got, name) || !strings.HasSuffix(got, "level "+itoa(int(level))) {
				t.Errorf("%v level %d: FSC %#b decodes as %q", k, level, fsc, got)
			}
		}
	}
}

func itoa(i int) string {
	if i < 0 {
		return "-" + string(rune('0'-i))
	}
	return string(rune('0' + i))
}

// Descriptors: the output address and kind agree with package desc; the
// attribute fields with desc.S1 and desc.S2.
func TestDescriptors(t *testing.T) {
	f4 := desc.Format{Granule: sysreg.Granule4K}
	// 0x40001703 at level 3: page, OA 0x40001000, AttrIndx 0, AP 00, SH inner, AF.
	d := decode.Descriptor(0x40001703, 1, 3, f4)
	for name, want := range map[string]uint64{"AttrIndx": 0, "AP": 0, "SH": 3, "AF": 1, "nG": 0} {
		if got := field(t, d, name).Value; got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if !strings.Contains(d.Summary, "page mapping 4K at output address 0x40001000") {
		t.Errorf("summary %q", d.Summary)
	}
	// A level-0 block with the 4K granule is not a valid block without DS.
	if d := decode.Descriptor(0x1, 1, 0, f4); !strings.Contains(d.Summary, "not a valid block") {
		t.Errorf("level-0 block: %q", d.Summary)
	}
	if d := decode.Descriptor(0x1, 1, 0, desc.Format{Granule: sysreg.Granule4K, DS: true}); strings.Contains(d.Summary, "not a valid") {
		t.Errorf("level-0 block with DS: %q", d.Summary)
	}
	if d := decode.Descriptor(0x40000001, 1, 3, f4); !strings.Contains(d.Summary, "reserved") {
		t.Errorf("level-3 0b01: %q", d.Summary)
	}
	// Stage 2: MemAttr 0b1111 (Normal WB), S2AP RW, XN 0b10.
	d = decode.Descriptor(0x4000_0000|0xf<<2|3<<6|3<<8|1<<10|2<<53|1, 2, 1, f4)
	if field(t, d, "MemAttr").Meaning != "Normal, outer Write-Back, inner Write-Back" || field(t, d, "S2AP").Meaning != "read/write" ||
		field(t, d, "XN").Meaning != "not executable" || !strings.Contains(d.Summary, "block mapping 1G at output address 0x40000000") {
		t.Errorf("stage-2 block: %+v %s", d.Fields, d.Summary)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		v := r.Uint64()
		level := r.IntN(4)
		g := []sysreg.Granule{sysreg.Granule4K, sysreg.Granule16K, sysreg.Granule64K}[r.IntN(3)]
		f := desc.Format{Granule: g}
		d := decode.Descriptor(v, 1, level, f)
		switch desc.KindAt(v, level) {
		case desc.Block, desc.Page:
			s1 := desc.S1(v)
			if field(t, d, "AttrIndx").Value != uint64(s1.AttrIndx()) || field(t, d, "AP").Value != uint64(s1.AP()) ||
				field(t, d, "UXN").Value != b(s1.UXN()) || field(t, d, "PXN").Value != b(s1.PXN()) ||
				field(t, d, "nG").Value != b(s1.NG()) || field(t, d, "DBM").Value != b(s1.DBM()) {
				t.Fatalf("%#x level %d: fields disagree with desc.S1", v, level)
			}
			if oa, ok := d.Field("output address"); ok && oa.Value<<oa.Lo != f.LeafOA(v, level) {
				t.Fatalf("%#x level %d %v: OA %#x, desc says %#x", v, level, g, oa.Value<<oa.Lo, f.LeafOA(v, level))
			} else if !ok && f.LeafBits(level) <= 47 {
				t.Fatalf("%#x level %d %v: no output address", v, level, g)
			}
			d2 := decode.Descriptor(v, 2, level, f)
			s2 := desc.S2(v)
			if field(t, d2, "MemAttr").Value != uint64(s2.MemAttr()) || field(t, d2, "S2AP").Value != uint64(s2.S2AP()) ||
				field(t, d2, "XN").Value != uint64(s2.XN()) {
				t.Fatalf("%#x: fields disagree with desc.S2", v)
			}
		case desc.Table:
			s1 := desc.S1(v)
			if field(t, d, "APTable").Value != uint64(s1.APTable()) || field(t, d, "NSTable").Value != b(s1.NSTable()) {
				t.Fatalf("%#x: table fields disagree", v)
			}
			a := field(t, d, "next-level table address")
			if a.Value<<a.Lo != f.TableOA(v) {
				t.Fatalf("%#x: table address", v)
			}
		}
		if bits.OnesCount64(v) == 0 {
			t.Fatal("unreachable")
		}
	}
}
