package vmsa

import "github.com/nestmmu/nestmmu/arm64/desc"

// s1Permissions is AArch64.S1DirectBasePermissions followed by the WXN rule
// of AArch64.S1HasPermissionsFault. apTable, uxnTable and pxnTable are the
// hierarchical controls accumulated over the walk (already zero with HPD).
func s1Permissions(f *features, p *s1Params, d desc.S1, apTable uint, uxnTable, pxnTable bool) (pm Perms, ux bool) {
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
		pm.R1, pm.W1 = true, ap&2 == 0
		pm.X0 = true
		pm.X1 = !d.UXN() && !uxnTable
		if p.wxn {
			pm.X1 = pm.X1 && !pm.W1
		}
		return pm, true
	}
	if !p.regime.twoRanges() {
		// One privilege level: AP[1] is ignored, XN is bit 54, XNTable bit 60.
		w := ap&2 == 0
		x := !d.UXN() && !uxnTable
		if p.wxn && w {
			x = false
		}
		return Perms{R1: true, W1: w, X1: x}, false
	}
	if apTable&1 != 0 {
		ap &^= 1 // APTable[0]: no EL0 access below
	}
	pm.R1, pm.W1 = true, ap&2 == 0
	pm.R0, pm.W0 = ap&1 != 0, ap == 1
	pm.X0 = !d.UXN() && !uxnTable
	ux = pm.X0
	// Locations writable at EL0 cannot be executed at EL1
	// (AArch64.S1DirectBasePermissions: PXN implied by EL0 write).
	pm.X1 = !d.PXN() && !pxnTable && !pm.W0
	if p.wxn {
		pm.X0 = pm.X0 && !pm.W0
		pm.X1 = pm.X1 && !pm.W1
	}
	return pm, ux
}

// s1Allowed applies the PAN rule and checks the access against perms
// (AArch64.S1HasPermissionsFault).
func s1Allowed(p *s1Params, f *features, pm Perms, ux bool, acc Access) bool {
	if acc.EL == 0 && p.regime.twoRanges() {
		switch acc.Kind {
		case Read:
			return pm.R0
		case Write:
			return pm.W0
		}
		return pm.X0
	}
	if acc.Kind == Fetch {
		return pm.X1
	}
	if acc.PAN && f.pan >= 1 && p.regime.twoRanges() && !p.nv1 {
		// PAN forbids privileged data access to EL0-accessible locations;
		// with FEAT_PAN3 and SCTLR.EPAN also to EL0-executable ones. ux is
		// taken before WXN (AArch64.S1DirectBasePermissions).
		if pm.R0 || (p.epan && ux) {
			return false
		}
	}
	if acc.Kind == Write {
		return pm.W1
	}
	return pm.R1
}

// s2Permissions is AArch64.S2CheckPermissions' permission computation:
// S2AP read/write (writable-clean counts as writable with HA=HD=1) and
// XN[1:0] with FEAT_XNX.
func s2Permissions(f *features, p *s2Params, d desc.S2) Perms {
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
	return Perms{R0: r, W0: w, X0: x0, R1: r, W1: w, X1: x1}
}
