// Package atjson implements the `nestmmu at` JSON contract
// (shared/spec/at-json.md): a machine state (RAM, memory words, system
// registers, PSTATE) and a list of AT operations in, PAR_EL1 values and
// watched memory out. Conformance tools drive the translation core through
// it, so parsing is strict: unknown keys, unknown registers and malformed
// numbers are errors that name the bad value.
package atjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Input is the JSON document as written.
type Input struct {
	RAM    []RAMRange                 `json:"ram"`
	Mem    map[string]json.RawMessage `json:"mem"`
	Regs   map[string]json.RawMessage `json:"regs"`
	PSTATE *PSTATEIn                  `json:"pstate"`
	Ops    []OpIn                     `json:"ops"`
	Watch  []json.RawMessage          `json:"watch"`
}

// RAMRange is one entry of "ram".
type RAMRange struct {
	Base json.RawMessage `json:"base"`
	Size json.RawMessage `json:"size"`
}

// PSTATEIn is the "pstate" object.
type PSTATEIn struct {
	EL  json.RawMessage `json:"el"`
	PAN json.RawMessage `json:"pan"`
}

// OpIn is one entry of "ops".
type OpIn struct {
	Op string          `json:"op"`
	VA json.RawMessage `json:"va"`
}

// Op is a parsed operation.
type Op struct {
	Op at.Op
	VA uint64
}

// Machine is a parsed, validated input.
type Machine struct {
	Mem    *mem.Sparse
	Regs   vmsa.Regs
	PSTATE at.PSTATE
	PAR    sysreg.PAR
	Ops    []Op
	Watch  []uint64
}

// regSetters maps architectural register names to their place in Regs.
func regSetters(m *Machine) map[string]func(uint64) {
	r := &m.Regs
	return map[string]func(uint64){
		"SCTLR_EL1":        func(v uint64) { r.SCTLR_EL1 = sysreg.SCTLR(v) },
		"TCR_EL1":          func(v uint64) { r.TCR_EL1 = sysreg.TCR(v) },
		"TTBR0_EL1":        func(v uint64) { r.TTBR0_EL1 = sysreg.TTBR(v) },
		"TTBR1_EL1":        func(v uint64) { r.TTBR1_EL1 = sysreg.TTBR(v) },
		"MAIR_EL1":         func(v uint64) { r.MAIR_EL1 = sysreg.MAIR(v) },
		"SCTLR_EL2":        func(v uint64) { r.SCTLR_EL2 = sysreg.SCTLR(v) },
		"TCR_EL2":          func(v uint64) { r.TCR_EL2 = v },
		"TTBR0_EL2":        func(v uint64) { r.TTBR0_EL2 = sysreg.TTBR(v) },
		"TTBR1_EL2":        func(v uint64) { r.TTBR1_EL2 = sysreg.TTBR(v) },
		"MAIR_EL2":         func(v uint64) { r.MAIR_EL2 = sysreg.MAIR(v) },
		"HCR_EL2":          func(v uint64) { r.HCR_EL2 = sysreg.HCR(v) },
		"VTCR_EL2":         func(v uint64) { r.VTCR_EL2 = sysreg.VTCR(v) },
		"VTTBR_EL2":        func(v uint64) { r.VTTBR_EL2 = sysreg.VTTBR(v) },
		"ID_AA64MMFR0_EL1": func(v uint64) { r.MMFR0 = sysreg.MMFR0(v) },
		"ID_AA64MMFR1_EL1": func(v uint64) { r.MMFR1 = sysreg.MMFR1(v) },
		"ID_AA64MMFR2_EL1": func(v uint64) { r.MMFR2 = sysreg.MMFR2(v) },
		"ID_AA64ISAR2_EL1": func(v uint64) { r.ISAR2 = sysreg.ISAR2(v) },
		"PAR_EL1":          func(v uint64) { m.PAR = sysreg.PAR(v) },
	}
}

// RegisterNames lists the register names the contract accepts.
func RegisterNames() []string {
	var m Machine
	names := make([]string, 0, 20)
	for n := range regSetters(&m) {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseNumber parses a contract number: a JSON string holding 0x-prefixed
// hexadecimal or decimal, or a plain JSON integer.
func ParseNumber(raw json.RawMessage) (uint64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, errors.New("missing number")
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, fmt.Errorf("bad string %s", s)
		}
		s = strings.TrimSpace(str)
	}
	var v uint64
	var err error
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err = strconv.ParseUint(s[2:], 16, 64)
	} else {
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a 64-bit hexadecimal (0x...) or decimal number", s)
	}
	return v, nil
}

// Parse reads and validates a contract document.
func Parse(r io.Reader) (*Machine, error) {
	data, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var in Input
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: trailing data after the document")
	}
	return Build(&in)
}

