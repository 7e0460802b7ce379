package vmsa

import (
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/mem"
)

// s2Result is the outcome of AArch64.S2Translate before attribute combining.
type s2Result struct {
	Fault     Fault
	OA        uint64
	s2desc    desc.S2 // the leaf (its attributes: s2MemAttrs)
	level     int8
	blockBits uint8
	perms     permBits
}

// s2Translate is AArch64.S2Translate with AArch64.S2Walk. s1ptw marks an
// access made by a stage-1 table walk (AccessType_TTW). The result is
// left in res (Fault, and the rest only without a fault).
func (w *Walker) s2Translate(res *s2Result, f *features, p *s2Params, ipa uint64, acc Access, s1ptw bool) {
	res.Fault = Fault{}
	fault := func(k FaultKind, level int) {
		res.Fault = Fault{Kind: k, Level: int8(level), Stage2: true, S1PTW: s1ptw, IPA: mem.IPA(ipa), Write: acc.Kind == Write}
		w.stop(k, level)
	}
	// The register checks of AArch64.S2Translate were made once in
	// getS2Params; the IPA range is checked per input address, between
	// them and the VTTBR address-size check, as the pseudocode orders them.
	if p.setupFault {
		fault(FaultTranslation, 0)
		return
	}
	ia := p.ia
	if ipa>>ia != 0 { // AArch64.IPAIsOutOfRange
		fault(FaultTranslation, 0)
		return
	}
	if p.baseBad {
		fault(FaultAddressSize, 0)
		return
	}
	g := &p.geom
	if c := w.S2Tables; c != nil {
		// A walk cache: start at the deepest table it holds for the IPA
		// (the start level's table is the root, never cached).
		cg := *g
		cg.cache, cg.vmid = c, p.vmid
		if l, t, ok := c.LookupS2Table(p.vmid, p.tgx.Bits(), ipa); ok && l > p.start {
			cg.cached, cg.from, cg.fromBase = true, l, t
		}
		g = &cg
	}
	var ws walkState
	for attempt := 0; ; attempt++ {
		fk := w.walkTables(&ws, f, g, ipa, nil, acc.AT, s1ptw)
		if fk != FaultNone {
			fault(fk, ws.level)
			return
		}
		level, d := ws.level, ws.d
		oa, fk := leafOutput(g, p.ps, p.ha, d, level, ipa)
		if fk != FaultNone {
			fault(fk, level)
			return
		}
		sd := desc.S2(d)
		perms := p.perms[s2PermIndex(sd)&31] // s2Permissions(f, p, sd)
		// AArch64.S2CheckPermissions: a stage-1 walk to stage-2 Device
		// memory is a permission fault when HCR_EL2.PTW is 1.
		if s1ptw && p.ptw && s2IsDevice(p, sd) {
			fault(FaultPermission, level)
			return
		}
		if !acc.NoPerm {
			var ok bool
			switch acc.Kind {
			case Read:
				ok = perms&permR1 != 0
			case Write:
				ok = perms&permW1 != 0
			case Fetch:
				ok = perms&permX1 != 0
				if acc.EL == 0 {
					ok = perms&permX0 != 0
				}
			}
			if !ok {
				fault(FaultPermission, level)
				return
			}
		}
		nd := d
		if p.ha {
			nd |= desc.AFBit
		}
		if p.hd && sd.DBM() && acc.Kind == Write && !acc.AT {
			nd |= desc.S2APWriteBit // dirty
		}
		inMem, restart, abort := w.update(ws.descAddr, d, nd, p.ee, attempt)
		if abort {
			fault(FaultSyncExternalOnWalk, level)
			return
		} else if restart {
			continue
		}
		res.OA = oa
		res.level = int8(level)
		res.blockBits = uint8(g.leafBits(level))
		if m := desc.S2(inMem); p.hd && m.DBM() && inMem&desc.S2APWriteBit == 0 {
			// Writable-clean: cacheable permissions exclude write (see s1Translate).
			q := *p
			q.hd = false
			perms = s2Permissions(f, &q, m)
		}
		res.perms = perms
		res.s2desc = sd
		return
	}
}

// s2IsDevice reports whether a stage-2 leaf maps Device memory.
func s2IsDevice(p *s2Params, d desc.S2) bool {
	if p.fwb {
		return d.MemAttr()&4 == 0
	}
	return d.MemAttr()>>2 == 0
}
