// Package memimage reads physical memory images as a mem.Memory, so the
// modelled MMU (arm64/vmsa) and the table dumper (arm64/ptdump) can walk a
// real guest's translation tables:
//
//   - a raw image: the bytes of physical memory from a base address, as
//     QEMU's `pmemsave ADDR SIZE FILE` monitor command writes them;
//   - an ELF core file whose PT_LOAD segments carry physical addresses
//     (p_paddr), as QEMU's `dump-guest-memory FILE` writes it (the ELF
//     format, not the kdump-compressed ones).
//
// Words are read little-endian from the file; the walker byte-reverses
// them for big-endian tables. Hardware updates (CompareAndSwap64, Write64)
// go to an in-memory overlay: the file is never written. An Image is not
// safe for concurrent use.
package memimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/nestmmu/nestmmu/mem"
)

// segment is a file-backed physical range.
type segment struct {
	base mem.PA
	// fileSize bytes come from the file at off; the rest up to size read
	// as zero (an ELF segment's p_memsz beyond p_filesz).
	fileSize, size uint64
	off            int64
}

func (s segment) contains(pa mem.PA) bool { return pa >= s.base && uint64(pa-s.base) < s.size }

const pageSize = 4096

// maxCachedPages bounds the page cache (16 MiB).
const maxCachedPages = 4096

// Image is physical memory backed by a file.
type Image struct {
	r       io.ReaderAt
	closer  io.Closer
	segs    []segment
	overlay map[mem.PA]uint64
	pages   map[int64][]byte // file page index -> contents
	// Format is "raw" or "elf".
	Format string
}

// NewRaw returns the image of size bytes of r holding physical memory from
// base.
func NewRaw(r io.ReaderAt, size int64, base uint64) (*Image, error) {
	if size <= 0 {
		return nil, errors.New("memimage: empty raw image")
	}
	if base+uint64(size) < base && base+uint64(size) != 0 {
		return nil, fmt.Errorf("memimage: raw image of %#x bytes at %#x wraps past the top of the address space", size, base)
	}
	return &Image{r: r, Format: "raw", segs: []segment{{base: mem.PA(base), fileSize: uint64(size), size: uint64(size)}}}, nil
}

// NewELF returns the image of an ELF core file: one range per PT_LOAD
// segment, at its physical address.
func NewELF(r io.ReaderAt) (*Image, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("memimage: %w", err)
	}
	if f.Class != elf.ELFCLASS64 && f.Class != elf.ELFCLASS32 {
		return nil, fmt.Errorf("memimage: ELF class %v", f.Class)
	}
	m := &Image{r: r, Format: "elf"}
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("memimage: segment %d: file size %#x exceeds memory size %#x", i, p.Filesz, p.Memsz)
		}
		if p.Paddr+p.Memsz < p.Paddr && p.Paddr+p.Memsz != 0 {
			return nil, fmt.Errorf("memimage: segment %d at %#x+%#x wraps past the top of the address space", i, p.Paddr, p.Memsz)
		}
		m.segs = append(m.segs, segment{base: mem.PA(p.Paddr), fileSize: p.Filesz, size: p.Memsz, off: int64(p.Off)})
	}
	if len(m.segs) == 0 {
		return nil, errors.New("memimage: the ELF file has no PT_LOAD segment")
	}
	sort.Slice(m.segs, func(i, j int) bool { return m.segs[i].base < m.segs[j].base })
	for i := 1; i < len(m.segs); i++ {
		a, b := m.segs[i-1], m.segs[i]
		if uint64(b.base-a.base) < a.size {
			return nil, fmt.Errorf("memimage: segments at %#x+%#x and %#x+%#x overlap", uint64(a.base), a.size, uint64(b.base), b.size)
		}
	}
	return m, nil
}

