// Package regfile names the system registers that translation reads
// (vmsa.Regs) by their architectural names, parses register values, and
// reads the compact register file that `nestmmu translate` and `nestmmu
// ptdump` take:
//
//	# a guest's EL1&0 regime
//	TCR_EL1   = 0x8580190019
//	TTBR0_EL1 = 0x44000000
//	SCTLR_EL1 0x30d00805
//
// One register per line, NAME=VALUE or NAME VALUE, '#' starts a comment.
// Names are the architectural ones (case does not matter in a file); values
// use the at-json contract's number syntax (docs/AT-JSON.md): 0x-prefixed
// hexadecimal or decimal, at most 64 bits.
package regfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// reg is one named register: where it lives in vmsa.Regs.
type reg struct {
	get func(r *vmsa.Regs) uint64
	set func(r *vmsa.Regs, v uint64)
}

// table is the one list of register names (the contract, the register
// file and the CLI use it).
var table = map[string]reg{
	"SCTLR_EL1":        {func(r *vmsa.Regs) uint64 { return uint64(r.SCTLR_EL1) }, func(r *vmsa.Regs, v uint64) { r.SCTLR_EL1 = sysreg.SCTLR(v) }},
	"TCR_EL1":          {func(r *vmsa.Regs) uint64 { return uint64(r.TCR_EL1) }, func(r *vmsa.Regs, v uint64) { r.TCR_EL1 = sysreg.TCR(v) }},
	"TTBR0_EL1":        {func(r *vmsa.Regs) uint64 { return uint64(r.TTBR0_EL1) }, func(r *vmsa.Regs, v uint64) { r.TTBR0_EL1 = sysreg.TTBR(v) }},
	"TTBR1_EL1":        {func(r *vmsa.Regs) uint64 { return uint64(r.TTBR1_EL1) }, func(r *vmsa.Regs, v uint64) { r.TTBR1_EL1 = sysreg.TTBR(v) }},
	"MAIR_EL1":         {func(r *vmsa.Regs) uint64 { return uint64(r.MAIR_EL1) }, func(r *vmsa.Regs, v uint64) { r.MAIR_EL1 = sysreg.MAIR(v) }},
	"SCTLR_EL2":        {func(r *vmsa.Regs) uint64 { return uint64(r.SCTLR_EL2) }, func(r *vmsa.Regs, v uint64) { r.SCTLR_EL2 = sysreg.SCTLR(v) }},
	"TCR_EL2":          {func(r *vmsa.Regs) uint64 { return r.TCR_EL2 }, func(r *vmsa.Regs, v uint64) { r.TCR_EL2 = v }},
	"TTBR0_EL2":        {func(r *vmsa.Regs) uint64 { return uint64(r.TTBR0_EL2) }, func(r *vmsa.Regs, v uint64) { r.TTBR0_EL2 = sysreg.TTBR(v) }},
	"TTBR1_EL2":        {func(r *vmsa.Regs) uint64 { return uint64(r.TTBR1_EL2) }, func(r *vmsa.Regs, v uint64) { r.TTBR1_EL2 = sysreg.TTBR(v) }},
	"MAIR_EL2":         {func(r *vmsa.Regs) uint64 { return uint64(r.MAIR_EL2) }, func(r *vmsa.Regs, v uint64) { r.MAIR_EL2 = sysreg.MAIR(v) }},
	"HCR_EL2":          {func(r *vmsa.Regs) uint64 { return uint64(r.HCR_EL2) }, func(r *vmsa.Regs, v uint64) { r.HCR_EL2 = sysreg.HCR(v) }},
	"VTCR_EL2":         {func(r *vmsa.Regs) uint64 { return uint64(r.VTCR_EL2) }, func(r *vmsa.Regs, v uint64) { r.VTCR_EL2 = sysreg.VTCR(v) }},
	"VTTBR_EL2":        {func(r *vmsa.Regs) uint64 { return uint64(r.VTTBR_EL2) }, func(r *vmsa.Regs, v uint64) { r.VTTBR_EL2 = sysreg.VTTBR(v) }},
	"ID_AA64MMFR0_EL1": {func(r *vmsa.Regs) uint64 { return uint64(r.MMFR0) }, func(r *vmsa.Regs, v uint64) { r.MMFR0 = sysreg.MMFR0(v) }},
	"ID_AA64MMFR1_EL1": {func(r *vmsa.Regs) uint64 { return uint64(r.MMFR1) }, func(r *vmsa.Regs, v uint64) { r.MMFR1 = sysreg.MMFR1(v) }},
	"ID_AA64MMFR2_EL1": {func(r *vmsa.Regs) uint64 { return uint64(r.MMFR2) }, func(r *vmsa.Regs, v uint64) { r.MMFR2 = sysreg.MMFR2(v) }},
	"ID_AA64ISAR2_EL1": {func(r *vmsa.Regs) uint64 { return uint64(r.ISAR2) }, func(r *vmsa.Regs, v uint64) { r.ISAR2 = sysreg.ISAR2(v) }},
}

