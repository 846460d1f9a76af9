// Package osl is the OS layer: it creates, adopts and destroys network
// namespaces and configures the interfaces, addresses, routes and sysctls
// inside them.
//
// All kernel access goes through a netlink handle bound to the namespace
// (see [Namespace.Handle]), so most operations never touch the calling
// thread. The few things that depend on the calling thread's namespace
// (creating a namespace, binding a socket inside one, writing /proc/sys/net)
// go through [Namespace.Do], the only place in the library that switches a
// thread's network namespace.
package osl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ErrClosed is wrapped by the errors of operations on a closed Namespace.
var ErrClosed = errors.New("namespace is closed")

// threadNetnsPath names the network namespace of the calling thread.
const threadNetnsPath = "/proc/thread-self/ns/net"

// Namespace is a network namespace the library created or adopted, with a
// netlink handle bound to it.
//
// A Namespace is safe for concurrent use, except that Close and Destroy must
// not race with other calls: after Close every method fails with ErrClosed.
type Namespace struct {
	path string // the bind mount or namespace file; "" for CurrentNamespace
	// owned reports whether Destroy may unmount and remove path: true for
	// namespaces made by NewNamespace and for adopted bind mounts.
	owned bool

	mu sync.RWMutex
	// fd is an open file of the namespace; -1 once closed.
	fd int
	// handle is a netlink handle whose sockets live in the namespace; nil
	// once closed.
	handle *netlink.Handle

	// rawMu is taken before mu.
	rawMu sync.Mutex
	// raw is a netlink socket in the namespace for requests handle has no
	// method for; opened on first use, closed by Close.
	raw *nl.SocketHandle
}

// NewNamespace creates a new network namespace, bind-mounts it onto path
// (creating the file and a 0755 parent directory) and brings its loopback
// interface up. The namespace is created in this process: an OS thread
// unshares its network namespace, mounts it, and switches back; the calling
// thread is never switched. On failure nothing is left behind.
//
// The mount is made in the process's mount namespace, so path is visible to
// every thread of the process.
func NewNamespace(path string) (_ *Namespace, retErr error) {
	if path == "" {
		return nil, types.BadRequestErrorf("creating a network namespace: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, types.InternalErrorf("creating network namespace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, types.ForbiddenErrorf("creating network namespace %s: file exists: %w", path, err)
		}
		return nil, types.InternalErrorf("creating network namespace %s: %w", path, err)
	}
	f.Close()

	var (
		handle  *netlink.Handle
		mounted bool
	)
	defer func() {
		if retErr == nil {
			return
		}
		if handle != nil {
			handle.Close()
		}
		if mounted {
			_ = unix.Unmount(path, unix.MNT_DETACH)
		}
		_ = os.Remove(path)
	}()

	err = onThread(func() (bool, error) {
		orig, err := unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, fmt.Errorf("opening the thread's network namespace: %w", err)
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return false, fmt.Errorf("unshare: %w", err)
		}
		// The thread is in the new namespace until Setns below.
		err = unix.Mount(threadNetnsPath, path, "", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mounting the namespace: %w", err)
		} else {
			mounted = true
			handle, err = newHandleHere()
		}
		if err == nil {
			err = setLoopbackUp(handle)
		}
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			return true, errors.Join(err, fmt.Errorf("switching the thread back to its network namespace: %w", rerr))
		}
		return false, err
	})
	if err != nil {
		return nil, types.InternalErrorf("creating network namespace %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, types.InternalErrorf("creating network namespace %s: opening it: %w", path, err)
	}
	return &Namespace{path: path, owned: true, fd: fd, handle: handle}, nil
}

// OpenNamespace adopts an existing network namespace file: a bind mount
// (such as one NewNamespace made before a restart) or /proc/<pid>/ns/net.
// It fails with a BadRequestError if path is not a network namespace.
// Destroy unmounts and removes path only if it is a bind mount.
func OpenNamespace(path string) (_ *Namespace, retErr error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, types.NotFoundErrorf("opening network namespace %s: %w", path, err)
		}
		return nil, types.InternalErrorf("opening network namespace %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if err := checkNetns(fd); err != nil {
		return nil, types.BadRequestErrorf("opening network namespace %s: %w", path, err)
	}
	// The namespace file reached through a magic link of /proc is a
	// symlink; at a bind mount it is the nsfs inode itself.
	st, err := os.Lstat(path)
	if err != nil {
		return nil, types.InternalErrorf("opening network namespace %s: %w", path, err)
	}
	n := &Namespace{path: path, owned: st.Mode()&os.ModeSymlink == 0, fd: fd}
	err = n.Do(func() error {
		var err error
		n.handle, err = newHandleHere()
		return err
	})
	if err != nil {
		return nil, types.InternalErrorf("opening network namespace %s: %w", path, err)
	}
	return n, nil
}

