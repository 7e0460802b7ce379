package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/conform/qemu/a64"
	"golang.org/x/arch/arm64/arm64asm"
)

// decodeTable is a deliberately simple reader of the case-table format, as
// the runner reads it, for checking appendTable.
func decodeTable(b []byte) ([]Case, error) {
	le := binary.LittleEndian
	word := func() (uint64, error) {
		if len(b) < 8 {
			return 0, fmt.Errorf("truncated table")
		}
		v := le.Uint64(b)
		b = b[8:]
		return v, nil
	}
	magic, _ := word()
	n, _ := word()
	if _, err := word(); err != nil || magic != tableMagic {
		return nil, fmt.Errorf("bad header %#x", magic)
	}
	var cs []Case
	for range n {
		nmem, _ := word()
		flags, err := word()
		if err != nil {
			return nil, err
		}
		c := Case{Regs: map[string]uint64{}, Mem: map[uint64]uint64{}, PAN: flags>>32&1 == 1}
		for _, r := range caseRegs() {
			v, err := word()
			if err != nil {
				return nil, err
			}
			if v != 0 {
				c.Regs[r] = v
			}
		}
		for range nmem {
			pa, _ := word()
			v, err := word()
			if err != nil {
				return nil, err
			}
			c.Mem[pa] = v
		}
		for range flags & 0xffff {
			op, _ := word()
			va, err := word()
			if err != nil {
				return nil, err
			}
			c.Ops = append(c.Ops, Op{a64.ATOp(op).String(), va})
		}
		for range flags >> 16 & 0xffff {
			pa, err := word()
			if err != nil {
				return nil, err
			}
			c.Watch = append(c.Watch, pa)
		}
		cs = append(cs, c)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(b))
	}
	return cs, nil
}

// randomCase returns a valid case with random content.
func randomCase(rng *rand.Rand) Case {
	c := Case{Regs: map[string]uint64{}, Mem: map[uint64]uint64{}, PAN: rng.IntN(2) == 1}
	regs := caseRegs()
	for range rng.IntN(len(regs)) {
		c.Regs[regs[rng.IntN(len(regs))]] = rng.Uint64() | 1
	}
	cr := CaseRAM()
	for range rng.IntN(20) {
		c.Mem[cr.Base+rng.Uint64N(cr.Size/8)*8] = rng.Uint64()
	}
	for range rng.IntN(6) {
		c.Ops = append(c.Ops, Op{a64.ATOp(rng.IntN(a64.NumATOps)).String(), rng.Uint64()})
	}
	for range rng.IntN(4) {
		c.Watch = append(c.Watch, cr.Base+rng.Uint64N(cr.Size/8)*8)
	}
	return c
}

func sameCase(a, b Case) bool {
	nz := func(m map[string]uint64) map[string]uint64 {
		out := map[string]uint64{}
		for k, v := range m {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
	return maps.Equal(nz(a.Regs), nz(b.Regs)) && maps.Equal(a.Mem, b.Mem) && a.PAN == b.PAN &&
		slices.Equal(a.Ops, b.Ops) && slices.Equal(a.Watch, b.Watch)
}

// TestTableRoundTrip encodes random cases and reads them back.
func TestTableRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var cs []Case
	b := []byte(nil)
	for range 500 {
		c := randomCase(rng)
		if err := c.validate(IDRegs{}); err != nil {
			t.Fatalf("random case invalid: %v", err)
		}
		cs = append(cs, c)
	}
	b = tableHeaderBytes(len(cs))
	for i := range cs {
		n := len(b)
		b = cs[i].appendTable(b)
		if len(b)-n != cs[i].tableSize() {
			t.Fatalf("case %d: %d bytes, tableSize says %d", i, len(b)-n, cs[i].tableSize())
		}
	}
	got, err := decodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		if !sameCase(got[i], cs[i]) {
			t.Fatalf("case %d: decoded %+v, want %+v", i, got[i], cs[i])
		}
	}
}

// TestParseResultLine checks the runner-output parser on hand-written lines.
func TestParseResultLine(t *testing.T) {
	c := &Case{Ops: []Op{{"S1E1R", 0}, {"S1E1W", 0}}, Watch: []uint64{CaseRAM().Base}}
	h := func(v uint64) string { return fmt.Sprintf("%016x", v) }
	line := "RP" + h(0xff00000040001b80) + "E4" + h(0x96000155) + h(0x1000) + h(0x4000) + "W" + h(0x40002743)
	r, err := parseResultLine(line, c)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Ops: []OpResult{{PAR: 0xff00000040001b80},
		{Exception: true, Vector: 4, ESR: 0x96000155, FAR: 0x1000, HPFAR: 0x4000}}, Watch: []uint64{0x40002743}}
	if !slices.Equal(r.Ops, want.Ops) || !slices.Equal(r.Watch, want.Watch) {
		t.Errorf("parsed %+v, want %+v", r, want)
	}
	if r.Ops[1].EC() != 0x25 {
		t.Errorf("EC = %#x", r.Ops[1].EC())
	}
	for _, bad := range []string{"", "X", line[:len(line)-1], line + "W", "RP" + h(1), "RQ" + h(1) + h(2),
		"RP" + strings.Repeat("g", 16) + "P" + h(1) + "W" + h(1)} {
		if _, err := parseResultLine(bad, c); err == nil {
			t.Errorf("parseResultLine(%q) accepted", bad)
		}
	}
	if _, _, err := parseIDLine("I" + strings.Repeat("0", 79)); err == nil {
		t.Error("short ID line accepted")
	}
	if s := parseFatalLine("F4" + h(0x86000010) + h(0x4f000810) + h(0x4f000810)); !strings.Contains(s, "EC 0x21") {
		t.Errorf("fatal line described as %q", s)
	}
}

