package atjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/internal/textfmt"
	"github.com/nestmmu/nestmmu/mem"
)

// Limits on a document (docs/AT-JSON.md). Memory use is in proportion to
// the input: a few tens of bytes per memory word, operation or range.
const (
	MaxInputBytes = 256 << 20
	MaxRAMRanges  = 100_000
	MaxMemWords   = 4_000_000
	MaxOps        = 1_000_000
	MaxWatch      = 100_000
)

// limits are the bounds a parse enforces (tests shrink them).
type limits struct {
	input, ram, mem, ops, watch int
}

var defaultLimits = limits{MaxInputBytes, MaxRAMRanges, MaxMemWords, MaxOps, MaxWatch}

func (l limits) tooLarge() error {
	return &Error{Msg: fmt.Sprintf("input exceeds the %d MiB limit (%d bytes)", l.input>>20, l.input)}
}

// Error is an invalid document. Path names the JSON value in the form
// ram[0].base, mem["0x40000000"], regs.TCR_EL1, pstate.el, ops[3].op or
// watch[1] ("" for the document itself).
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// SyntaxError is input that is not one JSON value (encoding/json's
// validity check failed), including data after the document.
type SyntaxError struct {
	Offset    int64 // byte offset of the error
	Line, Col int   // 1-based
	Msg       string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at line %d, column %d (byte %d): %s", e.Line, e.Col, e.Offset, e.Msg)
}

// Word is one entry of "mem".
type Word struct {
	Addr, Value uint64
	// Key is the key as written (e.g. "0x44000000").
	Key string
}

// Reg is one entry of "regs".
type Reg struct {
	Name  string
	Value uint64
}

// Op is an operation of "ops".
type Op struct {
	Op at.Op
	VA uint64
}

// Document is a validated contract document. Lists keep the document's
// order; Words and Registers hold each address and name once.
type Document struct {
	RAM       []mem.Range
	Words     []Word
	Registers []Reg
	// PSTATE is pstate.el (default 2) and pstate.pan (default 0).
	PSTATE at.PSTATE
	Ops    []Op
	Watch  []uint64
	// Nested, when the document has the "nested" key, describes the
	// guest hypervisor that executes it (nested.go).
	Nested *Nested
}

var bom = []byte{0xef, 0xbb, 0xbf}

// ParseDocument reads and validates a contract document.
func ParseDocument(r io.Reader) (*Document, error) { return parseDocument(r, defaultLimits) }

func parseDocument(r io.Reader, lim limits) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(lim.input)+1))
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	return parseBytes(data, lim)
}

// ParseDocumentBytes is ParseDocument on a document in memory. A leading
// UTF-8 byte order mark is skipped.
func ParseDocumentBytes(data []byte) (*Document, error) { return parseBytes(data, defaultLimits) }

func parseBytes(data []byte, lim limits) (*Document, error) {
	if len(data) > lim.input {
		return nil, lim.tooLarge()
	}
	data = bytes.TrimPrefix(data, bom)
	if !json.Valid(data) {
		return nil, syntaxError(data)
	}
	p := &parser{data: data, lim: lim}
	return p.document()
}

// syntaxError locates the first syntax error of invalid JSON.
func syntaxError(data []byte) error {
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &SyntaxError{Msg: "not a JSON document", Line: 1, Col: 1}
	}
	off := se.Offset
	msg := se.Error()
	if strings.Contains(msg, "after top-level value") {
		msg = "trailing data after the document"
		off-- // encoding/json reports the byte after the offending one
	}
	if strings.Contains(msg, "unexpected end of JSON input") {
		msg = "unexpected end of input"
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return &SyntaxError{Offset: off, Line: line, Col: col, Msg: msg}
}

// parser reads a document that encoding/json has already found valid
// (json.Valid), so its scanner meets no syntax errors: it only splits the
// text into tokens, as json.Decoder.Token would, without its cost.
type parser struct {
	data []byte
	pos  int
	lim  limits
}

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// more reports whether the current object or array has another element.
func (p *parser) more() bool {
	p.space()
	if p.pos >= len(p.data) {
		return false
	}
	c := p.data[p.pos]
	return c != ']' && c != '}'
}

