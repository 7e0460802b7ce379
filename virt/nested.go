package virt

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/mmio"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// NestedConfig configures a Nested machine.
type NestedConfig struct {
	// Mode is how the program's EL2 register accesses reach L0: FEAT_NV
	// traps or the FEAT_NV2 VNCR page.
	Mode nested.Mode
	// Output receives the UART's bytes; nil keeps them in Nested.Output.
	Output io.Writer
	// Strict is passed to the interpreter (see interp.Options).
	Strict func(pc mem.VA, word uint32, why string)
}

// Nested is the virt machine with nestmmu's host hypervisor under the
// program: the program is a guest hypervisor (L1), entered at virtual EL2
// in a VM of L0 (host/kvm with host/nested) whose memory is the board's
// RAM (a memslot at RAMBase) and whose devices (the PL011) are L0's
// in-kernel bus. The interpreter runs L1 and the guests L1 runs (L2) on
// the VM's vCPU; every exception the PE takes to EL2 is an exit to L0
// (nested.VCPU.PEExit), and L1's PSCI calls (SMC, which L0 traps) are
// answered by L0 as QEMU's firmware answers them at EL3.
type Nested struct {
	Host *kvm.Host
	VM   *kvm.VM
	NVM  *nested.VM
	VCPU *nested.VCPU
	PE   *cpu.PE
	CPU  *interp.CPU
	UART *PL011
	// Output holds the UART's bytes when NestedConfig.Output is nil.
	Output bytes.Buffer
	// Off and Reset record a PSCI SYSTEM_OFF or SYSTEM_RESET.
	Off, Reset bool

	err error // an exit L0 could not handle
}

// nestedIPABits is the IPA size of L1's VM (QEMU's -M virt gives a
// 40-bit IPA space to a KVM guest by default).
const nestedIPABits = 40

// NewNested returns the machine with L1's vCPU at virtual EL2, MMU off,
// SP_EL2 selected and DAIF masked, before any program is loaded.
func NewNested(cfg NestedConfig) (*Nested, error) {
	b := &Nested{}
	out := cfg.Output
	if out == nil {
		out = &b.Output
	}
	b.UART = &PL011{Out: out}
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: DefaultRAMSize + 128<<20})
	if err != nil {
		return nil, err
	}
	b.Host = h
	fail := func(err error) (*Nested, error) {
		b.Close()
		return nil, err
	}
	b.VM, err = h.NewVM(kvm.VMConfig{IPABits: nestedIPABits, Bus: uartBus{b.UART}})
	if err != nil {
		return fail(err)
	}
	if _, err := b.VM.AddMemory(0, mem.IPA(RAMBase), DefaultRAMSize, 0, 0); err != nil {
		return fail(err)
	}
	kv, err := b.VM.NewVCPU(0)
	if err != nil {
		return fail(err)
	}
	if b.NVM, err = nested.New(b.VM, nested.Config{Mode: cfg.Mode}); err != nil {
		return fail(err)
	}
	if b.VCPU, err = b.NVM.NewVCPU(kv, nil); err != nil {
		return fail(err)
	}
	b.VCPU.SetCodeOnPE()
	if err := b.VCPU.LoadCPU(0); err != nil {
		return fail(err)
	}
	b.PE = b.VCPU.PE()
	opts := interp.Options{Hypervisor: b, Strict: cfg.Strict}
	if base, words, ok := h.Arena().Words(); ok {
		opts.RAM = hostPages{base, words}
	}
	b.CPU = interp.New(b.PE, opts)
	// The ID registers L0 answers for beyond its sanitized MMFRs are the
	// interpreter's, the PE's hardware values.
	b.VCPU.SetIDSource(b.CPU.GetByEncoding)
	b.VCPU.SetKeptWriter(b.CPU.SetByEncoding)
	// L0's own writes to L1's memory (hardware updates of the guest
	// stage-2 walk, VNCR page copies) reach decoded code too.
	b.NVM.SetGuestWriteObserver(b.CPU.CodeWritten)
	return b, nil
}

// hostPages gives the interpreter's fast path the host frames (every PA
// the PE translates to under L0 is one). Its translations are dropped at
// every exit to L0, the only place stage 2 changes here.
type hostPages struct {
	base  mem.PA
	words []uint64
}

func (h hostPages) Page(pa mem.PA) *[512]uint64 {
	i := uint64(pa-h.base) / 8
	if pa < h.base || i+512 > uint64(len(h.words)) {
		return nil
	}
	return (*[512]uint64)(h.words[i : i+512])
}

