package main

import (
	"errors"
	"io"
	"os"

	"github.com/nestmmu/nestmmu/atjson"
	"github.com/nestmmu/nestmmu/nestjson"
)

const atDoc = `
Reads a machine state (RAM ranges, 64-bit memory words, system registers,
PSTATE) and a list of AT operations, executes the operations in order on
the modelled MMU, and prints PAR_EL1 for each (or the exception the
instruction takes) and the final value of every watched word, as JSON.
The input and output formats, the number syntax, the limits and the errors
are docs/AT-JSON.md. A nested document (the "nested" key) describes a
guest hypervisor at virtual EL2 instead: its ATs run on the nested model,
trapped and emulated by the host hypervisor, and print the PAR_EL1 it
reads. Exit status: 0 for valid input whatever the translations gave; 2
with one line naming the bad value for invalid input.`

func atCommand() command {
	return command{
		summary: "evaluate AT instructions from a JSON machine state (docs/AT-JSON.md)",
		usage:   "nestmmu at --json FILE|-",
		doc:     atDoc,
		examples: []example{
			{args: "at --json testdata/spec-example.json", note: "the contract's example: four AT operations, one watched descriptor",
				want: []string{`"par": "0xff00000040001b80"`, `"par": "0x000000000000081f"`, `"fault": "permission level 3"`,
					`"par": "0xff00000040002b80"`, `"par": "0x000000000000080f"`, `"0x44002010": "0x0000000040002743"`}},
			{args: "at --json testdata/nested-example.json", note: "a nested document: the guest hypervisor's ATs, emulated by the host hypervisor",
				want: []string{`"par": "0xff00000080003b80"`, `"par": "0xff00000041003b80"`, `"par": "0x0000000000000a1f"`, `"par": "0x0000000040001b00"`}},
		},
		run: cmdAT,
	}
}

func explainCommand() command {
	return command{
		summary: "show every translation walk of a JSON machine state step by step",
		usage:   "nestmmu explain --json FILE|-",
		doc: `
Takes the same input as "nestmmu at" (docs/AT-JSON.md) and prints, for
each operation, every descriptor read (stage, level, address, value and
its decoding), why the walk stopped, and the resulting PAR_EL1 or
exception, for people. For a nested document it shows the host
hypervisor's emulation of each of the guest hypervisor's ATs, and each
access of its guest (L2) end to end: the PE's walks of L2's stage 1 over
the shadow stage 2, every shadow fault with L1's stage 2 walked in L1
memory, L0's stage 2, the rule that resolved it and the shadow entry.`,
		examples: []example{
			{args: "explain --json testdata/spec-example.json",
				want: []string{"stage 1 level 1: descriptor at PA 0x44000000", "stopped: translation level 3", "0x44002010 = 0x0000000040002743"}},
			{args: "explain --json testdata/nested-example.json", note: "a guest hypervisor's ATs and its guest's accesses, shadow faults and rules",
				want: []string{"rule (b)+(d)", "L2 IPA 0x80100000 +4K -> PA", "rule (a): L1's stage 2 faults", "rule (c): no memslot holds L1 IPA 0x10000008"}},
		},
		run: cmdExplain,
	}
}

// openInput opens FILE or "-" for standard input.
func openInput(name string, stdin io.Reader) (io.Reader, func(), error) {
	if name == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// docRunner runs an at-json document: on a real EL2 (atjson), or, for a
// nested document, on the nested model (nestjson).
type docRunner interface {
	Encode(w io.Writer) error
	Explain(w io.Writer) error
}

type plainRunner struct{ *atjson.Machine }

func (p plainRunner) Explain(w io.Writer) error { p.Machine.Explain(w); return nil }

type nestedRunner struct{ *nestjson.Machine }

func (n nestedRunner) Explain(w io.Writer) error { _, err := n.Machine.Explain(w); return err }

// parseJSONFlag parses at/explain's flags and reads the document.
func parseJSONFlag(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) (docRunner, int, bool) {
	fs := newFlags(name, stdout, stderr)
	file := fs.String("json", "", "machine state and AT operations as JSON: a `FILE`, or - for standard input")
	if code, done := fs.Parse(args); done {
		return nil, code, false
	}
	if *file == "" {
		return nil, fs.Fail(usagef("--json FILE is required")), false
	}
	r, err := readRunner(*file, stdin)
	if err != nil {
		return nil, fs.Fail(err), false
	}
	return r, 0, true
}

// readMachine reads an at-json document (not a nested one) from FILE or "-".
func readMachine(file string, stdin io.Reader) (*atjson.Machine, error) {
	d, err := readDocument(file, stdin)
	if err != nil {
		return nil, err
	}
	m, err := atjson.NewMachine(d)
	return m, badInput(err)
}

// readRunner reads an at-json document, plain or nested, from FILE or "-".
func readRunner(file string, stdin io.Reader) (docRunner, error) {
	d, err := readDocument(file, stdin)
	if err != nil {
		return nil, err
	}
	if d.Nested != nil {
		m, err := nestjson.New(d)
		if err != nil {
			return nil, badInput(err)
		}
		return nestedRunner{m}, nil
	}
	m, err := atjson.NewMachine(d)
	if err != nil {
		return nil, badInput(err)
	}
	return plainRunner{m}, nil
}

func readDocument(file string, stdin io.Reader) (*atjson.Document, error) {
	r, done, err := openInput(file, stdin)
	if err != nil {
		return nil, badInput(err)
	}
	defer done()
	d, err := atjson.ParseDocument(r)
	return d, badInput(err)
}

func cmdAT(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	m, code, ok := parseJSONFlag("at", args, stdin, stdout, stderr)
	if !ok {
		return code
	}
	if err := m.Encode(stdout); err != nil {
		return newFlags("at", stdout, stderr).Fail(modelErr(err))
	}
	return 0
}

func cmdExplain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	m, code, ok := parseJSONFlag("explain", args, stdin, stdout, stderr)
	if !ok {
		return code
	}
	if err := m.Explain(stdout); err != nil {
		return newFlags("explain", stdout, stderr).Fail(modelErr(err))
	}
	return 0
}

// modelErr classifies a run's error: a state the nested model cannot run
// (an *atjson.Error naming the operation or access) is invalid input.
func modelErr(err error) error {
	var ae *atjson.Error
	if errors.As(err, &ae) {
		return badInput(err)
	}
	return err
}
