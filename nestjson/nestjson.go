// Package nestjson runs the nested form of the at-json contract
// (docs/AT-JSON.md, "Nested documents"): a document with the "nested" key
// describes a guest hypervisor (L1) at virtual EL2 — its memory, its
// registers, the AT instructions it executes — and accesses of its guest
// (L2). The document is run on the nested model: the host hypervisor L0
// (host/kvm) runs L1 in a VM (host/nested) with the memory in "ram" as
// memslots, L1's registers are written by L1's own MSRs, its ATs are
// trapped and emulated by L0, and L2's accesses run on the PE over the
// shadow stage 2. `nestmmu at` prints the PAR_EL1 L1 reads after each AT,
// which equal what the document gives without "nested" at a real EL2 with
// the ID registers L1 reads; `nestmmu explain` shows every step: L0's
// emulation of each AT, and for each L2 access the PE's walks (L2's stage
// 1 over the shadow), each shadow fault with L1's stage 2 walked in L1
// memory, L0's stage 2 for L1, the rule L0 applied, and the shadow entry
// it installed.
package nestjson

import (
	"errors"
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/host/kvm"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/mem"
)

// MaxL1Bytes bounds the L1 memory a document's words touch (in host pages).
const MaxL1Bytes = 512 << 20

// Machine is a nested document ready to run: L0, L1's VM and its vCPU at
// vEL2 with the document's memory and registers. Run it once.
type Machine struct {
	Doc *atjson.Document
	// Host, KVM, VM and VCPU are the model it runs on.
	Host *kvm.Host
	KVM  *kvm.VM
	VM   *nested.VM
	VCPU *nested.VCPU

	e2h bool
	l2  int // L2's EL while the vCPU runs it cleanly, else -1
	// emulated: L0 emulated the current operation (it trapped).
	emulated bool
}

func inputErr(path string, format string, a ...any) error {
	return &atjson.Error{Path: path, Msg: fmt.Sprintf(format, a...)}
}