// next returns the next token: json.Delim for { } [ ], string,
// json.Number, bool or nil; separators (, :) are skipped.
func (p *parser) next() json.Token {
	p.space()
	for p.pos < len(p.data) && (p.data[p.pos] == ',' || p.data[p.pos] == ':') {
		p.pos++
		p.space()
	}
	if p.pos >= len(p.data) {
		return io.EOF // unreachable for valid input
	}
	c := p.data[p.pos]
	switch c {
	case '{', '}', '[', ']':
		p.pos++
		return json.Delim(c)
	case '"':
		start := p.pos
		p.pos++
		escaped := false
		for p.data[p.pos] != '"' {
			if p.data[p.pos] == '\\' {
				escaped = true
				p.pos++
			}
			p.pos++
		}
		p.pos++
		if !escaped {
			return string(p.data[start+1 : p.pos-1])
		}
		var str string
		json.Unmarshal(p.data[start:p.pos], &str) // valid: cannot fail
		return str
	case 't':
		p.pos += 4
		return true
	case 'f':
		p.pos += 5
		return false
	case 'n':
		p.pos += 4
		return nil
	}
	start := p.pos
	for p.pos < len(p.data) && strings.IndexByte("+-.eE0123456789", p.data[p.pos]) >= 0 {
		p.pos++
	}
	return json.Number(p.data[start:p.pos])
}

// kind names a token's JSON type for error messages.
func kind(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "true/false"
	case nil:
		return "null"
	}
	return "invalid input"
}

func errf(path, format string, a ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, a...)}
}

// open consumes the start of an object or array (want '{' or '['). A null
// of an optional value reports present=false.
func (p *parser) open(path string, want json.Delim, optional bool) (present bool, err error) {
	t := p.next()
	if t == nil && optional {
		return false, nil
	}
	if d, ok := t.(json.Delim); ok && d == want {
		return true, nil
	}
	what := "an object"
	if want == '[' {
		what = "an array"
	}
	return false, errf(path, "want %s, found %s", what, kind(t))
}

// object reads the keys of an object whose '{' was consumed, calling f for
// each; duplicate keys are errors.
func (p *parser) object(path string, f func(key string) error) error {
	// Small objects (an operation, a range) check a short list; large
	// ones (mem, regs) a map.
	var few [8]string
	n := 0
	var seen map[string]bool
	for p.more() {
		key, _ := p.next().(string)
		dup := false
		if seen != nil {
			dup = seen[key]
			seen[key] = true
		} else {
			for _, k := range few[:n] {
				dup = dup || k == key
			}
			if n < len(few) {
				few[n] = key
				n++
			} else {
				seen = map[string]bool{key: true}
				for _, k := range few {
					seen[k] = true
				}
			}
		}
		if dup {
			return errf(path, "duplicate key %s", textfmt.Quote(key))
		}
		if err := f(key); err != nil {
			return err
		}
	}
	p.next() // '}'
	return nil
}

// array reads the elements of an array whose '[' was consumed.
func (p *parser) array(path string, limit int, what string, f func(i int) error) error {
	for i := 0; p.more(); i++ {
		if i == limit {
			return errf(path, "more than %d %s (the limit)", limit, what)
		}
		if err := f(i); err != nil {
			return err
		}
	}
	p.next() // ']'
	return nil
}

