package datastore

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netkit/libnetwork/types"
)

// DefaultTimeout is the lock timeout Open uses when Options.Timeout is zero.
const DefaultTimeout = time.Second

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the database file's lock; zero means
	// DefaultTimeout. When it expires Open fails with ErrLocked.
	Timeout time.Duration
	// NoSync skips fsync on commit. Use it only for a store on tmpfs, whose
	// contents do not outlive the machine anyway.
	NoSync bool
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
}

// Store is an open database. It is safe for concurrent use: any number of
// View transactions run alongside at most one Update.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
}

// Open opens the database at path, creating its parent directory (0o700)
// and the file (0o600) if needed.
//
// If another process holds the file's lock past opts.Timeout, Open fails
// with an error wrapping ErrLocked. If the file is corrupt or unreadable, Open
// moves it aside to "<path>.corrupt-<unix time>", logs a warning naming both
// paths, and creates an empty database in its place. Open does not panic.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, types.InvalidParameterErrorf("open store: empty path")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, types.InternalErrorf("open store %s: create directory: %w", path, err)
	}
	db, err := openOrRecover(path, opts, log)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, path: path, log: log}, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database, waiting for running transactions to finish.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return types.InternalErrorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil; if fn returns an error (or panics) nothing it did is written. The
// error fn returns is returned unchanged.
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.run(true, fn)
}

// View runs fn in a read-only transaction. The error fn returns is returned
// unchanged.
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.run(false, fn)
}

func (s *Store) run(writable bool, fn func(tx *Tx) error) error {
	var fnErr error
	wrapped := func(btx *bolt.Tx) error {
		fnErr = fn(&Tx{tx: btx})
		return fnErr
	}
	var err error
	if writable {
		err = s.db.Update(wrapped)
	} else {
		err = s.db.View(wrapped)
	}
	switch {
	case err == nil:
		return nil
	case fnErr != nil:
		// fn failed and bolt rolled back; bolt returns fn's error as is.
		return fnErr
	case writable:
		return types.InternalErrorf("update store %s: %w", s.path, err)
	default:
		return types.InternalErrorf("read store %s: %w", s.path, err)
	}
}

// List returns every record of kind in s, decoded into T and keyed by ID.
// A kind never written yields an empty map.
func List[T any](s *Store, kind string) (map[string]T, error) {
	out := make(map[string]T)
	err := s.View(func(tx *Tx) error {
		return tx.ForEach(kind, func(id string, decode func(rec any) error) error {
			var rec T
			if err := decode(&rec); err != nil {
				return err
			}
			out[id] = rec
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
