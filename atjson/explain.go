package atjson

import (
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// Explain runs the machine and writes every walk step by step for people:
// each descriptor read (stage, level, address, value and decoding), why
// the walk stopped, and the resulting PAR_EL1 or exception.
func (m *Machine) Explain(w io.Writer) Output {
	out, _ := m.Run(func(i int, op Op, res at.Result, tr *vmsa.Trace) {
		fmt.Fprintf(w, "op %d: AT %s, VA %#x (EL%d, PAN=%d)\n", i, op.Op, op.VA, m.PSTATE.EL, b2i(m.PSTATE.PAN))
		if res.Taken && len(tr.Steps) == 0 && res.Exception.Kind != at.DataAbort {
			fmt.Fprintf(w, "  exception: %s\n\n", res.Exception)
			return
		}
		stages := "stage 1 only"
		if res.Stage12 {
			stages = "stages 1 and 2"
		}
		fmt.Fprintf(w, "  regime %s, %s\n", res.Regime, stages)
		for _, s := range tr.Steps {
			fmt.Fprintf(w, "  %s\n", DescribeStep(s))
		}
		t := res.Translation
		if t.Level == -2 && !t.Fault.IsFault() {
			fmt.Fprintf(w, "  stage 1 MMU off: flat mapping\n")
		}
		switch {
		case res.Taken:
			fmt.Fprintf(w, "  stopped: %s\n  exception: %s\n\n", t.Fault, res.Exception)
		case t.Fault.IsFault():
			fmt.Fprintf(w, "  stopped: %s fault\n  PAR_EL1 = %s (F=1 FST=%#02x PTW=%d S=%d)\n\n", t.Fault, Hex(uint64(res.PAR)),
				res.PAR.FST(), b2i(res.PAR.PTW()), b2i(res.PAR.S()))
		default:
			what := "output address"
			if t.S2 {
				what = fmt.Sprintf("IPA %#x -> PA", t.IPA)
			}
			fmt.Fprintf(w, "  translated: %s %#x (leaf level %d, %s)\n", what, t.OA, t.Level, sizeName(t.BlockBits))
			fmt.Fprintf(w, "  PAR_EL1 = %s (PA %#x, ATTR %#02x, SH %s)\n\n", Hex(uint64(res.PAR)), res.PAR.PA(),
				res.PAR.ATTR(), shName(res.PAR.SH()))
		}
	})
	if len(m.Watch) > 0 {
		fmt.Fprintf(w, "watched memory:\n")
		for _, a := range m.Watch {
			fmt.Fprintf(w, "  %#x = %s\n", a, out.Mem[fmt.Sprintf("0x%x", a)])
		}
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sizeName(bits uint8) string {
	if bits == 0 {
		return "flat"
	}
	return textfmt.Size(1 << bits)
}

func shName(sh uint) string {
	return [...]string{"non-shareable", "reserved(01)", "outer shareable", "inner shareable"}[sh&3]
}

// DescribeStep describes one descriptor read of a walk for people: stage,
// level, address, value, kind, and the descriptor's fields.
func DescribeStep(s vmsa.Step) string {
	var b strings.Builder
	where := fmt.Sprintf("stage %d level %d", s.Stage, s.Level)
	if s.ForS1Walk {
		where += " (for the stage-1 table)"
	}
	if s.Stage == 1 && s.Addr != s.PA {
		fmt.Fprintf(&b, "%s: descriptor at IPA %#x = PA %#x", where, s.Addr, s.PA)
	} else {
		fmt.Fprintf(&b, "%s: descriptor at PA %#x", where, s.PA)
	}
	if s.ReadFailed {
		b.WriteString(": read outside RAM (synchronous external abort)")
		return b.String()
	}
	fmt.Fprintf(&b, " = %#016x: %s", s.Desc, s.Kind)
	switch s.Kind {
	case desc.Table:
		fmt.Fprintf(&b, " -> next table %#x", s.OA)
		if s.Stage == 1 {
			d := desc.S1(s.Desc)
			fmt.Fprintf(&b, " [APTable=%02b UXNTable=%d PXNTable=%d NSTable=%d]", d.APTable(), b2i(d.UXNTable()), b2i(d.PXNTable()), b2i(d.NSTable()))
		}
	case desc.Block, desc.Page:
		fmt.Fprintf(&b, " -> OA %#x", s.OA)
		if s.Stage == 1 {
			d := desc.S1(s.Desc)
			fmt.Fprintf(&b, " [AttrIndx=%d AP=%02b SH=%02b AF=%d nG=%d DBM=%d Contig=%d PXN=%d UXN=%d]",
				d.AttrIndx(), d.AP(), d.SH(), b2i(d.AF()), b2i(d.NG()), b2i(d.DBM()), b2i(d.Contiguous()), b2i(d.PXN()), b2i(d.UXN()))
		} else {
			d := desc.S2(s.Desc)
			fmt.Fprintf(&b, " [MemAttr=%04b S2AP=%02b SH=%02b AF=%d DBM=%d Contig=%d XN=%02b]",
				d.MemAttr(), d.S2AP(), d.SH(), b2i(d.AF()), b2i(d.DBM()), b2i(d.Contiguous()), d.XN())
		}
	}
	return b.String()
}

// DescribePAR decodes a PAR_EL1 value in one line.
func DescribePAR(p sysreg.PAR) string {
	if p.F() {
		return fmt.Sprintf("F=1 FST=%#02x PTW=%d S=%d", p.FST(), b2i(p.PTW()), b2i(p.S()))
	}
	return fmt.Sprintf("PA=%#x ATTR=%#02x SH=%s NS=%d", p.PA(), p.ATTR(), shName(p.SH()), b2i(p.NS()))
}
