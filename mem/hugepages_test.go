package mem

import "testing"

// TestAdviseHugePages: the hint changes no byte, on slices smaller than
// a huge page, empty ones and ones spanning several.
func TestAdviseHugePages(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 2<<20 + 3, 9 << 20} {
		b := make([]byte, n)
		for i := 0; i < n; i += 4093 {
			b[i] = byte(i)
		}
		AdviseHugePages(b)
		for i := 0; i < n; i += 4093 {
			if b[i] != byte(i) {
				t.Fatalf("%d bytes: byte %d changed to %#x", n, i, b[i])
			}
		}
	}
}
