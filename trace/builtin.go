package trace

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"strings"
)

// The traces shipped with nestmmu (recorded with scripts/record-trace.sh
// from the C programs beside them), usable in a scenario as
// "builtin:NAME" without the file at hand.
//
//go:embed builtin/*.xz
var builtin embed.FS

// BuiltinPrefix marks a built-in trace in a scenario's trace field.
const BuiltinPrefix = "builtin:"

// Builtins lists the built-in traces' names.
func Builtins() []string {
	ents, _ := builtin.ReadDir("builtin")
	var names []string
	for _, e := range ents {
		names = append(names, strings.SplitN(e.Name(), ".", 2)[0])
	}
	return names
}

// OpenBuiltin opens built-in trace name (its format is Lackey's).
func OpenBuiltin(name string) (Reader, error) {
	data, err := builtin.ReadFile("builtin/" + name + ".lackey.xz")
	if err != nil {
		return nil, fmt.Errorf("trace: no built-in trace %q (have %v)", name, Builtins())
	}
	r, err := Decompress(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return NewLackey(r), nil
}

// OpenSource opens a trace named as a scenario names it: "builtin:NAME" or
// a file path (format applies to files; built-in traces are Lackey's).
func OpenSource(src string, format Format) (Reader, io.Closer, error) {
	if name, ok := strings.CutPrefix(src, BuiltinPrefix); ok {
		r, err := OpenBuiltin(name)
		return r, io.NopCloser(nil), err
	}
	f, err := Open(src, format)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}
