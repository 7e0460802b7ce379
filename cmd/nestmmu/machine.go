package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/host/s2pt"
	"github.com/nestmmu/nestmmu/internal/textfmt"
	"github.com/nestmmu/nestmmu/mem"
	"github.com/nestmmu/nestmmu/memimage"
)

// stateFlags are the memory and register flags of translate and ptdump.
type stateFlags struct {
	fs                       *cliFlags
	json, image, regsFile    *string
	base, ttbr, ttbr1, vttbr *numberFlag
	regs                     listFlag
	regime, granule          *choiceFlag
	vaBits, ipaBits, paBits  *uint
	explicitlySet            map[string]bool
	memory                   mem.Memory
	closeMemory              func()
	given                    map[string]bool
	registers                vmsa.Regs
	regimeValue              vmsa.Regime
	defaults                 []string
}

// stateDoc explains the state flags; translate's and ptdump's help include it.
const stateDoc = `
Memory comes from an at-json document (--json, docs/AT-JSON.md: its ram
and mem; its ops are ignored) or from a memory image (--image): an ELF
core file as QEMU's "dump-guest-memory FILE" writes it, or a raw image as
"pmemsave ADDR SIZE FILE" writes it, with --base ADDR.

Registers are set, later sources winning, from the document's regs, a
register file (--regs: NAME=VALUE lines, '#' comments), --reg NAME=VALUE,
and the shortcuts --ttbr, --ttbr1 (the regime's TTBR0 and TTBR1) and
--vttbr. Registers not given get defaults: the regime's SCTLR with M, C and
I set; its TCR for --granule (4k) and --va-bits (48) in both ranges, with
--pa-bits (48) as IPS/PS; MAIR with Attr0 Normal Write-Back, Attr1
Device-nGnRE, Attr2 Normal Non-cacheable; HCR_EL2 with RW (EL1&0), E2H,
TGE and RW (EL2&0); and, when VTTBR_EL2 is given for EL1&0, HCR_EL2.VM
and a VTCR_EL2 for --ipa-bits (48) with the granule, laid out as KVM does
(fewest levels, up to 16 concatenated root tables). ID registers default to
QEMU 10's -cpu max.`

func addStateFlags(fs *cliFlags) *stateFlags {
	s := &stateFlags{fs: fs}
	s.json = fs.String("json", "", "memory and registers from an at-json `FILE` (- for standard input)")
	s.image = fs.String("image", "", "memory from an image `FILE`: ELF core (dump-guest-memory) or raw (pmemsave, with --base)")
	s.base = fs.Number("base", "physical `ADDR` of a raw image's first byte")
	s.regsFile = fs.String("regs", "", "registers from a register `FILE` (NAME=VALUE lines)")
	fs.Var(&s.regs, "reg", "set a register: `NAME=VALUE`")
	fs.Repeatable("reg")
	s.ttbr = fs.Number("ttbr", "the regime's TTBR0 (`VALUE`)")
	s.ttbr1 = fs.Number("ttbr1", "the regime's TTBR1 (`VALUE`)")
	s.vttbr = fs.Number("vttbr", "VTTBR_EL2 (`VALUE`): stage 2 for EL1&0")
	s.regime = fs.Choice("regime", "el10", "translation `regime`: el10 (EL1&0), el20 (EL2&0, VHE) or el2", "el10", "el20", "el2")
	s.granule = fs.Choice("granule", "4k", "granule of the default TCR and VTCR: 4k, 16k or 64k", "4k", "16k", "64k")
	s.vaBits = fs.Uint("va-bits", 48, "VA size of the default TCR")
	s.ipaBits = fs.Uint("ipa-bits", 48, "IPA size of the default VTCR_EL2")
	s.paBits = fs.Uint("pa-bits", 48, "output size (IPS/PS) of the default TCR and VTCR_EL2")
	return s
}

func (s *stateFlags) regimeOf() vmsa.Regime {
	switch s.regime.v {
	case "el20":
		return vmsa.RegimeEL20
	case "el2":
		return vmsa.RegimeEL2
	}
	return vmsa.RegimeEL10
}

func (s *stateFlags) granuleOf() sysreg.Granule {
	switch s.granule.v {
	case "16k":
		return sysreg.Granule16K
	case "64k":
		return sysreg.Granule64K
	}
	return sysreg.Granule4K
}

