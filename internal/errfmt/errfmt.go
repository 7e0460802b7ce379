// Package errfmt formats user-supplied values for error messages: an error
// names the bad value but never echoes more than a short prefix of it, so
// a 10 MB string in an input file gives a one-line error.
package errfmt

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is the number of bytes of a value an error message quotes.
const MaxQuoted = 32

// Quote returns s as a Go-quoted string; a value longer than MaxQuoted
// bytes is cut (at a character boundary) and its length given, e.g.
// "0x0000000000000000000000000000"... (1048576 bytes).
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	cut := MaxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}
