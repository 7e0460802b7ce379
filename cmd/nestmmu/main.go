// Command nestmmu drives the nestmmu library: the arm64 translation core
// (at, explain, translate, decode, ptdump), its demonstration (run), the
// conformance harness (conform) and the other engines' subcommands.
//
// Usage: nestmmu <command> [flags]; "nestmmu help" lists the commands and
// "nestmmu help CMD" (or "nestmmu CMD -h") shows one command's help. The
// at-json format of at, explain and conform is docs/AT-JSON.md.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// command is one subcommand. run returns the process exit status.
type command struct {
	summary  string
	usage    string
	doc      string
	examples []example
	run      func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands is the subcommand table. Each subcommand lives in its own file
// and parses its arguments with newFlags (cli.go).
func commands() map[string]command {
	return map[string]command{
		"run":       runCommand(),
		"compare":   compareCommand(),
		"at":        atCommand(),
		"explain":   explainCommand(),
		"translate": translateCommand(),
		"decode":    decodeCommand(),
		"ptdump":    ptdumpCommand(),
		"conform":   conformCommand(),
		"mips":      mipsCommand(),
		"exec":      execCommand(),
		"bench":     benchCommand(),
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		switch {
		case len(args) == 1:
			usage(stdout, cmds)
			return 0
		case len(args) > 2:
			fmt.Fprintf(stderr, "nestmmu help: unexpected argument %s (usage: nestmmu help [CMD])\n", textfmt.Quote(args[2]))
			return 2
		}
		c, ok := cmds[args[1]]
		if !ok {
			fmt.Fprintf(stderr, "nestmmu help: unknown command %s (try \"nestmmu help\")\n", textfmt.Quote(args[1]))
			return 2
		}
		return c.run([]string{"-h"}, stdin, stdout, stderr)
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nestmmu: unknown command %s (try \"nestmmu help\")\n", textfmt.Quote(args[0]))
		return 2
	}
	return c.run(args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: nestmmu <command> [flags] [arguments]")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\"nestmmu help CMD\" or \"nestmmu CMD -h\" shows a command's flags and examples.")
	fmt.Fprintln(w, "The JSON format of at, explain and conform --replay is documented in docs/AT-JSON.md.")
}
