package ptdump

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// PermString shows the table's permissions (see Perms).
func (t *Table) PermString(p vmsa.Perms) string {
	if t.Stage == 2 {
		return Perms(p, "", true)
	}
	return Perms(p, t.Regime, false)
}

// Perms shows permissions as r/w/x per exception level: "EL1 rw- EL0 ---"
// for the EL1&0 regime ("EL2 ... EL0 ..." for EL2&0), "EL2 rwx" for EL2,
// and "rw xEL1 xEL0" (read, write, execute at EL1 and at EL0) for stage 2
// alone. regime is a vmsa.Regime's String.
func Perms(p vmsa.Perms, regime string, stage2 bool) string {
	rwx := func(r, w, x bool) string {
		b := []byte("---")
		if r {
			b[0] = 'r'
		}
		if w {
			b[1] = 'w'
		}
		if x {
			b[2] = 'x'
		}
		return string(b)
	}
	switch {
	case stage2:
		x := func(ok bool, el string) string {
			if ok {
				return "x" + el
			}
			return strings.Repeat("-", 1+len(el))
		}
		return fmt.Sprintf("%s %s %s", rwx(p.R1, p.W1, false)[:2], x(p.X1, "EL1"), x(p.X0, "EL0"))
	case regime == vmsa.RegimeEL2.String():
		return "EL2 " + rwx(p.R1, p.W1, p.X1)
	}
	priv := "EL1"
	if regime == vmsa.RegimeEL20.String() {
		priv = "EL2"
	}
	return fmt.Sprintf("%s %s EL0 %s", priv, rwx(p.R1, p.W1, p.X1), rwx(p.R0, p.W0, p.X0))
}

// AttrString shows memory attributes: "Device-nGnRE" or "Normal
// WB/WB ISH" (inner/outer cacheability, shareability).
func AttrString(a vmsa.MemAttrs) string {
	if a.Type == vmsa.Device {
		return "Device-" + [...]string{"nGnRnE", "nGnRE", "nGRE", "GRE"}[a.Device&3]
	}
	c := func(x vmsa.CacheAttrs) string {
		s := [...]string{"NC", "WT", "WB"}[x.Attrs]
		if x.Attrs != vmsa.NonCacheable && x.Transient {
			s += "t"
		}
		return s
	}
	sh := map[uint8]string{vmsa.NonShareable: "NSH", vmsa.OuterShareable: "OSH", vmsa.InnerShareable: "ISH"}[a.Shareability]
	if sh == "" {
		sh = fmt.Sprintf("SH%02b", a.Shareability)
	}
	return fmt.Sprintf("Normal %s/%s %s", c(a.Inner), c(a.Outer), sh)
}

// Flags lists the leaf descriptor's flags worth seeing: AF, nG, DBM,
// Contiguous, NS (stage 1), the AttrIndx (stage 1), and software bits.
func (t *Table) Flags(r Range) []string {
	var f []string
	d := r.Desc
	if t.Stage == 1 {
		s := desc.S1(d)
		f = append(f, fmt.Sprintf("Attr%d", s.AttrIndx()))
		if s.NG() {
			f = append(f, "nG")
		}
		if s.NS() {
			f = append(f, "NS")
		}
	}
	if d&(1<<10) != 0 {
		f = append(f, "AF")
	} else {
		f = append(f, "!AF")
	}
	if d&(1<<51) != 0 {
		f = append(f, "DBM")
	}
	if d&(1<<52) != 0 {
		f = append(f, "CONT")
	}
	if sw := d >> 55 & 0xf; sw != 0 {
		f = append(f, fmt.Sprintf("SW=%#x", sw))
	}
	return f
}

// WriteText prints the table in the style of Linux's ptdump: a header,
// then one line per range.
func (t *Table) WriteText(w io.Writer) {
	fmt.Fprintf(w, "---[ %s = %#x: %s", t.Name, t.Base, t.Regime)
	if t.Stage == 1 {
		fmt.Fprint(w, " stage 1")
	}
	if t.InputBits != 0 {
		fmt.Fprintf(w, ", %v granule, %d-bit input [%#x, %#x]", t.Granule, t.InputBits, t.First, t.First+(1<<t.InputBits)-1)
	}
	fmt.Fprintln(w, " ]---")
	out := t.Output
	for _, r := range t.Ranges {
		lvl := fmt.Sprintf("L%d %s", r.Level, r.Kind)
		if r.Fault != "" {
			fmt.Fprintf(w, "0x%016x-0x%016x %5s %-7s FAULT %s\n", r.Start, r.End, textfmt.Size(r.Size()), fmt.Sprintf("L%d", r.Level), r.Fault)
			continue
		}
		fmt.Fprintf(w, "0x%016x-0x%016x %5s %-7s -> %s 0x%012x  %-15s %-16s %s\n", r.Start, r.End, textfmt.Size(r.Size()), lvl, out, r.OA,
			t.PermString(r.Perms), AttrString(r.Attrs), strings.Join(t.Flags(r), " "))
	}
	for _, n := range t.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "(%d ranges, %d walks)\n", len(t.Ranges), t.Walks)
}

// hex is a JSON number in the at-json contract's notation.
type hex uint64

func (h hex) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`"0x%x"`, uint64(h))), nil }

type jsonRange struct {
	Start  hex      `json:"start"`
	End    hex      `json:"end"`
	Size   hex      `json:"size"`
	Level  int      `json:"level"`
	Kind   string   `json:"kind,omitempty"`
	OA     *hex     `json:"oa,omitempty"`
	Perms  string   `json:"perms,omitempty"`
	Memory string   `json:"memory,omitempty"`
	Flags  []string `json:"flags,omitempty"`
	Desc   hex      `json:"desc"`
	Leaves int      `json:"leaves"`
	Fault  string   `json:"fault,omitempty"`
}

type jsonTable struct {
	Name      string      `json:"name"`
	Stage     int         `json:"stage"`
	Output    string      `json:"output"`
	Regime    string      `json:"regime"`
	Base      hex         `json:"base"`
	Granule   string      `json:"granule"`
	InputBits uint        `json:"input_bits"`
	First     hex         `json:"first"`
	Ranges    []jsonRange `json:"ranges"`
	Walks     int         `json:"walks"`
	Notes     []string    `json:"notes,omitempty"`
}

// MarshalJSON writes the table with addresses as "0x..." strings (the
// at-json contract's notation) and permissions, attributes and flags as in
// the text form.
func (t *Table) MarshalJSON() ([]byte, error) {
	j := jsonTable{Name: t.Name, Stage: t.Stage, Output: t.Output, Regime: t.Regime, Base: hex(t.Base), Granule: t.Granule.String(),
		InputBits: t.InputBits, First: hex(t.First), Ranges: []jsonRange{}, Walks: t.Walks, Notes: t.Notes}
	for _, r := range t.Ranges {
		jr := jsonRange{Start: hex(r.Start), End: hex(r.End), Size: hex(r.Size()), Level: r.Level, Desc: hex(r.Desc),
			Leaves: r.Leaves, Fault: r.Fault}
		if r.Kind != desc.Invalid {
			jr.Kind = r.Kind.String()
		}
		if r.Fault == "" {
			oa := hex(r.OA)
			jr.OA = &oa
			jr.Perms = t.PermString(r.Perms)
			jr.Memory = AttrString(r.Attrs)
			jr.Flags = t.Flags(r)
		}
		j.Ranges = append(j.Ranges, jr)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "EL1&0" as written
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}
