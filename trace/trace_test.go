package trace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/workload"
	"github.com/ulikunitz/xz"
)

const committed = "builtin/sortsearch.lackey.xz"

func TestParseLackey(t *testing.T) {
	for _, c := range []struct {
		line string
		want Record
		ok   bool
	}{
		{"I  0400d7d4,8", Record{Instr, 0x0400d7d4, 8}, true},
		{" L 7ff000398,8", Record{Load, 0x7ff000398, 8}, true},
		{" S 04016210,4", Record{Store, 0x04016210, 4}, true},
		{" M 0421F4E0,1", Record{Modify, 0x0421f4e0, 1}, true},
		{" L 1,32", Record{Load, 1, 32}, true},
		{" X 0400d7d4,8", Record{}, false},     // unknown kind
		{"L0400d7d4,8", Record{}, false},       // no space after the kind
		{" L 0400d7d4", Record{}, false},       // no size
		{" L 0400d7d4,", Record{}, false},      // empty size
		{" L ,8", Record{}, false},             // no address
		{" L 04g0,8", Record{}, false},         // not hexadecimal
		{" L 0400d7d4,0", Record{}, false},     // zero size
		{" L 0400d7d4,99999", Record{}, false}, // absurd size
		{" L 0400d7d4,8x", Record{}, false},
		{" L 11112222333344445,8", Record{}, false}, // more than 64 bits
	} {
		r := NewLackey(strings.NewReader(c.line + "\n"))
		got, err := r.Next()
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %+v %v, want %+v ok=%v", c.line, got, err, c.want, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %q does not name the line", c.line, err)
		}
	}
}

// Valgrind's own lines and blank lines are skipped; a bad line is an
// error naming its line number.
func TestLackeySkipsValgrindLines(t *testing.T) {
	in := "==123== Lackey, an example Valgrind tool\n--123-- note\n\nI  10,4\n L 20,8\nnonsense\n"
	r := NewLackey(strings.NewReader(in))
	for _, want := range []Record{{Instr, 0x10, 4}, {Load, 0x20, 8}} {
		if got, err := r.Next(); err != nil || got != want {
			t.Fatalf("%+v %v, want %+v", got, err, want)
		}
	}
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("bad line: %v", err)
	}
}

// countLines counts the record lines of a decompressed Lackey trace the
// simplest way: lines starting "I  " or " L ", " S ", " M ".
func countLines(t *testing.T, path string) (n, instr, modify uint64) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	xr, err := xz.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	s := bufio.NewScanner(xr)
	for s.Scan() {
		l := s.Text()
		switch {
		case strings.HasPrefix(l, "I  "):
			instr++
		case strings.HasPrefix(l, " M "):
			modify++
		case strings.HasPrefix(l, " L "), strings.HasPrefix(l, " S "):
		default:
			continue
		}
		n++
	}
	return n, instr, modify
}

// The committed trace replays record for record: as many records as the
// file has lines, and accesses = records + modifies (a modify is a load and
// a store). The reader's memory does not grow with the trace.
func TestReplayCommittedTrace(t *testing.T) {
	lines, instr, modify := countLines(t, committed)
	if lines < 100000 {
		t.Fatalf("the committed trace has %d records", lines)
	}
	p := &Replay{Limit: 1 << 47, Open: func() (Reader, io.Closer, error) {
		f, err := Open(committed, Lackey)
		return f, f, err
	}}
	b := make([]workload.Access, 256)
	var fetches, ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	for {
		n := p.Fill(b)
		for _, a := range b[:n] {
			if a.Kind == workload.Fetch {
				fetches.Mallocs++ // counts fetches
			}
			if a.Region != -1 || a.Off%uint64(a.Size) != 0 {
				t.Fatalf("access %+v: not absolute or not aligned", a)
			}
		}
		if n < len(b) {
			e := p.Event()
			if e.Kind == workload.EventEnd {
				break
			}
			if e.Kind != workload.EventMmapAll {
				t.Fatalf("event %+v", e)
			}
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	if p.Records != lines || p.Accesses != lines+modify || fetches.Mallocs != instr || p.Skipped != 0 {
		t.Errorf("replayed %d records, %d accesses, %d fetches; the file has %d records, %d modifies, %d instructions",
			p.Records, p.Accesses, fetches.Mallocs, lines, modify, instr)
	}
	if grew := after.TotalAlloc - ms.TotalAlloc; grew > 16<<20 {
		t.Errorf("reading the trace allocated %d bytes", grew)
	}
}

// encodeChampSim is the inverse of the reader, for tests.
func encodeChampSim(ip uint64, dst [2]uint64, src [4]uint64) []byte {
	var b [ChampSimRecordSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], ip)
	for i, a := range dst {
		le.PutUint64(b[16+8*i:], a)
	}
	for i, a := range src {
		le.PutUint64(b[32+8*i:], a)
	}
	return b[:]
}

func TestChampSim(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(encodeChampSim(0x400000, [2]uint64{0x7000, 0}, [4]uint64{0x8000, 0, 0x9000, 0}))
	buf.Write(encodeChampSim(0x400004, [2]uint64{}, [4]uint64{}))
	r := NewChampSim(&buf)
	want := []Record{{Instr, 0x400000, 4}, {Load, 0x8000, 8}, {Load, 0x9000, 8}, {Store, 0x7000, 8}, {Instr, 0x400004, 4}}
	for _, w := range want {
		if got, err := r.Next(); err != nil || got != w {
			t.Fatalf("%+v %v, want %+v", got, err, w)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if r.Instructions() != 2 {
		t.Errorf("%d instructions", r.Instructions())
	}
	// A truncated record is an error naming the instruction.
	r = NewChampSim(bytes.NewReader(encodeChampSim(1, [2]uint64{}, [4]uint64{})[:40]))
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "instruction 1") {
		t.Errorf("truncated: %v", err)
	}
}

// Compressed and plain input read the same.
func TestDecompress(t *testing.T) {
	plain := "I  10,4\n S 20,8\n"
	var xzbuf bytes.Buffer
	w, _ := xz.NewWriter(&xzbuf)
	io.WriteString(w, plain)
	w.Close()
	for name, in := range map[string][]byte{"plain": []byte(plain), "xz": xzbuf.Bytes()} {
		r, err := Decompress(bytes.NewReader(in))
		if err != nil {
			t.Fatal(name, err)
		}
		lr := NewLackey(r)
		n := 0
		for {
			if _, err := lr.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(name, err)
				}
				break
			}
			n++
		}
		if n != 2 {
			t.Errorf("%s: %d records", name, n)
		}
	}
	if _, err := Decompress(bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2})); err == nil {
		t.Error("corrupt xz header accepted")
	}
}