// Build validates a decoded document.
func Build(in *Input) (*Machine, error) {
	m := &Machine{Regs: vmsa.DefaultRegs()}
	if len(in.RAM) == 0 {
		return nil, errors.New(`"ram" must list at least one range`)
	}
	ram := make([]mem.Range, 0, len(in.RAM))
	for i, rr := range in.RAM {
		base, err := ParseNumber(rr.Base)
		if err != nil {
			return nil, fmt.Errorf("ram[%d].base: %v", i, err)
		}
		size, err := ParseNumber(rr.Size)
		if err != nil {
			return nil, fmt.Errorf("ram[%d].size: %v", i, err)
		}
		ram = append(ram, mem.Range{Base: mem.PA(base), Size: size})
	}
	sp, err := mem.NewSparse(ram)
	if err != nil {
		return nil, err
	}
	m.Mem = sp
	addrs := make([]string, 0, len(in.Mem))
	for k := range in.Mem {
		addrs = append(addrs, k)
	}
	sort.Strings(addrs)
	for _, k := range addrs {
		a, err := ParseNumber(json.RawMessage(strconv.Quote(k)))
		if err != nil {
			return nil, fmt.Errorf("mem key %q: %v", k, err)
		}
		v, err := ParseNumber(in.Mem[k])
		if err != nil {
			return nil, fmt.Errorf("mem[%q]: %v", k, err)
		}
		if err := sp.Write64(mem.PA(a), v); err != nil {
			return nil, fmt.Errorf("mem[%q]: %v", k, err)
		}
	}
	set := regSetters(m)
	for name, raw := range in.Regs {
		f, ok := set[name]
		if !ok {
			return nil, fmt.Errorf("regs: unknown register %q (known: %s)", name, strings.Join(RegisterNames(), " "))
		}
		v, err := ParseNumber(raw)
		if err != nil {
			return nil, fmt.Errorf("regs[%q]: %v", name, err)
		}
		f(v)
	}
	m.PSTATE = at.PSTATE{EL: 2}
	if in.PSTATE != nil {
		if len(in.PSTATE.EL) > 0 {
			el, err := ParseNumber(in.PSTATE.EL)
			if err != nil {
				return nil, fmt.Errorf("pstate.el: %v", err)
			}
			if el != 1 && el != 2 {
				return nil, fmt.Errorf("pstate.el: %d is not 1 or 2", el)
			}
			m.PSTATE.EL = uint8(el)
		}
		if len(in.PSTATE.PAN) > 0 {
			pan, err := ParseNumber(in.PSTATE.PAN)
			if err != nil {
				return nil, fmt.Errorf("pstate.pan: %v", err)
			}
			if pan > 1 {
				return nil, fmt.Errorf("pstate.pan: %d is not 0 or 1", pan)
			}
			m.PSTATE.PAN = pan == 1
		}
	}
	for i, o := range in.Ops {
		op, err := at.ParseOp(o.Op)
		if err != nil {
			return nil, fmt.Errorf("ops[%d].op: %v", i, err)
		}
		va, err := ParseNumber(o.VA)
		if err != nil {
			return nil, fmt.Errorf("ops[%d].va: %v", i, err)
		}
		m.Ops = append(m.Ops, Op{Op: op, VA: va})
	}
	for i, raw := range in.Watch {
		a, err := ParseNumber(raw)
		if err != nil {
			return nil, fmt.Errorf("watch[%d]: %v", i, err)
		}
		if a%8 != 0 || !sp.InRAM(mem.PA(a)) {
			return nil, fmt.Errorf("watch[%d]: %#x is not an 8-byte aligned RAM address", i, a)
		}
		m.Watch = append(m.Watch, a)
	}
	return m, nil
}

// Result is one entry of the output "results".
type Result struct {
	Op        string `json:"op"`
	VA        string `json:"va"`
	PAR       string `json:"par,omitempty"`
	Fault     string `json:"fault,omitempty"`
	Exception string `json:"exception,omitempty"`
}

// Output is the contract's output document.
type Output struct {
	Results []Result          `json:"results"`
	Mem     map[string]string `json:"mem"`
}

// Hex formats a 64-bit value as the contract prints it.
func Hex(v uint64) string { return fmt.Sprintf("0x%016x", v) }

// Step is called after each operation with its result (for explain).
type Step func(i int, op Op, res at.Result, tr *vmsa.Trace)

// Run executes the operations in order on the machine's shared state.
// When onStep is non-nil every walk is traced and reported to it.
func (m *Machine) Run(onStep Step) (Output, []at.Result) {
	w := &vmsa.Walker{Mem: m.Mem}
	var tr *vmsa.Trace
	if onStep != nil {
		tr = &vmsa.Trace{}
		w.Trace = tr
	}
	out := Output{Results: make([]Result, 0, len(m.Ops)), Mem: map[string]string{}}
	all := make([]at.Result, 0, len(m.Ops))
	par := m.PAR
	for i, op := range m.Ops {
		if tr != nil {
			*tr = vmsa.Trace{Steps: tr.Steps[:0]}
		}
		res := at.Execute(w, &m.Regs, m.PSTATE, op.Op, op.VA, par)
		par = res.PAR
		r := Result{Op: op.Op.String(), VA: Hex(op.VA)}
		switch {
		case res.Taken:
			r.Exception = res.Exception.String()
		default:
			r.PAR = Hex(uint64(res.PAR))
			if f := res.Fault(); f.IsFault() {
				r.Fault = f.String()
			}
		}
		out.Results = append(out.Results, r)
		all = append(all, res)
		if onStep != nil {
			onStep(i, op, res, tr)
		}
	}
	for _, a := range m.Watch {
		v, _ := m.Mem.Read64(mem.PA(a))
		out.Mem[fmt.Sprintf("0x%x", a)] = Hex(v)
	}
	return out, all
}
