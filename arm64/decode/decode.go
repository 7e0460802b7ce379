// Package decode takes register values and translation table descriptors
// apart field by field, with the architectural field names of DDI 0487 and
// a short meaning for each encoding: ESR_ELx, PAR_EL1, TCR_ELx, VTCR_EL2,
// SCTLR_ELx, HCR_EL2, MAIR_ELx, TTBRn_ELx, VTTBR_EL2, HPFAR_EL2, and
// stage-1 and stage-2 descriptors at a level and granule. `nestmmu decode`
// prints what it returns.
//
// Field positions are tables here, written from the register descriptions;
// the tests check them against the accessors of package sysreg and desc
// (and the builders of sysreg), so the three cannot drift apart.
package decode

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Field is one field of a decoded value.
type Field struct {
	Name    string `json:"name"`
	Hi      uint8  `json:"hi"`
	Lo      uint8  `json:"lo"`
	Value   uint64 `json:"value"`
	Meaning string `json:"meaning,omitempty"`
}

// Bits returns the field's position as the manual writes it: [5:0] or [7].
func (f Field) Bits() string {
	if f.Hi == f.Lo {
		return fmt.Sprintf("[%d]", f.Hi)
	}
	return fmt.Sprintf("[%d:%d]", f.Hi, f.Lo)
}

// Decoded is a value taken apart.
type Decoded struct {
	// Name says what was decoded: a register name, or e.g. "stage-1
	// descriptor, level 3, 4K granule".
	Name  string `json:"name"`
	Value uint64 `json:"value"`
	// Summary is one line on what the value means as a whole.
	Summary string  `json:"summary,omitempty"`
	Fields  []Field `json:"fields"`
	// Notes are caveats (layout choices, bits without a field here).
	Notes []string `json:"notes,omitempty"`
}

// Field returns the field called name, if present.
func (d Decoded) Field(name string) (Field, bool) {
	for _, f := range d.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// WriteText prints d, one field per line, most significant first.
func (d Decoded) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s = 0x%016x\n", d.Name, d.Value)
	if d.Summary != "" {
		fmt.Fprintf(w, "  %s\n", d.Summary)
	}
	nameW := 0
	for _, f := range d.Fields {
		nameW = max(nameW, len(f.Name))
	}
	for _, f := range d.Fields {
		val := fmt.Sprintf("%#x", f.Value)
		if f.Hi == f.Lo {
			val = fmt.Sprint(f.Value)
		}
		line := fmt.Sprintf("  %-8s %-*s = %-6s", f.Bits(), nameW, f.Name, val)
		if f.Meaning != "" {
			line += "  " + f.Meaning
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	for _, n := range d.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// spec describes one field of a layout; mean (optional) explains a value.
type spec struct {
	name   string
	hi, lo uint8
	mean   func(v uint64) string
}

func bits(v uint64, hi, lo uint8) uint64 { return v >> lo & (1<<(hi-lo+1) - 1) }

// apply decodes v with a layout: every field, most significant first, and
// a note for set bits no field covers.
func apply(name string, v uint64, layout []spec) Decoded {
	d := Decoded{Name: name, Value: v}
	var covered uint64
	for _, s := range layout {
		f := Field{Name: s.name, Hi: s.hi, Lo: s.lo, Value: bits(v, s.hi, s.lo)}
		if s.mean != nil {
			f.Meaning = s.mean(f.Value)
		}
		d.Fields = append(d.Fields, f)
		covered |= (1<<(s.hi-s.lo+1) - 1) << s.lo
	}
	sort.SliceStable(d.Fields, func(i, j int) bool { return d.Fields[i].Hi > d.Fields[j].Hi })
	if rest := v &^ covered; rest != 0 {
		d.Notes = append(d.Notes, fmt.Sprintf("bits %s set outside the fields listed (RES0, RES1, or fields not decoded here)", bitList(rest)))
	}
	return d
}

func bitList(v uint64) string {
	var s []string
	for b := 63; b >= 0; b-- {
		if v>>b&1 == 1 {
			s = append(s, fmt.Sprint(b))
		}
	}
	return strings.Join(s, ",")
}

// on is a meaning for one-bit fields: text when set.
func on(text string) func(uint64) string {
	return func(v uint64) string {
		if v != 0 {
			return text
		}
		return ""
	}
}

// choose is a meaning from a list indexed by the value.
func choose(names ...string) func(uint64) string {
	return func(v uint64) string {
		if v < uint64(len(names)) {
			return names[v]
		}
		return ""
	}
}

// Register decodes a register value by architectural name (case does not
// matter; ESR_ELx, SCTLR_ELx and TCR_ELx stand for their EL1 and EL2
// forms). e2h selects the layouts of TCR_EL2 and SCTLR_EL2 that apply with
// HCR_EL2.E2H=1.
func Register(name string, v uint64, e2h bool) (Decoded, error) {
	n := strings.ToUpper(name)
	switch n {
	case "TCR_EL1", "TCR_ELX":
		return tcr(n, v), nil
	case "TCR_EL2":
		if e2h {
			d := tcr(n, v)
			d.Notes = append(d.Notes, "HCR_EL2.E2H=1 layout (two VA ranges, as TCR_EL1)")
			return d, nil
		}
		return tcrEL2(v), nil
	case "VTCR_EL2":
		return vtcr(v), nil
	case "SCTLR_EL1", "SCTLR_ELX":
		return sctlr(n, v), nil
	case "SCTLR_EL2":
		d := sctlr(n, v)
		if !e2h {
			d.Notes = append(d.Notes, "shown with the SCTLR_EL1 layout, which SCTLR_EL2 has when HCR_EL2.{E2H,TGE}={1,1}; with E2H=0 the EL0 controls are RES0/RES1, and M, A, C, SA, I, WXN, EE and the memory-system fields keep their positions")
		}
		return d, nil
	case "HCR_EL2":
		return hcr(v), nil
	case "ESR_EL1", "ESR_EL2", "ESR_ELX":
		return esr(n, v), nil
	case "PAR_EL1":
		return par(v), nil
	case "MAIR_EL1", "MAIR_EL2":
		return mair(n, v), nil
	case "TTBR0_EL1", "TTBR1_EL1", "TTBR0_EL2", "TTBR1_EL2":
		return ttbr(n, v), nil
	case "VTTBR_EL2":
		return vttbr(v), nil
	case "HPFAR_EL2":
		return hpfar(v), nil
	}
	return Decoded{}, fmt.Errorf("cannot decode register %q (decodable: %s)", name, strings.Join(Registers(), " "))
}

// Registers lists the register names Register accepts.
func Registers() []string {
	return []string{"ESR_EL1", "ESR_EL2", "HCR_EL2", "HPFAR_EL2", "MAIR_EL1", "MAIR_EL2", "PAR_EL1",
		"SCTLR_EL1", "SCTLR_EL2", "TCR_EL1", "TCR_EL2", "TTBR0_EL1", "TTBR0_EL2", "TTBR1_EL1", "TTBR1_EL2",
		"VTCR_EL2", "VTTBR_EL2"}
}
