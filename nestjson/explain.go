package nestjson

import (
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/cpu"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/host/nested"
	"github.com/nestmmu/nestmmu/internal/textfmt"
	"github.com/nestmmu/nestmmu/mem"
)

// Explain runs the machine and writes every step for people: the
// configuration, L0's emulation of each of L1's ATs (the regime it means,
// the path that answered, the software walk in L1 memory, PAR_EL1 or the
// exception), and for each L2 access every execution on the PE (L2's stage
// 1 and the shadow stage 2, step by step), each shadow fault (L1's stage 2
// walked in L1 memory, L0's stage 2 for the L1 IPA, the rule L0 applied,
// the shadow entry) and how the access ended. The PE's TLB is bypassed so
// that every execution walks.
func (m *Machine) Explain(w io.Writer) (atjson.Output, error) {
	p := &printer{m: m, w: w}
	p.header()
	pe := m.VCPU.PE()
	t := pe.TLB
	pe.TLB = nil
	pe.Walker.Trace = &vmsa.Trace{}
	defer func() { pe.TLB, pe.Walker.Trace = t, nil }()
	out, _, err := m.Run(p)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return out, err
	}
	if len(m.Doc.Watch) > 0 {
		fmt.Fprintf(w, "watched memory (L1 IPAs):\n")
		for _, a := range m.Doc.Watch {
			fmt.Fprintf(w, "  %#x = %s\n", a, out.Mem[fmt.Sprintf("0x%x", a)])
		}
	}
	return out, nil
}

// printer is the Events of Explain.
type printer struct {
	m     *Machine
	w     io.Writer
	tries int
	inAcc bool
	// ops counts the operations done; opShown says the current one's
	// header is printed.
	ops     int
	opShown bool
}

