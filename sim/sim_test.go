package sim

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/nestmmu/nestmmu/scenario"
)

func TestDefaultQuick(t *testing.T) {
	s := scenario.Default()
	s.Accesses = 1_000_000
	r, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(r.Accesses)
	json.NewEncoder(os.Stdout).Encode(r.Checks)
	t.Logf("elapsed %.2fs", r.Elapsed)
}
