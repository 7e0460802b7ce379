package main

import (
	"flag"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/decode"
	"github.com/nestmmu/nestmmu/arm64/desc"
	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

func decodeCommand() command {
	return command{
		summary: "print a register value or a translation table descriptor field by field",
		usage:   "nestmmu decode [flags] NAME VALUE",
		doc: `
NAME is a register (` + strings.Join(decode.Registers(), " ") + `)
or s1desc / s2desc for a stage-1 or stage-2 descriptor read at --level
with --granule (and --ds for the FEAT_LPA2 formats, --oa52 for 64K with
52-bit output addresses). Every field is printed with its architectural
name, bit positions, value and meaning. --e2h selects the TCR_EL2 and
SCTLR_EL2 layouts of HCR_EL2.E2H=1. Names are case-insensitive; VALUE is
0x-prefixed hexadecimal or decimal.`,
		examples: []example{
			{args: "decode ESR_EL2 0x93c08007", note: "a Data Abort from EL1: translation fault at level 3",
				want: []string{"Data Abort from a lower Exception level: Translation fault, level 3, read", "[23:22]  SAS   = 0x3     doubleword", "[5:0]    DFSC  = 0x7     Translation fault, level 3"}},
			{args: "decode PAR_EL1 0xff00000040001b80",
				want: []string{"PA 0x40001000, Normal, outer Write-Back RW-allocate, inner Write-Back RW-allocate, Inner Shareable"}},
			{args: "decode PAR_EL1 0xb0d", want: []string{"aborted: Translation fault, level 2, stage 2 on the stage-1 walk"}},
			{args: "decode --level 3 s1desc 0x40001703", note: "a 4K page descriptor",
				want: []string{"page mapping 4K at output address 0x40001000", "[7:6]", "AP", "EL1 read/write, EL0 none"}},
			{args: "decode --level 1 s2desc 0x4000077d", note: "a stage-2 1G block: Normal Write-Back, read-only",
				want: []string{"block mapping 1G at output address 0x40000000", "S2AP           = 0x1     read-only",
					"MemAttr        = 0xf     Normal, outer Write-Back, inner Write-Back"}},
			{args: "decode VTCR_EL2 0x800d3558", want: []string{"stage 2: 40-bit IPA, 4K, start level 1, PS 48 bits"}},
			{args: "decode TCR_EL1 0x8580190019", want: []string{"TTBR0: 39-bit VA, 4K; TTBR1: 39-bit VA, 4K; IPS 48 bits", "[39]     HA     = 1       hardware Access flag update"}},
		},
		run: cmdDecode,
	}
}

func cmdDecode(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("decode", stdout, stderr)
	level := fs.Int("level", 3, "descriptor: the level it was read at (-1 to 3)")
	granule := fs.Choice("granule", "4k", "descriptor: the translation granule, 4k, 16k or 64k", "4k", "16k", "64k")
	ds := fs.Bool("ds", false, "descriptor: the FEAT_LPA2 formats (TCR_ELx.DS / VTCR_EL2.DS = 1)")
	oa52 := fs.Bool("oa52", false, "descriptor: 64K granule with 52-bit output addresses (FEAT_LPA)")
	e2h := fs.Bool("e2h", false, "TCR_EL2 and SCTLR_EL2 with HCR_EL2.E2H=1")
	format := fs.Choice("format", "text", "output: text or json", "text", "json")
	fs.Args(2, 2)
	if code, done := fs.Parse(args); done {
		return code
	}
	name, raw := strings.ToUpper(fs.Arg(0)), fs.Arg(1)
	v, err := regfile.ParseValue(raw)
	if err != nil {
		return fs.Fail(usagef("VALUE %s is %v", textfmt.Quote(raw), err))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var d decode.Decoded
	switch name {
	case "S1DESC", "S2DESC":
		if set["e2h"] {
			return fs.Fail(usagef("--e2h is for TCR_EL2 and SCTLR_EL2, not descriptors"))
		}
		if *level < -1 || *level > 3 {
			return fs.Fail(usagef("--level %d: want -1 to 3", *level))
		}
		g := map[string]sysreg.Granule{"4k": sysreg.Granule4K, "16k": sysreg.Granule16K, "64k": sysreg.Granule64K}[granule.v]
		if *ds && g == sysreg.Granule64K || *oa52 && g != sysreg.Granule64K {
			return fs.Fail(usagef("--ds is for the 4K and 16K granules, --oa52 for 64K"))
		}
		stage := 1
		if name == "S2DESC" {
			stage = 2
		}
		d = decode.Descriptor(v, stage, *level, desc.Format{Granule: g, DS: *ds, OA52: *oa52})
	default:
		for _, f := range []string{"level", "granule", "ds", "oa52"} {
			if set[f] {
				return fs.Fail(usagef("--%s is for descriptors (s1desc, s2desc), not %s", f, name))
			}
		}
		d, err = decode.Register(name, v, *e2h)
		if err != nil {
			return fs.Fail(usagef("%v", err))
		}
	}
	if format.v == "json" {
		if err := writeJSON(stdout, d); err != nil {
			return fs.Fail(err)
		}
		return 0
	}
	d.WriteText(stdout)
	return 0
}
