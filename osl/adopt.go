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
// gone, as the namespaces NewNamespace makes do. Destroy unmounts path. On
// failure nothing is left behind.
func AdoptNamespace(src, path string) (_ *Namespace, retErr error) {
	probe, err := OpenNamespace(src)
	if err != nil {
		return nil, err
	}
	probe.Close()
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
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		return nil, types.InternalErrorf("adopting network namespace %s: bind-mounting onto %s: %w", src, path, err)
	}
	mounted = true
	ns, err := OpenNamespace(path)
	if err != nil {
		return nil, err
	}
	ns.owned = true
	return ns, nil
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
