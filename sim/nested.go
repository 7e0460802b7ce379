package sim

import (
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/scenario"
)

// A guest hypervisor's VM: L0 runs it with host/nested (virtual EL2,
// shadow stage 2s, the reverse map), and the guest hypervisor's code is
// package guesthyp's, acting only through its EL2 interface. The VM has
// one vCPU per VM the guest hypervisor runs, each vCPU running a
// guesthyp.Hypervisor of its own (its stage-2 tables in a region of the
// VM's memory of its own) with one VM: the simulator schedules L0's vCPUs,
// and a guest hypervisor's VM runs whenever its vCPU does. A guest OS in
// such a VM acts through the nested vCPU's L2 interface (nested.L2Kernel);
// a VM that runs a guest hypervisor of its own (L2, under L1) runs it at
// its virtual EL2 with L1's engine (guesthyp.VM.EnableNested), and that
// hypervisor's VM (L3) runs a guest OS the same way, L0's vCPU running it
// on L0's shadow of L1's shadow.

// hypRun is a VM that runs a guest hypervisor.
type hypRun struct {
	m     *machine
	cfg   *scenario.VM
	level int
	// Level 1 (a VM of L0): the VM, L0's nested state, its vCPUs.
	l0     *l0VM
	unmaps *nested.UnmapCounter
	vcpus  []*nested.VCPU
	// hyps are the guest hypervisor's code on each vCPU.
	hyps []*guesthyp.Hypervisor
	// Level 2 (a VM of an L1): L1's VM for it, L1's engine for its
	// virtual EL2, and L0's vCPU it runs on.
	parent *hypRun
	gvm    *guesthyp.VM
	el2    *nested.EL2VCPU
	nv     *nested.VCPU
}

// nestedMode is a scenario's mode in host/nested's terms.
func nestedMode(s string) nested.Mode {
	if s == scenario.ModeNV {
		return nested.ModeNV
	}
	return nested.ModeNV2
}

// l1Device is the IPA of the guest hypervisor (L1) to which it maps the
// device page of its i-th VM: outside its memory, so an access there is
// MMIO that L0's VMM completes (a device of L0's passed to the VM).
func l1Device(i int) mem.IPA { return mem.IPA(0x0a00_0000 + uint64(i)*0x1000) }

// l2Device is where an L2 hypervisor maps its VM's device page in its own
// IPA space (outside its memory; L1 maps it on to l1Device).
const l2Device = 0x0a00_0000

// buildL1 builds a VM of L0 that runs a guest hypervisor: its memory,
// L0's nested state (with the shadow-unmap counter), and on each vCPU the
// guest hypervisor booted at vEL2 with its VM, built and entered.
func (m *machine) buildL1(c *scenario.VM) error {
	l, err := m.newL0VM(c)
	if err != nil {
		return err
	}
	hc := &c.Hypervisor
	nvm, err := nested.New(l.kvm, nested.Config{Mode: nestedMode(hc.Mode), E2H: hc.E2H, VCPUs: c.VCPUs,
		ShadowsPerVCPU: hc.ShadowsPerVCPU, NoReverseMap: !hc.ReverseMap})
	if err != nil {
		return err
	}
	l.nvm = nvm
	hr := &hypRun{m: m, cfg: c, level: 1, l0: l, unmaps: nvm.CountShadowUnmaps()}
	m.hyps = append(m.hyps, hr)
	lay := c.NestedLayout()
	for i := range c.VMs {
		kv, err := l.kvm.NewVCPU(i)
		if err != nil {
			return err
		}
		nv, err := nvm.NewVCPU(kv, nil)
		if err != nil {
			return err
		}
		hr.vcpus = append(hr.vcpus, nv)
		if err := nv.LoadCPU(0); err != nil {
			return err
		}
		err = hr.buildChild(i, nv, lay)
		if perr := nv.PutCPU(); err == nil {
			err = perr
		}
		if err != nil {
			return fmt.Errorf("vms[%d] %q: %w", i, c.VMs[i].Name, err)
		}
	}
	return nil
}

