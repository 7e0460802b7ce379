package vmsa

import "github.com/nestmmu/nestmmu/arm64/desc"

// permBits is Perms as a bit set, the form the walk computes and checks
// permissions in (one register, where the six-bool struct made each copy a
// string of byte stores and loads); asPerms converts it for a Translation.
type permBits uint8

// The permBits of each Perms field.
const (
	permR0 permBits = 1 << iota
	permW0
	permX0
	permR1
	permW1
	permX1
)

// bitIf returns b when c holds, else 0.
func bitIf(c bool, b permBits) permBits {
	if c {
		return b
	}
	return 0
}

// asPerms returns the permissions b grants.
func (b permBits) asPerms() Perms {
	return Perms{R0: b&permR0 != 0, W0: b&permW0 != 0, X0: b&permX0 != 0, R1: b&permR1 != 0, W1: b&permW1 != 0, X1: b&permX1 != 0}
}

// permBitsOf returns the bit set of pm.
func permBitsOf(pm Perms) permBits {
	return bitIf(pm.R0, permR0) | bitIf(pm.W0, permW0) | bitIf(pm.X0, permX0) | bitIf(pm.R1, permR1) | bitIf(pm.W1, permW1) | bitIf(pm.X1, permX1)
}

// s1Permissions is AArch64.S1DirectBasePermissions followed by the WXN rule
// of AArch64.S1HasPermissionsFault. apTable, uxnTable and pxnTable are the
// hierarchical controls accumulated over the walk (already zero with HPD).
func s1Permissions(f *features, p *s1Params, d desc.S1, apTable uint, uxnTable, pxnTable bool) (pm permBits, ux bool) {
	ap := d.AP() // bit 1: AP[2] read-only; bit 0: AP[1] EL0 access
	if p.hd && d.DBM() {
		// Writable-clean: with HA=HD=1 the walk state permits writes
		// (AArch64.S1CheckPermissions relies on it).
		ap &^= 2
	}
	if apTable&2 != 0 {
		ap |= 2 // APTable[1]: read-only at every EL
	}
	if p.nv1 {
		// HCR_EL2.{NV,NV1}={1,1} (the NV1 field description): in EL1&0
		// descriptors AP[1] and APTable[0] are treated as 0, bit 54 holds
		// PXN and bit 60 PXNTable (bits 53 and 59 are RES0), and the
		// Effective value of UXN is 0.
		w := ap&2 == 0
		x1 := !d.UXN() && !uxnTable
		if p.wxn {
			x1 = x1 && !w
		}
		return permR1 | bitIf(w, permW1) | permX0 | bitIf(x1, permX1), true
	}
	if !p.regime.twoRanges() {
		// One privilege level: AP[1] is ignored, XN is bit 54, XNTable bit 60.
		w := ap&2 == 0
		x := !d.UXN() && !uxnTable
		if p.wxn && w {
			x = false
		}
		return permR1 | bitIf(w, permW1) | bitIf(x, permX1), false
	}
	if apTable&1 != 0 {
		ap &^= 1 // APTable[0]: no EL0 access below
	}
	w1 := ap&2 == 0
	r0, w0 := ap&1 != 0, ap == 1
	x0 := !d.UXN() && !uxnTable
	ux = x0
	// Locations writable at EL0 cannot be executed at EL1
	// (AArch64.S1DirectBasePermissions: PXN implied by EL0 write).
	x1 := !d.PXN() && !pxnTable && !w0
	if p.wxn {
		x0 = x0 && !w0
		x1 = x1 && !w1
	}
	return permR1 | bitIf(w1, permW1) | bitIf(r0, permR0) | bitIf(w0, permW0) | bitIf(x0, permX0) | bitIf(x1, permX1), ux
}

// s1Allowed applies the PAN rule and checks the access against perms
// (AArch64.S1HasPermissionsFault).
func s1Allowed(p *s1Params, f *features, pm permBits, ux bool, acc Access) bool {
	if acc.EL == 0 && p.regime.twoRanges() {
		switch acc.Kind {
		case Read:
			return pm&permR0 != 0
		case Write:
			return pm&permW0 != 0
		}
		return pm&permX0 != 0
	}
	if acc.Kind == Fetch {
		return pm&permX1 != 0
	}
	if acc.PAN && f.pan >= 1 && p.regime.twoRanges() && !p.nv1 {
		// PAN forbids privileged data access to EL0-accessible locations;
		// with FEAT_PAN3 and SCTLR.EPAN also to EL0-executable ones. ux is
		// taken before WXN (AArch64.S1DirectBasePermissions).
		if pm&permR0 != 0 || (p.epan && ux) {
			return false
		}
	}
	if acc.Kind == Write {
		return pm&permW1 != 0
	}
	return pm&permR1 != 0
}

// s2Permissions is AArch64.S2CheckPermissions' permission computation:
// S2AP read/write (writable-clean counts as writable with HA=HD=1) and
// XN[1:0] with FEAT_XNX.
func s2Permissions(f *features, p *s2Params, d desc.S2) permBits {
	r := uint64(d)&desc.S2APReadBit != 0
	w := uint64(d)&desc.S2APWriteBit != 0 || (p.hd && d.DBM())
	xn := d.XN()
	var x0, x1 bool
	if f.xnx {
		switch xn {
		case 0:
			x0, x1 = true, true
		case 1: // PXN only
			x0, x1 = true, false
		case 2:
			x0, x1 = false, false
		case 3: // UXN only
			x0, x1 = false, true
		}
	} else {
		x0 = xn&2 == 0
		x1 = x0
	}
	return bitIf(r, permR0|permR1) | bitIf(w, permW0|permW1) | bitIf(x0, permX0) | bitIf(x1, permX1)
}
