// Package trace reads memory-access traces of real programs, streaming in
// constant memory: the text output of Valgrind's Lackey tool
// (valgrind --tool=lackey --trace-mem=yes: instruction fetches, loads,
// stores and modifies) and ChampSim's binary instruction traces. Either may
// be compressed with xz or gzip (recognised by their magic bytes). Stream
// turns a trace into a workload.Stream that replays it in a guest process.
package trace

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ulikunitz/xz"
)

// Kind is a trace record's kind.
type Kind uint8

// Record kinds (Lackey's letters).
const (
	Instr  Kind = 'I'
	Load   Kind = 'L'
	Store  Kind = 'S'
	Modify Kind = 'M' // a load and a store of the same location
)

// Record is one memory reference of a trace.
type Record struct {
	Kind Kind
	Addr uint64
	Size uint32
}

// Reader reads records one at a time; Next returns io.EOF after the last.
type Reader interface {
	Next() (Record, error)
}

// Format names a trace format.
type Format string

// Formats.
const (
	Lackey   Format = "lackey"
	ChampSim Format = "champsim"
)

// maxSize bounds a record's size (Lackey reports up to a vector
// register's width).
const maxSize = 1024

// Decompress returns r, decompressed when it starts with the xz or gzip
// magic bytes.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("trace: xz: %w", err)
		}
		return xr, nil
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("trace: gzip: %w", err)
		}
		return gr, nil
	}
	return br, nil
}

// File is an open trace file.
type File struct {
	Reader
	f *os.File
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Open opens a trace file of the given format (compressed or not).
func Open(path string, format Format) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	r, err := Decompress(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	var tr Reader
	switch format {
	case Lackey:
		tr = NewLackey(r)
	case ChampSim:
		tr = NewChampSim(r)
	default:
		f.Close()
		return nil, fmt.Errorf("trace: unknown format %q (want %q or %q)", format, Lackey, ChampSim)
	}
	return &File{Reader: tr, f: f}, nil
}

// LackeyReader parses Lackey's output: lines "I  addr,size" (an
// instruction fetch) and " L addr,size", " S addr,size", " M addr,size"
// (load, store, modify), addresses in hexadecimal, sizes in decimal.
// Valgrind's own messages ("==pid== ...", "--pid-- ...") and empty lines
// are skipped; any other line is an error naming its number.
type LackeyReader struct {
	s    *bufio.Scanner
	line int
}

// NewLackey returns a reader of Lackey text from r.
func NewLackey(r io.Reader) *LackeyReader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), 4096)
	return &LackeyReader{s: s}
}

// Line returns the number of the line last read.
func (l *LackeyReader) Line() int { return l.line }

// Next returns the next record.
func (l *LackeyReader) Next() (Record, error) {
	for l.s.Scan() {
		l.line++
		b := l.s.Bytes()
		i := 0
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if i == len(b) || bytes.HasPrefix(b[i:], []byte("==")) || bytes.HasPrefix(b[i:], []byte("--")) {
			continue
		}
		r, ok := parseLackey(b[i:])
		if !ok {
			return Record{}, fmt.Errorf("trace: lackey line %d: %q is not \"I|L|S|M address,size\"", l.line, clip(b))
		}
		return r, nil
	}
	if err := l.s.Err(); err != nil {
		return Record{}, fmt.Errorf("trace: lackey line %d: %w", l.line+1, err)
	}
	return Record{}, io.EOF
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// parseLackey parses "K addr,size" (K one of I, L, S, M).
func parseLackey(b []byte) (Record, bool) {
	if len(b) < 4 {
		return Record{}, false
	}
	var r Record
	switch k := Kind(b[0]); k {
	case Instr, Load, Store, Modify:
		r.Kind = k
	default:
		return Record{}, false
	}
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i == 1 {
		return Record{}, false
	}
	start := i
	for ; i < len(b) && b[i] != ','; i++ {
		d, ok := hexDigit(b[i])
		if !ok || i-start >= 16 {
			return Record{}, false
		}
		r.Addr = r.Addr<<4 | d
	}
	if i == start || i == len(b) {
		return Record{}, false
	}
	i++
	if i == len(b) {
		return Record{}, false
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return Record{}, false
		}
		r.Size = r.Size*10 + uint32(c-'0')
		if r.Size > maxSize {
			return Record{}, false
		}
	}
	return r, r.Size > 0
}

func hexDigit(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}