// buildChild boots the guest hypervisor on vCPU i (at vEL2) and builds its
// VM there: a guest OS (L2), or a guest hypervisor of its own (L2 running
// L3).
func (hr *hypRun) buildChild(i int, nv *nested.VCPU, lay scenario.NestedLayout) error {
	c, child := hr.cfg, &hr.cfg.VMs[i]
	tables := mem.IPA(ramBase + lay.Tables[i])
	h, err := guesthyp.Boot(nv, guesthyp.Config{E2H: c.Hypervisor.E2H, IPABits: child.IPABits, Tables: tables,
		TablesSize: uint64(c.Hypervisor.Tables), VBAR: mem.VA(tables)})
	if err != nil {
		return err
	}
	nv.SetGuestHypervisor(h)
	hr.hyps = append(hr.hyps, h)
	gvm, err := h.NewVM(uint16(i + 1))
	if err != nil {
		return err
	}
	if err := gvm.AddSlot(ramBase, mem.IPA(ramBase+lay.VMs[i]), uint64(child.Memory)); err != nil {
		return err
	}
	if child.Kind == scenario.KindHypervisor {
		return hr.buildL2Hypervisor(i, child, nv, h, gvm, mem.VA(ramBase+lay.VNCR[i]))
	}
	if child.Guest.IOEvery > 0 {
		if err := gvm.Map(deviceBase, l1Device(i), 4096); err != nil {
			return err
		}
	}
	if err := h.Run(gvm); err != nil {
		return err
	}
	vr, err := hr.m.newGuest(child, hr.level+1)
	if err != nil {
		return err
	}
	vr.hyp, vr.gvm, vr.nv = hr, gvm, nv
	// L2's timer interrupt comes to L0, which takes it to L1 (the timer
	// is L1's to virtualize); L1 saves the VM's state and returns to it
	// with the virtual interrupt pending.
	hw := &l2Guest{L2Kernel: nv.Kernel(), tick: steps(nv.InterruptToVEL2, h.Interrupted, func() error { return h.Run(gvm) })}
	r := vr.addVCPU(hw, nestedLoad{nv})
	if c.Hypervisor.ThreeStageWalk {
		vr.three = &threeStage{w: nv.ThreeStage()}
	}
	return vr.boot(r)
}

// buildL2Hypervisor makes L1's VM i run a guest hypervisor (L2) at its
// virtual EL2 with L1's engine, boots it there, and builds its VM (L3)
// with a guest OS.
func (hr *hypRun) buildL2Hypervisor(i int, c *scenario.VM, nv *nested.VCPU, h *guesthyp.Hypervisor, gvm *guesthyp.VM, vncr mem.VA) error {
	m := hr.m
	hr2 := &hypRun{m: m, cfg: c, level: hr.level + 1, parent: hr, gvm: gvm, nv: nv}
	m.hyps = append(m.hyps, hr2)
	child := &c.VMs[0]
	io := child.Guest.IOEvery > 0
	if io {
		if err := gvm.Map(l2Device, l1Device(i), 4096); err != nil {
			return err
		}
	}
	e, err := gvm.EnableNested(nested.EL2Config{Mode: nestedMode(c.Hypervisor.Mode), VNCR: vncr,
		ShadowVMIDs: []uint16{uint16(0x100 + 2*i), uint16(0x101 + 2*i)}})
	if err != nil {
		return err
	}
	hr2.el2 = e
	if err := h.Run(gvm); err != nil { // L2 at its virtual EL2
		return err
	}
	lay := c.NestedLayout()
	tables := mem.IPA(ramBase + lay.Tables[0]) // in L2's IPA space
	l2c := nv.L2()
	l2h, err := guesthyp.Boot(l2c, guesthyp.Config{E2H: true, IPABits: child.IPABits, Tables: tables,
		TablesSize: uint64(c.Hypervisor.Tables), VBAR: mem.VA(tables)})
	if err != nil {
		return err
	}
	e.SetGuestHypervisor(l2h, l2c)
	hr2.hyps = []*guesthyp.Hypervisor{l2h}
	l3, err := l2h.NewVM(1)
	if err != nil {
		return err
	}
	if err := l3.AddSlot(ramBase, mem.IPA(ramBase+lay.VMs[0]), uint64(child.Memory)); err != nil {
		return err
	}
	if io {
		if err := l3.Map(deviceBase, l2Device, 4096); err != nil {
			return err
		}
	}
	if err := l2h.Run(l3); err != nil { // L3 runs
		return err
	}
	vr, err := m.newGuest(child, hr2.level+1)
	if err != nil {
		return err
	}
	vr.hyp, vr.gvm, vr.nv = hr2, l3, nv
	// L3's timer interrupt comes to L0, which takes it to L1; L1 (its
	// engine for L2's virtual EL2) takes it on to L2, the hypervisor whose
	// timer it is; L2 saves L3's state and returns to it with the virtual
	// interrupt pending (its ERET trapping to L1 and L0).
	hw := &l2Guest{L2Kernel: nv.Kernel(), tick: steps(nv.InterruptToVEL2, e.InterruptGuest, l2h.Interrupted, func() error { return l2h.Run(l3) })}
	r := vr.addVCPU(hw, nestedLoad{nv})
	return vr.boot(r)
}

