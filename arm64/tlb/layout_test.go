package tlb

import "fmt"

// checkLayout checks the invariants of the split slot layout: a micro-TLB
// slot whose entry is a unified-TLB slot's (ref) is a copy of that slot
// (same tag, address and permissions, and so the same entry), and nref
// counts those references exactly.
func (t *TLB) checkLayout() error {
	refs := make([]uint64, len(t.tags))
	for k := range t.micro {
		for j := range t.micro[k] {
			m := t.micro[k][j]
			if m.ref == 0 {
				continue
			}
			i := int(m.ref - 1)
			if m.tag == 0 {
				return fmt.Errorf("micro[%d][%d]: empty with ref %d", k, j, m.ref)
			}
			refs[i]++
			want := microOf(&t.tags[i])
			want.ref = m.ref
			if m != want {
				return fmt.Errorf("micro[%d][%d] = %+v refers to slot %d, whose copy is %+v", k, j, m, i, want)
			}
			e := &t.ents[i]
			if m.oa != uint64(e.OA) || m.vtag != e.input() || m.voff != 1<<e.SizeBits-1 {
				return fmt.Errorf("micro[%d][%d] = %+v refers to slot %d, entry %+v", k, j, m, i, *e)
			}
		}
	}
	for i := range refs {
		if refs[i] != t.tags[i].nref {
			return fmt.Errorf("slot %d: nref %d, %d micro-TLB slots refer to it", i, t.tags[i].nref, refs[i])
		}
	}
	return nil
}
