package nested_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
)

// testBus is a device model: registers by address, and a log.
type testBus struct {
	regs map[uint64]uint64
	log  []string
}

func newTestBus() *testBus { return &testBus{regs: map[uint64]uint64{}} }

func (b *testBus) Read(ipa uint64, size int) (uint64, error) {
	b.log = append(b.log, fmt.Sprintf("read %#x/%d", ipa, size))
	return b.regs[ipa], nil
}

func (b *testBus) Write(ipa uint64, size int, v uint64) error {
	b.log = append(b.log, fmt.Sprintf("write %#x/%d=%#x", ipa, size, v))
	b.regs[ipa] = v
	return nil
}

const l2Hole = 0x9000_0000 // an L2 IPA outside every slot of L1's VM A

// TestMMIOAtEachLevel: an access that reaches an IPA where a hypervisor's
// VM has no memory is an MMIO access for that hypervisor's device model,
// at every level: L2's (a plain VM's) at an L2 IPA outside its slots goes
// to L1's; in the recursive machine, L2's own access at its virtual EL2
// and L3's access that L2's stage 2 maps there go to L1's (the device is
// in L2's IPA space, L1's VMM's), decoded by L1's engine from the syndrome
// L0 forwarded (ISV, SAS, SRT, WnR); L3's access outside L3's slots goes to
// L2's own device model (the fault is L2's stage 2's). A load completes
// with the device's value in its register, a store gives the device the
// register's value. Without a device model the access is ErrNoDevice.
func TestMMIOAtEachLevel(t *testing.T) {
	for _, m := range recModes {
		t.Run(recName(m.m01, m.e2h, m.m12), func(t *testing.T) {
			bus1, bus2 := newTestBus(), newTestBus()
			// Two levels: L1's VM A, a plain VM.
			r2 := newRig(t, m.m01, m.e2h, 0, func(c *rigConfig) { c.bus = bus1 })
			r2.run(t, r2.a)
			r2.store(t, l2Hole+0x10, 0xd1)
			bus1.regs[l2Hole+0x18] = 0xd2
			if got := r2.load(t, l2Hole+0x18); got != 0xd2 {
				t.Errorf("L2 reads %#x from L1's device, want 0xd2", got)
			}
			if bus1.regs[l2Hole+0x10] != 0xd1 || r2.hyp.Stats().MMIO != 2 {
				t.Errorf("L1's device: %v, %d MMIO", bus1.log, r2.hyp.Stats().MMIO)
			}

			r := newRecRigConfig(t, m.m01, m.e2h, nested.EL2Config{Mode: m.m12, VNCR: l1VNCR}, func(r *recRig) {
				if err := r.l3.Map(l3RAM+0x60_0000, l2Hole, 4096); err != nil {
					t.Fatal(err)
				}
			}, func(o *recOpts) {
				o.l1 = append(o.l1, func(c *rigConfig) { c.bus = bus1 })
				o.l2 = func(c *guesthyp.Config) { c.Bus = bus2 }
			})
			clear(bus1.regs)
			bus1.log = nil
			// L3's access through L2's stage 2 into L2's hole: L1's device.
			r.store(t, l3RAM+0x60_0020, 0x31)
			bus1.regs[l2Hole+0x28] = 0x32
			if got := r.load(t, l3RAM+0x60_0028); got != 0x32 || bus1.regs[l2Hole+0x20] != 0x31 {
				t.Errorf("L3 through L2's stage 2: reads %#x (want 0x32); L1's device %v", got, bus1.log)
			}
			// L3's access outside its slots: L2's own device.
			r.store(t, 0x7000_0040, 0x41)
			bus2.regs[0x7000_0048] = 0x42
			if got := r.load(t, 0x7000_0048); got != 0x42 || bus2.regs[0x7000_0040] != 0x41 {
				t.Errorf("L3 outside its memory: reads %#x (want 0x42); L2's device %v", got, bus2.log)
			}
			if st := r.e.Stats(); st.ShadowFaults == 0 {
				t.Error("L1's engine took no shadow fault")
			}
			// L2's own access at its virtual EL2: L1's device.
			r.toL2(t)
			c := r.v.L2()
			if err := c.Store(l2Hole+0x50, 8, 0x51); err != nil {
				t.Fatal(err)
			}
			bus1.regs[l2Hole+0x58] = 0x52
			if got, err := c.Load(l2Hole+0x58, 8); err != nil || got != 0x52 || bus1.regs[l2Hole+0x50] != 0x51 {
				t.Errorf("L2 at vEL2: reads %#x, %v (want 0x52); L1's device %v", got, err, bus1.log)
			}
			r.runL3(t)
			r.check(t)
		})
	}
}

