package main

import (
	"fmt"
	"io"

	"github.com/nestmmu/nestmmu/arm64/at"
	"github.com/nestmmu/nestmmu/arm64/ptdump"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/internal/textfmt"
	"github.com/nestmmu/nestmmu/mem"
)

func translateCommand() command {
	return command{
		summary: "translate one address through a regime (stage 1, and stage 2 when enabled)",
		usage:   "nestmmu translate (--json FILE | --image FILE [--base ADDR]) [flags] ADDRESS",
		doc: `
Translates ADDRESS (a VA) as one access on the modelled MMU and prints the
output address with the leaf of each stage, the memory attributes, the
permissions the leaves grant, and the PAR_EL1 an AT instruction would
report; or the fault and its level and stage. --explain adds every
descriptor read. For EL1&0 with stage 2 enabled the result is the PA
(--stage1: the IPA). Hardware Access flag and dirty updates happen in a
private copy of memory; files are never written. Exit status: 0 when the
translation ran, whatever it gave; 2 for invalid arguments or input.
` + stateDoc,
		examples: []example{
			{args: "translate --json testdata/spec-example.json 0x1234",
				note: "the contract's machine: 39-bit VA, 4K, three levels",
				want: []string{"VA 0x1234 -> PA 0x40001234", "stage 1  level 3 page (4K) maps 0x1000 -> PA 0x40001000", "memory   Normal WB/WB ISH",
					"perms    EL1 rwx EL0 --x", "PAR_EL1  0xff00000040001b80"}},
			{args: "translate --json testdata/spec-example.json --el 0 0x1234",
				want: []string{"permission fault, level 3, stage 1", "PAR_EL1  0x000000000000081f"}},
			{args: "translate --image testdata/guest-ram.bin --base 0x40000000 --regs testdata/guest.regs 0xffff000000012345",
				note: "a raw memory image (pmemsave) and a register file: the kernel's linear map",
				want: []string{"VA 0xffff000000012345 -> PA 0x40012345", "stage 1  level 2 block (2M) maps 0xffff000000000000 -> PA 0x40000000", "perms    EL1 rw- EL0 ---"}},
			{args: "translate --image testdata/guest-ram.bin --base 0x40000000 --ttbr 0x40001000 --access w --el 0 0x400010",
				note: "defaults: 4K granule, 48-bit VA, TTBR0 from --ttbr; a write at EL0",
				want: []string{"VA 0x400010 -> PA 0x40080010", "perms    EL1 rw- EL0 rw-"}},
			{args: "translate --json testdata/two-stage.json --explain 0x1234567123",
				note: "two stages, every descriptor read (4 levels over 4 levels: 24 reads)",
				want: []string{"VA 0x1234567123 -> PA 0x50200123", "stage 1  level 3 page (4K) maps 0x1234567000 -> IPA 0x80200000",
					"stage 2  level 3 page (4K) maps 0x80200000 -> PA 0x50200000",
					"stage 2 level 0: descriptor at PA", "(for the stage-1 table)"}},
		},
		run: cmdTranslate,
	}
}

// translateOut is translate's JSON output.
type translateOut struct {
	VA       string   `json:"va"`
	Regime   string   `json:"regime"`
	Access   string   `json:"access"`
	EL       uint8    `json:"el"`
	Fault    string   `json:"fault,omitempty"`
	OA       string   `json:"oa,omitempty"`
	IPA      string   `json:"ipa,omitempty"`
	Output   string   `json:"output,omitempty"`
	S1Level  *int     `json:"stage1_level,omitempty"`
	S1Size   string   `json:"stage1_size,omitempty"`
	S2Level  *int     `json:"stage2_level,omitempty"`
	S2Size   string   `json:"stage2_size,omitempty"`
	Memory   string   `json:"memory,omitempty"`
	Perms    string   `json:"perms,omitempty"`
	PAR      string   `json:"par"`
	Defaults []string `json:"defaults,omitempty"`
	Steps    []string `json:"steps,omitempty"`
}

