package nested

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// Shadow stage 2, at either level. A hypervisor that runs a guest
// hypervisor keeps a pool of shadow stage 2s (shadowPool): L0 in host
// frames for L1's guests (VM), L1 in its own memory for L2's guests
// (EL2VCPU). The pool, the key a shadow is found by, its recycling, the
// composed leaves it installs, its reverse map, the stage-2 TLBIs of the
// guest hypervisor and the changes of the canonical stage 2 it follows
// are one code; what differs between the levels — where the tables live,
// their layout, how a shadow's VMID is tagged and its TLB entries
// invalidated — is the shadowLevel, and what each level keeps per
// shadow is its X.

// shadowKey is what a shadow stage 2 is found by, as the architecture tags
// what it caches: with the guest's stage 2 on by the guest's VMID and
// stage-2 base (VTTBR_EL2 without CnP) and the VTCR_EL2 and walk controls
// captured when it was made; with it off by the VMID alone (its contents
// are then the canonical stage 2, nested IPA = the guest hypervisor's IPA).
type shadowKey struct {
	guestVM bool         // the guest's stage 2 is on (HCR_EL2.VM or DC: stage2On)
	gvmid   uint16       // the guest's VMID
	vttbr   sysreg.VTTBR // the guest's VTTBR_EL2 without CnP (guestVM)
	vtcr    sysreg.VTCR  // captured (guestVM)
	sctlr   sysreg.SCTLR // the guest's SCTLR_EL2 (EE: walk endianness), captured
	ghcr    sysreg.HCR   // the guest's walkHCR bits, captured (guestVM)
}

// walkHCR are the guest's HCR_EL2 bits that change what its stage 2 means
// (they may be cached in TLB entries, so a change needs no flush of the
// old shadow: another one is built).
const walkHCR = sysreg.HCR_FWB | sysreg.HCR_PTW | sysreg.HCR_CD

// keyOf is the key of the shadow that serves the guest state g.
func keyOf(g *guestRegs) shadowKey {
	k := shadowKey{guestVM: stage2On(g.hcr), gvmid: guestVMID(g), sctlr: g.sctlr}
	if k.guestVM {
		k.vttbr, k.vtcr, k.ghcr = g.vttbr&^1, g.vtcr, g.hcr&walkHCR
	}
	return k
}

// serves reports whether a shadow of key k serves the guest state g.
func (k *shadowKey) serves(g *guestRegs) bool {
	vmOn := stage2On(g.hcr)
	if k.guestVM != vmOn || k.gvmid != guestVMID(g) {
		return false
	}
	return !vmOn || (k.vttbr == g.vttbr&^1 && k.vtcr == g.vtcr && k.ghcr == g.hcr&walkHCR)
}

// walkRegs are the guest registers the shadow was built from, as its
// stage-2 walk reads them (the checker's).
func (k *shadowKey) walkRegs(ids IDRegs) guestRegs {
	return guestRegs{vtcr: k.vtcr, vttbr: k.vttbr, hcr: sysreg.HCR_VM | k.ghcr, sctlr: k.sctlr, id: ids}
}

// shadow is one shadow stage 2 of a pool: its tables (nil when torn
// down), its place in the pool (the reverse map's name for it), its key,
// input size and users, and what its level keeps for it.
type shadow[X any] struct {
	shadowKey
	s2      *s2pt.VM
	idx     int
	ipaBits uint
	refs    int // vCPUs running on it
	x       X
}

// shadowLevel is what differs between the hypervisors that keep shadows.
type shadowLevel[X any] interface {
	// layout is the shadow's layout for the guest state g.
	layout(g *guestRegs) s2pt.Config
	// build makes empty tables of layout cfg for sh, whose TLB
	// maintenance is tagged with sh's VMID.
	build(sh *shadow[X], cfg s2pt.Config) (*s2pt.VM, error)
	// destroyed is told that sh's tables were freed (its caches go).
	destroyed(sh *shadow[X]) error
	// invalidate removes the TLB entries of sh's nested range [lo,
	// lo+size) (its leaves changed in place: aging).
	invalidate(sh *shadow[X], lo NestedIPA, size uint64)
}