// FuzzParseResultLine feeds arbitrary runner output to the parser: it must
// return an error or a result of the right shape, never panic.
func FuzzParseResultLine(f *testing.F) {
	h := func(v uint64) string { return fmt.Sprintf("%016x", v) }
	f.Add("RP"+h(0x80b)+"E4"+h(1)+h(2)+h(3)+"W"+h(4), uint8(2), uint8(1))
	f.Add("R", uint8(0), uint8(0))
	f.Add("RE", uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, line string, nops, nwatch uint8) {
		c := &Case{Ops: make([]Op, nops%8), Watch: make([]uint64, nwatch%8)}
		r, err := parseResultLine(line, c)
		if err == nil && (len(r.Ops) != len(c.Ops) || len(r.Watch) != len(c.Watch)) {
			t.Fatalf("shape %d/%d for %d/%d", len(r.Ops), len(r.Watch), len(c.Ops), len(c.Watch))
		}
		parseIDLine(line)
		parseFatalLine(line)
	})
}

// FuzzCaseTable validates arbitrary cases and round-trips the valid ones
// through the table format.
func FuzzCaseTable(f *testing.F) {
	f.Add(uint64(0x44000000), uint64(0x44001003), "S1E1R", uint64(0x1234), uint64(0x44000000), "TCR_EL1", true)
	f.Add(uint64(0x4f000000), uint64(1), "S1E3R", uint64(0), uint64(3), "ID_AA64MMFR0_EL1", false)
	f.Fuzz(func(t *testing.T, pa, v uint64, op string, va, watch uint64, reg string, pan bool) {
		c := Case{Regs: map[string]uint64{reg: v}, Mem: map[uint64]uint64{pa: v}, PAN: pan,
			Ops: []Op{{op, va}}, Watch: []uint64{watch}}
		if err := c.validate(IDRegs{}); err != nil {
			if !strings.Contains(err.Error(), "invalid case") {
				t.Fatalf("error %v does not wrap ErrInvalidCase", err)
			}
			return
		}
		got, err := decodeTable(c.appendTable(tableHeaderBytes(1)))
		if err != nil || len(got) != 1 || !sameCase(got[0], c) {
			t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
		}
	})
}

// TestRunnerLayout checks the generated runner's code page against the
// contract: 16 vector entries of 0x80 bytes at RunnerCodePage, each AT
// window at windowsOff + op*windowSize with its AT at windowAT, and the
// main program at runnerMain. The AT words are decoded by field.
func TestRunnerLayout(t *testing.T) {
	code, err := buildRunner()
	if err != nil {
		t.Fatal(err)
	}
	code2, _ := buildRunner()
	if !slices.Equal(code, code2) {
		t.Error("runner image is not reproducible")
	}
	if len(code) <= runnerMain-RunnerCodePage {
		t.Fatalf("runner is %d bytes", len(code))
	}
	word := func(addr uint64) uint32 {
		return binary.LittleEndian.Uint32(code[addr-RunnerCodePage:])
	}
	for op := a64.ATOp(0); int(op) < a64.NumATOps; op++ {
		w := word(RunnerCodePage + windowsOff + uint64(op)*windowSize + windowAT)
		s := op.SysOp()
		want := 0xd5000000 | uint32(s.Op0)<<19 | uint32(s.Op1)<<16 | 7<<12 | uint32(s.CRm)<<8 | uint32(s.Op2)<<5 | 5
		if w != want {
			t.Errorf("window %s: AT word %08x, want %08x", op, w, want)
		}
	}
	for k := range numVectors {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], word(RunnerCodePage+uint64(k)*vectorBytes))
		inst, err := arm64asm.Decode(b[:])
		if err != nil || inst.String() != fmt.Sprintf("MOV X20, #0x%x", k+1) {
			t.Errorf("vector %d starts with %v (%v)", k, inst, err)
		}
	}
	img := elfImage(code)
	le := binary.LittleEndian
	if string(img[:4]) != "\x7fELF" || le.Uint64(img[24:]) != runnerMain || le.Uint16(img[18:]) != 183 {
		t.Error("bad ELF header")
	}
}

// TestFind checks Find's environment override and New's missing-binary
// error; neither needs QEMU.
func TestFind(t *testing.T) {
	t.Setenv("NESTMMU_QEMU", "/nonexistent/qemu-system-aarch64")
	if _, err := Find(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("Find with a bad NESTMMU_QEMU: %v", err)
	}
	if _, err := New(Options{Path: "/nonexistent/qemu"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("New with a bad Path: %v", err)
	}
	if _, err := New(Options{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("New with a bad NESTMMU_QEMU: %v", err)
	}
}

// TestRange checks Range.Contains at the edges and against overflow.
func TestRange(t *testing.T) {
	r := Range{Base: 0x1000, Size: 0x1000}
	for _, c := range []struct {
		pa, n uint64
		want  bool
	}{{0x1000, 8, true}, {0x1ff8, 8, true}, {0x1ffc, 8, false}, {0xff8, 8, false},
		{0x2000, 0, true}, {0x1000, 0x1000, true}, {0x1008, ^uint64(0), false}} {
		if got := r.Contains(c.pa, c.n); got != c.want {
			t.Errorf("Contains(%#x, %#x) = %v", c.pa, c.n, got)
		}
	}
	cr := CaseRAM()
	if cr.End() != ReservedBase || RAM().End() != RAMBase+RAMSize || RunnerCodePage < cr.End() {
		t.Error("memory map: case RAM overlaps the runner")
	}
	for _, a := range AbortRanges() {
		if a.Base < RAM().End() && RAM().Base < a.End() {
			t.Errorf("abort range %+v overlaps RAM", a)
		}
	}
}
