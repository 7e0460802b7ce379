package decode

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
)

func txsz(v uint64) string { return fmt.Sprintf("%d-bit input addresses", 64-v) }

var (
	tg0Names = choose("4K granule", "64K granule", "16K granule", "reserved")
	tg1Names = choose("reserved", "16K granule", "4K granule", "64K granule")
	rgnNames = choose("Normal Non-cacheable", "Write-Back Read-Allocate Write-Allocate",
		"Write-Through Read-Allocate no Write-Allocate", "Write-Back Read-Allocate no Write-Allocate")
	shNames = choose("Non-shareable", "reserved", "Outer Shareable", "Inner Shareable")
)

func psBits(v uint64) string {
	if b, ok := sysreg.PASizeBits(v); ok {
		return fmt.Sprintf("%d bits", b)
	}
	return "reserved"
}

func tcr(name string, v uint64) Decoded {
	d := apply(name, v, []spec{
		{"T0SZ", 5, 0, txsz},
		{"EPD0", 7, 7, on("TTBR0 walks disabled (translation fault)")},
		{"IRGN0", 9, 8, rgnNames},
		{"ORGN0", 11, 10, rgnNames},
		{"SH0", 13, 12, shNames},
		{"TG0", 15, 14, tg0Names},
		{"T1SZ", 21, 16, txsz},
		{"A1", 22, 22, choose("ASID from TTBR0", "ASID from TTBR1")},
		{"EPD1", 23, 23, on("TTBR1 walks disabled (translation fault)")},
		{"IRGN1", 25, 24, rgnNames},
		{"ORGN1", 27, 26, rgnNames},
		{"SH1", 29, 28, shNames},
		{"TG1", 31, 30, tg1Names},
		{"IPS", 34, 32, psBits},
		{"AS", 36, 36, choose("8-bit ASID", "16-bit ASID")},
		{"TBI0", 37, 37, on("top byte ignored (TTBR0)")},
		{"TBI1", 38, 38, on("top byte ignored (TTBR1)")},
		{"HA", 39, 39, on("hardware Access flag update")},
		{"HD", 40, 40, on("hardware dirty state update")},
		{"HPD0", 41, 41, on("hierarchical permissions disabled (TTBR0)")},
		{"HPD1", 42, 42, on("hierarchical permissions disabled (TTBR1)")},
		{"HWU059", 43, 43, nil}, {"HWU060", 44, 44, nil}, {"HWU061", 45, 45, nil}, {"HWU062", 46, 46, nil},
		{"HWU159", 47, 47, nil}, {"HWU160", 48, 48, nil}, {"HWU161", 49, 49, nil}, {"HWU162", 50, 50, nil},
		{"TBID0", 51, 51, on("TBI0 for data accesses only")},
		{"TBID1", 52, 52, on("TBI1 for data accesses only")},
		{"NFD0", 53, 53, nil},
		{"NFD1", 54, 54, nil},
		{"E0PD0", 55, 55, on("EL0 accesses to TTBR0 region fault")},
		{"E0PD1", 56, 56, on("EL0 accesses to TTBR1 region fault")},
		{"TCMA0", 57, 57, nil},
		{"TCMA1", 58, 58, nil},
		{"DS", 59, 59, on("52-bit descriptor formats (FEAT_LPA2)")},
	})
	t := sysreg.TCR(v)
	d.Summary = fmt.Sprintf("TTBR0: %d-bit VA, %v; TTBR1: %d-bit VA, %v; IPS %s", 64-t.T0SZ(), t.TG0(), 64-t.T1SZ(), t.TG1(), psBits(t.IPS()))
	return d
}

func tcrEL2(v uint64) Decoded {
	d := apply("TCR_EL2", v, []spec{
		{"T0SZ", 5, 0, txsz},
		{"IRGN0", 9, 8, rgnNames},
		{"ORGN0", 11, 10, rgnNames},
		{"SH0", 13, 12, shNames},
		{"TG0", 15, 14, tg0Names},
		{"PS", 18, 16, psBits},
		{"TBI", 20, 20, on("top byte ignored")},
		{"HA", 21, 21, on("hardware Access flag update")},
		{"HD", 22, 22, on("hardware dirty state update")},
		{"RES1", 23, 23, nil},
		{"HPD", 24, 24, on("hierarchical permissions disabled")},
		{"HWU59", 25, 25, nil}, {"HWU60", 26, 26, nil}, {"HWU61", 27, 27, nil}, {"HWU62", 28, 28, nil},
		{"TBID", 29, 29, on("TBI for data accesses only")},
		{"RES1", 31, 31, nil},
		{"DS", 32, 32, on("52-bit descriptor formats (FEAT_LPA2)")},
	})
	t := sysreg.TCR2(v)
	d.Summary = fmt.Sprintf("EL2 (E2H=0): %d-bit VA, %v, PS %s", 64-t.T0SZ(), t.TG0(), psBits(t.PS()))
	d.Notes = append(d.Notes, "HCR_EL2.E2H=0 layout (one VA range); pass e2h for the TCR_EL1 layout")
	return d
}

