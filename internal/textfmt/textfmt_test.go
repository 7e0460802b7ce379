package textfmt

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

func TestSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "16E", 1 << 12: "4K", 8 << 10: "8K", 3 << 12: "12K", 2 << 20: "2M", 1 << 30: "1G",
		512 << 30: "512G", 1 << 48: "256T", 60 << 20: "60M", 12: "12B", 1 << 63: "8E"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%#x) = %q, want %q", n, got, want)
		}
	}
}
