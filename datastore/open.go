package datastore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/netkit/libnetwork/types"
)

// maxCheckErrors bounds the consistency errors quoted in a log line.
const maxCheckErrors = 5

// corruptError marks an open failure caused by the file's contents, as
// opposed to the environment (permissions, lock, resources).
type corruptError struct{ err error }

func (e *corruptError) Error() string { return e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// openOrRecover opens the bolt database at path; if its contents are
// corrupt it moves the file aside, logs it, and opens a fresh one.
func openOrRecover(path string, opts Options, log *slog.Logger) (*bolt.DB, error) {
	db, err := openVerified(path, opts)
	if err == nil {
		return db, nil
	}
	var corrupt *corruptError
	if !errors.As(err, &corrupt) {
		return nil, err
	}
	aside, mvErr := moveAside(path, time.Now())
	if mvErr != nil {
		return nil, types.InternalErrorf("open store %s: database is corrupt (%v) and cannot be moved aside: %w", path, corrupt.err, mvErr)
	}
	log.Warn("datastore: database is corrupt or unreadable; moved it aside and starting with an empty one",
		"path", path, "moved_to", aside, "error", corrupt.err)
	db, err = openVerified(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s after moving the corrupt file to %s: %w", path, aside, err)
	}
	return db, nil
}

// openVerified opens path with bolt, first checking an existing file in
// read-only mode: a read-write open loads the freelist, which in a truncated
// file lies beyond the mapping, so the file's length is checked against its
// meta page before that.
//
// Errors from the environment (the file cannot be opened, mmap fails) are
// returned as they are, the lock timeout as ErrLocked; everything else (bad
// meta pages, a file shorter than its meta page says, a panic or memory fault
// inside bolt, a failing consistency check) is a *corruptError.
func openVerified(path string, opts Options) (*bolt.DB, error) {
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			// Never move aside what is not a database file.
			return nil, types.InvalidParameterErrorf("open store %s: not a regular file (%v)", path, fi.Mode().Type())
		}
		if fi.Size() > 0 {
			if err := checkFile(path, opts); err != nil {
				return nil, err
			}
		}
	}
	db, err := boltOpen(path, opts, false)
	if err != nil {
		return nil, classifyOpenError(path, opts, err)
	}
	return db, nil
}

// checkFile opens the existing file at path read-only and verifies it.
func checkFile(path string, opts Options) error {
	db, err := boltOpen(path, opts, true)
	if err != nil {
		return classifyOpenError(path, opts, err)
	}
	defer db.Close()
	if err := verify(db, path); err != nil {
		return &corruptError{err}
	}
	return nil
}

// classifyOpenError turns an error of bolt.Open into ErrLocked, an
// environmental error or a *corruptError.
func classifyOpenError(path string, opts Options, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open store %s: no lock within %v: %w", path, opts.Timeout, ErrLocked)
	case isEnvironmental(err):
		return types.InternalErrorf("open store %s: %w", path, err)
	default:
		return &corruptError{err}
	}
}

// isEnvironmental reports whether a bolt open error comes from a system call
// (open, flock, stat, mmap) rather than from the file's contents. bolt turns
// read errors of the meta pages into ErrInvalid, so an unreadable file is
// still reported as corrupt.
func isEnvironmental(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno)
}

// boltOpen calls bolt.Open, turning a panic or memory fault inside it into
// an error. When bolt panics after opening the file its *DB is lost, so the
// file is closed here (releasing its lock); the mapping, if any, leaks.
func boltOpen(path string, opts Options, readOnly bool) (db *bolt.DB, err error) {
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("bolt panicked while opening the file: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opts.Timeout,
		NoSync:   opts.NoSync,
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
}

// verify checks a database opened read-only: the file must be as long as
// its meta page says (a truncated file would fault later, outside any
// recover), every bucket, key and value must be readable, and bolt's
// consistency check must pass.
func verify(db *bolt.DB, path string) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the database panicked: %v", r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("file is %d bytes but its meta page needs %d: truncated", fi.Size(), tx.Size())
		}
		// Touch every page reachable from the root in this goroutine, where
		// a fault is a recoverable panic; tx.Check reads them in a goroutine
		// of its own, where a fault would kill the process.
		if err := touchBucket(tx.Cursor()); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			// Drain the channel: Check's goroutine holds the transaction
			// until it has sent every error.
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("consistency check failed: %w", errors.Join(errs...))
		}
		return nil
	})
}

// touchBucket reads every key and value under the cursor's bucket,
// recursing into nested buckets.
func touchBucket(c *bolt.Cursor) error {
	var sink byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			child := c.Bucket().Bucket(k)
			if child == nil {
				return fmt.Errorf("key %x has no value and is not a bucket", k)
			}
			if err := touchBucket(child.Cursor()); err != nil {
				return err
			}
			continue
		}
		if len(v) > 0 {
			sink ^= v[len(v)-1]
		}
		sink ^= k[len(k)-1]
	}
	// Keep the loads: they are what faults on a page beyond the file.
	runtime.KeepAlive(sink)
	return nil
}

// moveAside renames the file at path to "<path>.corrupt-<unix time>"
// (with a numeric suffix if that name is taken) and returns the new name.
func moveAside(path string, now time.Time) (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s.%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, nil
}
