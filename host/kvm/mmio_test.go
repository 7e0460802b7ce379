package kvm

import (
	"errors"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/tlb"
	"github.com/nestmmu/nestmmu/host/hostmm"
	"github.com/nestmmu/nestmmu/mem"
)

// Instruction words (checked against arm64asm in TestEncodings).
const (
	insnLDP       = 0xa9400801 // LDP X1, X2, [X0]
	insnLDPPre    = 0xa9c10801 // LDP X1, X2, [X0,#16]!
	insnLDRPost   = 0xf8408401 // LDR X1, [X0],#8
	insnSTRRegOff = 0xf8226801 // STR X1, [X0,X2]
	insnLDXR      = 0xc85f7c01 // LDXR X1, [X0]
)

const (
	ramGPA  = 0x4000_0000
	mmioGPA = 0x9000_0000
)

// mmioEnv is a VM with 8 MiB of RAM at ramGPA, guest stage 1 off (VA = IPA)
// and the vCPU's PC at ramGPA+0x2000.
func mmioEnv(t *testing.T, cfg VMConfig) (*VM, *VCPU, hostmm.HVA) {
	h := newHost(t, Config{})
	if cfg.IPABits == 0 {
		cfg.IPABits = 40
	}
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hva := addMem(t, vm, 0, ramGPA, 8*mib, 0, 0)
	v := loadedVCPU(t, vm, 0, 0)
	t.Cleanup(func() { destroy(t, vm, v) })
	v.PE().PC = ramGPA + 0x2000
	return vm, v, hva
}

// putInsn writes the instruction word at the guest's PC (IPA = VA here)
// through the VMM's mapping, as a loader would.
func putInsn(t *testing.T, vm *VM, hva hostmm.HVA, off uint64, w uint32) {
	if err := vm.AddressSpace().Write(hva+hostmm.HVA(off), 4, uint64(w)); err != nil {
		t.Fatal(err)
	}
}

func TestMMIOSyndrome(t *testing.T) {
	vm, v, _ := mmioEnv(t, VMConfig{})
	// LDRSH W3, [X0]: ISV=1, SAS=1, SSE=1, SF=0, SRT=3.
	ex, err := v.Run(Access{VA: mmioGPA + 6, Size: 2, Rt: 3, SignExtend: true, W: true})
	if err != nil || ex.Reason != ExitMMIO {
		t.Fatalf("%v %v", ex.Reason, err)
	}
	m := ex.MMIO
	if m.IPA != mmioGPA+6 || m.Size != 2 || m.Write || m.Reg != 3 || !m.SignExtend || m.Sixtyfour || m.Pair {
		t.Fatalf("decoded %+v", m)
	}
	if _, err := v.Ldr(1, ramGPA, 8); !errors.Is(err, ErrPendingMMIO) {
		t.Fatalf("access with an MMIO pending: %v", err)
	}
	pc := v.PE().PC
	if err := v.CompleteMMIO([2]uint64{0xfffe}); err != nil {
		t.Fatal(err)
	}
	// Sign-extended to 32 bits, upper half of X3 zero (W destination).
	if v.Ctx().X[3] != 0xffff_fffe || v.PE().PC != pc+4 {
		t.Fatalf("X3 %#x PC %#x", v.Ctx().X[3], v.PE().PC)
	}
	// STR W4, [X0]: the data is the low 4 bytes of X4.
	v.Ctx().X[4] = 0x1122_3344_5566_7788
	ex, err = v.Run(Access{VA: mmioGPA + 0x10, Size: 4, Rt: 4, Write: true, W: true})
	if err != nil || ex.Reason != ExitMMIO || !ex.MMIO.Write || ex.MMIO.Data[0] != 0x5566_7788 || ex.MMIO.Size != 4 {
		t.Fatalf("%v %+v %v", ex.Reason, ex.MMIO, err)
	}
	_ = v.CompleteMMIO([2]uint64{})
	if s := vm.Stats(); s.MMIOExits != 2 || s.Maps != 0 {
		t.Errorf("%+v", s)
	}
}