// s2StartLevel decodes VTCR_EL2.SL0 (and SL2) for a granule
// (AArch64.S2StartLevel).
func s2StartLevel(g sysreg.Granule, sl0 uint, sl2 bool) string {
	switch g {
	case sysreg.Granule4K:
		if sl2 && sl0 == 0 {
			return "level -1 (SL2=1)"
		}
		return fmt.Sprintf("level %d", [...]int{2, 1, 0, 3}[sl0])
	case sysreg.Granule16K, sysreg.Granule64K:
		return fmt.Sprintf("level %d", 3-int(sl0))
	}
	return "reserved granule"
}

func vtcr(v uint64) Decoded {
	r := sysreg.VTCR(v)
	d := apply("VTCR_EL2", v, []spec{
		{"T0SZ", 5, 0, txsz},
		{"SL0", 7, 6, func(uint64) string { return "start " + s2StartLevel(r.TG0(), r.SL0(), r.SL2()) }},
		{"IRGN0", 9, 8, rgnNames},
		{"ORGN0", 11, 10, rgnNames},
		{"SH0", 13, 12, shNames},
		{"TG0", 15, 14, tg0Names},
		{"PS", 18, 16, psBits},
		{"VS", 19, 19, choose("8-bit VMID", "16-bit VMID")},
		{"HA", 21, 21, on("hardware Access flag update")},
		{"HD", 22, 22, on("hardware dirty state update")},
		{"HWU59", 25, 25, nil}, {"HWU60", 26, 26, nil}, {"HWU61", 27, 27, nil}, {"HWU62", 28, 28, nil},
		{"NSW", 29, 29, nil},
		{"NSA", 30, 30, nil},
		{"RES1", 31, 31, nil},
		{"DS", 32, 32, on("52-bit descriptor formats (FEAT_LPA2)")},
		{"SL2", 33, 33, on("start level -1 with SL0=0 (4K, DS=1)")},
	})
	d.Summary = fmt.Sprintf("stage 2: %d-bit IPA, %v, start %s, PS %s", 64-r.T0SZ(), r.TG0(), s2StartLevel(r.TG0(), r.SL0(), r.SL2()), psBits(r.PS()))
	return d
}

func sctlr(name string, v uint64) Decoded {
	d := apply(name, v, []spec{
		{"M", 0, 0, on("stage-1 MMU enabled")},
		{"A", 1, 1, on("alignment checking")},
		{"C", 2, 2, choose("stage-1 data accesses Non-cacheable", "")},
		{"SA", 3, 3, on("SP alignment check")},
		{"SA0", 4, 4, on("SP alignment check at EL0")},
		{"CP15BEN", 5, 5, nil},
		{"nAA", 6, 6, nil},
		{"ITD", 7, 7, nil},
		{"SED", 8, 8, nil},
		{"UMA", 9, 9, nil},
		{"EnRCTX", 10, 10, nil},
		{"EOS", 11, 11, nil},
		{"I", 12, 12, choose("stage-1 instruction accesses Non-cacheable", "")},
		{"EnDB", 13, 13, nil},
		{"DZE", 14, 14, nil},
		{"UCT", 15, 15, nil},
		{"nTWI", 16, 16, nil},
		{"nTWE", 18, 18, nil},
		{"WXN", 19, 19, on("writable implies execute-never")},
		{"TSCXT", 20, 20, nil},
		{"IESB", 21, 21, nil},
		{"EIS", 22, 22, nil},
		{"SPAN", 23, 23, choose("PSTATE.PAN set on exception entry", "")},
		{"E0E", 24, 24, choose("", "EL0 data big-endian")},
		{"EE", 25, 25, choose("", "big-endian data and table walks")},
		{"UCI", 26, 26, nil},
		{"EnDA", 27, 27, nil},
		{"nTLSMD", 28, 28, nil},
		{"LSMAOE", 29, 29, nil},
		{"EnIB", 30, 30, nil},
		{"EnIA", 31, 31, nil},
		{"CMOW", 32, 32, nil},
		{"MSCEn", 33, 33, nil},
		{"EnFPM", 34, 34, nil},
		{"BT0", 35, 35, nil},
		{"BT1", 36, 36, nil},
		{"ITFSB", 37, 37, nil},
		{"TCF0", 39, 38, nil},
		{"TCF", 41, 40, nil},
		{"ATA0", 42, 42, nil},
		{"ATA", 43, 43, nil},
		{"DSSBS", 44, 44, nil},
		{"TWEDEn", 45, 45, nil},
		{"TWEDEL", 49, 46, nil},
		{"TMT0", 50, 50, nil},
		{"TMT", 51, 51, nil},
		{"TME0", 52, 52, nil},
		{"TME", 53, 53, nil},
		{"EnASR", 54, 54, nil},
		{"EnAS0", 55, 55, nil},
		{"EnALS", 56, 56, nil},
		{"EPAN", 57, 57, on("PAN also for EL0-executable pages (FEAT_PAN3)")},
		{"TCSO0", 58, 58, nil},
		{"TCSO", 59, 59, nil},
		{"EnTP2", 60, 60, nil},
		{"NMI", 61, 61, nil},
		{"SPINTMASK", 62, 62, nil},
		{"TIDCP", 63, 63, nil},
	})
	s := sysreg.SCTLR(v)
	mmu := "MMU off"
	if s.M() {
		mmu = "MMU on"
	}
	d.Summary = fmt.Sprintf("%s, data %s, instructions %s, %s", mmu, cacheable(s.C()), cacheable(s.I()), endian(s.EE()))
	return d
}