// New builds the machine of a nested document (d.Nested set).
func New(d *atjson.Document) (*Machine, error) {
	n := d.Nested
	if n == nil {
		return nil, errors.New("nestjson: the document has no \"nested\" key")
	}
	id := vmsa.DefaultRegs()
	for _, r := range d.Registers {
		switch r.Name {
		case "ID_AA64MMFR0_EL1", "ID_AA64MMFR1_EL1", "ID_AA64MMFR2_EL1", "ID_AA64ISAR2_EL1":
			if err := regfile.Set(&id, r.Name, r.Value); err != nil {
				return nil, inputErr("regs."+r.Name, "%v", err)
			}
		}
	}
	pages := map[uint64]bool{}
	for _, w := range d.Words {
		pages[w.Addr/n.HostPage] = true
	}
	if uint64(len(pages))*n.HostPage > MaxL1Bytes {
		return nil, inputErr("mem", "the words touch %d host pages, more than the %d MiB a nested document may use", len(pages), MaxL1Bytes>>20)
	}
	memBytes := (uint64(len(pages))*n.HostPage*2 + 64<<20 + 2<<20 - 1) &^ (2<<20 - 1)
	h, err := kvm.NewHost(kvm.Config{CPUs: 1, MemBytes: memBytes, PageSize: n.HostPage, ID: &id})
	if err != nil {
		return nil, inputErr("nested", "the host: %v", err)
	}
	m := &Machine{Doc: d, Host: h, l2: -1}
	if err := m.build(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close releases the model.
func (m *Machine) Close() error {
	var errs []error
	if m.VCPU != nil {
		errs = append(errs, m.VCPU.PutCPU())
	}
	if m.VM != nil {
		errs = append(errs, m.VM.Close())
	}
	if m.KVM != nil {
		errs = append(errs, m.KVM.Destroy())
	}
	errs = append(errs, m.Host.Close())
	return errors.Join(errs...)
}

// regValue returns a document register (absent: 0).
func (m *Machine) regValue(name string) uint64 {
	for _, r := range m.Doc.Registers {
		if r.Name == name {
			return r.Value
		}
	}
	return 0
}

func (m *Machine) build() error {
	d, n := m.Doc, m.Doc.Nested
	vm, err := m.Host.NewVM(kvm.VMConfig{IPABits: n.L1IPABits})
	if err != nil {
		return inputErr("nested.l1_ipa_bits", "L0 cannot give L1 a %d-bit IPA space: %v", n.L1IPABits, err)
	}
	m.KVM = vm
	for i, r := range d.RAM {
		if _, err := vm.AddMemory(i, mem.IPA(r.Base), r.Size, 0, 0); err != nil {
			return inputErr(fmt.Sprintf("ram[%d]", i), "as a memslot of L1's VM: %v", err)
		}
	}
	as := vm.AddressSpace()
	for _, w := range d.Words {
		s := vm.Lookup(mem.IPA(w.Addr))
		if err := as.Write(s.HVAOf(mem.IPA(w.Addr)), 8, w.Value); err != nil {
			return inputErr("mem["+w.Key+"]", "writing L1 memory: %v", err)
		}
	}
	kv, err := vm.NewVCPU(0)
	if err != nil {
		return err
	}
	hcr := sysreg.HCR(m.regValue("HCR_EL2"))
	m.e2h = hcr.E2H()
	mode := nested.ModeNV2
	if n.Mode == "NV" {
		mode = nested.ModeNV
	}
	nvm, err := nested.New(vm, nested.Config{Mode: mode, E2H: m.e2h})
	if err != nil {
		return inputErr("nested.mode", "%v", err)
	}
	m.VM = nvm
	v, err := nvm.NewVCPU(kv, nil)
	if err != nil {
		return err
	}
	m.VCPU = v
	if err := v.LoadCPU(0); err != nil {
		return err
	}
	// L1 writes its registers: its HCR_EL2 and stage 2, its guest's EL1
	// registers (*_EL12 with E2H=1), its own EL2 registers, PAR_EL1.
	el1 := map[string]cpu.SysReg{"SCTLR_EL1": cpu.SCTLR_EL1, "TCR_EL1": cpu.TCR_EL1, "TTBR0_EL1": cpu.TTBR0_EL1,
		"TTBR1_EL1": cpu.TTBR1_EL1, "MAIR_EL1": cpu.MAIR_EL1}
	if m.e2h {
		el1 = map[string]cpu.SysReg{"SCTLR_EL1": cpu.SCTLR_EL12, "TCR_EL1": cpu.TCR_EL12, "TTBR0_EL1": cpu.TTBR0_EL12,
			"TTBR1_EL1": cpu.TTBR1_EL12, "MAIR_EL1": cpu.MAIR_EL12}
	}
	order := []string{"HCR_EL2", "VTCR_EL2", "VTTBR_EL2", "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "MAIR_EL1",
		"TCR_EL2", "TTBR0_EL2", "TTBR1_EL2", "MAIR_EL2", "SCTLR_EL2", "PAR_EL1"}
	for _, name := range order {
		r, ok := el1[name]
		if !ok {
			r, _ = cpu.ParseSysReg(name)
		}
		if err := v.MSR(r, m.regValue(name)); err != nil {
			return inputErr("regs."+name, "L1's MSR: %v", err)
		}
	}
	m.setPAN()
	return nil
}

// setPAN gives L1 the document's PSTATE.PAN.
func (m *Machine) setPAN() {
	pe := m.VCPU.PE()
	pe.PAN = m.Doc.PSTATE.PAN
	pe.RegsChanged()
}

// Events receives what happens while a machine runs (Explain's printer).
type Events interface {
	nested.Observer
	// Op follows operation i (L1's AT) with its outcome.
	Op(i int, op atjson.Op, res at.Result)
	// Access precedes access i; AccessDone follows it.
	Access(i int, a atjson.Access)
	AccessDone(i int, a atjson.Access, out AccessOutcome)
}

// AccessOutcome is how an L2 access ended.
type AccessOutcome struct {
	Exit nested.Exit
	// Value is what a read loaded or a fetch fetched.
	Value uint64
	// ESR, FAR and HPFAR are what L1 reads after ExitVEL2.
	ESR, FAR, HPFAR uint64
}

// Run runs the operations (L1's ATs), then the accesses (L2's), and
// returns the output document (the operations' results and the watched
// words afterwards). ev, when not nil, receives every event. An error is a
// state the model cannot run (it names the operation or access).
func (m *Machine) Run(ev Events) (atjson.Output, []at.Result, error) {
	d := m.Doc
	v := m.VCPU
	if ev != nil {
		v.SetObserver(ev)
		defer v.SetObserver(nil)
	}
	out := atjson.Output{Results: make([]atjson.Result, 0, len(d.Ops)), Mem: map[string]string{}}
	rec := &atRecorder{}
	var all []at.Result
	for i, op := range d.Ops {
		rec.got = false
		v.SetObserver(teeAT{rec, ev})
		m.setPAN()
		_, err := v.AT(op.Op, mem.VA(op.VA))
		m.emulated = rec.got
		res, err := m.opResult(op, rec, err)
		if err != nil {
			return out, all, inputErr(fmt.Sprintf("ops[%d]", i), "the nested model cannot run AT %v %#x: %v", op.Op, op.VA, err)
		}
		all = append(all, res)
		out.Results = append(out.Results, atjson.ResultOf(op, res))
		if ev != nil {
			ev.Op(i, op, res)
		}
	}
	if ev != nil {
		v.SetObserver(ev)
	} else {
		v.SetObserver(nil)
	}
	for i, a := range d.Nested.Accesses {
		if ev != nil {
			ev.Access(i, a)
		}
		o, err := m.access(a)
		if err != nil {
			return out, all, inputErr(fmt.Sprintf("nested.accesses[%d]", i), "%v", err)
		}
		if ev != nil {
			ev.AccessDone(i, a, o)
		}
	}
	for _, a := range d.Watch {
		out.Mem[fmt.Sprintf("0x%x", a)] = atjson.Hex(m.Word(a))
	}
	return out, all, nil
}

// Word reads L1 memory at an L1 IPA (0 outside RAM).
func (m *Machine) Word(a uint64) uint64 {
	s := m.KVM.Lookup(mem.IPA(a))
	if s == nil {
		return 0
	}
	x, _ := m.KVM.AddressSpace().Read(s.HVAOf(mem.IPA(a)), 8)
	return x
}

// atRecorder keeps the emulated AT of the current operation.
type atRecorder struct {
	got bool
	ev  nested.EmulatedAT
}

// teeAT records emulated ATs and passes every event on.
type teeAT struct {
	rec *atRecorder
	ev  Events
}

func (t teeAT) Executed(e cpu.Exception) {
	if t.ev != nil {
		t.ev.Executed(e)
	}
}

func (t teeAT) ShadowFault(f *nested.ShadowFault) {
	if t.ev != nil {
		t.ev.ShadowFault(f)
	}
}

func (t teeAT) EmulatedAT(a *nested.EmulatedAT) {
	t.rec.got, t.rec.ev = true, *a
	if t.ev != nil {
		t.ev.EmulatedAT(a)
	}
}

// opResult is the outcome of L1's AT: the emulation's, or, for an AT the
// PE made UNDEFINED before it could trap (a feature L1's PE lacks), the
// exception the rules give on L1's registers.
func (m *Machine) opResult(op atjson.Op, rec *atRecorder, err error) (at.Result, error) {
	var ge *nested.GuestException
	switch {
	case rec.got:
		return rec.ev.Result, nil
	case errors.As(err, &ge) && ge.Exception.Kind == cpu.Undefined:
		r := m.VCPU.VirtualRegs()
		_, x, taken := at.Decide(&r, at.PSTATE{EL: 2, PAN: m.Doc.PSTATE.PAN}, op.Op, 0)
		if !taken {
			x = at.Exception{Kind: at.Undefined, TargetEL: 2, ESR: ge.Exception.ESR, Reason: "at vEL2", Op: op.Op, EL: 2}
		}
		return at.Result{PAR: m.VCPU.PE().PAR, Taken: true, Exception: x}, nil
	case err != nil:
		return at.Result{}, err
	}
	return at.Result{}, errors.New("the AT was neither emulated nor took an exception")
}

// access runs one L2 access: L2 entered at the access's EL (L1's ERET
// with SPSR_EL2 EL1h or EL0t) unless it already runs there cleanly.
func (m *Machine) access(a atjson.Access) (AccessOutcome, error) {
	v := m.VCPU
	if v.InL2() && m.l2 != int(a.EL) {
		if err := v.InterruptToVEL2(); err != nil {
			return AccessOutcome{}, err
		}
	}
	if !v.InL2() {
		if sysreg.HCR(m.regValue("HCR_EL2")).TGE() {
			return AccessOutcome{}, errors.New("L2 cannot run: the guest hypervisor's HCR_EL2.TGE is 1 (an ERET to EL1 or EL0 would be illegal)")
		}
		spsr := uint64(0b0101) // EL1h
		if a.EL == 0 {
			spsr = 0 // EL0t
		}
		for _, s := range []struct {
			r cpu.SysReg
			v uint64
		}{{cpu.ELR_EL2, 0}, {cpu.SPSR_EL2, spsr}} {
			if err := v.MSR(s.r, s.v); err != nil {
				return AccessOutcome{}, err
			}
		}
		if err := v.ERET(); err != nil {
			return AccessOutcome{}, err
		}
		m.l2 = int(a.EL)
	}
	var o AccessOutcome
	var err error
	x := &v.KVM().Ctx().X
	switch a.Kind {
	case "read":
		o.Exit, err = v.RunL2(kvm.Access{VA: mem.VA(a.VA), Size: 8, Rt: 1})
		o.Value = x[1]
	case "write":
		x[1] = a.Value
		o.Exit, err = v.RunL2(kvm.Access{VA: mem.VA(a.VA), Size: 8, Write: true, Rt: 1})
	default:
		var w uint32
		w, o.Exit, err = v.RunL2Fetch(mem.VA(a.VA))
		o.Value = uint64(w)
	}
	if err != nil {
		return o, err
	}
	switch o.Exit.Reason {
	case nested.ExitMMIO:
		err = v.CompleteMMIO([2]uint64{})
	case nested.ExitL2Exception:
		m.l2 = -1 // L2 is at its vector: enter it afresh
	case nested.ExitVEL2:
		m.l2 = -1
		for _, r := range []struct {
			reg cpu.SysReg
			to  *uint64
		}{{cpu.ESR_EL2, &o.ESR}, {cpu.FAR_EL2, &o.FAR}, {cpu.HPFAR_EL2, &o.HPFAR}} {
			if *r.to, err = v.MRS(r.reg); err != nil {
				return o, err
			}
		}
	}
	return o, err
}

// Encode runs the machine and writes the output document as `nestmmu at`
// does for any document (atjson.Output, indented by two spaces).
func (m *Machine) Encode(w io.Writer) error {
	out, _, err := m.Run(nil)
	if err != nil {
		return err
	}
	return atjson.WriteOutput(w, out)
}