func (p *printer) f(format string, a ...any) { fmt.Fprintf(p.w, format, a...) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (p *printer) header() {
	m := p.m
	n := m.Doc.Nested
	ids := m.VM.IDRegs()
	p.f("nested: L1 (the guest hypervisor) at vEL2 with E2H=%d on FEAT_%s; L0 gives its VM a %d-bit IPA space with %s host pages\n",
		b2i(m.e2h), n.Mode, n.L1IPABits, textfmt.Size(n.HostPage))
	p.f("  L1 reads ID_AA64MMFR0_EL1 %#x, ID_AA64MMFR1_EL1 %#x, ID_AA64MMFR2_EL1 %#x\n", uint64(ids.MMFR0), uint64(ids.MMFR1), uint64(ids.MMFR2))
	p.f("  (addresses: L2 IPA is L2's intermediate physical space, L1 IPA L1's, PA the host's)\n\n")
}

// l1Step describes a descriptor read of a software walk over L1 memory,
// whose "physical" addresses are L1 IPAs.
func l1Step(s vmsa.Step) string {
	d := atjson.DescribeStep(s)
	d = strings.Replace(d, "= PA ", "= L1 IPA ", 1)
	return strings.Replace(d, "at PA ", "at L1 IPA ", 1)
}

func (p *printer) opHeader(op at.Op, va uint64) {
	if !p.opShown {
		p.f("op %d: AT %v, VA %#x at vEL2 (PAN=%d)\n", p.ops, op, va, b2i(p.m.Doc.PSTATE.PAN))
		p.opShown = true
	}
}

func (p *printer) Op(i int, op atjson.Op, res at.Result) {
	p.opHeader(op.Op, op.VA)
	if !p.m.emulated {
		p.f("  the PE takes it at vEL2 before any trap (a feature L1's PE lacks)\n")
	}
	p.f("  %s\n\n", resultText(res))
	p.ops++
	p.opShown = false
}

func resultText(res at.Result) string {
	if res.Taken {
		return "exception: " + res.Exception.String()
	}
	if f := res.Fault(); f.IsFault() || res.PAR.F() {
		return fmt.Sprintf("PAR_EL1 = %s (%s): %s fault", atjson.Hex(uint64(res.PAR)), atjson.DescribePAR(res.PAR), f)
	}
	return fmt.Sprintf("PAR_EL1 = %s (%s)", atjson.Hex(uint64(res.PAR)), atjson.DescribePAR(res.PAR))
}

func (p *printer) EmulatedAT(a *nested.EmulatedAT) {
	p.opHeader(a.Op, a.VA)
	p.f("  trapped to L0 (HCR_EL2.NV or HCR_EL2.AT) and emulated\n")
	whose := "L2's, in the VNCR page"
	if a.Plan.Regime != vmsa.RegimeEL10 {
		whose = "L1's own, in the PE's EL1 registers while it runs"
	}
	stages := "stage 1 only"
	if a.Plan.Stage12 {
		stages = "stages 1 and 2"
	}
	p.f("  regime %v (its registers %s), %s\n", a.Plan.Regime, whose, stages)
	switch {
	case a.Fast && a.Shadow:
		p.f("  fast path: the real AT on the PE with the regime's registers, its tables read through the shadow stage 2\n")
	case a.Fast:
		p.f("  fast path: the real AT on the PE with the regime's registers, its tables read through L0's stage 2 for L1\n")
	default:
		p.f("  software walk: the instruction on L1's registers over L1 memory (as at a real EL2)\n")
	}
	if a.Fast && len(a.Walk) > 0 {
		p.f("  stage 2 by a software walk of L1's stage 2:\n")
	}
	for _, s := range a.Walk {
		p.f("    %s\n", l1Step(s))
	}
}

func (p *printer) Access(i int, a atjson.Access) {
	p.tries = 0
	p.inAcc = true
	what := map[string]string{"read": "read (8 bytes)", "write": fmt.Sprintf("write of %#x (8 bytes)", a.Value), "fetch": "instruction fetch"}[a.Kind]
	p.f("access %d: L2 %s at VA %#x at EL%d\n", i, what, a.VA, a.EL)
}

func (p *printer) Executed(e cpu.Exception) {
	if !p.inAcc {
		return
	}
	p.tries++
	pe := p.m.VCPU.PE()
	p.f("  execution %d: the PE translates the VA through L2's stage 1 and the shadow stage 2:\n", p.tries)
	for _, s := range pe.Walker.Trace.Steps {
		st := atjson.DescribeStep(s)
		switch {
		case s.Stage == 1:
			st = "L2 " + strings.Replace(st, "at IPA ", "at L2 IPA ", 1)
		default:
			st = "shadow " + st
		}
		p.f("    %s\n", st)
	}
	if len(pe.Walker.Trace.Steps) == 0 {
		p.f("    (no walk: L2's stage 1 and stage 2 were not consulted)\n")
	}
	pe.Walker.Trace.Steps = pe.Walker.Trace.Steps[:0]
	switch {
	case !e.Taken():
		p.f("    -> completed\n")
	case e.TargetEL == 2:
		p.f("    -> %v to L0: ESR_EL2 %#x (%v), FAR %#x\n", e.Kind, uint64(e.ESR), e.Fault, uint64(e.FAR))
	default:
		p.f("    -> L2 takes %v to its EL1: ESR_EL1 %#x (%v), FAR %#x\n", e.Kind, uint64(e.ESR), e.Fault, uint64(e.FAR))
	}
}

func permsText(x vmsa.Perms) string {
	var parts []string
	for _, f := range []struct {
		ok   bool
		name string
	}{{x.R1, "R"}, {x.W1, "W"}, {x.X0, "X(EL0)"}, {x.X1, "X(EL1)"}} {
		if f.ok {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "no access"
	}
	return strings.Join(parts, " ")
}

func (p *printer) ShadowFault(f *nested.ShadowFault) {
	kind := "read"
	switch f.Access.Kind {
	case vmsa.Write:
		kind = "write"
	case vmsa.Fetch:
		kind = "fetch"
	}
	on, ipa, l1 := "L2's access", uint64(f.IPA), uint64(f.Guest.L1)
	if f.Exception.ESR.S1PTW() {
		// HPFAR_EL2 gives the page of the stage-1 table (FAR is the VA).
		on, ipa, l1 = "L2's stage-1 walk, its table page", ipa&^0xfff, l1&^0xfff
	}
	p.f("  shadow fault at L2 IPA %#x (%s, %s at EL%d): %v\n", ipa, on, kind, f.Access.EL, f.Exception.Fault)
	switch f.Rule {
	case nested.RuleRetry:
		p.f("    nothing to resolve (L2's stage 1 changed, or L0's fault path raced an invalidation): executed again\n")
		return
	case nested.RuleYoung:
		p.f("    the shadow leaf was made old by L0's aging: its Access flag is set\n")
		p.shadowEntry(f)
		return
	}
	g := f.Guest
	if g.Level == -2 {
		p.f("    L1's stage 2 is off (its HCR_EL2.VM=0): L1 IPA = L2 IPA\n")
	} else {
		p.f("    L1's stage 2, walked in L1 memory (VTCR_EL2, VTTBR_EL2 of L1):\n")
		for _, s := range f.GuestWalk {
			p.f("      %s\n", l1Step(s))
		}
		if g.Fault.IsFault() {
			p.f("      => %v fault\n", g.Fault)
		} else {
			p.f("      => L1 IPA %#x: a %s leaf at level %d, %s%s\n", l1, textfmt.Size(g.Size), g.Level, permsText(g.Perms), map[bool]string{true: ", Device"}[g.Device])
		}
	}
	switch f.Rule {
	case nested.RuleForward:
		p.f("    rule (a): L1's stage 2 faults: injected into vEL2 as L1's hardware would report it (the syndrome with L1's fault status code %#02x; HPFAR_EL2 the L2 IPA unless UNKNOWN)\n", g.Fault.FSC())
		p.f("    (this run has no L1 code: the vCPU stays at vEL2)\n")
		return
	case nested.RuleMMIO:
		p.f("    rule (c): no memslot holds L1 IPA %#x: an MMIO access for L0's VMM (completed with 0)\n", l1)
		return
	case nested.RuleExternal:
		p.f("    L1 has no memory at L1 IPA %#x: L2 takes a synchronous External abort on its %s\n", l1,
			map[bool]string{true: "stage-1 walk", false: "fetch"}[f.Exception.ESR.S1PTW()])
		return
	}
	p.hostStage2(mem.IPA(l1))
	p.f("    rule (b)+(d): L1 IPA %#x goes through L0's fault path (the host page faulted in through the memslot), then the shadow entry:\n", l1)
	p.shadowEntry(f)
}

// hostStage2 shows L0's stage 2 for L1 at an L1 IPA (after the fault path).
func (p *printer) hostStage2(l1 mem.IPA) {
	m := p.m
	r := m.Host.ID()
	r.HCR_EL2 = sysreg.HCR_VM | sysreg.HCR_RW
	m.KVM.Stage2().ApplyRegs(&r)
	tr := &vmsa.Trace{}
	w := vmsa.Walker{Mem: m.Host.Arena(), Trace: tr}
	t := w.TranslateS2(&r, l1, vmsa.Access{Kind: vmsa.Read, EL: 1})
	p.f("    L0's stage 2 for L1 (its VTTBR_EL2 %#x) at L1 IPA %#x:\n", uint64(r.VTTBR_EL2), uint64(l1))
	for _, s := range tr.Steps {
		p.f("      %s\n", strings.Replace(atjson.DescribeStep(s), "stage 2 ", "L0 stage 2 ", 1))
	}
	if t.Fault.IsFault() {
		p.f("      => not mapped (%v): L1 itself has not touched the page; L0 does not need it there to build the shadow\n", t.Fault)
	} else {
		p.f("      => PA %#x (a %s leaf at level %d)\n", uint64(t.OA), textfmt.Size(1<<t.S2BlockBits), t.S2Level)
	}
}

func (p *printer) shadowEntry(f *nested.ShadowFault) {
	e := f.Shadow
	if !e.Valid {
		p.f("      (no shadow leaf maps L2 IPA %#x now)\n", uint64(f.IPA))
		return
	}
	typ := "Normal"
	if e.Device {
		typ = "Device"
	}
	kept := "no L1 level kept"
	if e.HasGuestLevel {
		kept = fmt.Sprintf("L1's leaf level %d kept in descriptor bits [58:55]", e.GuestLevel)
	}
	p.f("      L2 IPA %#x +%s -> PA %#x (shadow level %d, descriptor %#016x): %s, %s, %s\n",
		uint64(e.Base), textfmt.Size(e.Size), uint64(e.PA), e.Level, e.Desc, permsText(e.Perms), typ, kept)
}

func (p *printer) AccessDone(i int, a atjson.Access, o AccessOutcome) {
	p.inAcc = false
	switch o.Exit.Reason {
	case nested.ExitNone:
		switch a.Kind {
		case "read":
			p.f("  => the read completed: %#x\n\n", o.Value)
		case "write":
			p.f("  => the write completed\n\n")
		default:
			p.f("  => the fetch completed: instruction word %#08x\n\n", o.Value)
		}
	case nested.ExitMMIO:
		p.f("  => MMIO exit to L0's VMM at L1 IPA %#x (completed with 0)\n\n", uint64(o.Exit.MMIO.IPA))
	case nested.ExitL2Exception:
		x := o.Exit.Exception
		p.f("  => L2 takes %v to its EL1: ESR_EL1 %#x, FAR_EL1 %#x\n\n", x.Kind, uint64(x.ESR), uint64(x.FAR))
	case nested.ExitVEL2:
		unk := ""
		if o.HPFAR == nested.HPFARUnknown {
			unk = " (UNKNOWN: a Permission fault not on a stage-1 walk)"
		}
		p.f("  => L1 takes the fault at vEL2: ESR_EL2 %#x, FAR_EL2 %#x, HPFAR_EL2 %#x%s\n\n", o.ESR, o.FAR, o.HPFAR, unk)
	}
}
