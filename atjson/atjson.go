// Package atjson implements the `nestmmu at` JSON contract, documented in
// docs/AT-JSON.md: a machine state (RAM, memory words, system registers,
// PSTATE) and a list of AT operations in, PAR_EL1 values and watched memory
// out. Conformance tools drive the translation core through it, so parsing
// is strict: the input must be one valid JSON document (a UTF-8 byte order
// mark is skipped), keys are known and given once, numbers are well formed
// and in range, and the sizes are bounded (MaxInputBytes, MaxOps, ...).
// An error names the JSON path of the bad value (ops[0].op) and quotes at
// most a short prefix of it.
package atjson

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/mem"
)

// Machine is a validated document made ready to run: its RAM with the
// memory words written, and its registers in place.
type Machine struct {
	Document
	Mem  *mem.Sparse
	Regs vmsa.Regs
	// PAR is PAR_EL1 before the first operation (regs.PAR_EL1).
	PAR sysreg.PAR
}

// RegisterNames lists the register names the contract accepts: the
// registers translation reads (regfile.Names) and PAR_EL1.
func RegisterNames() []string {
	names := append(regfile.Names(), "PAR_EL1")
	sort.Strings(names)
	return names
}

// Parse reads, validates and prepares a contract document.
func Parse(r io.Reader) (*Machine, error) {
	d, err := ParseDocument(r)
	if err != nil {
		return nil, err
	}
	return NewMachine(d)
}

// NewMachine builds the machine state a document describes. Absent
// registers are zero except the ID registers (vmsa.DefaultRegs). A nested
// document (the "nested" key) describes a guest hypervisor, not a real
// EL2: package nestjson runs it.
func NewMachine(d *Document) (*Machine, error) {
	if d.Nested != nil {
		return nil, &Error{Path: "nested", Msg: "a nested document runs on the nested model (package nestjson), not on a real EL2"}
	}
	m := &Machine{Document: *d, Regs: vmsa.DefaultRegs()}
	sp, err := mem.NewSparse(d.RAM)
	if err != nil {
		return nil, &Error{Path: "ram", Msg: err.Error()}
	}
	for _, w := range d.Words {
		if err := sp.Write64(mem.PA(w.Addr), w.Value); err != nil {
			return nil, &Error{Path: "mem", Msg: err.Error()}
		}
	}
	m.Mem = sp
	for _, r := range d.Registers {
		if r.Name == "PAR_EL1" {
			m.PAR = sysreg.PAR(r.Value)
			continue
		}
		if err := regfile.Set(&m.Regs, r.Name, r.Value); err != nil {
			return nil, &Error{Path: "regs", Msg: err.Error()}
		}
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

// run executes the operations in order on the machine's shared state (HA
// and HD updates of one are seen by the next) and calls each after every
// one; with trace, every walk is recorded in tr.
func (m *Machine) run(trace bool, each Step) {
	w := &vmsa.Walker{Mem: m.Mem}
	var tr *vmsa.Trace
	if trace {
		tr = &vmsa.Trace{}
		w.Trace = tr
	}
	par := m.PAR
	for i, op := range m.Ops {
		if tr != nil {
			*tr = vmsa.Trace{Steps: tr.Steps[:0]}
		}
		res := at.Execute(w, &m.Regs, m.PSTATE, op.Op, op.VA, par)
		par = res.PAR
		each(i, op, res, tr)
	}
}

// ResultOf is the output entry of one operation with outcome res.
func ResultOf(op Op, res at.Result) Result {
	r := Result{Op: op.Op.String(), VA: Hex(op.VA)}
	if res.Taken {
		r.Exception = res.Exception.String()
		return r
	}
	r.PAR = Hex(uint64(res.PAR))
	if f := res.Fault(); f.IsFault() {
		r.Fault = f.String()
	}
	return r
}

// watchKey is the output "mem" key of a watched address.
func watchKey(a uint64) string { return fmt.Sprintf("0x%x", a) }

// Run executes the operations and returns the output document and each
// operation's at.Result. When onStep is non-nil every walk is traced and
// reported to it. Running changes the machine's memory (hardware
// updates): run a machine once.
func (m *Machine) Run(onStep Step) (Output, []at.Result) {
	out := Output{Results: make([]Result, 0, len(m.Ops)), Mem: map[string]string{}}
	all := make([]at.Result, 0, len(m.Ops))
	m.run(onStep != nil, func(i int, op Op, res at.Result, tr *vmsa.Trace) {
		out.Results = append(out.Results, ResultOf(op, res))
		all = append(all, res)
		if onStep != nil {
			onStep(i, op, res, tr)
		}
	})
	for _, a := range m.Watch {
		v, _ := m.Mem.Read64(mem.PA(a))
		out.Mem[watchKey(a)] = Hex(v)
	}
	return out, all
}

// Encode runs the machine and writes the output document exactly as
// json.Encoder with a two-space indent writes Output, one result at a
// time, so memory does not grow with the number of operations.
func (m *Machine) Encode(w io.Writer) error {
	bw := bufio.NewWriter(w)
	str := func(s string) {
		b, _ := json.Marshal(s)
		bw.Write(b)
	}
	field := func(name, v string, last bool) {
		bw.WriteString("      ")
		str(name)
		bw.WriteString(": ")
		str(v)
		if !last {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("{\n  \"results\": [")
	if len(m.Ops) == 0 {
		bw.WriteString("],\n")
	} else {
		bw.WriteString("\n")
	}
	m.run(false, func(i int, op Op, res at.Result, _ *vmsa.Trace) {
		r := ResultOf(op, res)
		bw.WriteString("    {\n")
		field("op", r.Op, false)
		field("va", r.VA, r.PAR == "" && r.Exception == "")
		switch {
		case r.Exception != "":
			field("exception", r.Exception, true)
		case r.Fault != "":
			field("par", r.PAR, false)
			field("fault", r.Fault, true)
		default:
			field("par", r.PAR, true)
		}
		if i == len(m.Ops)-1 {
			bw.WriteString("    }\n  ],\n")
		} else {
			bw.WriteString("    },\n")
		}
	})
	keys := make([]string, len(m.Watch))
	vals := make(map[string]string, len(m.Watch))
	for i, a := range m.Watch {
		v, _ := m.Mem.Read64(mem.PA(a))
		keys[i] = watchKey(a)
		vals[keys[i]] = Hex(v)
	}
	sort.Strings(keys) // encoding/json writes map keys sorted
	bw.WriteString("  \"mem\": {")
	for i, k := range keys {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		str(k)
		bw.WriteString(": ")
		str(vals[k])
	}
	if len(keys) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("}\n}\n")
	return bw.Flush()
}

// WriteOutput writes an output document as `nestmmu at` prints one (as
// json.Encoder with a two-space indent writes it; Encode streams the same
// bytes).
func WriteOutput(w io.Writer, out Output) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
