package atjson

import (
	"fmt"

	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// Nested is the "nested" key (docs/AT-JSON.md, "Nested documents"): the
// rest of the document is then a guest hypervisor's view at virtual EL2 —
// "ram" its memory (the memslots of its VM, L1 IPAs), "mem" words of it,
// "regs" its registers (its virtual HCR_EL2, its stage 2 for its guest in
// VTCR_EL2 and VTTBR_EL2, its guest's EL1 registers, its own EL2
// registers; the ID registers are the host's, which it reads sanitized),
// "ops" the AT instructions it executes — and Nested says how the host
// hypervisor runs it and which accesses of its guest (L2) to run after.
type Nested struct {
	// Mode is "NV" or "NV2" (default).
	Mode string
	// L1IPABits is the IPA size of the guest hypervisor's VM (default 40).
	L1IPABits uint
	// HostPage is the host's page size and stage-2 granule (default 4096).
	HostPage uint64
	// Accesses are L2's accesses, run in order after the operations.
	Accesses []Access
}

// Access is one entry of "nested.accesses": a load, store or instruction
// fetch of L2 at EL0 or EL1 (default), at VA; a store writes Value (8
// bytes; loads and fetches read 8 and 4).
type Access struct {
	VA    uint64
	Kind  string // "read", "write" or "fetch"
	EL    uint8
	Value uint64
}

// Limits of the nested key.
const MaxAccesses = 100_000

// ipaSizes are the IPA sizes a VM can have (ID_AA64MMFR0_EL1.PARange).
var ipaSizes = []uint64{32, 36, 40, 42, 44, 48, 52}

func (p *parser) nested(d *Document) error {
	n := &Nested{Mode: "NV2", L1IPABits: 40, HostPage: 4096}
	if ok, err := p.open("nested", '{', false); !ok {
		return err
	}
	err := p.object("nested", func(key string) error {
		path := "nested." + key
		switch key {
		case "mode":
			t := p.next()
			s, ok := t.(string)
			if !ok {
				return errf(path, "want a string, found %s", kind(t))
			}
			if s != "NV" && s != "NV2" {
				return errf(path, "%s is not NV or NV2", textfmt.Quote(s))
			}
			n.Mode = s
			return nil
		case "l1_ipa_bits":
			v, err := p.number(path)
			if err != nil {
				return err
			}
			for _, b := range ipaSizes {
				if v == b {
					n.L1IPABits = uint(v)
					return nil
				}
			}
			return errf(path, "%d is not an IPA size (32, 36, 40, 42, 44, 48 or 52)", v)
		case "host_page":
			v, err := p.number(path)
			if err != nil {
				return err
			}
			if v != 4096 && v != 16384 && v != 65536 {
				return errf(path, "%#x is not a page size (0x1000, 0x4000 or 0x10000)", v)
			}
			n.HostPage = v
			return nil
		case "accesses":
			if ok, err := p.open(path, '[', true); !ok {
				return err
			}
			return p.array(path, MaxAccesses, "accesses", func(i int) error {
				a, err := p.access(fmt.Sprintf("%s[%d]", path, i))
				n.Accesses = append(n.Accesses, a)
				return err
			})
		}
		return unknownKey("nested", key, "mode", "l1_ipa_bits", "host_page", "accesses")
	})
	d.Nested = n
	return err
}

func (p *parser) access(path string) (Access, error) {
	a := Access{EL: 1}
	if _, err := p.open(path, '{', false); err != nil {
		return a, err
	}
	haveVA, haveKind, haveValue := false, false, false
	err := p.object(path, func(key string) error {
		switch key {
		case "va":
			haveVA = true
			v, err := p.number(path + ".va")
			a.VA = v
			return err
		case "access":
			haveKind = true
			t := p.next()
			s, ok := t.(string)
			if !ok {
				return errf(path+".access", "want a string, found %s", kind(t))
			}
			if s != "read" && s != "write" && s != "fetch" {
				return errf(path+".access", "%s is not read, write or fetch", textfmt.Quote(s))
			}
			a.Kind = s
			return nil
		case "el":
			v, err := p.number(path + ".el")
			if err != nil {
				return err
			}
			if v > 1 {
				return errf(path+".el", "%d is not 0 or 1", v)
			}
			a.EL = uint8(v)
			return nil
		case "value":
			haveValue = true
			v, err := p.number(path + ".value")
			a.Value = v
			return err
		}
		return unknownKey(path, key, "va", "access", "el", "value")
	})
	switch {
	case err != nil:
		return a, err
	case !haveVA || !haveKind:
		return a, errf(path, `want both "va" and "access"`)
	case haveValue && a.Kind != "write":
		return a, errf(path+".value", "only a write has a value")
	}
	return a, nil
}

// checkNested validates what a nested document adds: its operations are
// the guest hypervisor's at vEL2 (pstate.el 2), and its RAM ranges are
// memslots, which the host maps in pages.
func (d *Document) checkNested() error {
	n := d.Nested
	if d.PSTATE.EL != 2 {
		return errf("pstate.el", "%d: a nested document's operations are executed by the guest hypervisor at (virtual) EL2", d.PSTATE.EL)
	}
	for i, r := range d.RAM {
		if uint64(r.Base)%n.HostPage != 0 || r.Size%n.HostPage != 0 {
			return errf(fmt.Sprintf("ram[%d]", i), "%#x+%#x is not a multiple of the host page (nested.host_page %#x)", uint64(r.Base), r.Size, n.HostPage)
		}
		if end := uint64(r.Base) + r.Size - 1; n.L1IPABits < 64 && end>>n.L1IPABits != 0 {
			return errf(fmt.Sprintf("ram[%d]", i), "%#x+%#x is beyond the guest hypervisor's %d-bit IPA space (nested.l1_ipa_bits)", uint64(r.Base), r.Size, n.L1IPABits)
		}
	}
	return nil
}
