package virt

import (
	"debug/elf"
	"fmt"
	"io"
	"os"

	"github.com/nestmmu/nestmmu/arm64/interp"
	"github.com/nestmmu/nestmmu/mem"
)

// Image is a loaded program.
type Image struct {
	Entry   uint64
	Symbols map[string]uint64
}

// LoadFile loads an ELF file (see Load).
func (b *Board) LoadFile(path string) (*Image, error) { return loadFile(path, b.Load) }

// loadFile opens path and loads it with load, naming the file in errors.
func loadFile(path string, load func(io.ReaderAt) (*Image, error)) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// Load loads an AArch64 little-endian executable ELF: every PT_LOAD
// segment at its physical address (p_paddr, as QEMU's loader), the bytes
// past the file size zeroed, and sets the PC to the entry point. It
// refuses a file that is not such an ELF and a segment that is not
// wholly in RAM, naming the segment and address.
func (b *Board) Load(r io.ReaderAt) (*Image, error) {
	img, err := loadELF(r, b.RAM.Range(), func(pa mem.PA, data []byte, zero uint64) error {
		if err := b.RAM.WriteBytes(pa, data); err != nil {
			return err
		}
		for a := pa + mem.PA(len(data)); zero > 0; a, zero = a+1, zero-1 {
			b.RAM.Write(a, 1, 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	enter(b.CPU, img)
	return img, nil
}

// enter sets the PC to the program's entry point, with nothing decoded.
func enter(c *interp.CPU, img *Image) {
	c.PE.PC = mem.VA(img.Entry)
	c.InvalidateCode()
	c.Flush()
}

// loadELF checks an AArch64 little-endian executable ELF and gives each
// PT_LOAD segment to write: its physical address, its file bytes and the
// number of zero bytes after them; every segment must lie in ram.
func loadELF(r io.ReaderAt, ram mem.Range, write func(pa mem.PA, data []byte, zero uint64) error) (*Image, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %v", err)
	}
	switch {
	case f.Class != elf.ELFCLASS64:
		return nil, fmt.Errorf("ELF class %v: want ELFCLASS64", f.Class)
	case f.Data != elf.ELFDATA2LSB:
		return nil, fmt.Errorf("ELF data %v: want little-endian (ELFDATA2LSB)", f.Data)
	case f.Machine != elf.EM_AARCH64:
		return nil, fmt.Errorf("ELF machine %v: want EM_AARCH64", f.Machine)
	case f.Type != elf.ET_EXEC:
		return nil, fmt.Errorf("ELF type %v: want an executable (ET_EXEC)", f.Type)
	}
	contains := func(pa uint64) bool { return pa >= uint64(ram.Base) && pa-uint64(ram.Base) < ram.Size }
	n := 0
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		n++
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("segment %d: file size %#x larger than its memory size %#x", i, p.Filesz, p.Memsz)
		}
		end := p.Paddr + p.Memsz - 1
		if end < p.Paddr || !contains(p.Paddr) || !contains(end) {
			return nil, fmt.Errorf("segment %d at PA %#x-%#x is outside RAM [%#x, %#x)", i, p.Paddr, end, uint64(ram.Base), uint64(ram.End()))
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("segment %d: %v", i, err)
		}
		if err := write(mem.PA(p.Paddr), data, p.Memsz-p.Filesz); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no loadable segment")
	}
	img := &Image{Entry: f.Entry, Symbols: map[string]uint64{}}
	if syms, err := f.Symbols(); err == nil {
		for _, s := range syms {
			img.Symbols[s.Name] = s.Value
		}
	}
	return img, nil
}

// SetSymbol writes the 64-bit value v at the address of a symbol of img
// (a data symbol the program reads, e.g. a seed), which must be in RAM.
func (b *Board) SetSymbol(img *Image, name string, v uint64) error {
	return setSymbol(img, name, func(pa mem.PA) bool { return b.RAM.Write(pa, 8, v) })
}

// setSymbol writes a symbol's aligned word with write.
func setSymbol(img *Image, name string, write func(pa mem.PA) bool) error {
	a, ok := img.Symbols[name]
	if !ok {
		return fmt.Errorf("the program has no symbol %q", name)
	}
	if a%8 != 0 || !write(mem.PA(a)) {
		return fmt.Errorf("symbol %q at %#x is not an aligned word in RAM", name, a)
	}
	return nil
}
