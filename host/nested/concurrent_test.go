package nested_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// worker drives one nested vCPU on its own goroutine: its guest
// hypervisor's VMs and L2's accesses, over L1 memory no other worker
// touches, with a model of that memory.
type worker struct {
	v     *nested.VCPU
	hyp   *guesthyp.Hypervisor
	vms   []*guesthyp.VM
	spare []mem.IPA
	m     *model
	rng   *rand.Rand
	cur   int
	inL2  bool
}

func (w *worker) atL1() error {
	if !w.inL2 {
		return nil
	}
	w.inL2 = false
	if err := w.v.InterruptToVEL2(); err != nil {
		return err
	}
	return w.hyp.Interrupted()
}

func (w *worker) inVM() error {
	if w.inL2 {
		return nil
	}
	w.inL2 = true
	return w.hyp.Run(w.vms[w.cur])
}

func (w *worker) access(va nested.NestedIPA, write bool, val uint64) (uint64, error) {
	x := &w.v.KVM().Ctx().X
	x[1] = val
	exit, err := w.v.RunL2(kvm.Access{VA: mem.VA(va), Size: 8, Write: write, Rt: 1})
	if err == nil && exit.Reason != nested.ExitNone {
		err = fmt.Errorf("L2 access to %#x exits: %v", uint64(va), exit.Reason)
	}
	return x[1], err
}

// step does one random operation and checks what it reads.
func (w *worker) step() error {
	rng, m := w.rng, w.m
	b := l2RAM + nested.NestedIPA(rng.IntN(4))<<21
	va := b + nested.NestedIPA(rng.IntN(6))<<12 + nested.NestedIPA(rng.IntN(3))*8
	switch k := rng.IntN(100); {
	case k < 40:
		if err := w.inVM(); err != nil {
			return err
		}
		val := rng.Uint64()
		if _, err := w.access(va, true, val); err != nil {
			return err
		}
		m.write(m.target(w.cur, va), val)
	case k < 75:
		if err := w.inVM(); err != nil {
			return err
		}
		got, err := w.access(va, false, 0)
		if err != nil {
			return err
		}
		if want := m.l1[m.target(w.cur, va)]; got != want {
			return fmt.Errorf("VM %d reads %#x at %#x (L1 %#x), want %#x", w.vms[w.cur].VMID, got, uint64(va), uint64(m.target(w.cur, va)), want)
		}
	case k < 80:
		if err := w.atL1(); err != nil {
			return err
		}
		w.cur = (w.cur + 1) % len(w.vms)
	case k < 88:
		if err := w.atL1(); err != nil {
			return err
		}
		vm := rng.IntN(len(w.vms))
		to := w.spare[rng.IntN(len(w.spare))]
		at, val := to+mem.IPA(rng.IntN(6))<<12, rng.Uint64()
		if err := w.v.Store(mem.VA(at), 8, val); err != nil {
			return err
		}
		m.write(at, val)
		if err := w.vms[vm].Map(b, to, blk2M); err != nil {
			return err
		}
		m.forget(vm, b)
		m.block[vm][b] = to
	case k < 95:
		if err := w.atL1(); err != nil {
			return err
		}
		vm := rng.IntN(len(w.vms))
		if err := w.vms[vm].Unmap(b, blk2M); err != nil {
			return err
		}
		m.forget(vm, b)
	default:
		if err := w.atL1(); err != nil {
			return err
		}
		if err := w.vms[rng.IntN(len(w.vms))].WriteProtect(b, blk2M); err != nil {
			return err
		}
	}
	return nil
}