func cacheable(b bool) string {
	if b {
		return "cacheable"
	}
	return "non-cacheable"
}

func endian(be bool) string {
	if be {
		return "big-endian"
	}
	return "little-endian"
}

func hcr(v uint64) Decoded {
	d := apply("HCR_EL2", v, []spec{
		{"VM", 0, 0, on("stage 2 enabled for EL1&0")},
		{"SWIO", 1, 1, nil},
		{"PTW", 2, 2, on("stage-1 walks to stage-2 Device memory fault")},
		{"FMO", 3, 3, on("FIQs routed to EL2")},
		{"IMO", 4, 4, on("IRQs routed to EL2")},
		{"AMO", 5, 5, on("SErrors routed to EL2")},
		{"VF", 6, 6, on("virtual FIQ pending")},
		{"VI", 7, 7, on("virtual IRQ pending")},
		{"VSE", 8, 8, on("virtual SError pending")},
		{"FB", 9, 9, on("force broadcast of TLB and cache maintenance")},
		{"BSU", 11, 10, choose("no barrier upgrade", "barriers upgraded to Inner Shareable", "barriers upgraded to Outer Shareable", "barriers upgraded to Full system")},
		{"DC", 12, 12, on("default cacheable: EL1&0 stage 1 off, stage 2 on")},
		{"TWI", 13, 13, on("trap WFI")},
		{"TWE", 14, 14, on("trap WFE")},
		{"TID0", 15, 15, nil},
		{"TID1", 16, 16, nil},
		{"TID2", 17, 17, nil},
		{"TID3", 18, 18, on("trap ID group 3 reads")},
		{"TSC", 19, 19, on("trap SMC")},
		{"TIDCP", 20, 20, nil},
		{"TACR", 21, 21, nil},
		{"TSW", 22, 22, on("trap cache maintenance by set/way")},
		{"TPCP", 23, 23, nil},
		{"TPU", 24, 24, nil},
		{"TTLB", 25, 25, on("trap EL1 TLB maintenance")},
		{"TVM", 26, 26, on("trap EL1 writes of the virtual memory controls")},
		{"TGE", 27, 27, on("trap general exceptions: EL0 runs under EL2")},
		{"TDZ", 28, 28, nil},
		{"HCD", 29, 29, on("HVC disabled")},
		{"TRVM", 30, 30, on("trap EL1 reads of the virtual memory controls")},
		{"RW", 31, 31, choose("EL1 is AArch32", "EL1 is AArch64")},
		{"CD", 32, 32, on("stage-2 data accesses Non-cacheable")},
		{"ID", 33, 33, on("stage-2 instruction accesses Non-cacheable")},
		{"E2H", 34, 34, on("EL2 host (FEAT_VHE)")},
		{"TLOR", 35, 35, nil},
		{"TERR", 36, 36, nil},
		{"TEA", 37, 37, on("route synchronous External aborts to EL2")},
		{"MIOCNCE", 38, 38, nil},
		{"TME", 39, 39, nil},
		{"APK", 40, 40, nil},
		{"API", 41, 41, nil},
		{"NV", 42, 42, on("nested virtualization: EL2 operations at EL1 trap")},
		{"NV1", 43, 43, nil},
		{"AT", 44, 44, on("trap EL1 AT S1E0*/S1E1*")},
		{"NV2", 45, 45, on("enhanced nested virtualization (register accesses to memory)")},
		{"FWB", 46, 46, on("stage-2 forced write-back attribute combining")},
		{"FIEN", 47, 47, nil},
		{"GPF", 48, 48, nil},
		{"TID4", 49, 49, nil},
		{"TICAB", 50, 50, nil},
		{"AMVOFFEN", 51, 51, nil},
		{"TOCU", 52, 52, nil},
		{"EnSCXT", 53, 53, nil},
		{"TTLBIS", 54, 54, on("trap Inner Shareable TLBI")},
		{"TTLBOS", 55, 55, on("trap Outer Shareable TLBI")},
		{"ATA", 56, 56, nil},
		{"DCT", 57, 57, nil},
		{"TID5", 58, 58, nil},
		{"TWEDEn", 59, 59, nil},
		{"TWEDEL", 63, 60, nil},
	})
	h := sysreg.HCR(v)
	var parts []string
	switch {
	case h.E2H() && h.TGE():
		parts = append(parts, "EL2&0 host (E2H, TGE)")
	case h.E2H():
		parts = append(parts, "VHE host running a guest (E2H, TGE=0)")
	case h.TGE():
		parts = append(parts, "TGE=1: EL1 unused, EL0 under EL2")
	}
	if h.VM() {
		parts = append(parts, "stage 2 on")
	} else {
		parts = append(parts, "stage 2 off")
	}
	if h.NV() {
		parts = append(parts, "nested virtualization traps")
	}
	d.Summary = fmt.Sprint(parts)
	d.Summary = d.Summary[1 : len(d.Summary)-1]
	return d
}

