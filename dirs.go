package libnetwork

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	// overlayDirName holds the overlay driver's network namespaces.
	overlayDirName = "overlay"
)

// dirMode is the mode of the data dir, the exec root and every directory
// the library makes under them: what is in them is root's business only.
const dirMode = 0o700

// UnsafeDirError is returned by New when the data dir or the exec root is
// a symbolic link, not a directory, or a directory owned by a user other
// than root and the controller's own, or when a directory on the way to
// it could let another user swap it (see New for the rule): the library
// runs as root and would write, and delete, wherever such a path leads.
// It is a types.ForbiddenError.
type UnsafeDirError struct {
	// Path is the directory as configured.
	Path string
	// Reason says what is wrong with it, naming the directory on the way
	// to it that is at fault, if it is not Path itself.
	Reason string
}

func (e *UnsafeDirError) Error() string {
	return fmt.Sprintf("unsafe directory %s: %s; the library runs as root and uses only a real directory owned by root (or its own user), reached through directories only root (or its own user) can change", e.Path, e.Reason)
}

// Forbidden denotes the type of this error.
func (e *UnsafeDirError) Forbidden() {}

// checkDirs makes the data dir and the exec root, and netns/, files/, sk/
// and overlay/ under the exec root, or checks the ones that exist. The data dir and
// the exec root are made absolute (against the working directory, once)
// and must pass checkPath, else New fails with an UnsafeDirError; both are
// checked before either is made, so a refusal makes nothing. A
// subdirectory of the exec root that is anything but a directory of root
// or the controller's user is removed (a link, never its target) and made
// again, and one owned by another user is taken back. Every one of them
// gets mode 0700.
func (c *controller) checkDirs() error {
	var dirs [2]string
	for i, dir := range []string{c.dataDir, c.execRoot} {
		if dir == "" {
			return types.InvalidParameterErrorf("the data dir and the exec root must be set (have %q, %q)", c.dataDir, c.execRoot)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return types.InternalErrorf("resolving %s: %w", dir, err)
		}
		if abs == "/" {
			return &UnsafeDirError{Path: dir, Reason: "it is the root directory"}
		}
		dirs[i] = abs
	}
	for i, dir := range []string{c.dataDir, c.execRoot} {
		fd, err := checkPath(dir, dirs[i], false)
		if err != nil {
			return err
		}
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	for i, dir := range []string{c.dataDir, c.execRoot} {
		if err := c.checkTopDir(dir, dirs[i]); err != nil {
			return err
		}
	}
	c.dataDir, c.execRoot = dirs[0], dirs[1]
	root, err := openDirNoFollow(unix.AT_FDCWD, c.execRoot)
	if err != nil {
		return &UnsafeDirError{Path: c.execRoot, Reason: err.Error()}
	}
	defer unix.Close(root)
	for _, name := range []string{netnsDirName, filesDirName, skDirName, overlayDirName} {
		if err := c.ensureSubdir(root, name); err != nil {
			return types.InternalErrorf("preparing %s: %w", filepath.Join(c.execRoot, name), err)
		}
	}
	return nil
}

// checkTopDir makes the directory abs (dir as configured) and the
// missing directories on the way to it, or checks them (checkPath), and
// sets its mode to 0700.
func (c *controller) checkTopDir(dir, abs string) error {
	fd, err := checkPath(dir, abs, true)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return types.InternalErrorf("checking %s: %w", dir, err)
	}
	return c.enforceMode(fd, dir, &st)
}

// maxSymlinks bounds the symbolic links checkPath follows, as the kernel
// bounds them in a path lookup.
const maxSymlinks = 40

