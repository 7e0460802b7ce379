package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nestmmu/nestmmu/arm64/regfile"
	"github.com/nestmmu/nestmmu/internal/textfmt"
)

// The conventions every subcommand follows, through cliFlags:
//   - -h / --help prints the command's help (description, usage, flags,
//     examples) on standard output and exits 0; `nestmmu help CMD` is the
//     same;
//   - a bad flag, a flag given twice (unless it is documented as
//     repeatable), a missing or stray argument is one line on standard
//     error and exit status 2.

// example is a documented invocation; a test runs each one and checks
// that its output holds every fragment of want.
type example struct {
	args string // after "nestmmu"
	note string
	want []string
	// qemu marks examples that need qemu-system-aarch64.
	qemu bool
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// cliFlags is a FlagSet with the CLI's conventions.
type cliFlags struct {
	*flag.FlagSet
	cmd            command
	name           string
	stdout, stderr io.Writer
	repeatable     map[string]bool
	// args names the positional arguments for the usage line, e.g.
	// "ADDRESS"; minArgs..maxArgs are accepted.
	minArgs, maxArgs int
}

// newFlags returns the flag set of subcommand name.
func newFlags(name string, stdout, stderr io.Writer) *cliFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cliFlags{FlagSet: fs, cmd: commands()[name], name: name, stdout: stdout, stderr: stderr, repeatable: map[string]bool{}}
}

// Repeatable marks a flag that may be given more than once.
func (f *cliFlags) Repeatable(name string) { f.repeatable[name] = true }

// Args sets how many positional arguments the command takes.
func (f *cliFlags) Args(min, max int) { f.minArgs, f.maxArgs = min, max }

// once wraps a flag.Value so that a second Set is an error.
type once struct {
	flag.Value
	name string
	set  bool
}

func (o *once) Set(s string) error {
	if o.set {
		return fmt.Errorf("given twice (it takes one value)")
	}
	o.set = true
	return o.Value.Set(s)
}

// onceBool is once for boolean flags (which take no value).
type onceBool struct{ *once }

func (onceBool) IsBoolFlag() bool { return true }

// Parse parses args. done reports that the caller must return code: after
// help (0) or a usage error (2, reported on stderr).
func (f *cliFlags) Parse(args []string) (code int, done bool) {
	f.VisitAll(func(fl *flag.Flag) {
		if f.repeatable[fl.Name] {
			return
		}
		o := &once{Value: fl.Value, name: fl.Name}
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			fl.Value = onceBool{o}
		} else {
			fl.Value = o
		}
	})
	err := f.FlagSet.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.WriteHelp(f.stdout)
		return 0, true
	case err != nil:
		return f.Fail(usagef("%v", err)), true
	}
	n := f.NArg()
	switch {
	case n > f.maxArgs:
		return f.Fail(usagef("unexpected argument %s", textfmt.Quote(f.Arg(f.maxArgs)))), true
	case n < f.minArgs:
		return f.Fail(usagef("missing argument: usage: %s", f.cmd.usage)), true
	}
	return 0, false
}

// Fail reports err on one line and returns its exit status: 2 for usage
// errors and invalid input, 1 otherwise.
func (f *cliFlags) Fail(err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(f.stderr, "nestmmu %s: %s (see \"nestmmu help %s\")\n", f.name, msg, f.name)
		return 2
	}
	fmt.Fprintf(f.stderr, "nestmmu %s: %s\n", f.name, msg)
	var ie *inputError
	if errors.As(err, &ie) {
		return 2
	}
	return 1
}

// inputError is invalid input (a file, a value): exit status 2.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &inputError{err}
}

// WriteHelp prints the command's help.
func (f *cliFlags) WriteHelp(w io.Writer) {
	c := f.cmd
	fmt.Fprintf(w, "nestmmu %s: %s\n\nusage: %s\n\n", f.name, c.summary, c.usage)
	if c.doc != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.doc))
	}
	var lines [][2]string
	width := 0
	f.VisitAll(func(fl *flag.Flag) {
		kind, usage := flag.UnquoteUsage(fl)
		name := "--" + fl.Name
		if kind != "" {
			name += " " + kind
		}
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", fl.DefValue)
		}
		if f.repeatable[fl.Name] {
			usage += " (repeatable)"
		}
		width = max(width, len(name))
		lines = append(lines, [2]string{name, usage})
	})
	if len(lines) > 0 {
		fmt.Fprintln(w, "flags:")
		for _, l := range lines {
			fmt.Fprintf(w, "  %-*s  %s\n", width, l[0], l[1])
		}
		fmt.Fprintln(w)
	}
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "examples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  nestmmu %s\n", e.args)
			if e.note != "" {
				fmt.Fprintf(w, "      %s\n", e.note)
			}
		}
	}
}

// numberFlag is a flag holding a register value or address in the at-json
// number syntax (0x... or decimal).
type numberFlag struct {
	v   uint64
	set bool
}

func (n *numberFlag) String() string {
	if n == nil || !n.set {
		return ""
	}
	return fmt.Sprintf("%#x", n.v)
}

func (n *numberFlag) Set(s string) error {
	v, err := regfile.ParseValue(s)
	if err != nil {
		return fmt.Errorf("%s is %v", textfmt.Quote(s), err)
	}
	n.v, n.set = v, true
	return nil
}

// Number defines a numberFlag.
func (f *cliFlags) Number(name, usage string) *numberFlag {
	n := &numberFlag{}
	f.Var(n, name, usage)
	return n
}

// choiceFlag accepts one of a fixed set of words.
type choiceFlag struct {
	v       string
	choices []string
}

func (c *choiceFlag) String() string {
	if c == nil {
		return ""
	}
	return c.v
}

func (c *choiceFlag) Set(s string) error {
	for _, x := range c.choices {
		if strings.EqualFold(s, x) {
			c.v = x
			return nil
		}
	}
	return fmt.Errorf("%s is not one of %s", textfmt.Quote(s), strings.Join(c.choices, ", "))
}

// Choice defines a choiceFlag with a default.
func (f *cliFlags) Choice(name, def, usage string, choices ...string) *choiceFlag {
	c := &choiceFlag{v: def, choices: choices}
	f.Var(c, name, usage)
	return c
}

// listFlag collects the values of a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// writeJSON writes v indented by two spaces, with "&" and "<" as written.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
