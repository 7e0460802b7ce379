package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nestmmu/nestmmu/conform/qemu/a64"
)

// Case is one at-json input (docs/AT-JSON.md) as the oracle runs it:
// Regs is "regs", PAN is "pstate.pan", Mem is "mem", Ops is "ops", Watch is
// "watch". "ram" is fixed by the machine (RAM); "pstate.el" must be 2 (EL
// may be left 0, meaning 2).
type Case struct {
	// Regs holds system registers by architectural name. Settable:
	// HCR_EL2, SCTLR_EL1, TCR_EL1, TTBR0_EL1, TTBR1_EL1, MAIR_EL1,
	// VTCR_EL2, VTTBR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2, TTBR1_EL2,
	// MAIR_EL2 (absent means 0). ID_AA64MMFR{0,1,2}_EL1 may be given only
	// with QEMU's values (Oracle.IDRegs).
	Regs map[string]uint64
	// EL is the exception level executing the operations: 0 or 2 (both
	// mean EL2, the only level the runner uses).
	EL int
	// PAN is PSTATE.PAN while the operations execute.
	PAN bool
	// Mem holds 64-bit words by 8-byte-aligned physical address, all in
	// CaseRAM. Every other word of CaseRAM reads as zero.
	Mem map[uint64]uint64
	// Ops are executed in order on the shared state.
	Ops []Op
	// Watch lists 8-byte-aligned physical addresses in CaseRAM whose
	// final values are reported.
	Watch []uint64
}

// Op is one address translation instruction: Name is an at-json operation
// name (S1E0R ... S12E1W) and VA its input address.
type Op struct {
	Name string
	VA   uint64
}

// OpResult is what QEMU did for one Op.
type OpResult struct {
	// PAR is PAR_EL1 after the instruction (valid when !Exception).
	PAR uint64
	// Exception reports that the instruction took a synchronous exception
	// to EL2 instead of writing PAR_EL1 (a synchronous External abort on
	// the walk, or an UNDEFINED encoding such as an AT that QEMU does not
	// implement). The runner skips the instruction and continues.
	Exception bool
	// Vector is the exception's offset from VBAR_EL2 divided by 0x80
	// (4 = synchronous, current EL with SP_ELx).
	Vector int
	// ESR, FAR and HPFAR are ESR_EL2, FAR_EL2 and HPFAR_EL2 as the
	// exception left them.
	ESR, FAR, HPFAR uint64
}

// EC returns the exception class ESR_EL2[31:26] (0x25: Data Abort taken
// without a change of EL; 0x00: unknown reason, e.g. UNDEFINED).
func (r OpResult) EC() uint64 { return r.ESR >> 26 & 0x3f }

// String renders r as "PAR 0x..." or "exception vector v ESR 0x... FAR
// 0x... HPFAR 0x...".
func (r OpResult) String() string {
	if !r.Exception {
		return fmt.Sprintf("PAR %#x", r.PAR)
	}
	return fmt.Sprintf("exception vector %d ESR %#x (EC %#x) FAR %#x HPFAR %#x", r.Vector, r.ESR, r.EC(), r.FAR, r.HPFAR)
}

// Result is the outcome of one Case. When Err is nil, Ops and Watch hold
// one entry per Case.Ops and Case.Watch. When Err is non-nil the case has
// no result: it was invalid (ErrInvalidCase), QEMU died running it
// (ErrQEMUCrashed), it did not finish in time (ErrTimeout), or the runner
// took an exception it did not expect (ErrRunnerFault).
type Result struct {
	Ops   []OpResult
	Watch []uint64
	Err   error
}

// Errors wrapped in Result.Err.
var (
	ErrInvalidCase = errors.New("invalid case")
	ErrQEMUCrashed = errors.New("QEMU exited while running the case")
	ErrTimeout     = errors.New("case timed out")
	ErrRunnerFault = errors.New("runner took an unexpected exception")
)

