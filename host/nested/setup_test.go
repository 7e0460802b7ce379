package nested_test

import (
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"testing"

	"github.com/nestmmu/nestmmu/guesthyp"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// The test machine: L1's RAM is 64 MiB at L1 IPA 0x4000_0000; its stage-2
// tables live in [l1Tables, +4 MiB); its two VMs (VMIDs 1 and 2) each get
// 16 MiB of L2 IPA at l2RAM, backed by L1 memory at l1VMA and l1VMB.
const (
	l1RAM    = 0x4000_0000
	l1Size   = 64 << 20
	l1Tables = 0x4300_0000
	l1VMA    = 0x4100_0000
	l1VMB    = 0x4200_0000
	l2RAM    = 0x8000_0000
	l2Size   = 16 << 20
)

type rig struct {
	host *kvm.Host
	kvm  *kvm.VM
	nvm  *nested.VM
	v    *nested.VCPU
	hyp  *guesthyp.Hypervisor
	a, b *guesthyp.VM
}

// rigConfig are the options of newRig: the nested configuration (Mode and
// E2H are newRig's arguments) and whether L1's memory is two memslots
// (0: [l1RAM, l1VMB), 1: [l1VMB, l1RAM+l1Size)) instead of one.
type rigConfig struct {
	nested nested.Config
	split  bool
	// ipaBits is L1's VM's IPA size and guestIPABits its VMs' (zero: 40).
	ipaBits, guestIPABits uint
	// memBytes is the host's memory (zero: 256 MiB); cpus its physical
	// CPUs (zero: 1); id its ID registers (nil: vmsa.DefaultRegs) and
	// pageSize its page size (zero: 4K).
	memBytes uint64
	cpus     int
	id       *vmsa.Regs
	pageSize uint64
	// bus is L1's device model (guesthyp.Config.Bus).
	bus mmio.Bus
}

// newRig boots L0 with one CPU, L1 in a 40-bit VM in mode with E2H, and
// L1's two VMs; the vCPU is left at vEL2.
func newRig(t testing.TB, mode nested.Mode, e2h bool, mf hostmm.MapFlags, opts ...func(*rigConfig)) *rig {
	t.Helper()
	var rc rigConfig
	for _, o := range opts {
		o(&rc)
	}
	rc.nested.Mode, rc.nested.E2H = mode, e2h
	if rc.ipaBits == 0 {
		rc.ipaBits = 40
	}
	if rc.memBytes == 0 {
		rc.memBytes = 256 << 20
	}
	if rc.cpus == 0 {
		rc.cpus = 1
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := kvm.NewHost(kvm.Config{CPUs: rc.cpus, MemBytes: rc.memBytes, ID: rc.id, PageSize: rc.pageSize})
	must(err)
	vm, err := h.NewVM(kvm.VMConfig{IPABits: rc.ipaBits})
	must(err)
	if rc.split {
		_, err = vm.AddMemory(0, l1RAM, l1VMB-l1RAM, 0, mf)
		must(err)
		_, err = vm.AddMemory(1, l1VMB, l1RAM+l1Size-l1VMB, 0, mf)
	} else {
		_, err = vm.AddMemory(0, l1RAM, l1Size, 0, mf)
	}
	must(err)
	kv, err := vm.NewVCPU(0)
	must(err)
	nvm, err := nested.New(vm, rc.nested)
	must(err)
	v, err := nvm.NewVCPU(kv, nil)
	must(err)
	must(v.LoadCPU(0))
	hyp, err := guesthyp.Boot(v, guesthyp.Config{E2H: e2h, IPABits: rc.guestIPABits, Tables: l1Tables, TablesSize: 4 << 20, VBAR: 0x4000_0800, Bus: rc.bus})
	must(err)
	v.SetGuestHypervisor(hyp)
	a, err := hyp.NewVM(1)
	must(err)
	must(a.AddSlot(l2RAM, l1VMA, l2Size))
	b, err := hyp.NewVM(2)
	must(err)
	must(b.AddSlot(l2RAM, l1VMB, l2Size))
	r := &rig{host: h, kvm: vm, nvm: nvm, v: v, hyp: hyp, a: a, b: b}
	t.Cleanup(func() {
		_ = v.PutCPU()
		_ = nvm.Close()
		_ = vm.Destroy()
		_ = h.Close()
	})
	return r
}

// store and load are L2 accesses (X1 the transfer register).
func (r *rig) store(t testing.TB, va mem.VA, val uint64) {
	t.Helper()
	r.v.KVM().Ctx().X[1] = val
	exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Write: true, Rt: 1})
	if err != nil || exit.Reason != nested.ExitNone {
		t.Fatalf("L2 store to %#x: %v %v", uint64(va), exit.Reason, err)
	}
}

func (r *rig) load(t testing.TB, va mem.VA) uint64 {
	t.Helper()
	exit, err := r.v.RunL2(kvm.Access{VA: va, Size: 8, Rt: 2})
	if err != nil || exit.Reason != nested.ExitNone {
		t.Fatalf("L2 load from %#x: %v %v", uint64(va), exit.Reason, err)
	}
	return r.v.KVM().Ctx().X[2]
}

// toL1 interrupts L2 and lets L1 save it.
func (r *rig) toL1(t testing.TB) {
	t.Helper()
	if err := r.v.InterruptToVEL2(); err != nil {
		t.Fatal(err)
	}
	if err := r.hyp.Interrupted(); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) run(t testing.TB, vm *guesthyp.VM) {
	t.Helper()
	if err := r.hyp.Run(vm); err != nil {
		t.Fatal(err)
	}
	if !r.v.InL2() {
		t.Fatal("ERET did not enter L2")
	}
}
