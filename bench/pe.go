package bench

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/arm64/ttbuild"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/mem"
)

// Guest accesses (comparison 3).
const (
	peRAM    = 0x4000_0000 // guest RAM (IPA = VA) and its data pages
	peData   = 64 << 20    // 16384 data pages, beyond the 1024-entry TLB
	peS1Tabs = peRAM + peData
	peS2Tabs = 0x8000_0000 // stage-2 tables (host memory, not guest RAM)
)

// PEAccesses is comparison 3: simulated guest accesses on the modelled PE
// (arm64/cpu, a 1024-entry TLB, loads as the simulator makes them: the
// PE's hit path, then its full path): an 8-byte load that hits the TLB, one
// that misses and walks a 4-level stage 1 over a 4-level stage 2 (24
// descriptor reads), and, through the host hypervisor (host/kvm), one that
// takes a stage-2 fault and is mapped. Goal: 50 million TLB hits per
// second per core (20 ns).
func PEAccesses(cfg Config) (Comparison, error) {
	c := Comparison{Title: "simulated guest accesses on the modelled PE",
		Method: "arm64/cpu PE, 4-level 4K stage 1 over 4-level 4K stage 2 (48-bit VA and IPA), default TLB; the fault through host/kvm; thread CPU time"}
	pe, err := twoStagePE()
	if err != nil {
		return c, err
	}
	hit, miss := peOps(pe)
	th, err := Measure(hit, cfg)
	if err != nil {
		return c, err
	}
	hits0 := pe.Stats.TLBHits
	walks0 := pe.Stats.Walks
	tm, err := Measure(miss, cfg)
	if err != nil {
		return c, err
	}
	missRate := float64(pe.Stats.Walks-walks0) / float64(pe.Stats.Walks-walks0+pe.Stats.TLBHits-hits0)
	r := Row{Name: "TLB hit (8-byte load)", A: "PE", ANs: th.NsPerOp, B: "goal (50M/s)", BNs: 20, Unit: "ns/access", Ratio: th.NsPerOp / 20,
		Note: fmt.Sprintf("%.1f million accesses/s", 1e3/th.NsPerOp)}
	atMost(&r, 1)
	c.Rows = append(c.Rows, r)
	c.Rows = append(c.Rows, Row{Name: "TLB miss, 4-over-4 walk (24 descriptor reads)", A: "PE", ANs: tm.NsPerOp, Unit: "ns/access", Met: true,
		Note: fmt.Sprintf("%.1f million accesses/s, %.0f%% of them walked", 1e3/tm.NsPerOp, 100*missRate)})
	tb, err := vcpuHits(cfg)
	if err != nil {
		return c, err
	}
	r = Row{Name: "TLB hit through host/kvm (VCPU.RunBatch, 256 loads a batch, hostmem arena)", A: "vCPU", ANs: tb.NsPerOp, B: "goal (50M/s)", BNs: 20, Unit: "ns/access", Ratio: tb.NsPerOp / 20,
		Note: fmt.Sprintf("%.1f million accesses/s", 1e3/tb.NsPerOp)}
	atMost(&r, 1)
	c.Rows = append(c.Rows, r)
	tf, err := stage2Faults(cfg)
	if err != nil {
		return c, err
	}
	c.Rows = append(c.Rows, Row{Name: "stage-2 fault (host/kvm maps a 4K page, the load retried)", A: "PE+kvm", ANs: tf.NsPerOp, Unit: "ns/access", Met: true,
		Note: fmt.Sprintf("%.2f million faults/s", 1e3/tf.NsPerOp)})
	return c, nil
}