func unknownKey(path, key string, known ...string) error {
	return errf(path, "unknown key %s (known: %s)", textfmt.Quote(key), strings.Join(known, " "))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// numberString parses the contract's number syntax from a string.
func numberString(path, s string) (uint64, error) {
	v, err := regfile.ParseValue(s)
	if err != nil {
		return 0, errf(path, "%s is %v", textfmt.Quote(s), err)
	}
	return v, nil
}

// number reads a contract number: a string (0x... or decimal) or a plain
// non-negative JSON integer.
func (p *parser) number(path string) (uint64, error) { return numberOf(path, p.next()) }

func numberOf(path string, t json.Token) (uint64, error) {
	switch v := t.(type) {
	case string:
		return numberString(path, v)
	case json.Number:
		s := string(v)
		if strings.ContainsAny(s, "-.eE") {
			return 0, errf(path, "%s is not a non-negative integer", textfmt.Quote(s))
		}
		return numberString(path, s)
	default:
		return 0, errf(path, "want a number (\"0x...\", a decimal string or an integer), found %s", kind(v))
	}
}

func (p *parser) document() (*Document, error) {
	d := &Document{PSTATE: at.PSTATE{EL: 2}}
	if _, err := p.open("", '{', false); err != nil {
		return nil, &Error{Msg: "the document " + err.(*Error).Msg}
	}
	haveRAM := false
	err := p.object("", func(key string) error {
		switch key {
		case "ram":
			haveRAM = true
			return p.ram(d)
		case "mem":
			return p.mem(d)
		case "regs":
			return p.regs(d)
		case "pstate":
			return p.pstate(d)
		case "ops":
			return p.ops(d)
		case "watch":
			return p.watch(d)
		case "nested":
			return p.nested(d)
		}
		return unknownKey("", key, "ram", "mem", "regs", "pstate", "ops", "watch", "nested")
	})
	if err != nil {
		return nil, err
	}
	if !haveRAM {
		return nil, errf("ram", "missing: the document must list at least one RAM range")
	}
	return d, d.check()
}

// pair reads an object with exactly the keys a and b, both required,
// calling fa and fb with each value's path.
func (p *parser) pair(path, a, b string, fa, fb func(path string) error) error {
	if _, err := p.open(path, '{', false); err != nil {
		return err
	}
	var haveA, haveB bool
	err := p.object(path, func(key string) error {
		switch key {
		case a:
			haveA = true
			return fa(path + "." + a)
		case b:
			haveB = true
			return fb(path + "." + b)
		}
		return unknownKey(path, key, a, b)
	})
	if err != nil {
		return err
	}
	if !haveA || !haveB {
		return errf(path, "want both %q and %q", a, b)
	}
	return nil
}

func (p *parser) ram(d *Document) error {
	if _, err := p.open("ram", '[', false); err != nil {
		return err
	}
	return p.array("ram", p.lim.ram, "RAM ranges", func(i int) error {
		var r mem.Range
		err := p.pair(fmt.Sprintf("ram[%d]", i), "base", "size",
			func(path string) error { v, err := p.number(path); r.Base = mem.PA(v); return err },
			func(path string) error { v, err := p.number(path); r.Size = v; return err })
		d.RAM = append(d.RAM, r)
		return err
	})
}

func (p *parser) mem(d *Document) error {
	if ok, err := p.open("mem", '{', true); !ok {
		return err
	}
	return p.object("mem", func(key string) error {
		path := "mem[" + textfmt.Quote(key) + "]"
		if len(d.Words) == p.lim.mem {
			return errf("mem", "more than %d words (the limit)", p.lim.mem)
		}
		a, err := regfile.ParseValue(key)
		if err != nil {
			return errf("mem", "key %s is %v", textfmt.Quote(key), err)
		}
		v, err := p.number(path)
		if err != nil {
			return err
		}
		d.Words = append(d.Words, Word{Addr: a, Value: v, Key: key})
		return nil
	})
}

func (p *parser) regs(d *Document) error {
	if ok, err := p.open("regs", '{', true); !ok {
		return err
	}
	return p.object("regs", func(name string) error {
		if !regfile.Known(name) && name != "PAR_EL1" {
			return errf("regs", "unknown register %s (known: %s)", textfmt.Quote(name), strings.Join(RegisterNames(), " "))
		}
		v, err := p.number("regs." + name)
		if err != nil {
			return err
		}
		d.Registers = append(d.Registers, Reg{Name: name, Value: v})
		return nil
	})
}

func (p *parser) pstate(d *Document) error {
	if ok, err := p.open("pstate", '{', true); !ok {
		return err
	}
	return p.object("pstate", func(key string) error {
		switch key {
		case "el":
			t := p.next()
			if t == nil {
				return nil
			}
			el, err := numberOf("pstate.el", t)
			if err != nil {
				return err
			}
			if el != 1 && el != 2 {
				return errf("pstate.el", "%d is not 1 or 2", el)
			}
			d.PSTATE.EL = uint8(el)
			return nil
		case "pan":
			t := p.next()
			if t == nil {
				return nil
			}
			pan, err := numberOf("pstate.pan", t)
			if err != nil {
				return err
			}
			if pan > 1 {
				return errf("pstate.pan", "%d is not 0 or 1", pan)
			}
			d.PSTATE.PAN = pan == 1
			return nil
		}
		return unknownKey("pstate", key, "el", "pan")
	})
}

func (p *parser) ops(d *Document) error {
	if ok, err := p.open("ops", '[', true); !ok {
		return err
	}
	return p.array("ops", p.lim.ops, "operations", func(i int) error {
		var op Op
		err := p.pair(fmt.Sprintf("ops[%d]", i), "op", "va",
			func(path string) error {
				t := p.next()
				s, ok := t.(string)
				if !ok {
					return errf(path, "want a string, found %s", kind(t))
				}
				if op.Op, ok = opByName(s); !ok {
					return errf(path, "%s is not an AT operation (one of %s)", textfmt.Quote(s), opList())
				}
				return nil
			},
			func(path string) error { v, err := p.number(path); op.VA = v; return err })
		d.Ops = append(d.Ops, op)
		return err
	})
}

func (p *parser) watch(d *Document) error {
	if ok, err := p.open("watch", '[', true); !ok {
		return err
	}
	return p.array("watch", p.lim.watch, "watched words", func(i int) error {
		a, err := p.number(fmt.Sprintf("watch[%d]", i))
		d.Watch = append(d.Watch, a)
		return err
	})
}

// opByName finds an operation by its exact contract name.
func opByName(s string) (at.Op, bool) {
	for _, o := range at.Ops() {
		if o.String() == s {
			return o, true
		}
	}
	return 0, false
}

func opList() string {
	var names []string
	for _, o := range at.Ops() {
		names = append(names, o.String())
	}
	return strings.Join(names, " ")
}

// check validates what depends on more than one key: memory words and
// watched words must be aligned RAM words, each address given once.
func (d *Document) check() error {
	if len(d.RAM) == 0 {
		return errf("ram", "must list at least one range")
	}
	sp, err := mem.NewSparse(d.RAM)
	if err != nil {
		return errf("ram", "%s", strings.TrimPrefix(err.Error(), "mem: "))
	}
	for _, w := range d.Words {
		if w.Addr%8 != 0 {
			return errf("mem", "key %s: address %#x is not 8-byte aligned", textfmt.Quote(w.Key), w.Addr)
		}
		if !sp.InRAM(mem.PA(w.Addr)) {
			return errf("mem", "key %s: address %#x is not in RAM", textfmt.Quote(w.Key), w.Addr)
		}
	}
	// The same address in two notations ("0x40", "64"): sort by address.
	idx := make([]int32, len(d.Words))
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.Slice(idx, func(i, j int) bool {
		a, b := d.Words[idx[i]], d.Words[idx[j]]
		return a.Addr < b.Addr || a.Addr == b.Addr && idx[i] < idx[j]
	})
	for i := 1; i < len(idx); i++ {
		a, b := d.Words[idx[i-1]], d.Words[idx[i]]
		if a.Addr == b.Addr {
			return errf("mem", "keys %s and %s both name address %#x", textfmt.Quote(a.Key), textfmt.Quote(b.Key), a.Addr)
		}
	}
	seen := make(map[uint64]int, len(d.Watch))
	for i, a := range d.Watch {
		if a%8 != 0 || !sp.InRAM(mem.PA(a)) {
			return errf(fmt.Sprintf("watch[%d]", i), "%#x is not an 8-byte aligned RAM address", a)
		}
		if j, dup := seen[a]; dup {
			return errf(fmt.Sprintf("watch[%d]", i), "%#x is already watched by watch[%d]", a, j)
		}
		seen[a] = i
	}
	if d.Nested != nil {
		return d.checkNested()
	}
	return nil
}
