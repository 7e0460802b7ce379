package sim

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/guestos"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/scenario"
	"github.com/nestmmu/nestmmu/trace"
	"github.com/nestmmu/nestmmu/workload"
)

// vmRun is a VM that runs a guest OS, at any level: a VM of L0 (L1), or a
// VM of a guest hypervisor (L2, L3), whose kernel then acts through the
// nested vCPU's L2 interface (nested.L2Kernel) the same way.
type vmRun struct {
	m     *machine
	idx   int // among the guest VMs: seeds its processes
	cfg   *scenario.VM
	level int
	l0    *l0VM        // level 1: its VM of L0
	hyp   *hypRun      // level >= 2: the guest hypervisor that runs it
	gvm   *guesthyp.VM // level >= 2: its VM at that hypervisor
	nv    *nested.VCPU // level >= 2: L0's vCPU it runs on
	os    *guestos.OS
	vcpus []*vcpuRun
	// three counts its processes' TLB misses walked in three stages
	// (its hypervisor's three_stage_walk).
	three  *threeStage
	spawns atomic.Uint64
}

// newGuest makes the guest OS of VM c at level.
func (m *machine) newGuest(c *scenario.VM, level int) (*vmRun, error) {
	vr := &vmRun{m: m, idx: len(m.vms), cfg: c, level: level}
	g := &c.Guest
	dev := uint64(0)
	if g.IOEvery > 0 {
		dev = deviceBase
	}
	var err error
	vr.os, err = guestos.New(guestos.Config{RAMBase: ramBase, RAMSize: uint64(c.Memory), IPABits: c.IPABits,
		Granule: granule(uint64(g.Granule)), VABits: g.VABits, ASIDBits: g.ASIDBits, PageLinearMap: !g.LinearMapBlocks,
		NoZeroPage: !g.ZeroPage, DeviceBase: dev})
	if err != nil {
		return nil, err
	}
	m.vms = append(m.vms, vr)
	return vr, nil
}

// addVCPU attaches a kernel CPU on hw to the guest.
func (vr *vmRun) addVCPU(hw guestHW, ld physLoad) *vcpuRun {
	r := &vcpuRun{m: vr.m, vm: vr, id: len(vr.vcpus), hw: hw, ld: ld, core: vr.os.NewCore(hw), budget: vr.m.budget(vr.cfg)}
	vr.vcpus = append(vr.vcpus, r)
	return r
}

// boot boots the kernel on r (the first vCPU; the others start after it)
// and spawns r's processes. r's vCPU is loaded.
func (vr *vmRun) boot(r *vcpuRun) error {
	var err error
	if r.id == 0 {
		err = r.core.Boot()
	} else {
		err = r.core.Start()
	}
	if err != nil {
		return err
	}
	return vr.spawnAll(r)
}

// buildL0Guest builds a VM of L0 that runs a guest OS: its memory, its
// vCPUs, the kernel booted on CPU 0 and the processes spawned.
func (m *machine) buildL0Guest(c *scenario.VM) error {
	l, err := m.newL0VM(c)
	if err != nil {
		return err
	}
	vr, err := m.newGuest(c, 1)
	if err != nil {
		return err
	}
	vr.l0 = l
	for j := 0; j < c.VCPUs; j++ {
		v, err := l.kvm.NewVCPU(j)
		if err != nil {
			return err
		}
		vr.addVCPU(v, v)
	}
	// Boot on CPU 0, then bring up the other vCPUs and spawn the
	// processes, each vCPU loaded in turn.
	for _, r := range vr.vcpus {
		if err := r.ld.Load(0); err != nil {
			return err
		}
		err := vr.boot(r)
		if perr := r.ld.Put(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// spawnAll spawns the processes that run on r.
func (vr *vmRun) spawnAll(r *vcpuRun) error {
	c := vr.cfg
	n := 0
	for pi := range c.Procs {
		p := &c.Procs[pi]
		for k := 0; k < p.Count; k++ {
			slot := n
			n++
			if (p.VCPU >= 0 && p.VCPU != r.id) || (p.VCPU < 0 && slot%c.VCPUs != r.id) {
				continue
			}
			seed := mix(vr.m.s.Seed, uint64(vr.idx), uint64(pi), uint64(k))
			st, rp, err := vr.stream(p, seed)
			if err != nil {
				return fmt.Errorf("processes[%d]: %w", pi, err)
			}
			gp, err := r.core.Spawn(userEntry)
			if err != nil {
				return err
			}
			vr.spawns.Add(1)
			r.procs = append(r.procs, &proc{gp: gp, stream: st, replay: rp, sh: newShadow(pgShift(uint64(c.Guest.Granule)))})
		}
	}
	return nil
}

// stream builds a process's workload.
func (vr *vmRun) stream(p *scenario.Process, seed uint64) (workload.Stream, *trace.Replay, error) {
	if p.Workload == "trace" {
		limit := min(uint64(1)<<vr.cfg.Guest.VABits, 1<<47)
		src, format := p.Trace, trace.Format(p.Format)
		// Check the trace opens now rather than in the middle of the run.
		_, c, err := trace.OpenSource(src, format)
		if err != nil {
			return nil, nil, err
		}
		c.Close()
		rp := &trace.Replay{Limit: limit, Loop: true, Open: func() (trace.Reader, io.Closer, error) { return trace.OpenSource(src, format) }}
		return rp, rp, nil
	}
	st, err := workload.New(p.Spec(uint64(vr.cfg.Guest.Granule), seed))
	return st, nil, err
}

// shadowFaults are the shadow stage-2 faults the VM's vCPU has taken so
// far (0 for a VM of L0): L0's on the shadow it runs on, and for a VM of
// an L2 hypervisor also L1's on its own shadow. Read by the goroutine
// running the vCPU.
func (vr *vmRun) shadowFaults() uint64 {
	if vr.nv == nil {
		return 0
	}
	n := vr.nv.Stats().ShadowFaults
	if vr.hyp != nil && vr.hyp.el2 != nil {
		n += vr.hyp.el2.Stats().ShadowFaults
	}
	return n
}
