package osl

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// onThread runs fn on a new goroutine locked to its OS thread and waits for
// it. fn reports whether it left the thread in a namespace it could not
// undo; such a thread, or one whose fn panicked, is never unlocked, so the
// runtime ends it together with the goroutine instead of reusing it. A panic
// in fn is raised again in the caller.
func onThread(fn func() (tainted bool, err error)) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var (
			r       result
			tainted = true
		)
		defer func() {
			if v := recover(); v != nil {
				r.panicked, r.value = true, v
			}
			if !tainted {
				runtime.UnlockOSThread()
			}
			done <- r
		}()
		tainted, r.err = fn()
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// Do runs fn on an OS thread switched into the namespace and switches the
// thread back afterwards. It is the one place that switches a thread's
// network namespace; use it only for what depends on the thread's namespace
// (binding a socket, opening /proc/sys/net), never for netlink, which has
// Handle.
//
// fn runs on another goroutine than the caller's, and must not start
// goroutines: they would run on other threads, in the caller's namespace.
// Sockets fn opens stay in the namespace after Do returns. If the thread
// cannot be switched back, it is never unlocked, so it ends with its
// goroutine; the error says so.
func (n *Namespace) Do(fn func() error) error {
	err := onThread(func() (bool, error) {
		orig, err := unix.Open(threadNetnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, types.InternalErrorf("running in %s: opening the thread's network namespace: %w", n, err)
		}
		defer unix.Close(orig)
		if err := n.enter(); err != nil {
			return false, err
		}
		fnErr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			return true, errors.Join(fnErr, types.InternalErrorf("running in %s: switching the thread back: %w", n, err))
		}
		return false, fnErr
	})
	return err
}

// enter switches the calling thread into n. A failed setns leaves the
// thread where it was.
func (n *Namespace) enter() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.fd < 0 {
		return types.ForbiddenErrorf("running in %s: %w", n, ErrClosed)
	}
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		return types.InternalErrorf("running in %s: setns: %w", n, err)
	}
	return nil
}

// SetSysctl writes value to the network sysctl key (such as
// "net.ipv4.ip_forward" or "net.ipv6.conf.eth0.disable_ipv6") of the
// namespace. As with sysctl(8), a "/" in key stands for a "." in a name
// ("net.ipv4.conf.eth0/100.forwarding"). Only keys under "net." are
// accepted: other sysctls are not per namespace.
func (n *Namespace) SetSysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	err = n.Do(func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return types.NotFoundErrorf("no such sysctl: %w", err)
			}
			return err
		}
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		if types.IsNotFound(err) || types.IsForbidden(err) {
			return fmt.Errorf("setting %s=%s in %s: %w", key, value, n, err)
		}
		return types.InternalErrorf("setting %s=%s in %s: %w", key, value, n, err)
	}
	return nil
}

// Sysctl reads the network sysctl key of the namespace, as SetSysctl
// names it, and returns its value without the trailing newline.
func (n *Namespace) Sysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var value []byte
	err = n.Do(func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		var err error
		value, err = os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return types.NotFoundErrorf("no such sysctl: %w", err)
		}
		return err
	})
	if err != nil {
		if types.IsNotFound(err) || types.IsForbidden(err) {
			return "", fmt.Errorf("reading %s in %s: %w", key, n, err)
		}
		return "", types.InternalErrorf("reading %s in %s: %w", key, n, err)
	}
	return strings.TrimRight(string(value), "\n"), nil
}

// sysctlPath turns a network sysctl key into its file under /proc/sys.
func sysctlPath(key string) (string, error) {
	parts := strings.Split(key, ".")
	if len(parts) < 2 || parts[0] != "net" {
		return "", types.BadRequestErrorf("sysctl %q: not a network sysctl key", key)
	}
	for i, part := range parts {
		part = strings.ReplaceAll(part, "/", ".")
		if part == "" || part == "." || part == ".." || strings.ContainsRune(part, 0) {
			return "", types.BadRequestErrorf("sysctl %q: invalid key", key)
		}
		parts[i] = part
	}
	return "/proc/sys/" + strings.Join(parts, "/"), nil
}

// Socket opens a socket inside the namespace and returns its descriptor:
// the namespace a socket belongs to is fixed when it is made, so the
// caller may bind, connect and use it from any thread. Only the socket
// call runs on a thread switched into the namespace; connecting there
// instead would hold the thread for as long as the connect waits.
func (n *Namespace) Socket(domain, typ, proto int) (int, error) {
	fd := -1
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		return -1, types.InternalErrorf("opening a socket in %s: %w", n, err)
	}
	return fd, nil
}