// IDRegs are QEMU's ID registers that describe the memory system.
type IDRegs struct {
	MMFR0, MMFR1, MMFR2, MMFR3 uint64
}

// lookupOp maps an at-json operation name to the runner's operation index.
func lookupOp(name string) (a64.ATOp, bool) { return a64.LookupAT(name) }

// validate checks c against the runner's limits and QEMU's ID registers.
func (c *Case) validate(id IDRegs) error {
	if c.EL != 0 && c.EL != 2 {
		return fmt.Errorf("%w: pstate.el %d: the runner executes at EL2 only", ErrInvalidCase, c.EL)
	}
	settable := caseRegs()
	for name, v := range c.Regs {
		if slices.Contains(settable[:], name) {
			continue
		}
		var want uint64
		switch name {
		case "ID_AA64MMFR0_EL1":
			want = id.MMFR0
		case "ID_AA64MMFR1_EL1":
			want = id.MMFR1
		case "ID_AA64MMFR2_EL1":
			want = id.MMFR2
		default:
			return fmt.Errorf("%w: register %q cannot be set", ErrInvalidCase, name)
		}
		if v != want {
			return fmt.Errorf("%w: %s = %#x but QEMU's is %#x (ID registers are read-only)", ErrInvalidCase, name, v, want)
		}
	}
	cr := CaseRAM()
	for pa := range c.Mem {
		if pa%8 != 0 || !cr.Contains(pa, 8) {
			return fmt.Errorf("%w: mem address %#x is not an aligned word in case RAM [%#x, %#x)", ErrInvalidCase, pa, cr.Base, cr.End())
		}
	}
	for _, pa := range c.Watch {
		if pa%8 != 0 || !cr.Contains(pa, 8) {
			return fmt.Errorf("%w: watch address %#x is not an aligned word in case RAM [%#x, %#x)", ErrInvalidCase, pa, cr.Base, cr.End())
		}
	}
	for _, op := range c.Ops {
		if _, ok := lookupOp(op.Name); !ok {
			return fmt.Errorf("%w: unknown AT operation %q", ErrInvalidCase, op.Name)
		}
	}
	if len(c.Ops) > 0xffff || len(c.Watch) > 0xffff {
		return fmt.Errorf("%w: %d ops / %d watched words: at most 65535 each", ErrInvalidCase, len(c.Ops), len(c.Watch))
	}
	if n := c.tableSize(); n > caseTableMax-tableHeader {
		return fmt.Errorf("%w: case needs %d bytes of case table, at most %d", ErrInvalidCase, n, caseTableMax-tableHeader)
	}
	return nil
}

func (c *Case) tableSize() int {
	return caseFixed + 16*len(c.Mem) + 16*len(c.Ops) + 8*len(c.Watch)
}

// appendTable appends c's case-table record to b. c must be valid.
func (c *Case) appendTable(b []byte) []byte {
	le := binary.LittleEndian
	flags := uint64(len(c.Ops)) | uint64(len(c.Watch))<<16
	if c.PAN {
		flags |= 1 << 32
	}
	b = le.AppendUint64(b, uint64(len(c.Mem)))
	b = le.AppendUint64(b, flags)
	for _, name := range caseRegs() {
		b = le.AppendUint64(b, c.Regs[name])
	}
	// Sorted for a reproducible image.
	pas := make([]uint64, 0, len(c.Mem))
	for pa := range c.Mem {
		pas = append(pas, pa)
	}
	slices.Sort(pas)
	for _, pa := range pas {
		b = le.AppendUint64(b, pa)
		b = le.AppendUint64(b, c.Mem[pa])
	}
	for _, op := range c.Ops {
		o, _ := lookupOp(op.Name)
		b = le.AppendUint64(b, uint64(o))
		b = le.AppendUint64(b, op.VA)
	}
	for _, pa := range c.Watch {
		b = le.AppendUint64(b, pa)
	}
	return b
}

