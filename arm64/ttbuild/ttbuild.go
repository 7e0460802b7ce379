// Package ttbuild builds VMSAv8-64 translation tables in memory: the
// software side of a page-table setup, used by tests, examples, the `run`
// demonstration and the conformance generator. It writes descriptors with
// package desc and allocates table pages from a simple bump allocator; it
// is not the hypervisor's stage-2 manager (that one lives with the host).
package ttbuild

import (
	"fmt"
	"math/bits"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/mem"
)

// Memory is writable physical memory.
type Memory interface {
	mem.Memory
	Write64(pa mem.PA, v uint64) error
}

// Alloc hands out zeroed, aligned table memory from [Next, End).
type Alloc struct {
	Next, End uint64
}

// Take returns size bytes aligned to align (a power of two).
func (a *Alloc) Take(size, align uint64) (uint64, error) {
	p := (a.Next + align - 1) &^ (align - 1)
	if p+size > a.End || p+size < p {
		return 0, fmt.Errorf("ttbuild: table memory exhausted (need %#x bytes at %#x, end %#x)", size, p, a.End)
	}
	a.Next = p + size
	return p, nil
}

// Tables is one set of translation tables (one TTBR's or VTTBR's worth).
type Tables struct {
	Mem    Memory
	Alloc  *Alloc
	Format desc.Format
	// Stage2 selects stage-2 table descriptors.
	Stage2 bool
	// BigEndian stores descriptors big-endian (SCTLR_ELx.EE=1).
	BigEndian bool
	// Root is the start table's address; Start its level; IASize the
	// input-address size in bits (64 - TxSZ).
	Root   uint64
	Start  int
	IASize uint
}

// StartLevel returns the stage-1 start level for a granule and input size
// (AArch64.S1StartLevel).
func StartLevel(g sysreg.Granule, iasize uint) int {
	gb := int(g.Bits())
	stride := gb - 3
	return 3 - (int(iasize)-1-gb)/stride
}

// New allocates the start table for an input size at a start level. For
// stage 1 pass StartLevel(g, iasize); for stage 2 any level from which
// iasize needs at most 16 concatenated tables.
func New(m Memory, a *Alloc, f desc.Format, stage2 bool, iasize uint, start int) (*Tables, error) {
	gb := f.Granule.Bits()
	if gb == 0 {
		return nil, fmt.Errorf("ttbuild: invalid granule %v", f.Granule)
	}
	stride := gb - 3
	resolved := gb + stride*uint(3-start)
	if iasize <= resolved {
		return nil, fmt.Errorf("ttbuild: input size %d bits needs no level-%d table", iasize, start)
	}
	entries := uint64(1) << (iasize - resolved)
	size := max(entries*8, 64)
	root, err := a.Take(size, max(size, 1<<gb))
	if err != nil {
		return nil, err
	}
	if err := zero(m, root, size); err != nil {
		return nil, err
	}
	return &Tables{Mem: m, Alloc: a, Format: f, Stage2: stage2, Root: root, Start: start, IASize: iasize}, nil
}

func zero(m Memory, base, size uint64) error {
	for off := uint64(0); off < size; off += 8 {
		if err := m.Write64(mem.PA(base+off), 0); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tables) read(pa uint64) (uint64, error) {
	v, ok := t.Mem.Read64(mem.PA(pa))
	if !ok {
		return 0, fmt.Errorf("ttbuild: table address %#x is not memory", pa)
	}
	if t.BigEndian {
		v = bits.ReverseBytes64(v)
	}
	return v, nil
}

func (t *Tables) write(pa, v uint64) error {
	if t.BigEndian {
		v = bits.ReverseBytes64(v)
	}
	return t.Mem.Write64(mem.PA(pa), v)
}

// EntryAddr returns the address of the descriptor for ia at level,
// creating intermediate tables (with table descriptor bits extra, e.g.
// APTable) as needed. It fails if a block or page already covers ia above
// level.
func (t *Tables) EntryAddr(ia uint64, level int, extra uint64) (uint64, error) {
	if level < t.Start || level > 3 {
		return 0, fmt.Errorf("ttbuild: level %d outside %d..3", level, t.Start)
	}
	if t.IASize < 64 && ia>>t.IASize != 0 {
		return 0, fmt.Errorf("ttbuild: input address %#x exceeds %d bits", ia, t.IASize)
	}
	gb := t.Format.Granule.Bits()
	stride := gb - 3
	base := t.Root
	for l := t.Start; ; l++ {
		lsb := gb + stride*uint(3-l)
		msb := lsb + stride - 1
		if l == t.Start {
			msb = t.IASize - 1
		}
		idx := (ia >> lsb) & (1<<(msb-lsb+1) - 1)
		addr := base + idx*8
		if l == level {
			return addr, nil
		}
		d, err := t.read(addr)
		if err != nil {
			return 0, err
		}
		switch desc.KindAt(d, l) {
		case desc.Table:
			base = t.Format.TableOA(d)
			continue
		case desc.Invalid:
		default:
			return 0, fmt.Errorf("ttbuild: %#x is already mapped by a leaf at level %d", ia, l)
		}
		nt, err := t.Alloc.Take(1<<gb, 1<<gb)
		if err != nil {
			return 0, err
		}
		if err := zero(t.Mem, nt, 1<<gb); err != nil {
			return 0, err
		}
		var td uint64
		if t.Stage2 {
			td = uint64(desc.S2Table(t.Format, nt))
		} else {
			td = uint64(desc.S1Table{Addr: nt}.Encode(t.Format))
		}
		if err := t.write(addr, td|extra); err != nil {
			return 0, err
		}
		base = nt
	}
}

// Set writes the raw descriptor d for ia at level.
func (t *Tables) Set(ia uint64, level int, d uint64) error {
	a, err := t.EntryAddr(ia, level, 0)
	if err != nil {
		return err
	}
	return t.write(a, d)
}

// MapS1 maps the leaf l (a block above level 3, a page at level 3) for ia.
func (t *Tables) MapS1(ia uint64, level int, l desc.S1Leaf) error {
	if t.Stage2 {
		return fmt.Errorf("ttbuild: MapS1 on stage-2 tables")
	}
	return t.Set(ia, level, uint64(l.Encode(t.Format, level)))
}

// MapS2 maps the stage-2 leaf l for ia.
func (t *Tables) MapS2(ia uint64, level int, l desc.S2Leaf) error {
	if !t.Stage2 {
		return fmt.Errorf("ttbuild: MapS2 on stage-1 tables")
	}
	return t.Set(ia, level, uint64(l.Encode(t.Format, level)))
}

// Get reads the descriptor for ia at level without creating tables; ok is
// false when a table on the way is missing.
func (t *Tables) Get(ia uint64, level int) (d, addr uint64, ok bool) {
	gb := t.Format.Granule.Bits()
	stride := gb - 3
	base := t.Root
	for l := t.Start; l <= 3; l++ {
		lsb := gb + stride*uint(3-l)
		msb := lsb + stride - 1
		if l == t.Start {
			msb = t.IASize - 1
		}
		idx := (ia >> lsb) & (1<<(msb-lsb+1) - 1)
		addr = base + idx*8
		v, err := t.read(addr)
		if err != nil {
			return 0, 0, false
		}
		if l == level {
			return v, addr, true
		}
		if desc.KindAt(v, l) != desc.Table {
			return 0, 0, false
		}
		base = t.Format.TableOA(v)
	}
	return 0, 0, false
}