func mair(name string, v uint64) Decoded {
	var layout []spec
	for i := uint8(0); i < 8; i++ {
		layout = append(layout, spec{fmt.Sprintf("Attr%d", i), 8*i + 7, 8 * i, mairAttr})
	}
	return apply(name, v, layout)
}

// mairAttr describes a MAIR attribute byte.
func mairAttr(a uint64) string {
	hi, lo := a>>4, a&0xf
	if hi == 0 {
		switch lo {
		case 0x0:
			return "Device-nGnRnE"
		case 0x4:
			return "Device-nGnRE"
		case 0x8:
			return "Device-nGRE"
		case 0xc:
			return "Device-GRE"
		}
		return "Device, UNPREDICTABLE low nibble"
	}
	if lo == 0 {
		if a == 0xf0 {
			return "Tagged Normal, Write-Back RW-allocate (FEAT_MTE2; otherwise UNPREDICTABLE)"
		}
		return "inner 0b0000: UNPREDICTABLE unless a feature defines it"
	}
	return fmt.Sprintf("Normal, outer %s, inner %s", cacheNibble(hi), cacheNibble(lo))
}

// cacheNibble describes one Normal-memory nibble of a MAIR attribute.
func cacheNibble(n uint64) string {
	alloc := func() string {
		switch n & 3 {
		case 0:
			return "no allocate"
		case 1:
			return "W-allocate"
		case 2:
			return "R-allocate"
		}
		return "RW-allocate"
	}
	switch n >> 2 {
	case 0:
		return "Write-Through transient " + alloc()
	case 1:
		if n == 0b0100 {
			return "Non-cacheable"
		}
		return "Write-Back transient " + alloc()
	case 2:
		return "Write-Through " + alloc()
	}
	return "Write-Back " + alloc()
}

func ttbr(name string, v uint64) Decoded {
	d := apply(name, v, []spec{
		{"CnP", 0, 0, on("common not private")},
		{"BADDR", 47, 1, nil},
		{"ASID", 63, 48, nil},
	})
	d.Summary = fmt.Sprintf("table base %#x (with the 52-bit formats BADDR[51:48] is in bits [5:2]: %#x), ASID %#x",
		sysreg.TTBR(v).BADDR(), sysreg.TTBR(v).BADDRHigh(), sysreg.TTBR(v).ASID())
	return d
}

func vttbr(v uint64) Decoded {
	d := apply("VTTBR_EL2", v, []spec{
		{"CnP", 0, 0, on("common not private")},
		{"BADDR", 47, 1, nil},
		{"VMID", 63, 48, nil},
	})
	d.Summary = fmt.Sprintf("stage-2 table base %#x, VMID %#x (8-bit VMIDs use bits [55:48])", sysreg.VTTBR(v).BADDR(), sysreg.VTTBR(v).VMID(true))
	return d
}

func hpfar(v uint64) Decoded {
	d := apply("HPFAR_EL2", v, []spec{
		{"FIPA", 43, 4, nil},
		{"NS", 63, 63, nil},
	})
	d.Summary = fmt.Sprintf("faulting IPA page %#x", sysreg.HPFAR(v).IPA())
	return d
}