// tableHeaderBytes returns the case-table header for n cases.
func tableHeaderBytes(n int) []byte {
	le := binary.LittleEndian
	b := le.AppendUint64(nil, tableMagic)
	b = le.AppendUint64(b, uint64(n))
	return le.AppendUint64(b, 0)
}

// hexWord parses 16 hex digits at s[0:16].
func hexWord(s string) (uint64, error) {
	if len(s) < 16 {
		return 0, fmt.Errorf("truncated hex word %q", s)
	}
	return strconv.ParseUint(s[:16], 16, 64)
}

// parseResultLine parses an "R..." line for case c.
func parseResultLine(line string, c *Case) (Result, error) {
	if len(line) == 0 || line[0] != 'R' {
		return Result{}, fmt.Errorf("result line %q does not start with R", line)
	}
	s := line[1:]
	r := Result{Ops: make([]OpResult, len(c.Ops)), Watch: make([]uint64, len(c.Watch))}
	for i := range c.Ops {
		if len(s) == 0 {
			return Result{}, fmt.Errorf("result line %q: missing op %d", line, i)
		}
		switch s[0] {
		case 'P':
			v, err := hexWord(s[1:])
			if err != nil {
				return Result{}, fmt.Errorf("result line %q: op %d: %v", line, i, err)
			}
			r.Ops[i].PAR = v
			s = s[17:]
		case 'E':
			if len(s) < 2+48 {
				return Result{}, fmt.Errorf("result line %q: op %d: truncated exception", line, i)
			}
			vec, err := strconv.ParseUint(s[1:2], 16, 8)
			if err != nil {
				return Result{}, fmt.Errorf("result line %q: op %d: %v", line, i, err)
			}
			var w [3]uint64
			for j := range w {
				if w[j], err = hexWord(s[2+16*j:]); err != nil {
					return Result{}, fmt.Errorf("result line %q: op %d: %v", line, i, err)
				}
			}
			r.Ops[i] = OpResult{Exception: true, Vector: int(vec), ESR: w[0], FAR: w[1], HPFAR: w[2]}
			s = s[50:]
		default:
			return Result{}, fmt.Errorf("result line %q: op %d: unexpected %q", line, i, s[0])
		}
	}
	for i := range c.Watch {
		if len(s) < 17 || s[0] != 'W' {
			return Result{}, fmt.Errorf("result line %q: missing watched word %d", line, i)
		}
		v, err := hexWord(s[1:])
		if err != nil {
			return Result{}, fmt.Errorf("result line %q: watched word %d: %v", line, i, err)
		}
		r.Watch[i] = v
		s = s[17:]
	}
	if s != "" {
		return Result{}, fmt.Errorf("result line %q: trailing %q", line, s)
	}
	return r, nil
}

// parseIDLine parses the runner's "I..." line.
func parseIDLine(line string) (IDRegs, uint64, error) {
	if len(line) != 1+5*16 || line[0] != 'I' {
		return IDRegs{}, 0, fmt.Errorf("bad runner start line %q", line)
	}
	var w [5]uint64
	for i := range w {
		var err error
		if w[i], err = hexWord(line[1+16*i:]); err != nil {
			return IDRegs{}, 0, fmt.Errorf("bad runner start line %q: %v", line, err)
		}
	}
	return IDRegs{MMFR0: w[0], MMFR1: w[1], MMFR2: w[2], MMFR3: w[3]}, w[4], nil
}

// parseFatalLine describes the runner's "F..." line.
func parseFatalLine(line string) string {
	if len(line) != 2+48 || line[0] != 'F' {
		return fmt.Sprintf("runner reported %q", line)
	}
	esr, _ := hexWord(line[2:])
	elr, _ := hexWord(line[18:])
	far, _ := hexWord(line[34:])
	return fmt.Sprintf("vector %s, ESR_EL2 %#x (EC %#x), ELR_EL2 %#x, FAR_EL2 %#x", line[1:2], esr, esr>>26&0x3f, elr, far)
}
