// Package ownedfiletest holds the test helpers of the packages that write
// owned files (etchosts, resolvconf).
package ownedfiletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/internal/ownedfile"
)

// Owned writes content at a new path called name in a temporary directory
// as the library would have, sidecar included, and returns the path.
func Owned(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := ownedfile.Write(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
	return path
}

// Read returns the content of path.
func Read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// CheckOwned fails unless path has mode 0644, a sidecar matching its
// content, and no temporary file left beside it.
func CheckOwned(t testing.TB, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != ownedfile.Mode {
		t.Errorf("mode of %s = %v, want %v", path, fi.Mode().Perm(), os.FileMode(ownedfile.Mode))
	}
	if _, _, err := ownedfile.Load(path); err != nil {
		t.Errorf("after write: %v", err)
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, "."+filepath.Base(path)+".tmp-") {
			t.Errorf("temporary file %s left beside %s", n, path)
		}
	}
}
