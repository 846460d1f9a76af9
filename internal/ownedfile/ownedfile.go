// Package ownedfile writes files the library owns but a user may edit: beside
// each file it keeps a sidecar "<path>.hash" holding the sha256 of the
// content it last wrote, and a rewrite first compares the file with its
// sidecar and refuses, with ErrUserModified, on any difference. Existing
// files are rewritten in place, so a bind mount of one sees every update.
// The etchosts and resolvconf packages build on it.
package ownedfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// ErrUserModified reports that a file was not rewritten because its content
// no longer matches what the library last wrote: the user or the container
// edited it, removed it, or it was never written here (no hash sidecar
// beside it). The file is left untouched. Callers test for it with
// errors.Is, log, and carry on; the error is also classified as
// types.ForbiddenError.
var ErrUserModified = errors.New("file was modified since it was last written by libnetwork")

// Mode is the mode of every file written here, whatever the umask.
const Mode = 0o644

// SidecarPath returns the path of the hash sidecar kept beside path.
func SidecarPath(path string) string { return path + ".hash" }

// HashOf returns the hex sha256 of content, as stored in a sidecar.
func HashOf(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// Load reads the file at path and checks that it is still what this
// package last wrote. It returns exists=false, and no error, when neither
// the file nor its sidecar exists: the caller may create it. It returns an
// error wrapping ErrUserModified when the file differs from its sidecar,
// was removed after it was written, or exists without a sidecar.
func Load(path string) (content []byte, exists bool, err error) {
	content, err = readFile(path)
	fileMissing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !fileMissing {
		return nil, false, types.InternalErrorf("reading %s: %w", path, err)
	}
	want, serr := readFile(SidecarPath(path))
	sidecarMissing := errors.Is(serr, fs.ErrNotExist)
	if serr != nil && !sidecarMissing {
		return nil, false, types.InternalErrorf("reading hash sidecar of %s: %w", path, serr)
	}
	switch {
	case fileMissing && sidecarMissing:
		return nil, false, nil
	case fileMissing:
		return nil, false, types.ForbiddenErrorf("%s was removed after it was last written: %w", path, ErrUserModified)
	case sidecarMissing:
		return nil, false, types.ForbiddenErrorf("%s has no hash sidecar, so it was not written here: %w", path, ErrUserModified)
	}
	if got := HashOf(content); got != strings.TrimSpace(string(want)) {
		return nil, false, types.ForbiddenErrorf("%s has sha256 %s, last written %s: %w",
			path, got, strings.TrimSpace(string(want)), ErrUserModified)
	}
	return content, true, nil
}

// Write puts content into the file at path and then records its hash in
// the sidecar. An existing file is rewritten in place, keeping its inode: a
// container runtime bind-mounts a sandbox's hosts and resolv.conf into the
// container, and a file renamed over the old one would leave the container
// reading the old inode forever. The new content is written over the old
// and the file then cut to its length, so a reader never sees it empty,
// though it may for a moment see the new head on the old tail; the files
// are a few hundred bytes, written with one write. A file that does not
// exist yet is created whole by a rename, so it never appears half
// written. A symlink or anything but a regular file at path is refused.
//
// A crash between the file and its sidecar leaves a file that no longer
// matches its sidecar, which later calls treat as user-modified: the safe
// side. The data is not fsynced, to keep the attach path cheap: these
// files describe a running sandbox and live on tmpfs or beside it.
func Write(path string, content []byte) error {
	err := rewriteInPlace(path, content)
	if errors.Is(err, fs.ErrNotExist) {
		err = replaceFile(path, content)
	}
	if err != nil {
		return types.InternalErrorf("writing %s: %w", path, err)
	}
	if err := replaceFile(SidecarPath(path), []byte(HashOf(content)+"\n")); err != nil {
		return types.InternalErrorf("writing hash sidecar of %s: %w", path, err)
	}
	return nil
}

// rewriteInPlace writes content over the regular file at path, keeping its
// inode. It fails with fs.ErrNotExist when there is no file, and refuses a
// symlink (O_NOFOLLOW) or a file of another kind.
func rewriteInPlace(path string, content []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &fs.PathError{Op: "rewrite", Path: path, Err: errors.New("not a regular file")}
	}
	for off := 0; off < len(content); {
		n, err := unix.Pwrite(fd, content[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "write", Path: path, Err: err}
		}
		off += n
	}
	if err := unix.Ftruncate(fd, int64(len(content))); err != nil {
		return &fs.PathError{Op: "truncate", Path: path, Err: err}
	}
	return nil
}

// replaceFile writes content to a new temporary file in path's directory
// and renames it over path. It calls the kernel directly rather than
// through os.File: a regular file gains nothing from the runtime poller,
// whose registration would more than double the system calls of this hot
// path (attach writes hosts and resolv.conf). It creates files; existing
// ones are rewritten in place (see Write).
func replaceFile(path string, content []byte) error {
	dir, base := filepath.Split(path)
	var (
		tmp string
		fd  int
		err error
	)
	for range 10 {
		tmp = filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		fd, err = unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, Mode)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		return &fs.PathError{Op: "create", Path: tmp, Err: err}
	}
	err = writeAll(fd, content)
	if err == nil {
		// The umask may have narrowed the mode given to open.
		err = unix.Fchmod(fd, Mode)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Rename(tmp, path)
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return &fs.PathError{Op: "replace", Path: path, Err: err}
	}
	return nil
}

// readFile returns the content of the file at path, like os.ReadFile but
// without the poller registration (see replaceFile).
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// writeAll writes all of b to fd.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Drop removes the file at path and its sidecar; either being absent
// is not an error.
func Drop(path string) error {
	for _, p := range []string{path, SidecarPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return types.InternalErrorf("removing %s: %w", p, err)
		}
	}
	return nil
}
