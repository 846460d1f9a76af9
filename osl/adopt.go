package osl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// AdoptNamespace bind-mounts the network namespace at src (for example
// /proc/<pid>/ns/net of a container's first process) onto path and opens
// it, so the namespace stays reachable under path after the process is
// gone, as the namespaces NewNamespace makes do, and brings its lo up as
// NewNamespace does. Destroy unmounts path. On failure nothing is left
// behind.
//
// src is refused as CheckAdoptable refuses it; the checks are made on the
// opened file and the bind mount is made from that same file, so a path
// swapped between the check and the mount cannot slip another namespace in.
func AdoptNamespace(src, path string, refuse ...*Namespace) (_ *Namespace, retErr error) {
	fd, err := openAdoptable(src, refuse)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, types.InternalErrorf("adopting network namespace %s: %w", src, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, types.ForbiddenErrorf("adopting network namespace %s at %s: %w", src, path, err)
	}
	f.Close()
	mounted := false
	defer func() {
		if retErr != nil {
			if mounted {
				_ = unix.Unmount(path, unix.MNT_DETACH)
			}
			_ = os.Remove(path)
		}
	}()
	// The fd's magic link names the very inode that was checked.
	fdPath := fmt.Sprintf("/proc/thread-self/fd/%d", fd)
	if err := unix.Mount(fdPath, path, "", unix.MS_BIND, ""); err != nil {
		return nil, types.InternalErrorf("adopting network namespace %s: bind-mounting onto %s: %w", src, path, err)
	}
	mounted = true
	ns, err := OpenNamespace(path)
	if err != nil {
		return nil, err
	}
	// As in a namespace NewNamespace makes, and as docker does when it
	// adopts one: the runtime may not have brought lo up yet, and the
	// sandbox's DNS server listens on it.
	if err := ns.SetLoopbackUp(); err != nil {
		ns.Close()
		return nil, err
	}
	ns.owned = true
	return ns, nil
}

// CheckAdoptable reports whether AdoptNamespace would take src: it must be
// a network namespace file (a BadRequestError otherwise, a NotFoundError if
// it does not exist), and neither one of the namespaces in refuse nor the
// process's own network namespace (a ForbiddenError), compared by the
// device and inode of the opened file.
func CheckAdoptable(src string, refuse ...*Namespace) error {
	fd, err := openAdoptable(src, refuse)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// openAdoptable opens src and returns its descriptor if AdoptNamespace
// may take it.
func openAdoptable(src string, refuse []*Namespace) (_ int, retErr error) {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, types.NotFoundErrorf("opening network namespace %s: %w", src, err)
		}
		return -1, types.InternalErrorf("opening network namespace %s: %w", src, err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if err := checkNetns(fd); err != nil {
		return -1, types.BadRequestErrorf("opening network namespace %s: %w", src, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, types.InternalErrorf("opening network namespace %s: %w", src, err)
	}
	for _, n := range refuse {
		if n == nil {
			continue
		}
		var own unix.Stat_t
		if err := n.fstat(&own); err != nil {
			return -1, types.InternalErrorf("adopting network namespace %s: comparing with %s: %w", src, n, err)
		}
		if own.Dev == st.Dev && own.Ino == st.Ino {
			return -1, types.ForbiddenErrorf("adopting network namespace %s: it is the %s the controller programs, never a sandbox's", src, n)
		}
	}
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return -1, types.InternalErrorf("adopting network namespace %s: comparing with the process's own: %w", src, err)
	}
	if self.Dev == st.Dev && self.Ino == st.Ino {
		return -1, types.ForbiddenErrorf("adopting network namespace %s: it is the process's own network namespace, never a sandbox's", src)
	}
	return fd, nil
}

// fstat stats the namespace's open file.
func (n *Namespace) fstat(st *unix.Stat_t) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.fd < 0 {
		return ErrClosed
	}
	return unix.Fstat(n.fd, st)
}

// RemoveNamespaceFile unmounts a namespace bind mount at path, if it is
// one, and removes the file: the clean-up of a namespace file nothing owns
// any more (found after a crash).
func RemoveNamespaceFile(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return types.InternalErrorf("removing namespace file %s: unmounting: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing namespace file %s: %w", path, err)
	}
	return nil
}

// DestroyHold is Destroy that keeps the namespace alive through the
// returned descriptor: the mount and the file are gone when it returns, and
// the kernel frees the namespace (and its interfaces) when the descriptor
// is closed. Closing many such descriptors together lets the kernel clean
// the namespaces up in one batch, which holds the rtnl lock once instead of
// once per namespace.
func (n *Namespace) DestroyHold() (int, error) {
	if !n.owned {
		return -1, types.ForbiddenErrorf("destroying %s: not a namespace this library may remove", n)
	}
	n.mu.RLock()
	fd := n.fd
	n.mu.RUnlock()
	if fd < 0 {
		return -1, types.ForbiddenErrorf("destroying %s: %w", n, ErrClosed)
	}
	hold, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, types.InternalErrorf("destroying %s: holding it: %w", n, err)
	}
	if err := n.Destroy(); err != nil {
		unix.Close(hold)
		return -1, err
	}
	return hold, nil
}
