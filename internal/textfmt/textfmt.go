// Package textfmt formats values for people: Quote shows a user-supplied
// value in an error message as at most a short prefix (a 10 MB string in an
// input file gives a one-line error), and Size writes a size in bytes the
// way the architecture's documents do (4K, 2M, 1G).
package textfmt

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

// Size writes n bytes with the largest binary unit that divides it: 4K,
// 2M, 1G, 512G, 16E for 0 (the whole 64-bit space), or bytes ("12B").
func Size(n uint64) string {
	switch {
	case n == 0:
		return "16E"
	case n%(1<<60) == 0:
		return fmt.Sprintf("%dE", n>>60)
	case n%(1<<50) == 0:
		return fmt.Sprintf("%dP", n>>50)
	case n%(1<<40) == 0:
		return fmt.Sprintf("%dT", n>>40)
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
