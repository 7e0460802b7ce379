package nested

import (
	"errors"
	"fmt"
	"sort"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// shadowLeaf is one valid leaf of a shadow, as a checker found it.
type shadowLeaf struct {
	key   shadowKey
	ipa   NestedIPA
	size  uint64
	pa    mem.PA
	perms vmsa.Perms
	dev   bool
	// ext are the reverse map's extents of the shadow sorted by L2 (nil
	// when it is untracked).
	ext []rnode
}

// leaves returns the valid leaves of the pool's shadows (with the extents
// of the tracked ones), and the errors of the walks.
func (p *shadowPool[X]) leaves() ([]shadowLeaf, []error) {
	var out []shadowLeaf
	var errs []error
	for _, sh := range p.shadows {
		if sh.s2 == nil {
			continue
		}
		var ext []rnode
		if p.rmap.tracked(sh.idx) {
			ext = p.rmap.extents(sh.idx)
		}
		f := sh.s2.Layout().Format
		err := sh.s2.Walk(0, mem.IPA(1)<<sh.ipaBits, s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
			k := c.Kind()
			if k != desc.Block && k != desc.Page {
				return nil
			}
			d := desc.S2(c.Old)
			out = append(out, shadowLeaf{key: sh.shadowKey, ipa: NestedIPA(c.Addr), size: c.Size(),
				pa: mem.PA(f.LeafOA(c.Old, c.Level)), perms: s2Perms(d), dev: d.MemAttr()>>2 == 0, ext: ext})
			return nil
		}), s2pt.VisitLeaf)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errs
}

// canonicalAt is how a checker reads the canonical stage 2 now: the output
// of the guest hypervisor's IPA l1 and whether it may be written; why says
// what is missing when nothing maps it.
type canonicalAt func(l1 mem.IPA) (out mem.PA, writable bool, why string)

// checkLeaves checks every leaf (checkLeaf), up to 32 violations.
func checkLeaves(w *vmsa.Walker, ids IDRegs, leaves []shadowLeaf, canon canonicalAt, pg uint64, who string) []error {
	var errs []error
	for i := range leaves {
		if err := checkLeaf(w, ids, &leaves[i], canon, pg, who); err != nil {
			errs = append(errs, err)
			if len(errs) > 32 {
				break
			}
		}
	}
	return errs
}

// checkLeaf checks that the shadow leaf l equals the guest's stage 2
// (walked over w now, with the registers the shadow was built from and
// the ID registers ids) composed with the canonical stage 2 (canon), at
// the leaf's first and last page of pg bytes: the same output, a size no
// larger than the guest leaf, rights no wider than the guest's (per EL)
// and the canonical mapping's, the guest's memory type, and, for a
// tracked shadow, the reverse map's extents covering it with that L1
// offset.
func checkLeaf(w *vmsa.Walker, ids IDRegs, l *shadowLeaf, canon canonicalAt, pg uint64, who string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("nested: %s (guest VMID %d) leaf L2 IPA %#x+%#x -> PA %#x: %s",
			who, l.key.gvmid, uint64(l.ipa), l.size, uint64(l.pa), fmt.Sprintf(format, a...))
	}
	var g GuestS2
	if l.key.guestVM {
		gr := l.key.walkRegs(ids)
		g = walkGuestS2(w, &gr, l.ipa, vmsa.Access{Kind: vmsa.Read, EL: 1, NoPerm: true})
		if g.Fault.IsFault() {
			return bad("the guest's stage 2 does not map it (%v)", g.Fault)
		}
		if l.size > g.Size || l.ipa < g.Base || uint64(l.ipa-g.Base)+l.size > g.Size {
			return bad("larger than the guest's %#x-byte leaf at %#x", g.Size, uint64(g.Base))
		}
		if l.perms.R1 && !g.Perms.R1 || l.perms.W1 && !g.Perms.W1 || l.perms.X1 && !g.Perms.X1 || l.perms.X0 && !g.Perms.X0 {
			return bad("rights %+v wider than the guest's %+v", l.perms, g.Perms)
		}
		if l.dev != g.Device {
			return bad("memory type Device=%v, the guest's Device=%v", l.dev, g.Device)
		}
	} else {
		g = GuestS2{L1: mem.IPA(l.ipa)}
	}
	if l.ext != nil {
		if err := covered(l, g.L1); err != nil {
			return bad("%v", err)
		}
	}
	for _, off := range []uint64{0, l.size - min(pg, l.size)} {
		l1 := g.L1 + mem.IPA(off)
		out, writable, why := canon(l1)
		switch {
		case why != "":
			return bad("L1 IPA %#x: %s", uint64(l1), why)
		case l.pa+mem.PA(off) != out:
			return bad("at +%#x the canonical stage 2 maps L1 IPA %#x to %#x", off, uint64(l1), uint64(out))
		case l.perms.W1 && !writable:
			return bad("writable over L1 IPA %#x, which the canonical stage 2 is not", uint64(l1))
		}
	}
	return nil
}

