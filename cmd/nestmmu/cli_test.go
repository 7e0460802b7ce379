package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/nestmmu/nestmmu/arm64/sysreg"
	"github.com/nestmmu/nestmmu/conform/qemu"
)

func sortedCommands() []string {
	var names []string
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func haveQEMU(t *testing.T) bool {
	if _, err := qemu.Find(); err != nil {
		if os.Getenv("NESTMMU_REQUIRE_QEMU") == "1" {
			t.Fatalf("NESTMMU_REQUIRE_QEMU=1 but: %v", err)
		}
		return false
	}
	return true
}

// Every documented example command runs from the repository root, exits 0
// and prints what its documentation says.
func TestDocumentedExamples(t *testing.T) {
	t.Chdir("../..")
	for _, name := range sortedCommands() {
		for _, e := range commands()[name].examples {
			t.Run(e.args, func(t *testing.T) {
				if e.qemu && !haveQEMU(t) {
					t.Skip("needs qemu-system-aarch64")
				}
				// Tests write only into their own directories.
				dir := t.TempDir()
				args := strings.Fields(strings.ReplaceAll(e.args, "/tmp/nestmmu-plots", dir))
				code, out, errs := run(args, "")
				if code != 0 {
					t.Fatalf("exit %d, stderr %q", code, errs)
				}
				if len(e.want) == 0 {
					t.Fatal("an example checks nothing")
				}
				for _, w := range e.want {
					if w = strings.ReplaceAll(w, "/tmp/nestmmu-plots", dir); !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
			})
		}
	}
}

// The commands shown in README.md and docs/AT-JSON.md are documented
// examples (and so run by TestDocumentedExamples).
func TestDocsShowOnlyTestedExamples(t *testing.T) {
	known := map[string]bool{}
	for _, c := range commands() {
		for _, e := range c.examples {
			known[e.args] = true
		}
	}
	re := regexp.MustCompile(`(?m)^\s*(?:go run \./cmd/nestmmu|nestmmu) ((?:at|explain|translate|decode|ptdump|conform|mips|run)(?:[ \t][^#\n]*?)?)\s*(?:#.*)?$`)
	for _, doc := range []string{"../../README.md", "../../docs/AT-JSON.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			args := strings.Join(strings.Fields(m[1]), " ")
			if strings.ContainsAny(args, "[]|") || regexp.MustCompile(`\b[A-Z]{2,}\b`).MatchString(strings.TrimPrefix(args, "decode")) {
				continue // a synopsis, not an example
			}
			n++
			if !known[args] {
				t.Errorf("%s shows `nestmmu %s`, which is not a documented (tested) example", doc, args)
			}
		}
		if n == 0 {
			t.Errorf("%s shows no example command", doc)
		}
	}
}

// -h on every command exits 0 and prints the description, the usage, the
// flags and the examples on standard output; "help CMD" prints the same.
func TestHelpEverywhere(t *testing.T) {
	for _, name := range sortedCommands() {
		for _, h := range []string{"-h", "--help", "-help"} {
			code, out, errs := run([]string{name, h}, "")
			if code != 0 || errs != "" {
				t.Errorf("%s %s: exit %d, stderr %q", name, h, code, errs)
			}
			c := commands()[name]
			for _, want := range []string{c.summary, "usage: " + c.usage, "examples:", "nestmmu " + c.examples[0].args} {
				if !strings.Contains(out, want) {
					t.Errorf("%s %s: help lacks %q:\n%s", name, h, want, out)
				}
			}
			if name != "run" && !strings.Contains(out, "flags:\n  -") {
				t.Errorf("%s %s: help lists no flags:\n%s", name, h, out)
			}
		}
		_, viaHelp, _ := run([]string{"help", name}, "")
		_, viaFlag, _ := run([]string{name, "-h"}, "")
		if viaHelp != viaFlag {
			t.Errorf("help %s differs from %s -h", name, name)
		}
	}
	if code, out, _ := run([]string{"help"}, ""); code != 0 || !strings.Contains(out, "translate") || !strings.Contains(out, "docs/AT-JSON.md") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"help", "nosuch"}, {"help", "at", "extra"}, {}} {
		if code, _, errs := run(args, ""); code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// A stray argument and a repeated non-repeatable flag are one-line errors
// with exit status 2 on every command; a repeatable flag may repeat.
func TestStrayArgumentsAndRepeatedFlags(t *testing.T) {
	t.Chdir("../..")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"at", "--json", "testdata/spec-example.json", "extra"}, `unexpected argument "extra"`},
		{[]string{"explain", "--json", "testdata/spec-example.json", "extra"}, `unexpected argument "extra"`},
		{[]string{"translate", "--json", "testdata/spec-example.json", "0x1000", "0x2000"}, `unexpected argument "0x2000"`},
		{[]string{"translate", "--json", "testdata/spec-example.json"}, "missing argument"},
		{[]string{"decode", "ESR_EL2", "0x1", "0x2"}, `unexpected argument "0x2"`},
		{[]string{"decode", "ESR_EL2"}, "missing argument"},
		{[]string{"ptdump", "--json", "testdata/spec-example.json", "extra"}, `unexpected argument "extra"`},
		{[]string{"conform", "extra"}, `unexpected argument "extra"`},
		{[]string{"mips", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "a.yaml", "extra"}, `unexpected argument "extra"`},
		{[]string{"at", "--json", "a", "--json", "b"}, "given twice"},
		{[]string{"explain", "--json", "a", "--json", "b"}, "given twice"},
		{[]string{"translate", "--el", "0", "--el", "1", "0x0"}, "given twice"},
		{[]string{"translate", "--explain", "--explain", "0x0"}, "given twice"},
		{[]string{"decode", "--level", "1", "--level", "2", "s1desc", "0"}, "given twice"},
		{[]string{"ptdump", "--format", "json", "--format", "text"}, "given twice"},
		{[]string{"conform", "--seed", "1", "--seed", "2"}, "given twice"},
		{[]string{"mips", "-ops", "1", "-ops", "2"}, "given twice"},
		{[]string{"translate", "--json", "testdata/spec-example.json", "--reg", "TCR_EL3=1", "0x0"}, "unknown register"},
		{[]string{"translate", "--json", "testdata/spec-example.json", "--va-bits", "39", "0x0"}, "TCR_EL1 is given"},
		{[]string{"translate", "0x0"}, "no memory"},
		{[]string{"translate", "--json", "testdata/spec-example.json", "--image", "testdata/guest-ram.bin", "0x0"}, "not both"},
		{[]string{"translate", "--image", "testdata/guest-ram.bin", "0x0"}, "give the physical base address"},
		{[]string{"translate", "--json", "testdata/spec-example.json", "--el", "2", "0x0"}, "--el 2"},
		{[]string{"translate", "--json", "testdata/spec-example.json", "zz"}, `ADDRESS "zz"`},
		{[]string{"decode", "--level", "2", "TCR_EL1", "0"}, "--level is for descriptors"},
		{[]string{"decode", "TCR_EL3", "0"}, "cannot decode register"},
		{[]string{"ptdump", "--json", "testdata/spec-example.json", "--stage", "3"}, `"3" is not one of 1, 2, all`},
		{[]string{"at", "--nosuch"}, "flag provided but not defined"},
	}
	for _, c := range cases {
		code, _, errs := run(c.args, "")
		if code != 2 || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line containing %q", c.args, code, errs, c.want)
		}
	}
	// --reg repeats.
	code, out, errs := run([]string{"translate", "--json", "testdata/spec-example.json", "--reg", "SCTLR_EL1=0", "--reg", "HCR_EL2=0x80000000", "0x1234"}, "")
	if code != 0 || !strings.Contains(out, "stage 1  disabled") {
		t.Errorf("--reg twice: exit %d %q\n%s", code, errs, out)
	}
}

