package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecErrors: bad input is exit status 2 with one line naming the
// problem; a program that does not finish within its budget is status 1.
func TestExecErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "x.elf")
	if err := os.WriteFile(notELF, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"exec", notELF}, 2, "not an ELF file"},
		{[]string{"exec", filepath.Join(dir, "missing.elf")}, 2, "no such file"},
		{[]string{"exec", "--el", "3", "../../testdata/a64/hello.elf"}, 2, "--el 3"},
		{[]string{"exec", "../../testdata/a64/hello.elf", "extra"}, 2, "unexpected argument"},
		{[]string{"exec", "--max-insns", "100", "../../testdata/a64/isa.elf"}, 1, "budget exhausted"},
		{[]string{"exec", "--seed", "1", "../../testdata/a64/hello.elf"}, 0, ""},
		{[]string{"exec", "--nv2", "../../testdata/a64/hello.elf"}, 2, "go with --nested"},
		{[]string{"exec", "--nested", "--nv", "--nv2", "../../testdata/a64/hello.elf"}, 2, "choose one"},
		{[]string{"exec", "--nested", "--el", "1", "../../testdata/a64/hello.elf"}, 2, "--nested with --el 1"},
		{[]string{"exec", "--nested", "--max-insns", "100", "../../testdata/a64/isa.elf"}, 1, "budget exhausted"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := dispatch(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: status %d stderr %q, want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
			t.Errorf("%v: more than one line of error: %q", tc.args, errb.String())
		}
	}
}

// TestExecNested: the same binary as a guest hypervisor under L0 prints
// QEMU's output at real EL2, with FEAT_NV and with FEAT_NV2.
func TestExecNested(t *testing.T) {
	want, err := os.ReadFile("../../testdata/a64/hello.qemu")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"--nv", "--nv2"} {
		var out, errb bytes.Buffer
		code := dispatch([]string{"exec", "--nested", mode, "../../testdata/a64/hello.elf"}, strings.NewReader(""), &out, &errb)
		if code != 0 || out.String() != string(want) {
			t.Errorf("%s: status %d, stderr %q, output:\n%s\nwant:\n%s", mode, code, errb.String(), out.String(), want)
		}
	}
}
