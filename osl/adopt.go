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
