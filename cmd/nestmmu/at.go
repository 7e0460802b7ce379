package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nestmmu/nestmmu/atjson"
)

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

func parseJSONFlag(name string, args []string, stdin io.Reader, stderr io.Writer) (*atjson.Machine, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("json", "", "machine state and AT operations as JSON (FILE, or - for standard input)")
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if *file == "" || fs.NArg() != 0 {
		fmt.Fprintf(stderr, "nestmmu %s: usage: nestmmu %s --json FILE|-\n", name, name)
		return nil, false
	}
	r, done, err := openInput(*file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu %s: %v\n", name, err)
		return nil, false
	}
	defer done()
	m, err := atjson.Parse(r)
	if err != nil {
		fmt.Fprintf(stderr, "nestmmu %s: %v\n", name, err)
		return nil, false
	}
	return m, true
}

func cmdAT(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	m, ok := parseJSONFlag("at", args, stdin, stderr)
	if !ok {
		return 2
	}
	if err := m.Encode(stdout); err != nil {
		fmt.Fprintf(stderr, "nestmmu at: %v\n", err)
		return 1
	}
	return 0
}

func cmdExplain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	m, ok := parseJSONFlag("explain", args, stdin, stderr)
	if !ok {
		return 2
	}
	m.Explain(stdout)
	return 0
}