// translate's defaults: stage 2 on when a VTTBR is given, with a VTCR for
// --ipa-bits; the two-stage document's stage 2 read through those defaults
// gives the same PA as its own VTCR.
func TestTranslateDefaults(t *testing.T) {
	t.Chdir("../..")
	code, out, errs := run([]string{"translate", "--json", "testdata/two-stage.json", "--format", "json", "0x1234567123"}, "")
	if code != 0 || !strings.Contains(out, `"oa": "0x50200123"`) || !strings.Contains(out, `"ipa": "0x80200123"`) {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	// --vttbr turns stage 2 on with a default VTCR_EL2: 48-bit IPA, 4K,
	// start level 0 (SL0=2), walks Inner Shareable Write-Back, 48-bit PS,
	// 16-bit VMIDs (QEMU max has them). The guest's tables are not in
	// stage-2 mapped memory, so the walk faults at stage 2.
	want := sysreg.VTCRFields{T0SZ: 16, SL0: 2, IRGN0: sysreg.RGNWBWA, ORGN0: sysreg.RGNWBWA, SH0: sysreg.SHInner,
		TG0: sysreg.Granule4K, PS: sysreg.PS48, VS: true}.Value()
	code, out, errs = run([]string{"translate", "--image", "testdata/guest-ram.bin", "--base", "0x40000000", "--regs", "testdata/guest.regs",
		"--vttbr", "0x40000000", "--format", "json", "0xffff000000012345"}, "")
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"VTCR_EL2=%#x"`, uint64(want))) || !strings.Contains(out, `"HCR_EL2=0x80000001"`) ||
		!strings.Contains(out, "stage 2 on the stage-1 table walk") {
		t.Errorf("exit %d %s\n%s", code, errs, out)
	}
}

// The error lines docs/AT-JSON.md shows are what nestmmu at prints for
// these inputs.
func TestATJSONDocErrors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/AT-JSON.md")
	if err != nil {
		t.Fatal(err)
	}
	const ram = `"ram":[{"base":"0x40000000","size":"0x1000"}]`
	for in, line := range map[string]string{
		`{` + ram + `,"ops":[{"op":"S1E3R","va":"0"}]}`:           `nestmmu at: ops[0].op: "S1E3R" is not an AT operation (one of S1E0R S1E0W S1E1R S1E1W S1E1RP S1E1WP S1E1A S1E2R S1E2W S1E2A S12E0R S12E0W S12E1R S12E1W)`,
		`{` + ram + `,"regs":{"TCR_EL1":"1","TCR_EL1":"2"}}`:      `nestmmu at: regs: duplicate key "TCR_EL1"`,
		`{` + ram + `,"mem":{"0x40000000":"1","1073741824":"2"}}`: `nestmmu at: mem: keys "0x40000000" and "1073741824" both name address 0x40000000`,
		`{` + ram + `,"watch":["0x40001000"]}`:                    `nestmmu at: watch[0]: 0x40001000 is not an 8-byte aligned RAM address`,
		`{` + ram + `,"regs":{"TCR_EL1":"0x1zz"}}`:                `nestmmu at: regs.TCR_EL1: "0x1zz" is not a 64-bit hexadecimal (0x...) or decimal number`,
		`{"ram":[{"base":"0x40000000","size":"0x1000"}]}}`:        `nestmmu at: invalid JSON at line 1, column 48 (byte 47): trailing data after the document`,
	} {
		code, out, errs := run([]string{"at", "--json", "-"}, in)
		if code != 2 || out != "" || strings.TrimSpace(errs) != line {
			t.Errorf("%s: exit %d, stderr %q, want %q", in, code, errs, line)
		}
		if !strings.Contains(string(doc), line) {
			t.Errorf("docs/AT-JSON.md does not show %q", line)
		}
	}
	if !strings.Contains(string(doc), "nestmmu at: input exceeds the 256 MiB limit (268435456 bytes)") {
		t.Error("docs/AT-JSON.md does not show the size-limit error")
	}
}
