package memimage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nestmmu/nestmmu/conform/qemu"
	"github.com/nestmmu/nestmmu/mem"
)

// words returns n little-endian words base+i.
func words(n int, base uint64) []byte {
	b := make([]byte, 8*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(b[8*i:], base+uint64(i))
	}
	return b
}

func TestRaw(t *testing.T) {
	data := words(1024, 0x1000)
	m, err := NewRaw(bytes.NewReader(data), int64(len(data)), 0x4000_0000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pa   mem.PA
		v    uint64
		ok   bool
		name string
	}{
		{0x4000_0000, 0x1000, true, "first word"},
		{0x4000_0ff8, 0x1000 + 511, true, "end of first page"},
		{0x4000_1000, 0x1000 + 512, true, "second page"},
		{0x4000_1ff8, 0x1000 + 1023, true, "last word"},
		{0x4000_2000, 0, false, "past the end"},
		{0x3fff_fff8, 0, false, "below"},
		{0x4000_0004, 0, false, "misaligned"},
	} {
		v, ok := m.Read64(c.pa)
		if v != c.v || ok != c.ok {
			t.Errorf("%s: Read64(%#x) = %#x %v, want %#x %v", c.name, uint64(c.pa), v, ok, c.v, c.ok)
		}
	}
	// Updates go to the overlay.
	if sw, ok := m.CompareAndSwap64(0x4000_0008, 0x1001, 0xabc); !sw || !ok {
		t.Fatal("CAS failed")
	}
	if sw, _ := m.CompareAndSwap64(0x4000_0008, 0x1001, 0xdef); sw {
		t.Fatal("CAS with a stale old value succeeded")
	}
	if v, _ := m.Read64(0x4000_0008); v != 0xabc {
		t.Errorf("after CAS: %#x", v)
	}
	if binary.LittleEndian.Uint64(data[8:]) != 0x1001 {
		t.Error("the backing data was written")
	}
	if err := m.Write64(0x4000_2000, 1); err == nil {
		t.Error("write outside the image accepted")
	}
	if r := m.Ranges(); len(r) != 1 || r[0].Base != 0x4000_0000 || r[0].Size != 0x2000 {
		t.Errorf("ranges %+v", r)
	}
	if _, err := NewRaw(bytes.NewReader(nil), 0, 0); err == nil {
		t.Error("empty raw image accepted")
	}
	if _, err := NewRaw(bytes.NewReader(data), int64(len(data)), 0xffff_ffff_ffff_f000); err == nil {
		t.Error("wrapping raw image accepted")
	}
}

// elfCore builds a minimal ELF64 core file with PT_LOAD segments
// (paddr, file bytes, memsz) and a PT_NOTE, laid out like QEMU's
// dump-guest-memory: headers, notes, then segment data at unaligned
// offsets.
func elfCore(segs []struct {
	paddr uint64
	data  []byte
	memsz uint64
}) []byte {
	le := binary.LittleEndian
	phnum := len(segs) + 1
	off := uint64(64 + 56*phnum + 20) // a 20-byte note before the data
	var hdr bytes.Buffer
	id := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	hdr.Write(id)
	binary.Write(&hdr, le, uint16(4))   // ET_CORE
	binary.Write(&hdr, le, uint16(183)) // EM_AARCH64
	binary.Write(&hdr, le, uint32(1))
	binary.Write(&hdr, le, uint64(0))  // entry
	binary.Write(&hdr, le, uint64(64)) // phoff
	binary.Write(&hdr, le, uint64(0))  // shoff
	binary.Write(&hdr, le, uint32(0))
	binary.Write(&hdr, le, uint16(64))
	binary.Write(&hdr, le, uint16(56))
	binary.Write(&hdr, le, uint16(phnum))
	binary.Write(&hdr, le, uint16(64))
	binary.Write(&hdr, le, uint16(0))
	binary.Write(&hdr, le, uint16(0))
	ph := func(typ uint32, off, paddr, filesz, memsz uint64) {
		binary.Write(&hdr, le, typ)
		binary.Write(&hdr, le, uint32(0))
		binary.Write(&hdr, le, off)
		binary.Write(&hdr, le, uint64(0)) // vaddr
		binary.Write(&hdr, le, paddr)
		binary.Write(&hdr, le, filesz)
		binary.Write(&hdr, le, memsz)
		binary.Write(&hdr, le, uint64(1))
	}
	ph(4, uint64(64+56*phnum), 0, 20, 0) // PT_NOTE
	dataOff := off
	for _, s := range segs {
		ph(1, dataOff, s.paddr, uint64(len(s.data)), s.memsz)
		dataOff += uint64(len(s.data))
	}
	hdr.Write(make([]byte, 20))
	for _, s := range segs {
		hdr.Write(s.data)
	}
	return hdr.Bytes()
}