// TestConcurrentNested: two nested vCPUs on two physical CPUs run their
// guest hypervisors' VMs (VMIDs 1 and 2 on one, 5 on the other) on
// goroutines of their own, sharing the VM's shadow pool, reverse map and
// MMU lock, while the host's memory-pressure driver (reclaim, migration,
// THP split and collapse, KSM, aging) and the VMM (dirty logging, page
// migration) act on L1's memory from two more. Every L2 load returns what
// the model says; at the end the invariants hold. Run it with -race.
func TestConcurrentNested(t *testing.T) {
	steps := 1500
	if testing.Short() {
		steps = 300
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse map %v", on), func(t *testing.T) {
			r := newRig(t, nested.ModeNV2, true, hostmm.MapHuge|hostmm.MapMergeable, withMap(on),
				func(c *rigConfig) { c.cpus, c.nested.VCPUs = 2, 2 })
			kb, err := r.kvm.NewVCPU(1)
			mustOK(t, err)
			vb, err := r.nvm.NewVCPU(kb, nil)
			mustOK(t, err)
			mustOK(t, vb.LoadCPU(1))
			t.Cleanup(func() { _ = vb.PutCPU() })
			hb, err := guesthyp.Boot(vb, guesthyp.Config{E2H: true, Tables: 0x4020_0000, TablesSize: 2 << 20, VBAR: 0x4000_0800})
			mustOK(t, err)
			vb.SetGuestHypervisor(hb)
			vmd, err := hb.NewVM(5)
			mustOK(t, err)
			mustOK(t, vmd.AddSlot(l2RAM, l1VMC, 8<<20))
			workers := []*worker{
				{v: r.v, hyp: r.hyp, vms: []*guesthyp.VM{r.a, r.b}, spare: spare[:3], m: newModel(l1VMA, l1VMB), rng: rand.New(rand.NewPCG(1, 2))},
				{v: vb, hyp: hb, vms: []*guesthyp.VM{vmd}, spare: spare[3:], m: newModel(l1VMC), rng: rand.New(rand.NewPCG(3, 4))},
			}
			pressure := r.kvm.AddressSpace().Kernel().StartPressure(hostmm.PressureConfig{Seed: 9, Interval: 20 * time.Microsecond})
			stop := make(chan struct{})
			var vmm sync.WaitGroup
			var vmmErr error
			vmm.Add(1)
			go func() { // the VMM: dirty logging on L1's memory, and page migration
				defer vmm.Done()
				rng := rand.New(rand.NewPCG(5, 6))
				as := r.kvm.AddressSpace()
				for logging := false; ; {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					switch rng.IntN(4) {
					case 0:
						if logging {
							err = r.kvm.DisableDirtyLog(0)
						} else {
							err = r.kvm.EnableDirtyLog(0, true)
						}
						logging = !logging
					case 1:
						if logging {
							_, err = r.kvm.GetDirtyLog(0)
						}
					default:
						l1 := []mem.IPA{l1VMA, l1VMC}[rng.IntN(2)] + mem.IPA(rng.IntN(2048))<<12
						err = as.Migrate(hvaOf(r, l1))
						if isBenign(err) {
							err = nil
						}
					}
					if err != nil {
						vmmErr = err
						return
					}
					time.Sleep(50 * time.Microsecond)
				}
			}()
			errs := make([]error, len(workers))
			var wg sync.WaitGroup
			for i, w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := w.inVM(); err != nil {
						errs[i] = err
						return
					}
					for s := 0; s < steps; s++ {
						if err := w.step(); err != nil {
							errs[i] = fmt.Errorf("vCPU %d step %d: %w", i, s, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			vmm.Wait()
			pst := pressure.Stop()
			if err := errors.Join(append(errs, vmmErr)...); err != nil {
				t.Fatal(err)
			}
			checkAll(t, r)
			if err := r.kvm.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("pressure %+v; reverse map %+v; vCPUs %+v, %+v", pst, r.nvm.RmapStats(), r.v.Stats(), vb.Stats())
		})
	}
}

// TestConcurrentSharedShadow: two nested vCPUs on two physical CPUs run
// the same L2 VM (same VTTBR_EL2: one shadow, entered by both) at once,
// each loading and storing its own half of the VM's memory, while the
// host's pressure driver and page migrations remove shadow leaves under
// them: both refault concurrently into one shadow and one reverse map.
// Every load returns the vCPU's last store there; at the end the
// invariants hold. Run it with -race.
func TestConcurrentSharedShadow(t *testing.T) {
	steps := 4000
	if testing.Short() {
		steps = 800
	}
	r := newRig(t, nested.ModeNV2, true, hostmm.MapHuge|hostmm.MapMergeable,
		func(c *rigConfig) { c.cpus, c.nested.VCPUs = 2, 2 })
	mustOK(t, r.a.Map(l2RAM, l1VMA, l2Size)) // nothing will fault to L1
	r.run(t, r.a)
	kb, err := r.kvm.NewVCPU(1)
	mustOK(t, err)
	vb, err := r.nvm.NewVCPU(kb, nil)
	mustOK(t, err)
	mustOK(t, vb.LoadCPU(1))
	t.Cleanup(func() { _ = vb.PutCPU() })
	enter(t, vb, r.a, 0)
	if sh := r.nvm.Shadows(); len(sh) != 1 || sh[0].Refs != 2 {
		t.Fatalf("shadows %+v: want one, entered by both vCPUs", sh)
	}
	pressure := r.kvm.AddressSpace().Kernel().StartPressure(hostmm.PressureConfig{Seed: 11, Interval: 20 * time.Microsecond})
	stop := make(chan struct{})
	var host sync.WaitGroup
	var hostErr error
	host.Add(1)
	go func() {
		defer host.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		as := r.kvm.AddressSpace()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l1 := l1VMA + mem.IPA(rng.IntN(l2Size>>12))<<12
			err := as.Migrate(hvaOf(r, l1))
			if rng.IntN(2) == 0 {
				err = as.SwapOut(hvaOf(r, l1))
			}
			if err != nil && !isBenign(err) {
				hostErr = err
				return
			}
		}
	}()
	vcpus := []*nested.VCPU{r.v, vb}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, v := range vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{v: v}
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			mine := map[nested.NestedIPA]uint64{}
			half := nested.NestedIPA(l2Size / 2)
			for s := 0; s < steps; s++ {
				va := l2RAM + nested.NestedIPA(i)*half + nested.NestedIPA(rng.IntN(64))<<12 + nested.NestedIPA(rng.IntN(4))*8
				if rng.IntN(2) == 0 {
					val := rng.Uint64()
					if _, err := w.access(va, true, val); err != nil {
						errs[i] = err
						return
					}
					mine[va] = val
					continue
				}
				got, err := w.access(va, false, 0)
				if err == nil && got != mine[va] {
					err = fmt.Errorf("vCPU %d reads %#x at %#x, stored %#x", i, got, uint64(va), mine[va])
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	host.Wait()
	pst := pressure.Stop()
	if err := errors.Join(append(errs, hostErr)...); err != nil {
		t.Fatal(err)
	}
	checkAll(t, r)
	t.Logf("pressure %+v; reverse map %+v; vCPUs %+v, %+v", pst, r.nvm.RmapStats(), r.v.Stats(), vb.Stats())
}
