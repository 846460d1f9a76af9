package osl

import (
	"errors"
	"fmt"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// withHandle runs fn with the namespace's netlink handle, keeping Close out
// until fn returns.
func (n *Namespace) withHandle(op string, fn func(h *netlink.Handle) error) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.handle == nil {
		return types.ForbiddenErrorf("%s in %s: %w", op, n, ErrClosed)
	}
	return fn(n.handle)
}

// kernelError classifies the error of a netlink call made for op.
func (n *Namespace) kernelError(op string, err error) error {
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound), errors.Is(err, unix.ENODEV):
		return types.NotFoundErrorf("%s in %s: %w", op, n, err)
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EBUSY):
		return types.ForbiddenErrorf("%s in %s: %w", op, n, err)
	default:
		return types.InternalErrorf("%s in %s: %w", op, n, err)
	}
}

// dumpRetries bounds the retries of a dump the kernel interrupted because
// the dumped table changed meanwhile.
const dumpRetries = 5

// Dump runs a netlink listing (a dump), retrying while the kernel reports
// it interrupted (netlink.ErrDumpInterrupted: the table changed while it
// was dumped, common while the kernel tears down a dead process's
// namespaces). After dumpRetries it returns the last result, possibly
// inconsistent, with the error: a caller that can use a partial listing
// (orphan collection) tests for it with errors.Is, one that cannot
// (choosing a free subnet) fails. Every listing of kernel state should go
// through it.
func Dump[T any](list func() ([]T, error)) ([]T, error) {
	var (
		res []T
		err error
	)
	for range dumpRetries {
		res, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return res, err
}

func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding interface %s: %w", name, err)
	}
	return l, nil
}

// checkIfName rejects names the kernel would refuse.
func checkIfName(what, name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || name == "." || name == ".." {
		return types.BadRequestErrorf("%s %q: invalid interface name", what, name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c <= ' ' {
			return types.BadRequestErrorf("%s %q: invalid interface name", what, name)
		}
	}
	return nil
}
