package probe

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A Go program built without cgo has no interpreter; a C program linked
// against libc names the loader; a file that is not an executable is an
// error.
func TestInterpreter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	static := filepath.Join(dir, "static")
	build := exec.Command("go", "build", "-o", static, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if interp, err := Interpreter(static); err != nil || interp != "" {
		t.Errorf("static Go binary: interpreter %q, %v; want none", interp, err)
	}

	dynamic, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no `true` executable to read")
	}
	interp, err := Interpreter(dynamic)
	if err != nil || !strings.HasPrefix(interp, "/") || !strings.Contains(interp, "ld-") {
		t.Errorf("%s: interpreter %q, %v; want the dynamic loader's path", dynamic, interp, err)
	}

	if _, err := Interpreter(src); err == nil || !strings.Contains(err.Error(), src) {
		t.Errorf("a Go source file read as an executable: %v, want an error naming it", err)
	}
}