// shadowPool is a hypervisor's pool of shadow stage 2s: sized when made,
// recycled round-robin by reference count with the old tables torn down
// then (lazily), as KVM's. L0's is guarded by the VM's MMU lock; a guest
// hypervisor's runs on its one vCPU.
type shadowPool[X any] struct {
	level   shadowLevel[X]
	shadows []*shadow[X]
	next    int
	rmap    rmap
	flushes atomic.Uint64 // shadows emptied or torn down
}

// init makes n shadows (none built) and the reverse map (on: its extents,
// 0 for the default).
func (p *shadowPool[X]) init(level shadowLevel[X], n int, on bool, extents int) {
	p.level = level
	p.shadows = make([]*shadow[X], n)
	for i := range p.shadows {
		p.shadows[i] = &shadow[X]{idx: i}
	}
	p.rmap.init(on, n, extents)
}

// lookup returns the built shadow that serves g, if any.
func (p *shadowPool[X]) lookup(g *guestRegs) *shadow[X] {
	for _, sh := range p.shadows {
		if sh.s2 != nil && sh.serves(g) {
			return sh
		}
	}
	return nil
}

// acquire returns the shadow for the guest state g, with a reference the
// caller releases when its vCPU stops running on it: a matching shadow,
// or one nobody uses recycled (round-robin, its old tables torn down now)
// and built empty for g; entries come on shadow faults. fresh reports the
// latter.
func (p *shadowPool[X]) acquire(g *guestRegs) (sh *shadow[X], fresh bool, err error) {
	if sh := p.lookup(g); sh != nil {
		sh.refs++
		return sh, false, nil
	}
	i, ok := recycle(len(p.shadows), &p.next, func(i int) bool { return p.shadows[i].refs == 0 })
	if !ok {
		return nil, false, errors.New("nested: every shadow stage 2 is in use")
	}
	sh = p.shadows[i]
	if err := p.teardown(sh); err != nil {
		return nil, false, err
	}
	cfg := p.level.layout(g)
	s2, err := p.level.build(sh, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("nested: shadow stage 2 for VTCR_EL2 %#x: %w", uint64(g.vtcr), err)
	}
	sh.s2, sh.shadowKey, sh.ipaBits, sh.refs = s2, keyOf(g), cfg.IPABits, 1
	return sh, true, nil
}

// release drops a reference.
func (p *shadowPool[X]) release(sh *shadow[X]) {
	if sh.refs > 0 {
		sh.refs--
	}
}

// teardown frees sh's tables (their Destroy invalidates the VMID first).
func (p *shadowPool[X]) teardown(sh *shadow[X]) error {
	if sh.s2 == nil {
		return nil
	}
	err := errors.Join(sh.s2.Destroy(), p.level.destroyed(sh))
	sh.s2 = nil
	p.rmap.clear(sh.idx)
	p.flushes.Add(1)
	return err
}

// flush removes every entry of sh, with the TLB invalidation.
func (p *shadowPool[X]) flush(sh *shadow[X]) error {
	if sh.s2 == nil {
		return nil
	}
	p.flushes.Add(1)
	p.rmap.clear(sh.idx)
	return sh.s2.Unmap(0, uint64(1)<<sh.ipaBits)
}

// unmapCovering removes every leaf of sh that overlaps [lo, hi) (a
// straddling block whole: removing more than asked is always allowed),
// with the TLB invalidation.
func (p *shadowPool[X]) unmapCovering(sh *shadow[X], lo, hi NestedIPA) error {
	if sh.s2 == nil || hi <= lo {
		return nil
	}
	top := NestedIPA(1) << sh.ipaBits
	if lo >= top {
		return nil
	}
	hi = min(hi, top)
	g := NestedIPA(sh.s2.Layout().TableBytes)
	lo, hi = lo&^(g-1), (hi+g-1)&^(g-1)
	if p.rmap.reserve(sh.idx, 1) {
		p.rmap.trim(sh.idx, lo, hi)
	}
	return sh.s2.Unmap(in(lo), uint64(hi-lo))
}

