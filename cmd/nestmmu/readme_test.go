package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's library program compiles and prints what the README says.
func TestREADMELibrarySnippet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with the go tool")
	}
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(data)
	if i := strings.Index(section, "## As a library"); i >= 0 {
		section = section[i:]
	} else {
		t.Fatal("README has no library section")
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("no Go code block in the library section")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	file := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(file, []byte(m[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "run", file)
	cmd.Dir = "../.." // the module's root: the snippet's imports resolve there
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README snippet does not run: %v\n%s", err, out)
	}
	for _, want := range []string{"VA 0x1234 -> PA 0x40080234 (level-3 page)", "AT S1E1R: PAR_EL1 = 0xff00000040080b80"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("snippet output lacks %q:\n%s", want, out)
		}
		// The README states the output it gets.
		if !strings.Contains(strings.Join(strings.Fields(string(data)), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("README does not state %q", want)
		}
	}
}