// Open opens a memory image file: an ELF core file (detected by its magic
// number; base must then be nil), or a raw image at *base.
func Open(path string, base *uint64) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [8]byte
	n, _ := f.ReadAt(magic[:], 0)
	var m *Image
	switch {
	case n >= 4 && bytes.Equal(magic[:4], []byte(elf.ELFMAG)):
		if base != nil {
			f.Close()
			return nil, fmt.Errorf("memimage: %s is an ELF core file (its segments give the addresses): a base address is only for raw images", path)
		}
		m, err = NewELF(f)
	case n == 8 && string(magic[:]) == "KDUMP   ":
		err = fmt.Errorf("memimage: %s is a kdump-compressed dump: write the ELF format (dump-guest-memory without -z/-l/-s)", path)
	case base == nil:
		err = fmt.Errorf("memimage: %s is not an ELF core file: give the physical base address of a raw image", path)
	default:
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			m, err = NewRaw(f, st.Size(), *base)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	m.closer = f
	return m, nil
}

// Close closes the file.
func (m *Image) Close() error {
	if m.closer == nil {
		return nil
	}
	return m.closer.Close()
}

// Ranges returns the physical ranges the image holds, ascending.
func (m *Image) Ranges() []mem.Range {
	out := make([]mem.Range, len(m.segs))
	for i, s := range m.segs {
		out[i] = mem.Range{Base: s.base, Size: s.size}
	}
	return out
}

func (m *Image) segment(pa mem.PA) (segment, bool) {
	i := sort.Search(len(m.segs), func(i int) bool { return m.segs[i].base > pa }) - 1
	if i < 0 || !m.segs[i].contains(pa) || !m.segs[i].contains(pa+7) {
		return segment{}, false
	}
	return m.segs[i], true
}

// fileWord reads the little-endian word at file offset off.
func (m *Image) fileWord(off int64) (uint64, bool) {
	pi := off / pageSize
	p, ok := m.pages[pi]
	if !ok {
		if m.pages == nil || len(m.pages) >= maxCachedPages {
			m.pages = make(map[int64][]byte)
		}
		p = make([]byte, pageSize)
		n, err := m.r.ReadAt(p, pi*pageSize)
		if err != nil && err != io.EOF {
			return 0, false
		}
		p = p[:n]
		m.pages[pi] = p
	}
	o := off - pi*pageSize
	if o+8 <= int64(len(p)) {
		return binary.LittleEndian.Uint64(p[o:]), true
	}
	// A word across a page boundary (segments need not be page aligned).
	var b [8]byte
	if _, err := m.r.ReadAt(b[:], off); err != nil {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

// Read64 implements mem.Memory: the word at the 8-byte aligned pa.
func (m *Image) Read64(pa mem.PA) (uint64, bool) {
	if pa%8 != 0 {
		return 0, false
	}
	s, ok := m.segment(pa)
	if !ok {
		return 0, false
	}
	if v, ok := m.overlay[pa]; ok {
		return v, true
	}
	rel := uint64(pa - s.base)
	if rel >= s.fileSize {
		return 0, true
	}
	return m.fileWord(s.off + int64(rel))
}

// CompareAndSwap64 implements mem.Memory; a swap is kept in the overlay.
func (m *Image) CompareAndSwap64(pa mem.PA, old, new uint64) (bool, bool) {
	v, ok := m.Read64(pa)
	if !ok {
		return false, false
	}
	if v != old {
		return false, true
	}
	m.write(pa, new)
	return true, true
}

// Write64 stores v at pa in the overlay (the file is not written).
func (m *Image) Write64(pa mem.PA, v uint64) error {
	if _, ok := m.Read64(pa); !ok {
		return fmt.Errorf("memimage: %#x is not an aligned word of the image", uint64(pa))
	}
	m.write(pa, v)
	return nil
}

func (m *Image) write(pa mem.PA, v uint64) {
	if m.overlay == nil {
		m.overlay = make(map[mem.PA]uint64)
	}
	m.overlay[pa] = v
}
