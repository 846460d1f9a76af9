package ownedfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A rewrite keeps the inode, so a handle opened before it (as a bind
// mount into a container holds one) reads the new content.
func TestWriteKeepsInode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := Write(path, []byte("127.0.0.1 localhost\n10.0.0.2 old-and-long-line\n")); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	want := "127.0.0.1 localhost\n10.0.0.3 new\n"
	if err := Write(path, []byte(want)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(held)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("held handle reads %q, want %q", got, want)
	}
	if _, _, err := Load(path); err != nil {
		t.Fatalf("the rewritten file does not match its sidecar: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want the file and its sidecar", len(entries))
	}
}

// A symlink at the path is refused, not followed.
func TestWriteRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "hosts")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("x\n")); err == nil {
		t.Fatal("Write followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Fatalf("the symlink's target was changed: %q", b)
	}
	if err := Write(filepath.Join(dir, "missing", "x"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing directory: %v", err)
	}
}