type testBus struct {
	reads, writes []uint64
	val           uint64
}

func (b *testBus) Read(ipa uint64, size int) (uint64, error) {
	b.reads = append(b.reads, ipa)
	return b.val, nil
}

func (b *testBus) Write(ipa uint64, size int, v uint64) error {
	b.writes = append(b.writes, ipa, v)
	return nil
}

func TestMMIOInKernelBus(t *testing.T) {
	bus := &testBus{val: 0x42}
	vm, v, _ := mmioEnv(t, VMConfig{Bus: bus})
	ex, err := v.Ldr(5, mmioGPA, 4)
	if err != nil || ex.Reason != ExitNone || v.Ctx().X[5] != 0x42 {
		t.Fatalf("%v %v X5=%#x", ex.Reason, err, v.Ctx().X[5])
	}
	v.Ctx().X[6] = 9
	if ex, err := v.Str(6, mmioGPA+8, 8); err != nil || ex.Reason != ExitNone {
		t.Fatal(ex.Reason, err)
	}
	if len(bus.reads) != 1 || len(bus.writes) != 2 || bus.writes[0] != mmioGPA+8 || bus.writes[1] != 9 {
		t.Fatalf("bus saw %v %v", bus.reads, bus.writes)
	}
	if s := vm.Stats(); s.MMIOEmulated != 2 || s.MMIOExits != 0 {
		t.Errorf("%+v", s)
	}
}