// TestMMIONoDevice: without a device model at L1, L3's access to L2's hole
// is an error matching ErrNoDevice (the VMM's exit the model has no VMM
// for), not a silent value.
func TestMMIONoDevice(t *testing.T) {
	r := newRecRig(t, nested.ModeNV2, true, nested.ModeNV2, func(r *recRig) {
		if err := r.l3.Map(l3RAM+0x60_0000, l2Hole, 4096); err != nil {
			t.Fatal(err)
		}
	})
	_, err := r.v.RunL2(kvm.Access{VA: l3RAM + 0x60_0008, Size: 8, Rt: 2})
	if !errors.Is(err, nested.ErrNoDevice) {
		t.Fatalf("%v, want ErrNoDevice", err)
	}
}

// TestRecursionWalkExternalAbort: L3's stage-1 tables are at an L3 IPA that
// L2's stage 2 maps into L2's hole: the walk reads no memory, so L3 takes
// a synchronous External abort on the walk at its EL1 (AArch64.S1Walk),
// which L1's engine injects as the hardware takes it (L0 does the same for
// its guests' guests): ESR_EL1 EC 0x25 (from EL1), IL, DFSC 0b0101ll at
// the level of the table read (1: the first), WnR of the stage-2 syndrome
// (the walk's read), no ISV or S1PTW; FAR_EL1 the VA; ELR_EL1 the instruction; L3 at VBAR_EL1 + 0x200.
func TestRecursionWalkExternalAbort(t *testing.T) {
	const (
		tab  = 0x5000_0000 // L3 IPA of its stage-1 table, mapped into L2's hole
		vbar = 0x3000
		va   = 0x1018
	)
	for _, m := range recModes {
		for _, write := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/write=%v", recName(m.m01, m.e2h, m.m12), write), func(t *testing.T) {
				r := newRecRig(t, m.m01, m.e2h, m.m12, func(r *recRig) {
					if err := r.l3.Map(tab, l2Hole, 4096); err != nil {
						t.Fatal(err)
					}
					r.l3.SetGuestReg(cpu.SCTLR_EL1, 1)
					r.l3.SetGuestReg(cpu.TCR_EL1, 25|1<<23|2<<32)
					r.l3.SetGuestReg(cpu.TTBR0_EL1, tab)
					r.l3.SetGuestReg(cpu.VBAR_EL1, vbar)
				})
				pe := r.v.PE()
				pc := pe.PC
				exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Write: write, Rt: 2})
				if err != nil {
					t.Fatal(err)
				}
				// WnR is the stage-2 syndrome's, which reports the walk's
				// descriptor read (0) for a store too; L0 injects the same.
				want := uint64(0x25)<<26 | 1<<25 | 0b010101
				x := exit.Exception
				if exit.Reason != nested.ExitL2Exception || x.Kind != cpu.DataAbort || uint64(x.ESR) != want || x.FAR != va {
					t.Fatalf("exit %v %v ESR %#x FAR %#x; want L3's Data Abort ESR %#x FAR %#x", exit.Reason, x.Kind, uint64(x.ESR), uint64(x.FAR), want, va)
				}
				if pe.PC != vbar+0x200 || uint64(pe.ESR[1]) != want || pe.FAR[1] != va || pe.ELR[1] != pc || pe.EL != 1 {
					t.Errorf("L3 at %#x EL%d with ESR_EL1 %#x FAR_EL1 %#x ELR_EL1 %#x; want %#x EL1 %#x %#x %#x",
						uint64(pe.PC), pe.EL, uint64(pe.ESR[1]), pe.FAR[1], uint64(pe.ELR[1]), vbar+0x200, want, va, uint64(pc))
				}
			})
		}
	}
}
