package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWritePagesReplacesOnlyItsOwnDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reference")
	if err := writePages(dir, map[string][]byte{"a.md": []byte("a"), "cli/b.md": []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := writePages(dir, map[string][]byte{"c.md": []byte("c")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.md")); !os.IsNotExist(err) {
		t.Errorf("a stale page survived: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "c.md")); err != nil || string(b) != "c" {
		t.Errorf("c.md = %q, %v", b, err)
	}

	mine := t.TempDir()
	os.WriteFile(filepath.Join(mine, "notes.md"), []byte("mine"), 0o644)
	if err := writePages(mine, map[string][]byte{"c.md": []byte("c")}); err == nil {
		t.Error("a directory berth-docs did not write was replaced")
	}
	if _, err := os.Stat(filepath.Join(mine, "notes.md")); err != nil {
		t.Errorf("notes.md: %v", err)
	}
}