// TestMMIOInstruction: ISV=0 accesses are decoded from the instruction at
// PC, read through the guest's translation from guest memory.
func TestMMIOInstruction(t *testing.T) {
	for _, c := range []struct {
		name     string
		word     uint32
		touch    bool // the guest read the code page before (stage 2 maps it)
		x0, x2   uint64
		va       uint64 // the first access's VA
		write    bool
		data     [2]uint64
		wantIPA  uint64
		wantPair bool
		check    func(t *testing.T, c *Context)
	}{
		{name: "LDP X1, X2, [X0] (code page not in stage 2)", word: insnLDP, x0: mmioGPA + 0x20, va: mmioGPA + 0x20,
			data: [2]uint64{0xa, 0xb}, wantIPA: mmioGPA + 0x20, wantPair: true,
			check: func(t *testing.T, c *Context) {
				if c.X[1] != 0xa || c.X[2] != 0xb || c.X[0] != mmioGPA+0x20 {
					t.Errorf("X0 %#x X1 %#x X2 %#x", c.X[0], c.X[1], c.X[2])
				}
			}},
		{name: "LDP X1, X2, [X0] (code page mapped: AT S12E1R)", word: insnLDP, touch: true, x0: mmioGPA, va: mmioGPA,
			data: [2]uint64{1, 2}, wantIPA: mmioGPA, wantPair: true,
			check: func(t *testing.T, c *Context) {
				if c.X[1] != 1 || c.X[2] != 2 {
					t.Errorf("X1 %#x X2 %#x", c.X[1], c.X[2])
				}
			}},
		{name: "LDP X1, X2, [X0,#16]! writes the base back", word: insnLDPPre, x0: mmioGPA, va: mmioGPA + 16,
			data: [2]uint64{3, 4}, wantIPA: mmioGPA + 16, wantPair: true,
			check: func(t *testing.T, c *Context) {
				if c.X[0] != mmioGPA+16 || c.X[1] != 3 || c.X[2] != 4 {
					t.Errorf("X0 %#x X1 %#x X2 %#x", c.X[0], c.X[1], c.X[2])
				}
			}},
		{name: "LDR X1, [X0],#8 post-index", word: insnLDRPost, x0: mmioGPA + 0x40, va: mmioGPA + 0x40,
			data: [2]uint64{0x77}, wantIPA: mmioGPA + 0x40,
			check: func(t *testing.T, c *Context) {
				if c.X[0] != mmioGPA+0x48 || c.X[1] != 0x77 {
					t.Errorf("X0 %#x X1 %#x", c.X[0], c.X[1])
				}
			}},
		{name: "STR X1, [X0,X2] register offset", word: insnSTRRegOff, x0: mmioGPA, x2: 0x100, va: mmioGPA + 0x100, write: true,
			wantIPA: mmioGPA + 0x100,
			check: func(t *testing.T, c *Context) {
				if c.X[0] != mmioGPA {
					t.Errorf("base changed: %#x", c.X[0])
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, v, hva := mmioEnv(t, VMConfig{})
			vm := v.vm
			putInsn(t, vm, hva, 0x2000, c.word)
			if c.touch {
				ldr(t, v, ramGPA+0x2000)
				v.PE().PC = ramGPA + 0x2000
			}
			ctx := v.Ctx()
			ctx.X[0], ctx.X[1], ctx.X[2] = c.x0, 0x5151, c.x2
			ex, err := v.Run(Access{VA: mem.VA(c.va), Size: 8, Rt: 1, Write: c.write, NoSyndrome: true})
			if err != nil || ex.Reason != ExitMMIO {
				t.Fatalf("%v %v %v", ex.Reason, ex.Exception, err)
			}
			m := ex.MMIO
			if m.IPA != c.wantIPA || m.Pair != c.wantPair || m.Write != c.write || m.Size != 8 {
				t.Fatalf("decoded %+v", m)
			}
			if c.write && m.Data[0] != 0x5151 {
				t.Fatalf("store data %#x", m.Data[0])
			}
			if c.wantPair && m.IPA2 != m.IPA+8 {
				t.Fatalf("IPA2 %#x", m.IPA2)
			}
			if err := v.CompleteMMIO(c.data); err != nil {
				t.Fatal(err)
			}
			if v.PE().PC != ramGPA+0x2004 {
				t.Errorf("PC %#x", v.PE().PC)
			}
			c.check(t, ctx)
		})
	}
}

// TestMMIOUnemulatable: an exclusive on MMIO cannot be emulated; the guest
// gets a synchronous External abort (DFSC 0b010000), from EL1 to EL1 so
// with EC 0x25.
func TestMMIOUnemulatable(t *testing.T) {
	vm, v, hva := mmioEnv(t, VMConfig{})
	putInsn(t, vm, hva, 0x2000, insnLDXR)
	v.Ctx().X[0] = mmioGPA + 8
	v.PE().VBAR[1] = 0x8_0000
	ex, err := v.Run(Access{VA: mmioGPA + 8, Size: 8, Rt: 1, NoSyndrome: true})
	if err != nil || ex.Reason != ExitException {
		t.Fatalf("%v %v", ex.Reason, err)
	}
	pe := v.PE()
	esr := pe.ESR[1]
	if esr.EC() != sysreg.ECDataAbortSame || esr.FSC() != 0x10 || !esr.IL() || pe.FAR[1] != mmioGPA+8 || pe.EL != 1 {
		t.Fatalf("ESR_EL1 %#x FAR_EL1 %#x EL %d", uint64(esr), pe.FAR[1], pe.EL)
	}
	if v.PE().PC != 0x8_0200 || v.PE().ELR[1] != ramGPA+0x2000 {
		t.Fatalf("PC %#x ELR %#x", v.PE().PC, v.PE().ELR[1])
	}
	if ex.Exception.ESR != esr || vm.Stats().Injected != 1 {
		t.Fatalf("exit %v", ex.Exception)
	}
	// A garbage instruction word (UDF) is not a load/store: abort as well.
	putInsn(t, vm, hva, 0x3000, 0)
	v.PE().PC = ramGPA + 0x3000
	if ex, err := v.Run(Access{VA: mmioGPA, Size: 8, Rt: 1, NoSyndrome: true}); err != nil || ex.Reason != ExitException {
		t.Fatalf("%v %v", ex.Reason, err)
	}
}

// TestMMIOStage1On: with the guest's stage 1 on, the faulting instruction
// is found through the guest's own tables (VA -> IPA), and the MMIO IPA is
// the stage-1 output.
func TestMMIOStage1On(t *testing.T) {
	vm, v, hva := mmioEnv(t, VMConfig{})
	// Level-1 table at IPA ramGPA+0x10_0000 (4K granule, 39-bit VA):
	// VA [0, 1G) -> IPA [1G, 2G) (RAM at 1G), VA [1G, 2G) -> IPA
	// [2G, 3G) (nothing there: MMIO). Block descriptors with AF set.
	as := vm.AddressSpace()
	tbl := hva + 0x10_0000
	if err := as.Write(tbl, 8, 0x4000_0000|1<<10|1); err != nil {
		t.Fatal(err)
	}
	if err := as.Write(tbl+8, 8, 0x8000_0000|1<<10|1); err != nil {
		t.Fatal(err)
	}
	s1On(v, ramGPA+0x10_0000)
	putInsn(t, vm, hva, 0x2000, insnLDP)
	v.PE().PC = 0x2000 // VA
	v.Ctx().X[0] = 0x4000_0030
	ex, err := v.Run(Access{VA: 0x4000_0030, Size: 8, Rt: 1, NoSyndrome: true})
	if err != nil || ex.Reason != ExitMMIO {
		t.Fatalf("%v %v %v", ex.Reason, ex.Exception, err)
	}
	if ex.MMIO.IPA != 0x8000_0030 || ex.MMIO.VA != 0x4000_0030 || !ex.MMIO.Pair {
		t.Fatalf("%+v", ex.MMIO)
	}
	_ = v.CompleteMMIO([2]uint64{5, 6})
	if v.Ctx().X[1] != 5 || v.Ctx().X[2] != 6 || v.PE().PC != 0x2004 {
		t.Fatal(v.Ctx().X[1], v.Ctx().X[2], v.PE().PC)
	}
	// A RAM access through stage 1 reads what the VMM wrote.
	if err := as.Write(hva+0x5008, 8, 0xfeed); err != nil {
		t.Fatal(err)
	}
	if got := ldr(t, v, 0x5008); got != 0xfeed {
		t.Fatalf("%#x", got)
	}
}

// FuzzMMIOInstruction: whatever word the guest leaves at PC, an ISV=0 MMIO
// fault ends in an MMIO exit, an injected abort, or an error: never a panic
// or a hang.
func FuzzMMIOInstruction(f *testing.F) {
	for _, w := range []uint32{insnLDP, insnLDPPre, insnLDRPost, insnSTRRegOff, insnLDXR, 0, 0xd503201f, 0xf9400001} {
		f.Add(w, uint64(mmioGPA), uint64(8))
	}
	f.Fuzz(func(t *testing.T, w uint32, x0, x2 uint64) {
		_, v, hva := mmioEnv(t, VMConfig{})
		putInsn(t, v.vm, hva, 0x2000, w)
		v.Ctx().X[0], v.Ctx().X[2] = x0, x2
		ex, err := v.Run(Access{VA: mmioGPA, Size: 8, Rt: 1, NoSyndrome: true})
		if err != nil {
			return
		}
		switch ex.Reason {
		case ExitMMIO:
			if ex.MMIO.IPA > mmioGPA || mmioGPA >= ex.MMIO.IPA+uint64(ex.MMIO.Len()) {
				t.Fatalf("access %+v does not contain the faulting IPA", ex.MMIO)
			}
			if err := v.CompleteMMIO([2]uint64{1, 2}); err != nil {
				t.Fatal(err)
			}
		case ExitException:
			if v.PE().ESR[1].FSC() != 0x10 {
				t.Fatalf("injected ESR %#x", uint64(v.PE().ESR[1]))
			}
		default:
			t.Fatalf("exit %v", ex.Reason)
		}
	})
}

// insnSTRPost is STR X1, [X0],#8 (post-index: no syndrome, ISV=0).
const insnSTRPost = 0xf8008401

// TestMMIODecodeRefetchesUnmappedCode is issue 14's item 1: with the
// guest's stage 1 on, an ISV=0 MMIO access needs the instruction, read
// through the guest's stage 1 and stage 2. When the level-3 table that
// translates PC (or the code page itself) is not mapped at stage 2 (swapped
// out by the host, or never touched by the guest), the hypervisor must not
// fail the VM: it fetches the instruction as the PE would, resolving those
// stage-2 faults, and the access then exits as MMIO with the right register
// and value.
func TestMMIODecodeRefetchesUnmappedCode(t *testing.T) {
	const (
		l1, l2, l3 = 0x10_0000, 0x10_1000, 0x10_2000 // table offsets in RAM
		code       = 0x2000                          // code page offset; PC = VA 0x2000
		dataVA     = 0x4000_0040                     // L1[1]: a 1G block to IPA 2G (MMIO)
	)
	for _, c := range []struct {
		name string
		prep func(t *testing.T, vm *VM, v *VCPU, hva hostmm.HVA)
	}{
		{"tables never touched by the guest", func(*testing.T, *VM, *VCPU, hostmm.HVA) {}},
		{"level-3 table and code swapped out", func(t *testing.T, vm *VM, v *VCPU, hva hostmm.HVA) {
			if _, _, err := v.Fetch(); err != nil { // the guest ran this code: all mapped
				t.Fatal(err)
			}
			for _, off := range []hostmm.HVA{l3, code} {
				if err := vm.AddressSpace().SwapOut(hva + off); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vm, v, hva := mmioEnv(t, VMConfig{})
			as := vm.AddressSpace()
			for _, w := range []struct{ off, val uint64 }{
				{l1, ramGPA + l2 | 3},                 // L1[0] -> L2 table
				{l1 + 8, 0x8000_0000 | 1<<10 | 1},     // L1[1]: 1G block at IPA 2G
				{l2, ramGPA + l3 | 3},                 // L2[0] -> L3 table
				{l3 + 2*8, ramGPA + code | 1<<10 | 3}, // L3[2]: the code page
			} {
				if err := as.Write(hva+hostmm.HVA(w.off), 8, w.val); err != nil {
					t.Fatal(err)
				}
			}
			putInsn(t, vm, hva, code, insnSTRPost)
			v.PE().Regs.MAIR_EL1 = 0xff
			s1On(v, ramGPA+l1)
			v.PE().PC = code
			c.prep(t, vm, v, hva)
			ctx := v.Ctx()
			ctx.X[0], ctx.X[1] = dataVA, 0xabcd
			ex, err := v.Run(Access{VA: dataVA, Size: 8, Rt: 1, Write: true, NoSyndrome: true})
			if err != nil || ex.Reason != ExitMMIO {
				t.Fatalf("ISV=0 MMIO store: exit %v %v, %v", ex.Reason, ex.Exception, err)
			}
			m := ex.MMIO
			if m.IPA != 0x8000_0040 || !m.Write || m.Size != 8 || m.Reg != 1 || m.Data[0] != 0xabcd {
				t.Fatalf("decoded %+v, want an 8-byte store of X1 = 0xabcd to IPA 0x80000040", m)
			}
			if err := v.CompleteMMIO([2]uint64{}); err != nil {
				t.Fatal(err)
			}
			if ctx.X[0] != dataVA+8 || v.PE().PC != code+4 {
				t.Fatalf("after completion X0 %#x PC %#x, want %#x and %#x", ctx.X[0], v.PE().PC, uint64(dataVA+8), uint64(code+4))
			}
			if vm.Stats().Refetches == 0 {
				t.Fatal("the instruction was read without a refetch: the case did not exercise it")
			}
		})
	}
}

// TestRegisterNumbers is issue 14's item 3: register numbers above 31 are
// refused with an error naming the value (they were accepted: a RAM load
// was dropped, a store wrote 0, and for MMIO the number was truncated to
// 5 bits, so Ldr(40) reported and completed X8). 31 is the zero register
// for a load or store's transfer register and for the Xt of MSR, MRS, TLBI
// and AT: a store of it writes 0, a load to it changes no register, in RAM
// and as MMIO alike.
func TestRegisterNumbers(t *testing.T) {
	vm, v, hva := mmioEnv(t, VMConfig{})
	ctx := v.Ctx()
	for i := range ctx.X {
		ctx.X[i] = 0x1000 + uint64(i)
	}
	before := ctx.X
	for _, c := range []struct {
		name string
		run  func() (Exit, error)
	}{
		{"LDR X40 from RAM", func() (Exit, error) { return v.Ldr(40, ramGPA, 8) }},
		{"STR X32 to RAM", func() (Exit, error) { return v.Str(32, ramGPA, 8) }},
		{"LDR X40 from MMIO", func() (Exit, error) { return v.Ldr(40, mmioGPA, 8) }},
		{"Run with Rt 255", func() (Exit, error) { return v.Run(Access{VA: mmioGPA, Size: 4, Rt: 255, Write: true}) }},
		{"MSR from X33", func() (Exit, error) { return v.MSR(cpu.MAIR_EL1, 33) }},
		{"MRS to X64", func() (Exit, error) { return v.MRS(cpu.MAIR_EL1, 64) }},
		{"TLBI with X32", func() (Exit, error) { return v.TLBI(tlb.OpVAE1, 32) }},
		{"AT with X40", func() (Exit, error) { return v.AT(at.S1E1R, 40) }},
	} {
		ex, err := c.run()
		if !errors.Is(err, ErrRegisterNumber) || ex.Reason != ExitNone {
			t.Errorf("%s: exit %v, %v; want ErrRegisterNumber", c.name, ex.Reason, err)
		} else if !strings.Contains(err.Error(), "number ") {
			t.Errorf("%s: %v does not name the number", c.name, err)
		}
	}
	if ctx.X != before || v.PE().PC != ramGPA+0x2000 {
		t.Fatalf("refused instructions changed the context: PC %#x", v.PE().PC)
	}
	// 31 is XZR.
	if err := vm.AddressSpace().Write(hva+0x100, 8, 0x77); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Str(31, ramGPA+0x100, 8); err != nil {
		t.Fatal(err)
	}
	if got, _ := vm.AddressSpace().Read(hva+0x100, 8); got != 0 {
		t.Errorf("STR XZR stored %#x", got)
	}
	if _, err := v.Ldr(31, ramGPA+0x108, 8); err != nil {
		t.Fatal(err)
	}
	ex, err := v.Ldr(31, mmioGPA, 8)
	if err != nil || ex.Reason != ExitMMIO || ex.MMIO.Reg != 31 {
		t.Fatalf("LDR XZR from MMIO: %v %+v %v", ex.Reason, ex.MMIO, err)
	}
	if err := v.CompleteMMIO([2]uint64{0xdead}); err != nil {
		t.Fatal(err)
	}
	ex, err = v.Str(31, mmioGPA+8, 8)
	if err != nil || ex.Reason != ExitMMIO || ex.MMIO.Data[0] != 0 || ex.MMIO.Reg != 31 {
		t.Fatalf("STR XZR to MMIO: %v %+v %v", ex.Reason, ex.MMIO, err)
	}
	_ = v.CompleteMMIO([2]uint64{})
	if _, err := v.MRS(cpu.MAIR_EL1, 31); err != nil {
		t.Fatal(err)
	}
	if _, err := v.MSR(cpu.MAIR_EL1, 31); err != nil || v.PE().Regs.MAIR_EL1 != 0 {
		t.Fatalf("MSR MAIR_EL1, XZR: MAIR %#x, %v", v.PE().Regs.MAIR_EL1, err)
	}
	if ctx.X != before {
		t.Errorf("loads to XZR changed a register: %v", ctx.X)
	}
}
