package datastore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netkit/libnetwork/types"
)

func TestOpenCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "local-kv.db")
	s := mustOpen(t, path, Options{})
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s has mode %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
	}
}

// TestOpenLocked checks that a second Open of a file already open fails with
// ErrLocked once its timeout expires, rather than waiting for ever or
// treating the file as corrupt. bolt locks with flock, which is per open file
// description, so a second bolt.Open in the same process blocks just as one
// in another process would.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local-kv.db")
	first := mustOpen(t, path, Options{})
	if err := first.Update(func(tx *Tx) error { return tx.Put("network", "n1", network{Name: "kept"}) }); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	second, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	t.Logf("second Open failed after %v: %v", time.Since(start), err)
	if !errors.Is(err, ErrLocked) || !types.IsForbidden(err) {
		t.Errorf("second Open = %v, want ErrLocked (a ForbiddenError)", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path %s", err, path)
	}
	if m := corruptFiles(t, path); len(m) != 0 {
		t.Errorf("a locked file was moved aside: %v", m)
	}
	var n network
	if err := first.View(func(tx *Tx) error { return tx.Get("network", "n1", &n) }); err != nil || n.Name != "kept" {
		t.Errorf("first store after the failed Open: %+v, %v", n, err)
	}

	// An Open waiting for the lock gets it once the holder closes.
	opened := make(chan error, 1)
	go func() {
		s, err := Open(path, Options{Timeout: time.Minute})
		if err == nil {
			err = s.Close()
		}
		opened <- err
	}()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Errorf("Open waiting for the lock: %v", err)
	}
}

// TestOpenUnopenableIsNotCorrupt checks that a path Open cannot open at all
// (here, a directory) is reported, not moved aside.
func TestOpenUnopenableIsNotCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local-kv.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a directory succeeded")
	}
	if fi, statErr := os.Stat(path); statErr != nil || !fi.IsDir() {
		t.Errorf("the directory was moved: %v", statErr)
	}
	if m := corruptFiles(t, path); len(m) != 0 {
		t.Errorf("moved aside: %v", m)
	}
}

// validDB returns the bytes of a database holding n records of about 500
// bytes each, and its page size.
func validDB(t *testing.T, n int) ([]byte, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "valid.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		for i := range n {
			if err := tx.Put("network", fmt.Sprintf("n%04d", i), bigRecord("net", 500)); err != nil {
				return err
			}
			if err := tx.Put("endpoint", fmt.Sprintf("e%04d", i), bigRecord("ep", 500)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pageSize := s.db.Info().PageSize
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, pageSize
}

// rootPage returns the page ID of the root bucket of the database in b.
func rootPage(t *testing.T, b []byte) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	err = db.View(func(tx *bolt.Tx) error {
		id = int(tx.Cursor().Bucket().RootPage())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpenCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	valid, pageSize := validDB(t, 100)
	t.Logf("valid db: %d bytes, page size %d", len(valid), pageSize)

	tests := []struct {
		name     string
		contents func(t *testing.T) []byte
	}{
		{"garbage 100 bytes", func(*testing.T) []byte { return garbage(100) }},
		{"garbage 64KiB", func(*testing.T) []byte { return garbage(64 << 10) }},
		{"zeros 5000 bytes", func(*testing.T) []byte { return make([]byte, 5000) }},
		{"truncated to half", func(*testing.T) []byte { return bytes.Clone(valid[:len(valid)/2]) }},
		{"truncated below two pages", func(*testing.T) []byte { return bytes.Clone(valid[:pageSize+pageSize/2]) }},
		{"root page zeroed", func(t *testing.T) []byte {
			b := bytes.Clone(valid)
			root := rootPage(t, b)
			clear(b[root*pageSize : (root+1)*pageSize])
			return b
		}},
		{"both meta pages zeroed", func(*testing.T) []byte {
			b := bytes.Clone(valid)
			clear(b[:2*pageSize])
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local-kv.db")
			contents := tc.contents(t)
			if err := os.WriteFile(path, contents, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			s := mustOpen(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			got, err := List[network](s, "network")
			if err != nil || len(got) != 0 {
				t.Errorf("List after recovery = %d records, %v; want an empty store", len(got), err)
			}
			if err := s.Update(func(tx *Tx) error { return tx.Put("network", "n1", network{}) }); err != nil {
				t.Errorf("Put into the fresh store: %v", err)
			}

			aside := corruptFiles(t, path)
			if len(aside) != 1 {
				t.Fatalf("files moved aside: %v, want one", aside)
			}
			kept, err := os.ReadFile(aside[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kept, contents) {
				t.Errorf("%s does not hold the corrupt file's bytes", aside[0])
			}
			line := logs.String()
			t.Logf("log: %s", line)
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "path="+path) || !strings.Contains(line, "moved_to="+aside[0]) {
				t.Errorf("log %q lacks a Warn line naming %s and %s", line, path, aside[0])
			}
		})
	}
}

// TestOpenValidNotMovedAside guards against false alarms of the open-time
// checks: a healthy database, reopened, keeps its records.
func TestOpenValidNotMovedAside(t *testing.T) {
	valid, _ := validDB(t, 100)
	path := filepath.Join(t.TempDir(), "local-kv.db")
	if err := os.WriteFile(path, valid, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, Options{})
	got, err := List[network](s, "endpoint")
	if err != nil || len(got) != 100 {
		t.Errorf("List = %d records, %v; want 100", len(got), err)
	}
	if m := corruptFiles(t, path); len(m) != 0 {
		t.Errorf("a valid file was moved aside: %v", m)
	}
}

func TestMoveAsideKeepsEarlierCopies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local-kv.db")
	now := time.Unix(1700000000, 0)
	var got []string
	for i := range 3 {
		if err := os.WriteFile(path, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		dst, err := moveAside(path, now)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(dst))
	}
	want := []string{"local-kv.db.corrupt-1700000000", "local-kv.db.corrupt-1700000000.1", "local-kv.db.corrupt-1700000000.2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("moved to %v, want %v", got, want)
	}
}