// peOps are comparison 3's loads on pe, as the simulator makes them: the
// PE's hit path (ReadHit), the full access path (Read) when it cannot
// complete the access. hit loads one address over and over; miss loads
// pages in a cycle four times the TLB's capacity.
func peOps(pe *cpu.PE) (hit, miss Op) {
	load := func(va mem.VA) error {
		_, ex, done := pe.ReadHit(va, 8)
		if !done {
			var e cpu.Exception
			if _, e = pe.Read(va, 8, cpu.Insn{}); e.Taken() {
				ex = &e
			}
		}
		if ex != nil {
			return fmt.Errorf("load %#x: %v", uint64(va), *ex)
		}
		return nil
	}
	hit = Op{Name: "TLB hit", Run: func(n int) error {
		for i := 0; i < n; i++ {
			if err := load(peRAM + 8); err != nil {
				return err
			}
		}
		return nil
	}}
	next := uint64(0)
	miss = Op{Name: "TLB miss, 4-over-4 walk", Run: func(n int) error {
		for i := 0; i < n; i++ {
			next = (next + 1) % (peData / 4096)
			if err := load(mem.VA(peRAM + next*4096 + 16)); err != nil {
				return err
			}
		}
		return nil
	}}
	return hit, miss
}

// twoStagePE builds a PE at EL1 with a 4-level 4K stage 1 (identity VA to
// IPA over peData) and a 4-level 4K stage 2 (identity IPA to PA), both
// with 4K leaves, in flat memory.
func twoStagePE() (*cpu.PE, error) {
	ram, err := mem.NewFlat(peRAM, 0x8000_0000-peRAM+32<<20)
	if err != nil {
		return nil, err
	}
	f := desc.Format{Granule: sysreg.Granule4K}
	s1, err := ttbuild.New(ram, &ttbuild.Alloc{Next: peS1Tabs, End: peS1Tabs + 1<<20}, f, false, 48, 0)
	if err != nil {
		return nil, err
	}
	s2, err := ttbuild.New(ram, &ttbuild.Alloc{Next: peS2Tabs, End: peS2Tabs + 32<<20}, f, true, 48, 0)
	if err != nil {
		return nil, err
	}
	for off := uint64(0); off < peData; off += 4096 {
		if err := s1.MapS1(peRAM+off, 3, desc.S1Leaf{OA: peRAM + off, SH: 3, AF: true}); err != nil {
			return nil, err
		}
	}
	for off := uint64(0); off < peData+1<<20; off += 4096 {
		if err := s2.MapS2(peRAM+off, 3, desc.S2Leaf{OA: peRAM + off, MemAttr: 0xf, S2AP: 3, SH: 3, AF: true}); err != nil {
			return nil, err
		}
	}
	r := vmsa.DefaultRegs()
	r.HCR_EL2 = sysreg.HCR_RW | sysreg.HCR_VM
	r.SCTLR_EL1 = 0x30d00805
	r.TCR_EL1 = sysreg.TCR(16 | 3<<12 | 5<<32 | 1<<23)
	r.TTBR0_EL1 = sysreg.TTBR(s1.Root)
	r.MAIR_EL1 = 0xff
	r.VTCR_EL2 = sysreg.VTCR(16 | 2<<6 | 3<<12 | 5<<16)
	r.VTTBR_EL2 = sysreg.VTTBR(s2.Root)
	t, err := tlb.New(tlb.Config{})
	if err != nil {
		return nil, err
	}
	return cpu.New(0, r, 1, ram, t), nil
}

// kvmVCPU makes a host/kvm host of hostBytes and a VM of ipaBits, lets
// setup add its memory, and loads vCPU 0 on CPU 0; done releases them.
func kvmVCPU(hostBytes uint64, ipaBits uint, setup func(vm *kvm.VM) error) (v *kvm.VCPU, done func(), err error) {
	h, err := kvm.NewHost(kvm.Config{MemBytes: hostBytes})
	if err != nil {
		return nil, nil, err
	}
	vm, err := h.NewVM(kvm.VMConfig{IPABits: ipaBits})
	if err == nil {
		if err = setup(vm); err == nil {
			if v, err = vm.NewVCPU(0); err == nil {
				err = v.Load(0)
			}
		}
		if err != nil {
			_ = vm.Destroy()
		}
	}
	if err != nil {
		_ = h.Close()
		return nil, nil, err
	}
	return v, func() {
		_ = v.Put()
		_ = vm.Destroy()
		_ = h.Close()
	}, nil
}

