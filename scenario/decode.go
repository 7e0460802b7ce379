package scenario

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a scenario error: the file, the line, the field's path and
// what is wrong with it.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// scalar is implemented by field types that parse their own text (sizes,
// counts, fractions, granules).
type scalar interface {
	parse(s string) error
}

// defaulter is implemented by types that set their defaults before their
// fields are decoded (so that an absent field keeps its default).
type defaulter interface {
	setDefaults()
}

// decoder walks a YAML node tree into Go values by their `yaml` tags,
// recording each field's line by its path.
type decoder struct {
	file  string
	lines map[string]int
	nodes int
}

// maxNodes bounds the nodes visited (aliases can multiply them).
const maxNodes = 100000

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	d.nodes++
	if d.nodes > maxNodes {
		return d.errf(n, path, "more than %d YAML nodes (alias expansion?)", maxNodes)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return d.errf(n, path, "unresolved alias")
		}
		return d.decode(n.Alias, v, path)
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if v.CanAddr() {
		if s, ok := v.Addr().Interface().(scalar); ok {
			if n.Kind != yaml.ScalarNode {
				return d.errf(n, path, "want a single value, not a %s", kindName(n.Kind))
			}
			if err := s.parse(n.Value); err != nil {
				return d.errf(n, path, "%v", err)
			}
			return nil
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return d.errf(n, path, "want a mapping of fields, not a %s", kindName(n.Kind))
		}
		return d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errf(n, path, "want a list, not a %s", kindName(n.Kind))
		}
		v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		for i, c := range n.Content {
			e := v.Index(i)
			if df, ok := e.Addr().Interface().(defaulter); ok {
				df.setDefaults()
			}
			if err := d.decode(c, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return d.errf(n, path, "want a single value, not a %s", kindName(n.Kind))
	}
	s := n.Value
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			return d.errf(n, path, "%q is not true or false", s)
		}
	case reflect.Int, reflect.Int64:
		x, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || x < math.MinInt32 || x > math.MaxInt32 {
			return d.errf(n, path, "%q is not an integer", s)
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint64:
		x, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil {
			return d.errf(n, path, "%q is not a non-negative integer", s)
		}
		v.SetUint(x)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return d.errf(n, path, "%q is not a number", s)
		}
		v.SetFloat(x)
	default:
		return d.errf(n, path, "cannot decode into %v", v.Type())
	}
	return nil
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errf(k, path, "a field name must be a plain word")
		}
		name := k.Value
		fp := join(path, name)
		fi, ok := fields[name]
		if !ok {
			return d.errf(k, fp, "unknown field (known here: %s)", strings.Join(names, ", "))
		}
		if seen[name] {
			return d.errf(k, fp, "given twice")
		}
		seen[name] = true
		if err := d.decode(val, v.Field(fi), fp); err != nil {
			return err
		}
		d.lines[fp] = k.Line
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}
