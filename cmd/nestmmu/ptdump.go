package main

import (
	"io"

	"github.com/nestmmu/nestmmu/arm64/ptdump"
	"github.com/nestmmu/nestmmu/arm64/vmsa"
)

func ptdumpCommand() command {
	return command{
		summary: "dump the translation tables reachable from a TTBR or VTTBR (ranges, permissions, attributes)",
		usage:   "nestmmu ptdump (--json FILE | --image FILE [--base ADDR]) [flags]",
		doc: `
Lists the mappings of the stage-1 tables of a regime (TTBR0 and TTBR1;
TTBR0_EL2 for el2) and of the stage-2 tables of VTTBR_EL2, in the style of
Linux's ptdump: runs of addresses mapped alike are coalesced into one line
with the input range, size, leaf level, output address, effective
permissions (hierarchical APTable/XNTable and WXN included), memory
attributes and descriptor flags (AttrN, nG, NS, AF or !AF, DBM, CONT,
software bits). Entries that make the walk fault (reserved descriptors,
blocks where none is allowed, output or table addresses beyond the output
size, tables outside memory, table IPAs stage 2 does not map) are listed
with the fault. The tables are read by the modelled MMU itself; memory is
never written. --stage all dumps stage 1 and, for el10 with stage 2
enabled, stage 2.
` + stateDoc,
		examples: []example{
			{args: "ptdump --image testdata/guest-ram.bin --base 0x40000000 --regs testdata/guest.regs",
				note: "a guest kernel's tables from a raw memory image: user pages (TTBR0), linear map and a device (TTBR1)",
				want: []string{"---[ TTBR0_EL1 = 0x1000040001000: EL1&0 stage 1, 4K granule, 48-bit input",
					"0x0000000000400000-0x0000000000402000    8K L3 page -> PA 0x000040080000  EL1 rw- EL0 rw-",
					"0xffff000000000000-0xffff000000400000    4M L2 block -> PA 0x000040000000  EL1 rw- EL0 ---",
					"0xffff800000000000-0xffff800000001000    4K L3 page -> PA 0x000009000000  EL1 rw- EL0 --- Device-nGnRE"}},
			{args: "ptdump --json testdata/two-stage.json", note: "stage 1 in IPA space over stage 2, both dumped",
				want: []string{"---[ TTBR0_EL1", "-> IPA 0x000080200000", "FAULT the level-3 table's IPA does not translate at stage 2",
					"---[ VTTBR_EL2", "0x0000000080000000-0x0000000080400000    4M L3 page -> PA 0x000050000000"}},
			{args: "ptdump --json testdata/two-stage.json --stage 2 --format json",
				want: []string{`"name": "VTTBR_EL2"`, `"start": "0x80400000"`, `"kind": "block"`}},
		},
		run: cmdPtdump,
	}
}

func cmdPtdump(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("ptdump", stdout, stderr)
	st := addStateFlags(fs)
	stage := fs.Choice("stage", "all", "what to dump: 1 (the regime's stage 1), 2 (VTTBR_EL2) or all", "1", "2", "all")
	format := fs.Choice("format", "text", "output: text or json", "text", "json")
	maxWalks := fs.Int("max-walks", ptdump.DefaultMaxWalks, "stop a table after this many walks (one per leaf or hole)")
	if code, done := fs.Parse(args); done {
		return code
	}
	if *maxWalks < 1 {
		return fs.Fail(usagef("--max-walks %d: want at least 1", *maxWalks))
	}
	if err := st.load(stdin); err != nil {
		return fs.Fail(err)
	}
	defer st.closeMemory()
	opt := ptdump.Options{MaxWalks: *maxWalks}
	var tables []ptdump.Table
	if stage.v != "2" {
		ts, err := ptdump.Stage1(st.memory, &st.registers, st.regimeValue, opt)
		if err != nil {
			return fs.Fail(badInput(err))
		}
		tables = append(tables, ts...)
	}
	s2on := st.regimeValue == vmsa.RegimeEL10 && vmsa.S2Enabled(&st.registers)
	if stage.v == "2" || stage.v == "all" && s2on {
		t, err := ptdump.Stage2(st.memory, &st.registers, opt)
		if err != nil {
			return fs.Fail(badInput(err))
		}
		tables = append(tables, t)
	}
	if format.v == "json" {
		out := struct {
			Tables   []*ptdump.Table `json:"tables"`
			Defaults []string        `json:"defaults,omitempty"`
		}{Defaults: st.defaults}
		for i := range tables {
			out.Tables = append(out.Tables, &tables[i])
		}
		if err := writeJSON(stdout, out); err != nil {
			return fs.Fail(err)
		}
		return 0
	}
	if len(st.defaults) > 0 {
		io.WriteString(stdout, "defaults: ")
		for i, d := range st.defaults {
			if i > 0 {
				io.WriteString(stdout, " ")
			}
			io.WriteString(stdout, d)
		}
		io.WriteString(stdout, "\n")
	}
	for i := range tables {
		tables[i].WriteText(stdout)
	}
	return 0
}