// Check verifies the invariants of the VM's shadow stage 2 and returns
// every violation (nil if none):
//   - every shadow leaf equals the guest hypervisor's stage 2 (walked in
//     its memory now) composed with L0's mapping of its memory (the host
//     page behind the L1 IPA now): the same host address at the leaf's
//     first and last page, a size no larger than the guest leaf, and
//     permissions no wider than the guest's and the host's (W only where
//     the host page is writable and the slot is not read-only);
//   - hence no shadow entry survives a guest unmap or remap, a host
//     invalidation or a memslot change, and L2 reaches no host frame
//     outside what the guest hypervisor's memslots map;
//   - no TLB entry tagged with a shadow's VMID translates an L2 IPA to
//     another address than the shadow does now, or with more rights, and
//     none is tagged with the VMID of a shadow that holds no tables;
//   - the reverse map is well formed, and every leaf of a tracked shadow
//     is covered by its extents with the L1 address the guest's stage 2
//     gives (so a host change of that L1 range reaches the leaf).
//
// Call it when no vCPU runs and no host event is in flight (it reads the
// tables, L1 memory and the TLBs one after the other).
func (vm *VM) Check() error {
	vm.k.LockMMU()
	leaves, errs := vm.pool.leaves()
	errs = append(errs, vm.checkTLBs()...)
	errs = append(errs, vm.pool.rmap.check()...)
	vm.k.UnlockMMU()
	w := vmsa.Walker{Mem: guestMemory{vm.k, vm}}
	pg := vm.k.Host().PageSize()
	canon := func(l1 mem.IPA) (mem.PA, bool, string) {
		s := vm.k.Lookup(l1)
		if s == nil {
			return 0, false, "no memslot"
		}
		m, ok := vm.k.AddressSpace().Translate(s.HVAOf(l1))
		if !ok {
			return 0, false, fmt.Sprintf("no host page (HVA %#x)", uint64(s.HVAOf(l1)))
		}
		// The L1 IPA's offset in its host page: a guest granule smaller
		// than the host page is shadowed with leaves inside host pages.
		return m.PA&^mem.PA(pg-1) | mem.PA(uint64(l1)&(pg-1)), m.Writable && s.Flags&memslot.ReadOnly == 0, ""
	}
	errs = append(errs, checkLeaves(&w, vm.ids, leaves, canon, pg, "shadow")...)
	return errors.Join(errs...)
}

// s2Perms reads a shadow descriptor's rights: S2AP, and XN[1:0] as
// FEAT_XNX reads it (the shadow writes 0b01 and 0b11 only on a host with
// FEAT_XNX).
func s2Perms(d desc.S2) vmsa.Perms {
	r, w, xn := d.S2AP()&1 != 0, d.S2AP()&2 != 0, d.XN()
	x0, x1 := xn == 0b00 || xn == 0b01, xn == 0b00 || xn == 0b11
	return vmsa.Perms{R0: r, W0: w, X0: x0, R1: r, W1: w, X1: x1}
}

// covered checks that the extents cover the leaf l, whose first byte
// derives from L1 IPA l1, each with that offset.
func covered(l *shadowLeaf, l1 mem.IPA) error {
	ext := l.ext
	at, end := l.ipa, l.ipa+NestedIPA(l.size)
	i := sort.Search(len(ext), func(i int) bool { return ext[i].l2+NestedIPA(ext[i].size) > at })
	for ; at < end; i++ {
		if i == len(ext) || ext[i].l2 > at {
			return fmt.Errorf("the reverse map does not cover L2 %#x", uint64(at))
		}
		n := &ext[i]
		if want := uint64(l1) + uint64(n.l2) - uint64(l.ipa); uint64(n.l1) != want {
			return fmt.Errorf("the reverse map derives L2 %#x+%#x from L1 %#x, the guest maps it from %#x", uint64(n.l2), n.size, uint64(n.l1), want)
		}
		at = n.l2 + NestedIPA(n.size)
	}
	return nil
}

// checkTLBs compares every TLB entry tagged with a shadow's VMID with the
// shadow now. The MMU lock is held.
func (vm *VM) checkTLBs() []error {
	h := vm.k.Host()
	var errs []error
	for _, sh := range vm.pool.shadows {
		id := h.VMIDOf(&sh.x.vmid)
		if sh.s2 == nil {
			if id == 0 {
				continue
			}
			for c := 0; c < h.CPUs(); c++ {
				for _, e := range h.TLBEntries(c) {
					if e.VMID == id && e.Regime == vmsa.RegimeEL10 {
						errs = append(errs, fmt.Errorf("nested: CPU %d: TLB entry VMID %d VA %#x IPA %#x of a torn-down shadow survives", c, id, uint64(e.VA), uint64(e.IPA)))
					}
				}
			}
			continue
		}
		f := sh.s2.Layout().Format
		for c := 0; c < h.CPUs(); c++ {
			for _, e := range h.TLBEntries(c) {
				if e.VMID != id || e.Regime != vmsa.RegimeEL10 || !(e.Stage2Only || e.Combined) {
					continue
				}
				if err := checkTLBEntry(sh, f, &e); err != nil {
					errs = append(errs, fmt.Errorf("nested: CPU %d: %w", c, err))
				}
			}
		}
	}
	return errs
}

func checkTLBEntry(sh *shadowMMU, f desc.Format, e *tlb.Entry) error {
	d, level, err := sh.s2.Lookup(e.IPA)
	k := desc.KindAt(d, level)
	if err != nil || d&1 == 0 || (k != desc.Block && k != desc.Page) {
		return fmt.Errorf("TLB entry VMID %d IPA %#x -> %#x survives its shadow mapping", e.VMID, uint64(e.IPA), uint64(e.OA))
	}
	size := uint64(1) << f.LeafBits(level)
	pa := mem.PA(f.LeafOA(d, level)) + mem.PA(uint64(e.IPA)&(size-1))
	if pa != e.OA {
		return fmt.Errorf("TLB entry VMID %d IPA %#x -> %#x, the shadow maps %#x", e.VMID, uint64(e.IPA), uint64(e.OA), uint64(pa))
	}
	if p := s2Perms(desc.S2(d)); e.Perms.W1 && !p.W1 || e.Perms.W0 && !p.W0 {
		return fmt.Errorf("TLB entry VMID %d IPA %#x writable, the shadow is not", e.VMID, uint64(e.IPA))
	}
	return nil
}
