// Command nestmmu drives the nestmmu library: the arm64 translation core
// (at, explain), its demonstration (run) and the other engines' subcommands.
//
// Usage: nestmmu <command> [flags]; "nestmmu help" lists the commands.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand. run returns the process exit status.
type command struct {
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands is the subcommand table. Each subcommand lives in its own file.
func commands() map[string]command {
	return map[string]command{
		"run":     {"run a simulation scenario (the default without a file) and print its report", cmdRun},
		"compare": {"run a scenario both ways for each design-choice variant and print the ratios", cmdCompare},
		"at":      {"evaluate AT instructions from a JSON machine state (shared/spec/at-json.md)", cmdAT},
		"explain": {"show every translation walk of a JSON machine state step by step", cmdExplain},
		"conform": {"differential conformance of the translation core against QEMU", cmdConform},
		"mips":    {"run a MIPS trap-and-emulate guest workload and report refills, exceptions, flushes", cmdMIPS},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nestmmu: unknown command %q (try \"nestmmu help\")\n", args[0])
		return 2
	}
	return c.run(args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: nestmmu <command> [flags]")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}