// load reads the memory and builds the registers. Call after Parse.
func (s *stateFlags) load(stdin io.Reader) error {
	s.explicitlySet = map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { s.explicitlySet[f.Name] = true })
	s.given = map[string]bool{}
	s.registers = vmsa.DefaultRegs()
	s.regimeValue = s.regimeOf()
	s.closeMemory = func() {}
	switch {
	case *s.json != "" && *s.image != "":
		return usagef("give --json or --image, not both")
	case *s.json == "" && *s.image == "":
		return usagef("no memory: give --json FILE or --image FILE")
	case *s.json != "":
		if s.base.set {
			return usagef("--base is for raw images (--image)")
		}
		m, err := readMachine(*s.json, stdin)
		if err != nil {
			return err
		}
		s.memory = m.Mem
		for _, r := range m.Registers {
			if r.Name != "PAR_EL1" {
				regfile.Set(&s.registers, r.Name, r.Value)
				s.given[r.Name] = true
			}
		}
	default:
		var base *uint64
		if s.base.set {
			base = &s.base.v
		}
		img, err := memimage.Open(*s.image, base)
		if err != nil {
			return badInput(err)
		}
		s.memory, s.closeMemory = img, func() { img.Close() }
	}
	if *s.regsFile != "" {
		f, err := os.Open(*s.regsFile)
		if err != nil {
			return badInput(err)
		}
		as, err := regfile.ParseFile(f)
		f.Close()
		if err != nil {
			return badInput(fmt.Errorf("%s: %w", *s.regsFile, err))
		}
		for _, a := range as {
			regfile.Set(&s.registers, a.Name, a.Value)
			s.given[a.Name] = true
		}
	}
	for _, kv := range s.regs {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("--reg %s: want NAME=VALUE", textfmt.Quote(kv))
		}
		name = strings.ToUpper(strings.TrimSpace(name))
		v, err := regfile.ParseValue(strings.TrimSpace(val))
		if err != nil {
			return usagef("--reg %s: %s is %v", name, textfmt.Quote(val), err)
		}
		if err := regfile.Set(&s.registers, name, v); err != nil {
			return usagef("--reg: %v", err)
		}
		s.given[name] = true
	}
	t0, t1 := "TTBR0_EL1", "TTBR1_EL1"
	if s.regimeValue != vmsa.RegimeEL10 {
		t0, t1 = "TTBR0_EL2", "TTBR1_EL2"
	}
	for _, x := range []struct {
		f    *numberFlag
		name string
	}{{s.ttbr, t0}, {s.ttbr1, t1}, {s.vttbr, "VTTBR_EL2"}} {
		if x.f.set {
			regfile.Set(&s.registers, x.name, x.f.v)
			s.given[x.name] = true
		}
	}
	if s.ttbr1.set && s.regimeValue == vmsa.RegimeEL2 {
		return usagef("--ttbr1: the EL2 regime has one VA range (TTBR0_EL2)")
	}
	return s.applyDefaults()
}

// applyDefaults fills the registers not given (stateDoc).
func (s *stateFlags) applyDefaults() error {
	r := &s.registers
	g := s.granuleOf()
	ps, ok := sysreg.PSFor(*s.paBits)
	if !ok {
		return usagef("--pa-bits %d: want 32, 36, 40, 42, 44, 48 or 52", *s.paBits)
	}
	if *s.vaBits < 16 || *s.vaBits > 52 {
		return usagef("--va-bits %d: want 16 to 52", *s.vaBits)
	}
	txsz := sysreg.TxSZ(*s.vaBits)
	var sctlr, tcr, mair string
	switch s.regimeValue {
	case vmsa.RegimeEL10:
		sctlr, tcr, mair = "SCTLR_EL1", "TCR_EL1", "MAIR_EL1"
	default:
		sctlr, tcr, mair = "SCTLR_EL2", "TCR_EL2", "MAIR_EL2"
	}
	s2 := s.regimeValue == vmsa.RegimeEL10 && s.given["VTTBR_EL2"]
	for flagName, reg := range map[string]string{"granule": tcr, "va-bits": tcr, "pa-bits": tcr, "ipa-bits": "VTCR_EL2"} {
		if s.explicitlySet[flagName] && s.given[reg] && (reg != "VTCR_EL2" || s2) {
			return usagef("--%s builds a default %s, but %s is given", flagName, reg, reg)
		}
	}
	set := func(name string, v uint64) {
		if !s.given[name] {
			regfile.Set(r, name, v)
			s.defaults = append(s.defaults, fmt.Sprintf("%s=%#x", name, v))
		}
	}
	set(sctlr, uint64(sysreg.SCTLRFields{M: true, C: true, I: true}.Value()))
	set(mair, uint64(sysreg.MAIROf(sysreg.MAIRNormalWB, sysreg.MAIRDevicenGnRE, sysreg.MAIRNormalNC)))
	switch s.regimeValue {
	case vmsa.RegimeEL10, vmsa.RegimeEL20:
		set(tcr, uint64(sysreg.TCRFields{T0SZ: txsz, T1SZ: txsz, TG0: g, TG1: g, IPS: ps,
			IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner,
			IRGN1: sysreg.RGNWBWA, ORGN1: sysreg.RGNWBWA, SH1: sysreg.SHInner}.Value()))
	case vmsa.RegimeEL2:
		set(tcr, uint64(sysreg.TCR2Fields{T0SZ: txsz, TG0: g, PS: ps,
			IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner}.Value()))
	}
	switch s.regimeValue {
	case vmsa.RegimeEL10:
		set("HCR_EL2", uint64(sysreg.HCRFields{RW: true, VM: s2}.Value()))
	case vmsa.RegimeEL20:
		set("HCR_EL2", uint64(sysreg.HCRFields{RW: true, E2H: true, TGE: true}.Value()))
	case vmsa.RegimeEL2:
		set("HCR_EL2", uint64(sysreg.HCRFields{RW: true}.Value()))
	}
	if s2 && !s.given["VTCR_EL2"] {
		l, err := s2pt.NewLayout(s2pt.Config{IPABits: *s.ipaBits, Granule: g, PABits: *s.paBits, MMFR0: r.MMFR0, MMFR1: r.MMFR1})
		if err != nil {
			return usagef("default VTCR_EL2: %v", err)
		}
		set("VTCR_EL2", uint64(l.VTCR))
	}
	return nil
}