// steps returns the function that runs fs in order, to the first error.
func steps(fs ...func() error) func() error {
	return func() error {
		for _, f := range fs {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
}

// l2Guest is the hardware of a guest OS in a VM of a guest hypervisor:
// the nested vCPU's L2 interface, with the hypervisors' part of a timer
// interrupt before the guest takes it.
type l2Guest struct {
	*nested.L2Kernel
	tick func() error
}

// VirtualIRQ implements guestos.CPU: the hypervisors above the guest
// handle its timer interrupt (tick), then it takes the virtual IRQ.
func (g *l2Guest) VirtualIRQ() (kvm.Exit, error) {
	if g.tick != nil {
		if err := g.tick(); err != nil {
			return kvm.Exit{}, fmt.Errorf("timer interrupt through the guest hypervisor: %w", err)
		}
	}
	return g.L2Kernel.VirtualIRQ()
}

// nestedLoad puts a nested vCPU on and off a physical CPU.
type nestedLoad struct{ nv *nested.VCPU }

func (l nestedLoad) Load(c int) error { return l.nv.LoadCPU(c) }
func (l nestedLoad) Put() error       { return l.nv.PutCPU() }
func (l nestedLoad) CPU() int         { return l.nv.KVM().CPU() }

// threeStage counts what the software three-stage walk reads for each TLB
// miss of a VM's processes (hypervisor.three_stage_walk).
type threeStage struct {
	w *nested.ThreeStageWalker
	// walks completed and their descriptor reads, by length; failed are
	// misses whose three-stage walk faulted (a page of L1's tables L0
	// has not mapped now, say), not counted.
	walks, reads, failed uint64
	hist                 []uint64
	// shadowWalks and shadowReads are the same misses' walks through the
	// shadow, as the hardware did them.
	shadowWalks, shadowReads uint64
	shadowHist               []uint64
}

// count adds a walk of n descriptor reads to a histogram.
func count(hist *[]uint64, n uint64) {
	for uint64(len(*hist)) <= n {
		*hist = append(*hist, 0)
	}
	(*hist)[n]++
}

// walk walks va in three stages and counts it.
func (t *threeStage) walk(va mem.VA, write bool) {
	kind := vmsa.Read
	if write {
		kind = vmsa.Write
	}
	_, n, ok := t.w.Walk(va, kind)
	if !ok {
		t.failed++
		return
	}
	t.walks++
	t.reads += n
	count(&t.hist, n)
}