func TestELF(t *testing.T) {
	type seg = struct {
		paddr uint64
		data  []byte
		memsz uint64
	}
	core := elfCore([]seg{
		{0x8000_0000, words(16, 0x100), 0x1000}, // 128 bytes from the file, the rest zero
		{0x4000_0000, words(1024, 0x200), 0x2000},
	})
	m, err := NewELF(bytes.NewReader(core))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pa mem.PA
		v  uint64
		ok bool
	}{
		{0x4000_0000, 0x200, true}, {0x4000_0ff8, 0x200 + 511, true}, {0x4000_1000, 0x200 + 512, true},
		{0x8000_0000, 0x100, true}, {0x8000_0078, 0x10f, true}, {0x8000_0080, 0, true}, {0x8000_0ff8, 0, true},
		{0x8000_1000, 0, false}, {0x4000_2000, 0, false}, {0x0, 0, false},
	} {
		if v, ok := m.Read64(c.pa); v != c.v || ok != c.ok {
			t.Errorf("Read64(%#x) = %#x %v, want %#x %v", uint64(c.pa), v, ok, c.v, c.ok)
		}
	}
	if r := m.Ranges(); len(r) != 2 || r[0].Base != 0x4000_0000 || r[1].Size != 0x1000 {
		t.Errorf("ranges %+v", r)
	}
	// Overlapping segments and a file with no PT_LOAD are refused.
	if _, err := NewELF(bytes.NewReader(elfCore([]seg{{0x1000, words(512, 0), 0x1000}, {0x1800, words(8, 0), 0x40}}))); err == nil {
		t.Error("overlapping segments accepted")
	}
	if _, err := NewELF(bytes.NewReader(elfCore(nil))); err == nil {
		t.Error("no PT_LOAD accepted")
	}
	if _, err := NewELF(bytes.NewReader([]byte("not an elf file at all........................................................"))); err == nil {
		t.Error("garbage accepted")
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw.bin")
	os.WriteFile(raw, words(512, 7), 0o644)
	core := filepath.Join(dir, "core.elf")
	os.WriteFile(core, elfCore([]struct {
		paddr uint64
		data  []byte
		memsz uint64
	}{{0x1000, words(8, 9), 64}}), 0o644)
	kd := filepath.Join(dir, "kdump")
	os.WriteFile(kd, []byte("KDUMP   and more"), 0o644)
	base := uint64(0x4000_0000)
	cases := []struct {
		path string
		base *uint64
		err  string
	}{
		{raw, &base, ""}, {raw, nil, "give the physical base address"},
		{core, nil, ""}, {core, &base, "only for raw images"},
		{kd, nil, "kdump-compressed"}, {filepath.Join(dir, "none"), &base, "no such file"},
	}
	for _, c := range cases {
		m, err := Open(c.path, c.base)
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.path, err)
				continue
			}
			m.Close()
		} else if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.path, err, c.err)
		}
	}
}

// FuzzNewELF: arbitrary files never panic, and an accepted image answers
// reads inside and outside its ranges.
func FuzzNewELF(f *testing.F) {
	f.Add(elfCore([]struct {
		paddr uint64
		data  []byte
		memsz uint64
	}{{0x1000, words(8, 9), 64}}))
	f.Add([]byte{0x7f, 'E', 'L', 'F'})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := NewELF(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range m.Ranges() {
			m.Read64(r.Base)
			m.Read64(r.Base + mem.PA(r.Size) - 8)
			m.Read64(r.Base - 8)
		}
	})
}

// QEMU's own dump-guest-memory (ELF) and pmemsave (raw) output of a guest
// whose RAM holds known words read back as those words.
func TestQEMUDumps(t *testing.T) {
	bin, err := qemu.Find()
	if err != nil {
		if os.Getenv("NESTMMU_REQUIRE_QEMU") == "1" {
			t.Fatalf("NESTMMU_REQUIRE_QEMU=1 but: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	const loadAt = 0x4020_1000
	data := words(512, 0x1122_3344_5566_0000)
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	elfPath, rawPath := filepath.Join(dir, "dump.elf"), filepath.Join(dir, "raw.bin")
	script := fmt.Sprintf("dump-guest-memory %s\npmemsave 0x40000000 0x400000 \"%s\"\nquit\n", elfPath, rawPath)
	cmd := exec.Command(bin, "-M", "virt", "-cpu", "max", "-m", "64M", "-S", "-nographic", "-monitor", "stdio",
		"-serial", "none", "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", filepath.Join(dir, "data.bin"), loadAt))
	cmd.Stdin = strings.NewReader(script)
	done := make(chan error, 1)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("qemu: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("qemu did not finish:\n%s", out.String())
	}
	base := uint64(0x4000_0000)
	for _, c := range []struct {
		path string
		base *uint64
	}{{elfPath, nil}, {rawPath, &base}} {
		m, err := Open(c.path, c.base)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.path, err, out.String())
		}
		for i := 0; i < 512; i++ {
			pa := mem.PA(loadAt + 8*i)
			v, ok := m.Read64(pa)
			if want := binary.LittleEndian.Uint64(data[8*i:]); !ok || v != want {
				t.Fatalf("%s (%s): Read64(%#x) = %#x %v, want %#x", c.path, m.Format, uint64(pa), v, ok, want)
			}
		}
		if m.Format == "elf" {
			r := m.Ranges()
			if len(r) == 0 || r[0].Base != 0x4000_0000 || r[0].Size != 64<<20 {
				t.Errorf("ELF ranges %+v, want the guest's 64 MiB of RAM at 0x40000000", r)
			}
		}
		m.Close()
	}
}
