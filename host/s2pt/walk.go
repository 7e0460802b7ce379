package s2pt

import (
	"errors"
	"fmt"

	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/mem"
)

// WalkFlags select when a Visitor is called.
type WalkFlags uint8

// Visit points.
const (
	// VisitLeaf visits every entry in range that is not a table
	// descriptor (invalid, block, page, or unsupported).
	VisitLeaf WalkFlags = 1 << iota
	// VisitTablePre visits a table descriptor before its table is walked.
	VisitTablePre
	// VisitTablePost visits a table descriptor after its table was walked.
	VisitTablePost
)

// Visitor is an operation over a range of stage-2 descriptors.
type Visitor interface {
	// Visit is called with the entry's context; at says which visit it
	// is. A non-nil error stops the walk and is returned by it.
	Visit(c *Ctx, at WalkFlags) error
}

// VisitorFunc adapts a function to Visitor.
type VisitorFunc func(c *Ctx, at WalkFlags) error

// Visit implements Visitor.
func (f VisitorFunc) Visit(c *Ctx, at WalkFlags) error { return f(c, at) }

// Ctx describes the descriptor being visited.
type Ctx struct {
	vm *VM
	// Level is the entry's level.
	Level int
	// Addr is the first IPA the entry covers; it covers Size() bytes.
	Addr mem.IPA
	// Start and End are the walk's range [Start, End).
	Start, End mem.IPA
	// PTE is the descriptor's host physical address.
	PTE mem.PA
	// Old is the descriptor as last read or written by the walk.
	Old       uint64
	table     mem.PA     // the table holding the entry
	info      *tableInfo // its record (nil for the root)
	child     mem.PA     // the next-level table (table visits)
	childInfo *tableInfo // its record
}

// Size returns the IPA range one entry at c.Level covers.
func (c *Ctx) Size() uint64 { return 1 << c.vm.layout.leafBits(c.Level) }

// Kind returns the kind of c.Old at c.Level.
func (c *Ctx) Kind() desc.Kind { return desc.KindAt(c.Old, c.Level) }

// Covered reports whether the entry's whole range lies inside the walk.
func (c *Ctx) Covered() bool {
	return c.Addr >= c.Start && uint64(c.Addr)+c.Size() <= uint64(c.End)
}

// Reload re-reads the descriptor (hardware may have set AF or dirty state).
func (c *Ctx) Reload() error {
	v, ok := c.vm.tm.Read64(c.PTE)
	if !ok {
		return fmt.Errorf("s2pt: descriptor at %#x (level %d, IPA %#x) is not readable", uint64(c.PTE), c.Level, uint64(c.Addr))
	}
	c.Old = v
	return nil
}

// Set stores a leaf or invalid descriptor v in place of c.Old with no
// break-before-make and keeps the table's count of valid entries. Use it
// only where the architecture allows the change without BBM.
func (c *Ctx) Set(v uint64) error {
	if desc.KindAt(v, c.Level) == desc.Table {
		return fmt.Errorf("s2pt: Set of table descriptor %#x at level %d: tables are installed by the manager", v, c.Level)
	}
	return c.set(v)
}

// set stores v and adjusts the valid-entry count of the holding table.
func (c *Ctx) set(v uint64) error {
	if err := c.vm.tm.Write64(c.PTE, v); err != nil {
		return err
	}
	c.vm.account(c.info, c.table, c.Old, v)
	c.Old = v
	return nil
}

// Update changes the descriptor with a compare-and-swap loop: f maps the
// current value to the new one, and is re-run when hardware changed the
// descriptor meanwhile. The valid bit must not change. It returns the value
// replaced.
func (c *Ctx) Update(f func(uint64) uint64) (uint64, error) {
	return c.update(f)
}

func (c *Ctx) update(f func(uint64) uint64) (uint64, error) {
	for {
		cur := c.Old
		n := f(cur)
		if n == cur {
			return cur, nil
		}
		if n&1 != cur&1 {
			return cur, fmt.Errorf("s2pt: update of %#x to %#x at level %d changes validity", cur, n, c.Level)
		}
		ok, mapped := c.vm.tm.CompareAndSwap64(c.PTE, cur, n)
		if !mapped {
			return cur, fmt.Errorf("s2pt: descriptor at %#x is not in table memory", uint64(c.PTE))
		}
		if ok {
			c.Old = n
			return cur, nil
		}
		if err := c.Reload(); err != nil {
			return cur, err
		}
	}
}

// clear makes the entry invalid with a compare-and-swap loop, so the value
// returned includes any hardware update made before the entry went invalid.
func (c *Ctx) clear() (uint64, error) {
	for {
		cur := c.Old
		if cur&1 == 0 {
			if cur != 0 {
				if err := c.set(0); err != nil {
					return cur, err
				}
			}
			return cur, nil
		}
		ok, mapped := c.vm.tm.CompareAndSwap64(c.PTE, cur, 0)
		if !mapped {
			return cur, fmt.Errorf("s2pt: descriptor at %#x is not in table memory", uint64(c.PTE))
		}
		if ok {
			c.vm.account(c.info, c.table, cur, 0)
			c.Old = 0
			return cur, nil
		}
		if err := c.Reload(); err != nil {
			return cur, err
		}
	}
}

