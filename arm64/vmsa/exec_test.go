package vmsa_test

import (
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

// TestExecutePermissions enumerates AP[2:1], UXN, PXN, UXNTable,
// PXNTable and SCTLR_EL1.WXN for instruction fetches at EL0 and EL1 in the
// EL1&0 regime. Expected values follow the rules of
// AArch64.S1DirectBasePermissions, written out here:
//   - EL0 may execute unless UXN or UXNTable, and unless WXN with the page
//     EL0-writable (AP=01);
//   - EL1 may execute unless PXN or PXNTable, unless the page is
//     EL0-writable (AP=01: writable at EL0 implies PXN), and unless WXN
//     with the page EL1-writable (AP[2]=0).
func TestExecutePermissions(t *testing.T) {
	n := 0
	for apv := uint64(0); apv < 4; apv++ {
		for xn := uint64(0); xn < 16; xn++ {
			uxn, pxn, uxnT, pxnT := xn&1 != 0, xn&2 != 0, xn&4 != 0, xn&8 != 0
			for _, wxn := range []bool{false, true} {
				el0W := apv == 1
				el1W := apv&2 == 0
				x0 := !uxn && !uxnT && !(wxn && el0W)
				x1 := !pxn && !pxnT && !el0W && !(wxn && el1W)
				for el, want := range []bool{x0, x1} {
					name := fmt.Sprintf("AP=%02b UXN=%v PXN=%v UXNT=%v PXNT=%v WXN=%v EL%d", apv, uxn, pxn, uxnT, pxnT, wxn, el)
					g := newRig(t)
					g.std4k()
					d := uint64(0x4000_1000|xTable|xAF|xIS) | apv<<6
					if uxn {
						d |= 1 << 54
					}
					if pxn {
						d |= 1 << 53
					}
					g.put(rL3+8, d)
					td := uint64(rL2 | xTable)
					if uxnT {
						td |= 1 << 60
					}
					if pxnT {
						td |= 1 << 59
					}
					g.put(rL1, td)
					if wxn {
						g.r.SCTLR_EL1 |= 1 << 19
					}
					tr := g.tr(0x1234, vmsa.Access{Kind: vmsa.Fetch, EL: uint8(el)})
					got := !tr.Fault.IsFault()
					if got != want {
						t.Errorf("%s: fetch allowed=%v (fault %v), want %v", name, got, tr.Fault, want)
					}
					if !want && (tr.Fault.Kind != vmsa.FaultPermission || tr.Fault.Level != 3) {
						t.Errorf("%s: fault %v, want permission level 3", name, tr.Fault)
					}
					n++
				}
			}
		}
	}
	if n != 256 {
		t.Fatalf("%d cases", n)
	}
}

// TestEL2ExecutePermissions: in the EL2 regime (E2H=0) bit 54 is XN and
// bit 60 XNTable; PXN (bit 53) has no meaning; WXN applies to writable
// pages (AP[2]=0; AP[1] is ignored).
func TestEL2ExecutePermissions(t *testing.T) {
	cases := []struct {
		name string
		d    uint64
		td   uint64
		wxn  bool
		ok   bool
	}{
		{"plain", 0, 0, false, true},
		{"XN", 1 << 54, 0, false, false},
		{"bit 53 ignored", 1 << 53, 0, false, true},
		{"XNTable", 0, 1 << 60, false, false},
		{"AP=01 does not imply PXN", 1 << 6, 0, false, true},
		{"WXN writable", 0, 0, true, false},
		{"WXN read-only", 2 << 6, 0, true, true},
		{"WXN AP=11", 3 << 6, 0, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newRig(t)
			g.std4k()
			g.r.SCTLR_EL2 = 1 | 1<<2 | 1<<12
			if c.wxn {
				g.r.SCTLR_EL2 |= 1 << 19
			}
			g.r.TCR_EL2 = 16 | 5<<16
			g.r.TTBR0_EL2 = rL0
			g.r.MAIR_EL2 = 0xff
			g.put(rL3+8, 0x4000_1000|xTable|xAF|xIS|c.d)
			g.put(rL1, rL2|xTable|c.td)
			tr := g.w.Translate(&g.r, vmsa.RegimeEL2, 0x1234, vmsa.Access{Kind: vmsa.Fetch, EL: 2}, vmsa.TranslateOptions{})
			if ok := !tr.Fault.IsFault(); ok != c.ok {
				t.Errorf("fetch allowed=%v (%v), want %v", ok, tr.Fault, c.ok)
			}
		})
	}
}

// TestFetchAttributes: instruction fetches see Normal memory; with
// SCTLR_ELx.I=0, or from a Device page, they are Normal Non-cacheable
// (AArch64.S1Translate), and with the MMU off Normal Non-cacheable or
// Write-Through by SCTLR.I (AArch64.S1DisabledOutput).
func TestFetchAttributes(t *testing.T) {
	fetch := vmsa.Access{Kind: vmsa.Fetch, EL: 1}
	g := newRig(t)
	g.std4k()
	g.r.MAIR_EL1 = 0x00ff // Attr1 Device-nGnRnE
	tr := g.tr(0x1234, fetch)
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.WriteBack {
		t.Errorf("fetch from WB page: %+v", tr.Attrs)
	}
	g.r.SCTLR_EL1 &^= 1 << 12
	tr = g.tr(0x1234, fetch)
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.NonCacheable || tr.Attrs.Outer.Attrs != vmsa.NonCacheable {
		t.Errorf("fetch with SCTLR.I=0: %+v", tr.Attrs)
	}
	g.r.SCTLR_EL1 |= 1 << 12
	g.put(rL3+8, 0x4000_1000|xTable|xAF|xIS|1<<2)
	tr = g.tr(0x1234, fetch)
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.NonCacheable {
		t.Errorf("fetch from Device page: %+v", tr.Attrs)
	}
	g.r.SCTLR_EL1 = sysreg.SCTLR(1 << 12) // MMU off, I=1
	tr = g.tr(0x1234, fetch)
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.WriteThrough || tr.Attrs.Shareability != vmsa.OuterShareable {
		t.Errorf("MMU off fetch, I=1: %+v", tr.Attrs)
	}
	g.r.SCTLR_EL1 = 0
	tr = g.tr(0x1234, fetch)
	if tr.Attrs.Type != vmsa.Normal || tr.Attrs.Inner.Attrs != vmsa.NonCacheable {
		t.Errorf("MMU off fetch, I=0: %+v", tr.Attrs)
	}
}
