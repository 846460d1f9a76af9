package datastore

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// network is a record shaped like the controller's network records.
type network struct {
	Name    string            `json:"name"`
	Driver  string            `json:"driver"`
	Subnets []string          `json:"subnets"`
	Labels  map[string]string `json:"labels,omitempty"`
	IPv6    bool              `json:"ipv6"`
}

// mustOpen opens a store at path and, at cleanup, runs bolt's consistency
// check on it and closes it (after bbolt's internal/btesting).
func mustOpen(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		mustCheck(tb, s)
		if err := s.Close(); err != nil {
			tb.Errorf("Close(%s): %v", path, err)
		}
	})
	return s
}

// newStore opens a fresh store in a temporary directory.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "local-kv.db"), Options{})
}

// mustCheck fails the test if bolt's consistency check of s finds anything.
// A store the test already closed is skipped.
func mustCheck(tb testing.TB, s *Store) {
	tb.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			tb.Errorf("consistency check of %s: %v", s.path, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		tb.Errorf("consistency check of %s: %v", s.path, err)
	}
}

// putRaw stores val as is, bypassing the envelope.
func putRaw(t *testing.T, s *Store, kind, id, val string) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		return b.Put([]byte(id), []byte(val))
	})
	if err != nil {
		t.Fatalf("put raw %s/%s: %v", kind, id, err)
	}
}

// corruptFiles returns the files Open moved aside for path.
func corruptFiles(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bigRecord returns a record of roughly n bytes of JSON.
func bigRecord(name string, n int) network {
	return network{
		Name:    name,
		Driver:  "bridge",
		Subnets: []string{"10.1.0.0/16", "fd00:1::/64"},
		Labels:  map[string]string{"com.example.pad": strings.Repeat("x", max(0, n-120))},
	}
}