// Walk calls v for the descriptors covering [start, end) (VisitLeaf,
// VisitTablePre, VisitTablePost as flags select), under the MMU lock.
func (vm *VM) Walk(start, end mem.IPA, v Visitor, flags WalkFlags) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.checkRange(start, end); err != nil {
		return err
	}
	err := vm.walk(start, end, v, flags)
	return vm.finish(err)
}

func (vm *VM) checkRange(start, end mem.IPA) error {
	if vm.root == 0 && vm.destroyed {
		return errors.New("s2pt: VM is destroyed")
	}
	if start >= end || uint64(end) > 1<<vm.layout.IPABits {
		return fmt.Errorf("s2pt: IPA range [%#x, %#x) is empty or beyond the %d-bit IPA space", uint64(start), uint64(end), vm.layout.IPABits)
	}
	return nil
}

// walk is the one management walk over the live tables.
func (vm *VM) walk(start, end mem.IPA, v Visitor, flags WalkFlags) error {
	return vm.walkTable(vm.root, nil, vm.layout.StartLevel, 0, vm.layout.RootEntries, start, end, v, flags)
}

// walkTable visits the entries of the table at pa (record info, level,
// first IPA base, n entries) that intersect [start, end).
func (vm *VM) walkTable(pa mem.PA, info *tableInfo, level int, base mem.IPA, n uint64, start, end mem.IPA, v Visitor, flags WalkFlags) error {
	bits := vm.layout.leafBits(level)
	idx := uint64(start-base) >> bits
	for ; idx < n; idx++ {
		addr := base + mem.IPA(idx<<bits)
		if addr >= end {
			break
		}
		if err := vm.walkEntry(pa, info, level, addr, pa+mem.PA(idx*8), start, end, v, flags); err != nil {
			return err
		}
	}
	return nil
}

func (vm *VM) walkEntry(table mem.PA, info *tableInfo, level int, addr mem.IPA, pte mem.PA, start, end mem.IPA, v Visitor, flags WalkFlags) error {
	c := &vm.ctx[level+1]
	*c = Ctx{vm: vm, Level: level, Addr: addr, Start: start, End: end, PTE: pte, table: table, info: info}
	if err := c.Reload(); err != nil {
		return err
	}
	if c.Kind() == desc.Table {
		if flags&VisitTablePre != 0 {
			if err := vm.checkChild(c); err != nil {
				return err
			}
			if err := v.Visit(c, VisitTablePre); err != nil {
				return err
			}
			if err := c.Reload(); err != nil {
				return err
			}
			if c.Kind() != desc.Table {
				return nil // the visitor replaced the table
			}
		}
	} else {
		if flags&VisitLeaf == 0 {
			return nil
		}
		if err := v.Visit(c, VisitLeaf); err != nil {
			return err
		}
		if err := c.Reload(); err != nil {
			return err
		}
		if c.Kind() != desc.Table {
			return nil
		}
	}
	if err := vm.checkChild(c); err != nil {
		return err
	}
	size := mem.IPA(1) << vm.layout.leafBits(level)
	cs, ce := max(start, addr), min(end, addr+size)
	if err := vm.walkTable(c.child, c.childInfo, level+1, addr, vm.layout.entries(), cs, ce, v, flags); err != nil {
		return err
	}
	if flags&VisitTablePost == 0 {
		return nil
	}
	c = &vm.ctx[level+1] // deeper levels used other slots; this one is intact
	if err := c.Reload(); err != nil {
		return err
	}
	if c.Kind() != desc.Table {
		return nil
	}
	if err := vm.checkChild(c); err != nil {
		return err
	}
	return v.Visit(c, VisitTablePost)
}

// checkChild validates the table descriptor c.Old: it must point at a table
// this VM allocated for exactly this entry, one level down. Garbage (a
// table address the VM does not own) is refused, never followed.
func (vm *VM) checkChild(c *Ctx) error {
	child, info, err := vm.childOf(c.PTE, c.Level, c.Old)
	if err != nil {
		return fmt.Errorf("%w (IPA %#x)", err, uint64(c.Addr))
	}
	c.child, c.childInfo = child, info
	return nil
}

// childOf returns the table the table descriptor d at pte (level) points
// to, after checking that it is the table this VM allocated for exactly
// that entry, one level down.
func (vm *VM) childOf(pte mem.PA, level int, d uint64) (mem.PA, *tableInfo, error) {
	k := &vm.known[level+1]
	if k.pte == pte && k.d == d && k.info != nil {
		return k.child, k.info, nil
	}
	child := mem.PA(vm.layout.Format.TableOA(d))
	info, ok := vm.tables[child]
	if !ok || info.parent != pte || int(info.level) != level+1 {
		return 0, nil, fmt.Errorf("s2pt: table descriptor %#x at level %d (at %#x) points to %#x, which is not this entry's stage-2 table", d, level, uint64(pte), uint64(child))
	}
	*k = knownChild{pte: pte, d: d, child: child, info: info}
	return child, info, nil
}
