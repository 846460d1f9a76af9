package portallocator

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var _ Namespace = (*osl.Namespace)(nil)

var (
	any4 = netip.IPv4Unspecified()
	any6 = netip.IPv6Unspecified()
	lo4  = netip.MustParseAddr("127.0.0.1")
	lo4b = netip.MustParseAddr("127.0.0.2")
)

// newNamespace creates a throwaway namespace (loopback up) and destroys it
// at cleanup.
func newNamespace(t testing.TB) *osl.Namespace {
	t.Helper()
	testutil.RequireRoot(t)
	ns, err := osl.NewNamespace(filepath.Join(t.TempDir(), "netns"))
	if err != nil {
		t.Fatalf("NewNamespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return ns
}

// newAllocator returns an Allocator in ns that is closed at cleanup, after
// checking that Close left its table empty.
func newAllocator(t testing.TB, ns Namespace) *Allocator {
	t.Helper()
	a, err := New(ns)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		a.Close()
		if n := a.reservations(); n != 0 {
			t.Errorf("after Close the table holds %d reservations", n)
		}
	})
	return a
}

// reservations counts the addresses in the table.
func (a *Allocator) reservations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, held := range a.table {
		n += len(held)
	}
	return n
}

func setSysctl(t testing.TB, ns *osl.Namespace, key, value string) {
	t.Helper()
	if err := ns.SetSysctl(key, value); err != nil {
		t.Fatalf("SetSysctl: %v", err)
	}
}

func mustAllocate(t testing.TB, a *Allocator, group ...Request) *Allocation {
	t.Helper()
	al, err := a.Allocate(group...)
	if err != nil {
		t.Fatalf("Allocate(%v): %v", group, err)
	}
	return al
}

// otherBind binds a socket in ns as another program would (TCP and SCTP
// sockets also listen), with SO_REUSEADDR if reuse is set, and returns it.
func otherBind(ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16, reuse bool) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		family, typ, ipproto := unix.AF_INET, unix.SOCK_STREAM, int(proto)
		if addr.Is6() {
			family = unix.AF_INET6
		}
		if proto == types.UDP {
			typ = unix.SOCK_DGRAM
		}
		s, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, ipproto)
		if err != nil {
			return err
		}
		if addr.Is6() {
			unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		}
		if reuse {
			unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}
		if err := bindSocket(s, addr, port); err != nil {
			unix.Close(s)
			return err
		}
		if typ == unix.SOCK_STREAM {
			if err := unix.Listen(s, 16); err != nil {
				unix.Close(s)
				return err
			}
		}
		fd = s
		return nil
	})
	return fd, err
}

// occupy holds a port in ns for another program until cleanup.
func occupy(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	fd, err := otherBind(ns, proto, addr, port, false)
	if err != nil {
		t.Fatalf("binding %d/%s on %s as another program: %v", port, proto, addr, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

// bindErr reports whether another program could bind the port now: nil if
// it could (the socket is closed again), else the bind error.
func bindErr(ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16, reuse bool) error {
	fd, err := otherBind(ns, proto, addr, port, reuse)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// assertHeld fails unless another program's bind of the port fails with
// EADDRINUSE, with and without SO_REUSEADDR.
func assertHeld(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	for _, reuse := range []bool{false, true} {
		if err := bindErr(ns, proto, addr, port, reuse); !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("another program binding %d/%s on %s (SO_REUSEADDR %v): %v, want EADDRINUSE", port, proto, addr, reuse, err)
		}
	}
}

// assertFree fails unless another program can bind the port.
func assertFree(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	if err := bindErr(ns, proto, addr, port, false); err != nil {
		t.Errorf("another program binding %d/%s on %s: %v, want the port free", port, proto, addr, err)
	}
}

// kernelHasSCTP reports whether ns can create an SCTP socket.
func kernelHasSCTP(t testing.TB, ns *osl.Namespace) bool {
	t.Helper()
	var has bool
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
		if err == nil {
			unix.Close(fd)
			has = true
			return nil
		}
		if noKernelSupport(err) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("probing for SCTP: %v", err)
	}
	return has
}
