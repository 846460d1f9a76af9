package libnetwork

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// The directories the library keeps under the exec root. New checks them
// once (checkDirs); the hot path then creates only a sandbox's own files
// directory, inside files/.
const (
	netnsDirName = "netns" // sandbox namespace bind mounts
	filesDirName = "files" // files/<sandbox ID>/: hosts, resolv.conf
	skDirName    = "sk"    // the set-key socket
)

// dirMode is the mode of the data dir, the exec root and every directory
// the library makes under them: what is in them is root's business only.
const dirMode = 0o700

// UnsafeDirError is returned by New when the data dir or the exec root is
// a symbolic link, not a directory, or a directory owned by a user other
// than root and the controller's own: the library runs as root and would
// write, and delete, wherever such a path leads. It is a
// types.ForbiddenError.
type UnsafeDirError struct {
	// Path is the directory as configured.
	Path string
	// Reason says what is wrong with it.
	Reason string
}

func (e *UnsafeDirError) Error() string {
	return fmt.Sprintf("unsafe directory %s: %s; the library runs as root and uses only a real directory owned by root (or its own user)", e.Path, e.Reason)
}

// Forbidden denotes the type of this error.
func (e *UnsafeDirError) Forbidden() {}

// checkDirs makes the data dir and the exec root, and netns/, files/ and
// sk/ under the exec root, or checks the ones that exist: the data dir and
// the exec root must be directories (not symbolic links) owned by root or
// the controller's user, else New fails with an UnsafeDirError; a
// subdirectory of the exec root that is anything but such a directory is
// removed (a link, never its target) and made again, and one owned by
// another user is taken back. Every one of them gets mode 0700.
func (c *controller) checkDirs() error {
	if err := c.checkTopDir(c.dataDir); err != nil {
		return err
	}
	if err := c.checkTopDir(c.execRoot); err != nil {
		return err
	}
	root, err := openDirNoFollow(unix.AT_FDCWD, c.execRoot)
	if err != nil {
		return &UnsafeDirError{Path: c.execRoot, Reason: err.Error()}
	}
	defer unix.Close(root)
	for _, name := range []string{netnsDirName, filesDirName, skDirName} {
		if err := c.ensureSubdir(root, name); err != nil {
			return types.InternalErrorf("preparing %s: %w", filepath.Join(c.execRoot, name), err)
		}
	}
	return nil
}

// checkTopDir makes dir if it is missing and refuses it unless it is a
// directory owned by root or the controller's user; its mode is set to
// 0700.
func (c *controller) checkTopDir(dir string) error {
	fd, err := openDirNoFollow(unix.AT_FDCWD, dir)
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return types.InternalErrorf("creating %s: %w", dir, err)
		}
		fd, err = openDirNoFollow(unix.AT_FDCWD, dir)
	}
	if err != nil {
		reason := err.Error()
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			reason = "it is a symbolic link"
		} else if errors.Is(err, unix.ENOTDIR) {
			reason = "it is not a directory"
		}
		return &UnsafeDirError{Path: dir, Reason: reason}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return types.InternalErrorf("checking %s: %w", dir, err)
	}
	if !trustedOwner(st.Uid) {
		return &UnsafeDirError{Path: dir, Reason: fmt.Sprintf("it is owned by uid %d", st.Uid)}
	}
	return c.enforceMode(fd, dir, &st)
}

// ensureSubdir makes name under the directory root, or checks the one
// there (see checkDirs).
func (c *controller) ensureSubdir(root int, name string) error {
	path := filepath.Join(c.execRoot, name)
	err := unix.Mkdirat(root, name, dirMode)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := openDirNoFollow(root, name)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		// A link (or a file) where the library keeps a directory: remove
		// it, never what it points to, and make the directory.
		c.logger.Warn("replacing a symbolic link or file with the library's directory", "path", path)
		if err := unix.Unlinkat(root, name, 0); err != nil {
			return err
		}
		if err := unix.Mkdirat(root, name, dirMode); err != nil {
			return err
		}
		fd, err = openDirNoFollow(root, name)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if !trustedOwner(st.Uid) {
		c.logger.Warn("taking back a directory owned by another user", "path", path, "uid", st.Uid)
		if err := unix.Fchown(fd, os.Geteuid(), os.Getegid()); err != nil {
			return err
		}
	}
	return c.enforceMode(fd, path, &st)
}

// enforceMode sets the mode of the directory fd to 0700 unless it is.
func (c *controller) enforceMode(fd int, path string, st *unix.Stat_t) error {
	if st.Mode&0o7777 == dirMode {
		return nil
	}
	c.logger.Info("setting directory mode to 0700", "path", path, "was", fmt.Sprintf("%#o", st.Mode&0o7777))
	if err := unix.Fchmod(fd, dirMode); err != nil {
		return types.InternalErrorf("setting the mode of %s: %w", path, err)
	}
	return nil
}

// trustedOwner reports whether uid may own the library's directories.
func trustedOwner(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// openDirNoFollow opens name (relative to dirfd) as a directory; a
// symbolic link as its last component fails with ELOOP or ENOTDIR.
func openDirNoFollow(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// openExecSubdir opens the library's directory name under the exec root
// without following a symbolic link at either step. New checked both
// (checkDirs); this is for the walks that delete under them.
func (c *controller) openExecSubdir(name string) (*os.File, error) {
	root, err := openDirNoFollow(unix.AT_FDCWD, c.execRoot)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: c.execRoot, Err: err}
	}
	defer unix.Close(root)
	fd, err := openDirNoFollow(root, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(c.execRoot, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(c.execRoot, name)), nil
}

// removeAllAt removes name in the directory dir and, when it is a
// directory, everything in it. It never follows a symbolic link (a link is
// removed, not its target) and never descends into another file system (a
// mount point below dir is left, and its removal fails), so nothing
// outside dir is ever removed.
func removeAllAt(dir *os.File, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		return err
	}
	return removeAllAtDev(int(dir.Fd()), name, st.Dev)
}

func removeAllAtDev(dirfd int, name string, dev uint64) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := openDirNoFollow(dirfd, name)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != dev {
		return fmt.Errorf("%s is a mount point; left in place", name)
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	var first error
	for _, n := range names {
		if err := removeAllAtDev(fd, n, dev); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// removeNamespaceFileAt unmounts the namespace bind mount name in the
// directory dir, if it is one, and removes the file. A symbolic link is
// removed as it is: neither unmounting nor removing follows it.
func removeNamespaceFileAt(dir *os.File, name string) error {
	// The /proc/self/fd path reaches the directory through its descriptor;
	// UMOUNT_NOFOLLOW keeps the last component from being followed.
	p := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), name)
	if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting: %w", err)
	}
	return removeAllAt(dir, name)
}

// checkFilesDirAt reports whether name in the directory dir is a directory
// owned by root or the controller's user (or cannot be checked, and is
// then left alone), setting its mode to 0700. A sandbox's files
// directory made before the library enforced the mode is tightened here.
func (c *controller) checkFilesDirAt(dir *os.File, name string) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || !trustedOwner(st.Uid) {
		return false
	}
	if st.Mode&0o7777 != dirMode {
		// A directory, checked just now, in a directory only root writes.
		if err := unix.Fchmodat(int(dir.Fd()), name, dirMode, 0); err != nil {
			c.logger.Warn("setting directory mode to 0700", "path", filepath.Join(dir.Name(), name), "error", err)
		}
	}
	return true
}