// guestLevel returns the guest leaf level remembered in the leaf of sh
// that maps ipa (software bits of the descriptor), if any.
func (sh *shadow[X]) guestLevel(ipa NestedIPA) (int, bool) {
	if sh.s2 == nil {
		return 0, false
	}
	d, level, err := sh.s2.Lookup(in(ipa))
	if err != nil || d&1 == 0 || desc.KindAt(d, level) == desc.Table {
		return 0, false
	}
	sw := s2pt.SW(d)
	if sw == 0 {
		return 0, false
	}
	return int(sw) - 2, true
}

// topup fills cache with the table pages install may need for the leaf
// composing g (for nested IPA ipa) with the canonical mapping [base,
// base+size) -> pa.
func (p *shadowPool[X]) topup(sh *shadow[X], cache *s2pt.Cache, ipa NestedIPA, g *GuestS2, base mem.IPA, pa mem.PA, size uint64) error {
	if sh.s2 == nil {
		return nil
	}
	l2, spa, sz, ok := composeLeaf(sh.s2.Layout(), g, ipa, base, pa, size)
	if !ok {
		return nil
	}
	return cache.Topup(sh.s2.MapPagesNeeded(in(l2), spa, sz, s2pt.MapBlocks) + sh.s2.EdgePagesNeeded(in(l2), sz))
}

// install puts the leaf composing g with the canonical mapping [base,
// base+size) -> pa (rights prot) into sh: the smaller of the two mappings
// rounded down to a leaf of the shadow's layout, rights no wider than
// either (xnx: the hardware has FEAT_XNX), Device if the guest maps
// Device, the guest leaf level in the software bits; and records it in
// the reverse map. Nothing is allocated. A shadow torn down meanwhile
// gets nothing (the access faults again).
func (p *shadowPool[X]) install(sh *shadow[X], cache *s2pt.Cache, ipa NestedIPA, g *GuestS2, base mem.IPA, pa mem.PA, size uint64, prot s2pt.Prot, xnx bool) error {
	if sh.s2 == nil {
		return nil
	}
	l2, spa, sz, ok := composeLeaf(sh.s2.Layout(), g, ipa, base, pa, size)
	if !ok {
		return nil
	}
	sw := guestLevelSW(g)
	if err := sh.s2.Map(cache, in(l2), spa, sz, guestProt(g, prot, xnx), s2pt.MapBlocks|s2pt.MapSW(sw)); err != nil {
		return err
	}
	l1 := g.L1Base + mem.IPA(l2-g.Base)
	p.rmap.insert(sh.idx, l2, l1, sz, sw, guestProt(g, s2pt.ProtR|s2pt.ProtX, xnx))
	return nil
}

// tlbiStage2 executes on the shadows a stage-2 TLBI (scope s of op) the
// guest hypervisor issued with its registers g: ALLE1 empties every
// shadow, VMALLS12E1 those of the current guest VMID; IPAS2E1, IPAS2LE1
// and the range forms unmap ipas2Range in each shadow of the VMID with
// the guest's stage 2 on (whole shadow leaves, and their TLB entries).
// handled is false for the other TLBIs (stage 1 and EL2: the level's).
func (p *shadowPool[X]) tlbiStage2(op tlb.Op, s *tlb.Scope, g *guestRegs) (handled bool, err error) {
	gvmid := guestVMID(g)
	switch op.Base() {
	case tlb.OpALLE1:
		for _, sh := range p.shadows {
			err = errors.Join(err, p.flush(sh))
		}
	case tlb.OpVMALLS12E1:
		for _, sh := range p.shadows {
			if sh.s2 != nil && sh.gvmid == gvmid {
				err = errors.Join(err, p.flush(sh))
			}
		}
	case tlb.OpIPAS2E1, tlb.OpIPAS2LE1, tlb.OpRIPAS2E1, tlb.OpRIPAS2LE1:
		gran := granuleOf(g)
		for _, sh := range p.shadows {
			if sh.s2 == nil || sh.gvmid != gvmid || !sh.guestVM {
				continue
			}
			lo, hi := ipas2Range(op, s, gran, sh.ipaBits, sh.guestLevel)
			err = errors.Join(err, p.unmapCovering(sh, lo, hi))
		}
	default:
		return false, nil
	}
	return true, err
}

// in is the shadow's input address for an L2 IPA: s2pt types the input
// space of every stage-2 table as mem.IPA; for a shadow it is L2's.
func in(n NestedIPA) mem.IPA { return mem.IPA(n) }