// CurrentNamespace returns the network namespace the process runs in, for
// host-network sandboxes and for the controller's own use. Its Path is "",
// and Destroy refuses to touch it. Do not call it from inside Do.
func CurrentNamespace() (*Namespace, error) {
	var (
		fd     = -1
		handle *netlink.Handle
	)
	// Only goroutines locked by this package ever run on a thread in
	// another namespace, so a new goroutine's thread is in the process's
	// namespace (unlike the thread-group leader, whose thread may be
	// switched at this moment).
	err := onThread(func() (bool, error) {
		var err error
		fd, err = unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, err
		}
		handle, err = newHandleHere()
		if err != nil {
			unix.Close(fd)
		}
		return false, err
	})
	if err != nil {
		return nil, types.InternalErrorf("opening the process's network namespace: %w", err)
	}
	return &Namespace{fd: fd, handle: handle}, nil
}

// String names the namespace in messages.
func (n *Namespace) String() string {
	if n.path == "" {
		return "current network namespace"
	}
	return "network namespace " + n.path
}

// Path returns the file the namespace was created at or opened from, or ""
// for CurrentNamespace.
func (n *Namespace) Path() string { return n.path }

// Fd returns an open file descriptor of the namespace, or -1 once closed.
// It stays owned by n.
func (n *Namespace) Fd() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.fd
}

// Handle returns the netlink handle bound to the namespace, or nil once
// closed. Do not use a handle after Close: netlink falls back to the calling
// thread's namespace for a closed handle.
func (n *Namespace) Handle() *netlink.Handle {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.handle
}

// Close releases the file descriptor and the netlink handle, and keeps the
// namespace (and its mount). Closing twice is harmless.
func (n *Namespace) Close() error {
	// rawMu before mu: rawSocket holds rawMu while Do takes mu.
	n.rawMu.Lock()
	defer n.rawMu.Unlock()
	if n.raw != nil {
		n.raw.Close()
		n.raw = nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fd < 0 {
		return nil
	}
	n.handle.Close()
	n.handle = nil
	err := unix.Close(n.fd)
	n.fd = -1
	if err != nil {
		return types.InternalErrorf("closing %s: %w", n, err)
	}
	return nil
}

// Destroy closes the namespace, unmounts its path and removes the file. The
// kernel frees the namespace and its interfaces asynchronously once the last
// reference is gone, so Destroy returns at once. For the current namespace
// or a namespace opened through /proc it does nothing and returns a
// ForbiddenError.
func (n *Namespace) Destroy() error {
	if !n.owned {
		return types.ForbiddenErrorf("destroying %s: not a namespace this library may remove", n)
	}
	if err := n.Close(); err != nil {
		return err
	}
	// EINVAL: not mounted any more (a Destroy retried after a failure).
	if err := unix.Unmount(n.path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return types.InternalErrorf("destroying %s: unmounting: %w", n, err)
	}
	if err := os.Remove(n.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return types.InternalErrorf("destroying %s: %w", n, err)
	}
	return nil
}

// IsNamespaceMount reports whether path is a network namespace mounted onto
// a file (a bind mount such as NewNamespace makes), as opposed to a plain
// file or a /proc symlink.
func IsNamespaceMount(path string) bool {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return checkNetns(fd) == nil
}

// checkNetns returns an error unless fd is a network namespace.
func checkNetns(fd int) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return errors.New("not a namespace file")
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	switch {
	case errors.Is(err, unix.ENOTTY):
		// Kernel older than 4.11: nsfs is all we can check.
		return nil
	case err != nil:
		return fmt.Errorf("reading the namespace type: %w", err)
	case typ != unix.CLONE_NEWNET:
		return errors.New("not a network namespace")
	}
	return nil
}

// newHandleHere returns a netlink handle whose sockets live in the calling
// thread's network namespace, for every family netlink supports (a handle
// without a family would open sockets in whatever namespace the caller's
// thread is in). netlink.NewHandleAt is not used: it switches the thread
// itself and unlocks it even when switching back failed.
func newHandleHere() (*netlink.Handle, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink sockets: %w", err)
	}
	return h, nil
}

// loopbackIndex is the interface index of lo in every network namespace.
const loopbackIndex = 1

// SetLoopbackUp brings the namespace's lo up, as NewNamespace and
// AdoptNamespace do.
func (n *Namespace) SetLoopbackUp() error {
	return n.withHandle("bringing lo up", func(h *netlink.Handle) error {
		if err := setLoopbackUp(h); err != nil {
			return n.kernelError("bringing lo up", err)
		}
		return nil
	})
}

func setLoopbackUp(h *netlink.Handle) error {
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: loopbackIndex}}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}
