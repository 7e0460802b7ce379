package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCmdMIPS(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := cmdMIPS([]string{"-ops", "3000", "-procs", "2", "-ws", "40", "-page", "16384"}, nil, &out, &errb); rc != 0 {
		t.Fatalf("rc %d, stderr %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), "refills by path") || !strings.Contains(out.String(), "16384") {
		t.Errorf("unexpected report:\n%s", out.String())
	}
	for _, args := range [][]string{{"-page", "5000"}, {"-ops", "0"}, {"-host-tlb", "0"}, {"-nosuch"}, {"extra"}, {"-stores", "101"}, {"-procs", "0"}} {
		out.Reset()
		errb.Reset()
		if rc := cmdMIPS(args, nil, &out, &errb); rc != 2 {
			t.Errorf("%v: rc %d, want 2", args, rc)
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}