// vcpuHits measures guest loads that hit the TLB as the simulator makes
// them through host/kvm: VCPU.RunBatch, 256 8-byte loads a batch (the
// physical CPU's lock held across them), guest memory in the host arena
// (through its checked view), the guest's stage 1 on (1 GiB blocks).
func vcpuHits(cfg Config) (Timing, error) {
	const s1Table = 0x1000_0000
	v, done, err := kvmVCPU(64<<20, 40, func(vm *kvm.VM) error {
		if _, err := vm.AddMemory(0, peRAM, 4<<20, 0, 0); err != nil {
			return err
		}
		hva, err := vm.AddMemory(1, s1Table, 4096, 0, 0)
		if err != nil {
			return err
		}
		for i := uint64(0); i < 4; i++ { // level-1 blocks: VA = IPA for 4 GiB
			if err := vm.AddressSpace().Write(hva+hostmm.HVA(8*i), 8, i<<30|1<<10|1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Timing{}, err
	}
	defer done()
	pe := v.PE()
	pe.Regs.TCR_EL1 = sysreg.TCR(25 | 1<<23 | 0b010<<32)
	pe.Regs.TTBR0_EL1 = sysreg.TTBR(s1Table)
	pe.Regs.SCTLR_EL1 = 1
	pe.Regs.MAIR_EL1 = 0xff
	pe.RegsChanged()
	batch := make([]kvm.BatchAccess, 256)
	for i := range batch {
		batch[i] = kvm.BatchAccess{VA: mem.VA(peRAM + i%64*8), Size: 8}
	}
	run := func(b []kvm.BatchAccess) error {
		n, ex, err := v.RunBatch(b)
		if err == nil && (n != len(b) || ex.Reason != kvm.ExitNone) {
			err = fmt.Errorf("batch stopped after %d loads: exit %v", n, ex.Reason)
		}
		return err
	}
	if err := run(batch); err != nil { // faults the page in, fills the TLB
		return Timing{}, err
	}
	hits := pe.Stats.TLBHits
	op := Op{Name: "vCPU TLB hits", Run: func(n int) error {
		for ; n > 0; n -= len(batch) {
			if err := run(batch[:min(n, len(batch))]); err != nil {
				return err
			}
		}
		return nil
	}}
	t, err := Measure(op, cfg)
	if err == nil && pe.Stats.TLBHits == hits {
		err = errors.New("the vCPU's loads did not hit the TLB")
	}
	return t, err
}

// stage2Faults measures a guest load (stage 1 off) that takes a stage-2
// translation fault on a page the host already has, in a 48-bit IPA VM of
// host/kvm, and its handling: the slot is deleted and added again before
// each batch (untimed), so every page of the batch faults.
func stage2Faults(cfg Config) (Timing, error) {
	const size = 128 << 20
	var vm *kvm.VM
	var hva hostmm.HVA
	v, done, err := kvmVCPU(512<<20, 48, func(m *kvm.VM) error {
		vm = m
		var err error
		if hva, err = vm.AddMemory(0, peRAM, size, 0, 0); err != nil {
			return err
		}
		for off := uint64(0); off < size; off += 4096 {
			if _, err := vm.AddressSpace().FaultIn(hva+hostmm.HVA(off), true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Timing{}, err
	}
	defer done()
	slot := memslot.Slot{ID: 0, GPA: peRAM, Size: size, HVA: hva}
	page := uint64(0)
	op := Op{Name: "stage-2 fault",
		Prepare: func(n int) error {
			if n > size/4096 {
				return fmt.Errorf("batch of %d faults beyond the %d pages", n, size/4096)
			}
			page = 0
			if err := vm.DeleteSlot(0); err != nil {
				return err
			}
			return vm.AddSlot(slot)
		},
		Run: func(n int) error {
			for i := 0; i < n; i++ {
				if ex, err := v.Ldr(1, mem.VA(peRAM+page*4096), 8); err != nil || ex.Reason != kvm.ExitNone {
					return fmt.Errorf("load: exit %v, %v", ex.Reason, err)
				}
				page++
			}
			return nil
		}}
	c := cfg
	c.Batch = min(cfg.batch(), 10e6) // about 10k faults: within the slot
	return Measure(op, c)
}
