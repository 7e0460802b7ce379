package virt_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/virt"
)

// minimalELF builds an AArch64 executable with one segment of code at pa.
func minimalELF(t *testing.T, machine elf.Machine, pa uint64, code []uint32) []byte {
	t.Helper()
	var text bytes.Buffer
	for _, w := range code {
		binary.Write(&text, binary.LittleEndian, w)
	}
	const ehsize, phsize = 64, 56
	var b bytes.Buffer
	hdr := elf.Header64{
		Ident:     [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   1,
		Entry:     pa,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     1,
	}
	binary.Write(&b, binary.LittleEndian, hdr)
	ph := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: ehsize + phsize,
		Vaddr: pa, Paddr: pa, Filesz: uint64(text.Len()), Memsz: uint64(text.Len()) + 16, Align: 4}
	binary.Write(&b, binary.LittleEndian, ph)
	b.Write(text.Bytes())
	return b.Bytes()
}

// powerOff is: ldr x0, =0x84000008 (movz/movk), smc #0.
var powerOff = []uint32{0xd2800100, 0xf2b08000, 0xd4000003}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"not an ELF", []byte("hello"), "not an ELF file"},
		{"x86-64", minimalELF(t, elf.EM_X86_64, 0x40200000, powerOff), "EM_AARCH64"},
		{"below RAM", minimalELF(t, elf.EM_AARCH64, 0x1000, powerOff), "outside RAM"},
		{"past RAM", minimalELF(t, elf.EM_AARCH64, 0x47fffff0, powerOff), "outside RAM"},
	}
	for _, tc := range cases {
		b, err := virt.New(virt.Config{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Load(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestRunPowerOffBudgetAndPCOutside(t *testing.T) {
	run := func(code []uint32, budget uint64) (*virt.Board, error) {
		b, err := virt.New(virt.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Load(bytes.NewReader(minimalELF(t, elf.EM_AARCH64, 0x40200000, code))); err != nil {
			t.Fatal(err)
		}
		return b, b.Run(budget)
	}
	if b, err := run(powerOff, 100); err != nil || !b.Off {
		t.Errorf("power off: err %v, off %v", err, b.Off)
	}
	if _, err := run([]uint32{0x14000000}, 1000); !errors.Is(err, virt.ErrBudget) { // b .
		t.Errorf("b .: %v, want ErrBudget", err)
	}
	// br x1 with x1 = 0x1000 (nothing there): the fetch and the vector's
	// fetch (VBAR_EL2 is 0 at reset) abort.
	if _, err := run([]uint32{0xd2820001, 0xd61f0020}, 1000); !errors.Is(err, virt.ErrPCOutside) {
		t.Errorf("branch outside memory: %v, want ErrPCOutside", err)
	}
}

func TestUARTAndPSCIAtEL1(t *testing.T) {
	// movz x1, #0x900, lsl #16; movz w2, #'A'; str w2, [x1]; power off by HVC.
	code := []uint32{0xd2a12001, 0x52800822, 0xb9000022, 0xd2800100, 0xf2b08000, 0xd4000002}
	b, err := virt.New(virt.Config{EL: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(bytes.NewReader(minimalELF(t, elf.EM_AARCH64, 0x40200000, code))); err != nil {
		t.Fatal(err)
	}
	if err := b.Run(100); err != nil || !b.Off || b.Output.String() != "A" {
		t.Errorf("err %v off %v output %q, want nil true \"A\"", err, b.Off, b.Output.String())
	}
}

func TestRAM(t *testing.T) {
	r, err := virt.NewRAM(0x40000000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Read64(0x40000008); !ok || v != 0 {
		t.Errorf("untouched RAM reads %#x %v", v, ok)
	}
	r.Write(0x40000003, 4, 0xaabbccdd) // across a word
	if v, _ := r.Read(0x40000003, 4); v != 0xaabbccdd {
		t.Errorf("read back %#x", v)
	}
	if ok, _ := r.CompareAndSwap64(0x40000000, 0xaabbccdd000000, 1); !ok {
		t.Error("compare-and-swap of the written word failed")
	}
	if _, ok := r.Read(0x40100000, 1); ok {
		t.Error("read past RAM succeeded")
	}
	if r.Page(0x3ffff000) != nil || r.Page(0x40000000) == nil {
		t.Error("Page")
	}
	if _, err := virt.NewRAM(0x40000001, 4096); err == nil {
		t.Error("unaligned RAM accepted")
	}
	_ = mem.PA(0)
}

// TestSetSymbol writes the seed words of the torture program.
func TestSetSymbol(t *testing.T) {
	b, err := virt.New(virt.Config{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := b.LoadFile(filepath.Join("..", "testdata", "a64", "torture.elf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetSymbol(img, "nestmmu_seed", 42); err != nil {
		t.Fatal(err)
	}
	if err := b.SetSymbol(img, "no_such_symbol", 1); err == nil {
		t.Error("a missing symbol was accepted")
	}
	if _, err := os.Stat(filepath.Join("..", "testdata", "a64", "torture.elf")); err != nil {
		t.Fatal(err)
	}
}