// Names returns the register names, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Known reports whether name (exact architectural spelling) is a register
// of vmsa.Regs.
func Known(name string) bool { _, ok := table[name]; return ok }

// UnknownError is returned for a register name that is not in the table.
type UnknownError struct{ Name string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown register %s (known: %s)", textfmt.Quote(e.Name), strings.Join(Names(), " "))
}

// Set writes v to the register name of r.
func Set(r *vmsa.Regs, name string, v uint64) error {
	g, ok := table[name]
	if !ok {
		return &UnknownError{name}
	}
	g.set(r, v)
	return nil
}

// Get reads the register name of r.
func Get(r *vmsa.Regs, name string) (uint64, error) {
	g, ok := table[name]
	if !ok {
		return 0, &UnknownError{name}
	}
	return g.get(r), nil
}

// ErrNotNumber is the error ParseValue wraps for a malformed value.
var ErrNotNumber = errors.New("not a 64-bit hexadecimal (0x...) or decimal number")

// ParseValue parses a register value or address: 0x (or 0X) followed by
// one or more hexadecimal digits, or decimal digits; at most 64 bits; no
// sign, spaces, underscores or other bases. The error does not quote s:
// the caller names the field and quotes it (textfmt.Quote).
func ParseValue(s string) (uint64, error) {
	digits, base := s, 10
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	}
	if digits == "" {
		return 0, ErrNotNumber
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		ok := c >= '0' && c <= '9' || base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
		if !ok {
			return 0, ErrNotNumber
		}
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, ErrNotNumber
	}
	return v, nil
}

// Assignment is one line of a register file.
type Assignment struct {
	Name  string
	Value uint64
	Line  int
}

// MaxFileBytes bounds a register file.
const MaxFileBytes = 1 << 20

// ParseFile reads a register file. Every name must be known (Known after
// upper-casing) and given once.
func ParseFile(r io.Reader) ([]Assignment, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("register file exceeds the %d-byte limit", MaxFileBytes)
	}
	var out []Assignment
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 4096), MaxFileBytes+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			f := strings.Fields(line)
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: %s is not NAME=VALUE or NAME VALUE", n, textfmt.Quote(line))
			}
			name, val = f[0], f[1]
		}
		name, val = strings.ToUpper(strings.TrimSpace(name)), strings.TrimSpace(val)
		if !Known(name) {
			return nil, fmt.Errorf("line %d: %w", n, &UnknownError{name})
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("line %d: %s is already set on line %d", n, name, prev)
		}
		seen[name] = n
		v, err := ParseValue(val)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s = %s: %v", n, name, textfmt.Quote(val), err)
		}
		out = append(out, Assignment{Name: name, Value: v, Line: n})
	}
	return out, sc.Err()
}

// Apply sets every assignment in r.
func Apply(r *vmsa.Regs, as []Assignment) error {
	for _, a := range as {
		if err := Set(r, a.Name, a.Value); err != nil {
			return fmt.Errorf("line %d: %w", a.Line, err)
		}
	}
	return nil
}
