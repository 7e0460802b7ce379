package sim

import (
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/mem"
)

// checkInvariants checks, with the world stopped, every stage-2 leaf of
// every VM of L0 against the host: the frame it maps is allocated (never a freed
// frame), it is the frame the host kernel maps at the memslot's HVA for
// that IPA (never a stale one), and it is writable only where the host
// page is (never a KSM or copy-on-write page); then the host kernel's own
// invariants (hostmm.Kernel.Check); then, for each guest hypervisor's VM,
// host/nested's checker (nested.VM.Check: every shadow leaf equals the
// guest hypervisor's stage 2 composed with L0's, no TLB entry of a shadow
// disagrees with it, the reverse map covers every leaf).
func (m *machine) checkInvariants() {
	arena := m.host.Arena()
	pg := m.host.PageSize()
	var checks uint64
	for _, l := range m.l0 {
		vm := l.kvm
		as := vm.AddressSpace()
		f := vm.Layout().Format
		for _, slot := range vm.Slots() {
			err := vm.WalkStage2(slot.GPA, slot.End(), s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
				d := c.Old
				if k := c.Kind(); k != desc.Block && k != desc.Page {
					return nil
				}
				oa := f.LeafOA(d, c.Level)
				writable := desc.S2(d).S2AP()&2 != 0
				for off := uint64(0); off < c.Size(); off += pg {
					checks++
					ipa := c.Addr + mem.IPA(off)
					pa := mem.PA(oa + off)
					if arena.Ref(pa) <= 0 {
						m.violation(false, "vm %q: stage 2 maps IPA %#x to host frame %#x, which is free", l.name, uint64(ipa), uint64(pa))
						continue
					}
					hm, ok := as.Translate(slot.HVAOf(ipa))
					switch {
					case !ok:
						m.violation(false, "vm %q: stage 2 maps IPA %#x to %#x but the host page is not present", l.name, uint64(ipa), uint64(pa))
					case hm.PA&^mem.PA(pg-1) != pa:
						m.violation(false, "vm %q: stage 2 maps IPA %#x to %#x, the host maps its page to %#x (stale)", l.name, uint64(ipa), uint64(pa), uint64(hm.PA))
					case writable && !hm.Writable:
						m.violation(false, "vm %q: stage 2 maps IPA %#x writable over a read-only host page", l.name, uint64(ipa))
					}
				}
				return nil
			}), s2pt.VisitLeaf)
			if err != nil {
				m.violation(false, "vm %q: walking stage 2: %v", l.name, err)
			}
		}
	}
	checks++
	if err := m.host.Kernel().Check(); err != nil {
		m.violation(false, "host kernel: %v", err)
	}
	var nestedChecks, leaves uint64
	for _, l := range m.l0 {
		if l.nvm == nil {
			continue
		}
		nestedChecks++
		leaves += shadowLeaves(l)
		if err := l.nvm.Check(); err != nil {
			m.violation(false, "vm %q: shadow stage 2: %v", l.name, err)
		}
	}
	m.chkMu.Lock()
	m.checks.InvariantChecks += checks
	m.checks.ShadowChecks += nestedChecks
	m.checks.ShadowLeavesChecked += leaves
	m.chkMu.Unlock()
}

// shadowLeaves counts the leaves of a guest hypervisor's VM's shadow
// stage 2s (what nested.VM.Check checks one by one), with its MMU lock.
func shadowLeaves(l *l0VM) uint64 {
	var n uint64
	shadows := l.nvm.Shadows()
	l.kvm.LockMMU()
	defer l.kvm.UnlockMMU()
	for _, sh := range shadows {
		_ = sh.Stage2.Walk(0, mem.IPA(1)<<sh.Stage2.Layout().IPABits, s2pt.VisitorFunc(func(c *s2pt.Ctx, _ s2pt.WalkFlags) error {
			if k := c.Kind(); c.Old&1 != 0 && (k == desc.Block || k == desc.Page) {
				n++
			}
			return nil
		}), s2pt.VisitLeaf)
	}
	return n
}
