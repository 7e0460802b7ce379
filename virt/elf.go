package virt

import (
	"debug/elf"
	"fmt"
	"io"
	"os"

	"github.com/nestmmu/nestmmu/mem"
)

// Image is a loaded program.
type Image struct {
	Entry   uint64
	Symbols map[string]uint64
}

// LoadFile loads an ELF file (see Load).
func (b *Board) LoadFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := b.Load(f)
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
	n := 0
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		n++
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("segment %d: file size %#x larger than its memory size %#x", i, p.Filesz, p.Memsz)
		}
		pa := mem.PA(p.Paddr)
		end := p.Paddr + p.Memsz - 1
		if end < p.Paddr || !b.RAM.Contains(pa) || !b.RAM.Contains(mem.PA(end)) {
			rr := b.RAM.Range()
			return nil, fmt.Errorf("segment %d at PA %#x-%#x is outside RAM [%#x, %#x)", i, p.Paddr, end, uint64(rr.Base), uint64(rr.End()))
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("segment %d: %v", i, err)
		}
		if err := b.RAM.WriteBytes(pa, data); err != nil {
			return nil, err
		}
		for a := p.Paddr + p.Filesz; a <= end; a++ {
			b.RAM.Write(mem.PA(a), 1, 0)
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
	b.PE.PC = mem.VA(f.Entry)
	b.CPU.InvalidateCode()
	b.CPU.Flush()
	return img, nil
}

// SetSymbol writes the 64-bit value v at the address of a symbol of img
// (a data symbol the program reads, e.g. a seed), which must be in RAM.
func (b *Board) SetSymbol(img *Image, name string, v uint64) error {
	a, ok := img.Symbols[name]
	if !ok {
		return fmt.Errorf("the program has no symbol %q", name)
	}
	if a%8 != 0 || !b.RAM.Write(mem.PA(a), 8, v) {
		return fmt.Errorf("symbol %q at %#x is not an aligned word in RAM", name, a)
	}
	return nil
}
