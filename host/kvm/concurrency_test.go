package kvm

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/memslot"
	"github.com/nestmmu/nestmmu/mem"
)

// TestConcurrentSlotChangesAndRollovers: two vCPUs fault on a stable slot
// and on a slot that the VMM deletes, re-adds, moves and puts under dirty
// logging, while the host runs memory pressure and other VMs exhaust the
// 8-bit VMID space on a third CPU (generation rollovers with TLBI ALLE1IS
// while the guest runs). An access to the changing slot either completes
// against the same backing memory or exits as MMIO; no read ever returns
// anything but the last value written.
func TestConcurrentSlotChangesAndRollovers(t *testing.T) {
	h := eightBitHostN(t, 3)
	vm := newVM(t, h, 40)
	const (
		gpa0, gpa1, moved = 0x4000_0000, 0x8000_0000, 0xc000_0000
		size              = mib
		words             = size / 8
	)
	addMem(t, vm, 0, gpa0, size, 0, 0)
	hva1 := addMem(t, vm, 1, gpa1, size, 0, 0)
	v0 := loadedVCPU(t, vm, 0, 0)
	v1 := loadedVCPU(t, vm, 1, 1)
	guestMMUOn(t, vm, v0, v1)
	n := integrityAccesses / 20

	exp := make([]uint64, 2*words)
	var mismatches, mmio atomic.Uint64
	var done, churned atomic.Bool
	var vwg, owg sync.WaitGroup
	for i, v := range []*VCPU{v0, v1} {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			r := rand.New(rand.NewPCG(7, uint64(i)))
			ctx := v.Ctx()
			// Run at least n accesses, and until the other VMs have
			// caused their rollovers.
			for k := 0; k < n || !churned.Load(); k++ {
				slot := r.IntN(2)
				w := uint64(r.IntN(words/2)*2 + i)
				idx := uint64(slot)*words + w
				gpa := uint64(gpa0) + w*8
				if slot == 1 {
					gpa = gpa1 + w*8
				}
				var ex Exit
				var err error
				write := r.IntN(2) == 0
				if write {
					ctx.X[1] = r.Uint64()
					ex, err = v.Str(1, mem.VA(gpa), 8)
				} else {
					ex, err = v.Ldr(2, mem.VA(gpa), 8)
				}
				if err != nil {
					t.Errorf("vCPU %d at %#x: %v", i, gpa, err)
					return
				}
				switch ex.Reason {
				case ExitMMIO:
					if slot == 0 || ex.MMIO.IPA != gpa {
						t.Errorf("vCPU %d: MMIO exit %+v for %#x", i, ex.MMIO, gpa)
						return
					}
					mmio.Add(1)
					if err := v.CompleteMMIO([2]uint64{}); err != nil {
						t.Error(err)
						return
					}
				case ExitNone:
					if write {
						exp[idx] = ctx.X[1]
					} else if ctx.X[2] != exp[idx] {
						if mismatches.Add(1) < 5 {
							t.Errorf("vCPU %d: %#x reads %#x, want %#x", i, gpa, ctx.X[2], exp[idx])
						}
					}
				default:
					t.Errorf("vCPU %d: exit %v %v", i, ex.Reason, ex.Exception)
					return
				}
			}
		}()
	}
	// The VMM changes slot 1 (always backed by the same HVA).
	var changes int
	owg.Add(1)
	go func() {
		defer owg.Done()
		r := rand.New(rand.NewPCG(9, 9))
		at := uint64(gpa1)
		for !done.Load() {
			var err error
			switch r.IntN(5) {
			case 0:
				if err = vm.DeleteSlot(1); err == nil {
					err = vm.AddSlot(memslot.Slot{ID: 1, GPA: mem.IPA(at), Size: size, HVA: hostmm.HVA(uint64(hva1))})
				}
			case 1:
				if at == gpa1 {
					at = moved
				} else {
					at = gpa1
				}
				err = vm.MoveSlot(1, mem.IPA(at))
			case 2:
				err = vm.EnableDirtyLog(1, r.IntN(2) == 0)
			case 3:
				err = vm.DisableDirtyLog(1)
			case 4:
				_, err = vm.GetDirtyLog(1)
				if err != nil {
					err = nil // not logging now
				}
			}
			if err != nil {
				t.Errorf("slot change: %v", err)
				return
			}
			changes++
		}
	}()
	// Other VMs take VMIDs on CPU 2 until the generation rolls over.
	var others []*VM
	owg.Add(1)
	go func() {
		defer owg.Done()
		defer churned.Store(true)
		for i := 0; i < 600; i++ {
			o, err := h.NewVM(VMConfig{IPABits: 32})
			if err != nil {
				t.Error(err)
				return
			}
			ov, err := o.NewVCPU(0)
			if err == nil {
				err = ov.Load(2)
			}
			if err == nil {
				err = ov.Put()
			}
			if err != nil {
				t.Error(err)
				return
			}
			others = append(others, o)
		}
	}()
	p := h.Kernel().StartPressure(hostmm.PressureConfig{Seed: 3})
	vwg.Wait()
	done.Store(true)
	owg.Wait()
	p.Stop()
	t.Logf("%d slot changes, %d MMIO exits, %d rollovers, %d other VMs, VM %+v",
		changes, mmio.Load(), h.Stats().Rollovers, len(others), vm.Stats())
	if mismatches.Load() != 0 {
		t.Errorf("%d mismatches", mismatches.Load())
	}
	if h.Stats().Rollovers == 0 {
		t.Error("no VMID rollover happened during the run")
	}
	destroy(t, vm, v0, v1)
	for _, o := range others {
		destroy(t, o)
	}
}

func eightBitHostN(t *testing.T, cpus int) *Host {
	id := vmsa.DefaultRegs()
	id.MMFR1 = sysreg.MMFR1(uint64(id.MMFR1) &^ 0xf0) // VMIDBits = 0b0000: 8 bits
	return newHost(t, Config{CPUs: cpus, ID: &id})
}