// checkPath resolves the absolute path abs (dir as configured) one
// component at a time from /, holding a descriptor of each directory on
// the way, and returns a descriptor (O_RDONLY) of the directory at its end.
// Like ssh's StrictModes, it refuses, with an UnsafeDirError, a path
// another user could redirect:
//
//   - every directory on the way (/ included) must be owned by root or the
//     controller's user and not writable by group or others, unless it has
//     the sticky bit (like /tmp): then others may add entries but not
//     rename or remove those of root's, and the next component, owned by
//     root or the controller's user as every component must be, is safe;
//   - a symbolic link on the way must be owned by root or the controller's
//     user; it is followed and the components of its target are checked
//     the same way (so /var/run -> /run is fine);
//   - the last component must be a directory (not a symbolic link) owned
//     by root or the controller's user; its own mode is not checked, New
//     sets it to 0700.
//
// A missing directory is made (mode 0700) when create is set, and checked
// like one found; otherwise checkPath stops there and returns -1 and no
// error, what is missing being what New would make.
func checkPath(dir, abs string, create bool) (int, error) {
	type step struct {
		fd   int
		path string
	}
	root, err := openPath(unix.AT_FDCWD, "/")
	if err != nil {
		return -1, types.InternalErrorf("checking %s: opening /: %w", dir, err)
	}
	stack := []step{{root, "/"}}
	defer func() {
		for _, s := range stack {
			unix.Close(s.fd)
		}
	}()
	refuse := func(format string, a ...any) (int, error) {
		return -1, &UnsafeDirError{Path: dir, Reason: fmt.Sprintf(format, a...)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return -1, types.InternalErrorf("checking %s: %w", dir, err)
	}
	if reason := ancestorFault(&st); reason != "" {
		return refuse("/ %s", reason)
	}
	pending := splitPath(abs)
	links := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		last := len(pending) == 0
		cur := stack[len(stack)-1]
		if name == ".." {
			if len(stack) > 1 {
				unix.Close(cur.fd)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		path := filepath.Join(cur.path, name)
		fd, err := openPath(cur.fd, name)
		if errors.Is(err, unix.ENOENT) {
			if !create {
				return -1, nil
			}
			if err := unix.Mkdirat(cur.fd, name, dirMode); err != nil && !errors.Is(err, unix.EEXIST) {
				if errors.Is(err, unix.ENOTDIR) {
					return refuse("%s is not a directory", cur.path)
				}
				return -1, types.InternalErrorf("creating %s: %w", path, err)
			}
			// Made now, or by someone else just now: checked below either
			// way.
			fd, err = openPath(cur.fd, name)
		}
		if err != nil {
			return -1, types.InternalErrorf("checking %s: opening %s: %w", dir, path, err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, types.InternalErrorf("checking %s: %w", dir, err)
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			target, err := readlinkFd(fd)
			unix.Close(fd)
			switch {
			case last:
				return refuse("it is a symbolic link")
			case !trustedOwner(st.Uid):
				return refuse("%s is a symbolic link owned by uid %d", path, st.Uid)
			case err != nil:
				return -1, types.InternalErrorf("checking %s: reading the link %s: %w", dir, path, err)
			}
			if links++; links > maxSymlinks {
				return refuse("too many symbolic links on the way (at %s)", path)
			}
			if filepath.IsAbs(target) {
				for _, s := range stack[1:] {
					unix.Close(s.fd)
				}
				stack = stack[:1]
			}
			pending = append(splitPath(target), pending...)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			unix.Close(fd)
			if last {
				return refuse("it is not a directory")
			}
			return refuse("%s is not a directory", path)
		case last:
			stack = append(stack, step{fd, path})
			if !trustedOwner(st.Uid) {
				return refuse("it is owned by uid %d", st.Uid)
			}
			// O_PATH gave the check; changing the mode needs a real
			// descriptor of the same directory.
			dirfd, err := openDirNoFollow(fd, ".")
			if err != nil {
				return -1, types.InternalErrorf("opening %s: %w", dir, err)
			}
			return dirfd, nil
		default:
			stack = append(stack, step{fd, path})
			if reason := ancestorFault(&st); reason != "" {
				return refuse("%s %s", path, reason)
			}
		}
	}
	// Only a path ending in ".." gets here; filepath.Abs cleaned those
	// away, and a link as last component is refused above.
	return refuse("it does not name a directory")
}

// ancestorFault says why the directory st, on the way to the data dir or
// the exec root, lets another user change what the path leads to, or ""
// if it does not (see checkPath).
func ancestorFault(st *unix.Stat_t) string {
	if !trustedOwner(st.Uid) {
		return fmt.Sprintf("is owned by uid %d", st.Uid)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Sprintf("is writable by group or others without the sticky bit (mode %#o)", st.Mode&0o7777)
	}
	return ""
}

// splitPath splits a path into its components, dropping empty ones and
// ".".
func splitPath(p string) []string {
	var out []string
	for _, name := range strings.Split(p, "/") {
		if name != "" && name != "." {
			out = append(out, name)
		}
	}
	return out
}

// openPath opens name (relative to dirfd) with O_PATH, not following a
// symbolic link as its last component: the descriptor is of the link
// then.
func openPath(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// readlinkFd reads the target of the symbolic link opened (O_PATH) as fd.
func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
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
// removed, not its target) and never crosses a mount point: a directory
// on another mount than dir (another file system, or a bind mount of a
// directory of the same one, which st_dev would not tell apart) is left
// with what is in it, and so is a file mounted over; each is reported in
// the returned error as a *mountPointError. So nothing outside dir is ever
// removed.
func removeAllAt(dir *os.File, name string) error {
	mnt, err := mountID(int(dir.Fd()))
	if err != nil {
		return &fs.PathError{Op: "statx", Path: dir.Name(), Err: err}
	}
	return removeAllOnMount(int(dir.Fd()), name, filepath.Join(dir.Name(), name), mnt)
}

// removeAllOnMount is removeAllAt for name in dirfd, at path (for errors),
// staying on the mount mnt.
func removeAllOnMount(dirfd int, name, path string, mnt uint64) error {
	err := unix.Unlinkat(dirfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		// The kernel refuses to unlink a mount point of this mount
		// namespace.
		return &mountPointError{Path: path}
	case !errors.Is(err, unix.EISDIR):
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	fd, err := openDirNoFollow(dirfd, name)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	d := os.NewFile(uintptr(fd), path)
	defer d.Close()
	id, err := mountID(fd)
	if err != nil {
		return &fs.PathError{Op: "statx", Path: path, Err: err}
	}
	if id != mnt {
		return &mountPointError{Path: path}
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return &fs.PathError{Op: "readdir", Path: path, Err: err}
	}
	var errs []error
	for _, n := range names {
		if err := removeAllOnMount(fd, n, filepath.Join(path, n), mnt); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return &mountPointError{Path: path}
		}
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// mountPointError reports a mount point that removeAllAt left in place,
// with what is mounted there.
type mountPointError struct {
	Path string
}

func (e *mountPointError) Error() string {
	return e.Path + " is a mount point; left in place with what is mounted there"
}

// mountID returns the ID of the mount the file fd is on: it tells a bind
// mount from the directory it sits in even when both are on one file
// system.
func mountID(fd int) (uint64, error) {
	var stx unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	if err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		return stx.Mnt_id, nil
	}
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return 0, err
	}
	// Kernels before 5.8 have no STATX_MNT_ID.
	return mountIDFromFdinfo(fd)
}

// mountIDFromFdinfo reads the ID of the mount the file fd is on from
// /proc/self/fdinfo, which shows it since Linux 3.15.
func mountIDFromFdinfo(fd int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no mount ID in fdinfo")
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