func cmdTranslate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("translate", stdout, stderr)
	st := addStateFlags(fs)
	access := fs.Choice("access", "r", "the access `KIND`: r (read), w (write) or x (instruction fetch)", "r", "w", "x")
	el := fs.Choice("el", "", "exception `LEVEL` of the access: 0, or the regime's own (1 for el10, 2 otherwise; the default)", "0", "1", "2")
	pan := fs.Bool("pan", false, "PSTATE.PAN=1 (privileged data accesses to EL0-accessible memory fault)")
	stage1 := fs.Bool("stage1", false, "stop after stage 1: print the IPA (EL1&0 with stage 2)")
	explain := fs.Bool("explain", false, "print every descriptor read")
	format := fs.Choice("format", "text", "output `FORMAT`: text or json", "text", "json")
	fs.Args(1, 1)
	if code, done := fs.Parse(args); done {
		return code
	}
	va, err := regfile.ParseValue(fs.Arg(0))
	if err != nil {
		return fs.Fail(usagef("ADDRESS %s is %v", textfmt.Quote(fs.Arg(0)), err))
	}
	if err := st.load(stdin); err != nil {
		return fs.Fail(err)
	}
	defer st.closeMemory()
	regime := st.regimeValue
	priv := uint8(1)
	if regime != vmsa.RegimeEL10 {
		priv = 2
	}
	acc := vmsa.Access{EL: priv, PAN: *pan}
	switch {
	case el.v == "":
	case el.v == "0" && regime != vmsa.RegimeEL2:
		acc.EL = 0
	case el.v == fmt.Sprint(priv):
	default:
		return fs.Fail(usagef("--el %s: the %v regime has EL0 and EL%d (EL2: EL2 only)", el.v, regime, priv))
	}
	acc.Kind = map[string]vmsa.AccessKind{"r": vmsa.Read, "w": vmsa.Write, "x": vmsa.Fetch}[access.v]

	tr := &vmsa.Trace{}
	// Hardware updates change the in-memory state only (an image's
	// overlay, the parsed document): files are never written.
	w := &vmsa.Walker{Mem: st.memory, Trace: tr}
	t := w.Translate(&st.registers, regime, mem.VA(va), acc, vmsa.TranslateOptions{Stage1Only: *stage1})

	out := translateOut{VA: fmt.Sprintf("%#x", va), Regime: regime.String(), Access: accessName(acc), EL: acc.EL, Defaults: st.defaults}
	var par uint64
	if t.Fault.IsFault() {
		out.Fault = faultText(t.Fault)
		par = uint64(at.FaultPAR(t.Fault))
	} else {
		par = uint64(at.SuccessPAR(t))
		out.OA = fmt.Sprintf("%#x", t.Output())
		out.Output = "PA"
		if t.IPAOnly {
			out.Output = "IPA"
		}
		if t.Level >= 0 {
			l := int(t.Level)
			out.S1Level, out.S1Size = &l, textfmt.Size(1<<t.BlockBits)
		}
		if t.S2 {
			l := int(t.S2Level)
			out.S2Level, out.S2Size, out.IPA = &l, textfmt.Size(1<<t.S2BlockBits), fmt.Sprintf("%#x", t.IPA)
		}
		out.Memory = ptdump.AttrString(t.Attrs)
		out.Perms = ptdump.Perms(t.Perms, regime.String(), false)
	}
	out.PAR = atjson.Hex(par)
	if *explain {
		for _, s := range tr.Steps {
			out.Steps = append(out.Steps, atjson.DescribeStep(s))
		}
	}
	if format.v == "json" {
		if err := writeJSON(stdout, out); err != nil {
			return fs.Fail(err)
		}
		return 0
	}
	writeTranslation(stdout, out, t, va)
	return 0
}

func accessName(a vmsa.Access) string {
	return map[vmsa.AccessKind]string{vmsa.Read: "read", vmsa.Write: "write", vmsa.Fetch: "fetch"}[a.Kind]
}

func faultText(f vmsa.Fault) string {
	stage := "stage 1"
	if f.Stage2 {
		stage = fmt.Sprintf("stage 2 (IPA %#x)", f.IPA)
		if f.S1PTW {
			stage = fmt.Sprintf("stage 2 on the stage-1 table walk (IPA %#x)", f.IPA)
		}
	}
	return fmt.Sprintf("%s fault, level %d, %s (FSC %#04x)", f.Kind, f.Level, stage, f.FSC())
}

func writeTranslation(w io.Writer, o translateOut, t vmsa.Translation, va uint64) {
	for _, s := range o.Steps {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "%s at EL%d in the %s regime\n", o.Access, o.EL, o.Regime)
	if o.Fault != "" {
		fmt.Fprintf(w, "VA %s: %s\n", o.VA, o.Fault)
		fmt.Fprintf(w, "  PAR_EL1  %s (as an AT instruction would report it)\n", o.PAR)
		return
	}
	fmt.Fprintf(w, "VA %s -> %s %s\n", o.VA, o.Output, o.OA)
	leaf := func(level int, size string) string {
		if level == 3 {
			return fmt.Sprintf("level 3 page (%s)", size)
		}
		return fmt.Sprintf("level %d block (%s)", level, size)
	}
	if o.S1Level != nil {
		bits := uint64(1)<<t.BlockBits - 1
		out, space := t.Output(), o.Output
		if t.S2 {
			out, space = uint64(t.IPA), "IPA"
		}
		fmt.Fprintf(w, "  stage 1  %s maps %#x -> %s %#x\n", leaf(*o.S1Level, o.S1Size), va&^bits, space, out&^bits)
	} else {
		fmt.Fprintf(w, "  stage 1  disabled: flat mapping\n")
	}
	if o.S2Level != nil {
		bits := uint64(1)<<t.S2BlockBits - 1
		fmt.Fprintf(w, "  stage 2  %s maps %#x -> PA %#x\n", leaf(*o.S2Level, o.S2Size), uint64(t.IPA)&^bits, uint64(t.OA)&^bits)
	}
	fmt.Fprintf(w, "  memory   %s\n", o.Memory)
	fmt.Fprintf(w, "  perms    %s\n", o.Perms)
	fmt.Fprintf(w, "  PAR_EL1  %s (as an AT instruction would report it)\n", o.PAR)
}