// Close releases L0's VM and host.
func (b *Nested) Close() {
	if b.VCPU != nil {
		_ = b.VCPU.PutCPU()
	}
	if b.NVM != nil {
		_ = b.NVM.Close()
	}
	if b.VM != nil {
		_ = b.VM.Destroy()
	}
	_ = b.Host.Close()
}

// uartBus is L0's in-kernel device bus: the PL011 at UARTBase; anything
// else has no device (a synchronous External abort: mmio.ErrCannotEmulate).
type uartBus struct{ u *PL011 }

func (u uartBus) Read(ipa uint64, size int) (uint64, error) {
	if ipa-uint64(UARTBase) < UARTSize {
		if v, ok := u.u.Read(ipa-uint64(UARTBase), size); ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: virt: no device answers a %d-byte read at %#x", mmio.ErrCannotEmulate, size, ipa)
}

func (u uartBus) Write(ipa uint64, size int, v uint64) error {
	if ipa-uint64(UARTBase) < UARTSize && u.u.Write(ipa-uint64(UARTBase), size, v) {
		return nil
	}
	return fmt.Errorf("%w: virt: no device answers a %d-byte write at %#x", mmio.ErrCannotEmulate, size, ipa)
}

// Exit implements interp.Hypervisor: L0's handling of an exception taken
// to EL2, and the firmware's answer to a PSCI SMC.
func (b *Nested) Exit(c *interp.CPU, e *cpu.Exception) {
	x := (*[31]uint64)(c.X[:31])
	exit, err := b.VCPU.PEExit(e, x, &c.SP[1])
	if err == nil && exit.Reason == nested.ExitSMC {
		err = b.smc(c)
	}
	if err != nil {
		b.err = err
		c.Stop(err.Error())
	}
}

// smc answers an SMC of L1 or L2 that L0 trapped for the firmware: PSCI
// as QEMU's firmware answers it; any other function ID gets
// NOT_SUPPORTED, as KVM answers an SMCCC call it does not implement.
func (b *Nested) smc(c *interp.CPU) error {
	if r, ok := psci(c.X[0], c.X[1]); ok {
		c.X[0] = r.x0
		b.Off, b.Reset = r.off, r.reset
		if r.stop != "" {
			c.Stop(r.stop)
			return nil
		}
	} else {
		c.X[0] = ^uint64(0)
	}
	return b.VCPU.CompleteSMC()
}

// LoadFile loads an ELF file (see Load).
func (b *Nested) LoadFile(path string) (*Image, error) { return loadFile(path, b.Load) }

// Load loads an AArch64 executable ELF into L1's memory (Board.Load's
// rules) and sets L1's PC to its entry point.
func (b *Nested) Load(r io.ReaderAt) (*Image, error) {
	img, err := loadELF(r, mem.Range{Base: RAMBase, Size: DefaultRAMSize}, func(pa mem.PA, data []byte, zero uint64) error {
		for i := range uint64(len(data)) + zero {
			var v uint64
			if i < uint64(len(data)) {
				v = uint64(data[i])
			}
			if err := b.write(pa+mem.PA(i), 1, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	enter(b.CPU, img)
	return img, nil
}

// write stores to L1's memory at L1 IPA pa, as the VMM writes guest
// memory (through the memslot's host mapping).
func (b *Nested) write(pa mem.PA, size int, v uint64) error {
	s := b.VM.Lookup(mem.IPA(pa))
	if s == nil {
		return fmt.Errorf("virt: %#x is outside RAM", uint64(pa))
	}
	return b.VM.AddressSpace().Write(s.HVAOf(mem.IPA(pa)), size, v)
}

// SetSymbol writes v at a symbol of img (Board.SetSymbol).
func (b *Nested) SetSymbol(img *Image, name string, v uint64) error {
	return setSymbol(img, name, func(pa mem.PA) bool { return b.write(pa, 8, v) == nil })
}

// ErrL0 wraps an exit that L0 could not handle.
var ErrL0 = errors.New("L0")

// Run executes until PSCI SYSTEM_OFF or SYSTEM_RESET (Board.Run's
// errors), or an exit L0 cannot handle (ErrL0).
func (b *Nested) Run(budget uint64) error {
	r := b.CPU.Run(budget)
	if b.err != nil {
		return fmt.Errorf("%w: %v", ErrL0, b.err)
	}
	if r == interp.Halted && !b.Off && !b.Reset {
		return fmt.Errorf("%w: %s", ErrL0, b.CPU.StopMessage())
	}
	return runResult(b.CPU, r, budget)
}
