package errfmt

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	if got := Quote("0x12"); got != `"0x12"` {
		t.Errorf("short value: %s", got)
	}
	long := strings.Repeat("7", 10<<20)
	got := Quote(long)
	if len(got) > 64 || !strings.Contains(got, "(10485760 bytes)") || !strings.HasPrefix(got, `"777`) {
		t.Errorf("10 MB value quoted as %q", got)
	}
	// A cut never splits a UTF-8 sequence.
	u := strings.Repeat("é", 40)
	if got := Quote(u); strings.Contains(got, `\x`) {
		t.Errorf("cut inside a character: %s", got)
	}
}