// Replay details: sizes other than 1/2/4/8 become 8-byte accesses, the
// address rounded down; fetches are 4 bytes at a multiple of 4; records
// beyond the limit are skipped; with Loop the trace starts again.
func TestReplayMapping(t *testing.T) {
	in := "I  1003,3\n L 2005,16\n S 3002,2\n M 4001,1\n L ffff000,8\n"
	p := &Replay{Limit: 0x10000, Loop: true, Open: func() (Reader, io.Closer, error) {
		return NewLackey(strings.NewReader(in)), io.NopCloser(nil), nil
	}}
	b := make([]workload.Access, 12)
	if n := p.Fill(b); n != 0 || p.Event().Kind != workload.EventMmapAll {
		t.Fatal("no mapping first")
	}
	n := p.Fill(b)
	want := []workload.Access{
		{Off: 0x1000, Size: 4, Kind: workload.Fetch, Region: -1},
		{Off: 0x2000, Size: 8, Kind: workload.Load, Region: -1},
		{Off: 0x3002, Size: 2, Kind: workload.Store, Region: -1},
		{Off: 0x4001, Size: 1, Kind: workload.Load, Region: -1},
		{Off: 0x4001, Size: 1, Kind: workload.Store, Region: -1},
	}
	if n != len(b) {
		t.Fatalf("filled %d", n)
	}
	for i, w := range want {
		got := b[i]
		got.Val = 0
		if got != w {
			t.Errorf("access %d: %+v, want %+v", i, got, w)
		}
	}
	if p.Skipped != 2 || p.Passes != 3 { // 12 accesses: two passes of 5 (each skipping one record), and 2 of a third
		t.Errorf("skipped %d, passes %d", p.Skipped, p.Passes)
	}
}

func FuzzLackey(f *testing.F) {
	f.Add([]byte("I  0400d7d4,8\n L 7ff000398,8\n"))
	f.Add([]byte("==1== x\n M 0,1\n S ffffffffffffffff,1024\n"))
	f.Add([]byte(" L 1,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewLackey(bytes.NewReader(in))
		for i := 0; i < 10000; i++ {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.Size == 0 || rec.Size > maxSize || !strings.ContainsRune("ILSM", rune(rec.Kind)) {
				t.Fatalf("record %+v", rec)
			}
		}
	})
}

func FuzzChampSim(f *testing.F) {
	f.Add(encodeChampSim(0x400000, [2]uint64{0x7000, 0}, [4]uint64{0x8000, 0, 0, 0}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewChampSim(bytes.NewReader(in))
		n := 0
		for {
			rec, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) && len(in)%ChampSimRecordSize != 0 {
					t.Fatalf("clean EOF on %d bytes", len(in))
				}
				return
			}
			if rec.Size != 4 && rec.Size != 8 {
				t.Fatalf("record %+v", rec)
			}
			n++
			if n > 7*len(in)/ChampSimRecordSize {
				t.Fatalf("%d records from %d bytes", n, len(in))
			}
		}
	})
}

func TestBuiltin(t *testing.T) {
	if got := Builtins(); len(got) != 1 || got[0] != "sortsearch" {
		t.Fatalf("built-in traces %v", got)
	}
	r, c, err := OpenSource("builtin:sortsearch", Lackey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rec, err := r.Next(); err != nil || rec.Kind != Instr {
		t.Fatalf("first record %+v %v", rec, err)
	}
	if _, _, err := OpenSource("builtin:nope", Lackey); err == nil {
		t.Error("unknown built-in trace opened")
	}
}
