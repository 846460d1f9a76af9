package libnetwork

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// dialIn opens a connected socket to addr ("udp" or "tcp") that lives in
// the namespace ns. Only the socket is made on a thread switched into ns;
// the connect, which for TCP waits for the peer (up to ctx's deadline, the
// upstream's share of the client's timeout), runs on the runtime's poller
// like any dial. Dialling inside ns would hold an OS thread per waiting
// connect, and a container sending TCP queries towards a dead upstream
// could make the controller start a thread per query.
func dialIn(ctx context.Context, ns *osl.Namespace, network string, addr netip.AddrPort) (net.Conn, error) {
	domain, sa := unix.AF_INET, unix.Sockaddr(nil)
	if addr.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		domain = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
		if z := addr.Addr().Zone(); z != "" {
			// The zone names an interface of ns, not of the caller's
			// namespace.
			h := ns.Handle()
			if h == nil {
				return nil, types.ForbiddenErrorf("dialling %s: %s is closed", addr, ns)
			}
			link, err := h.LinkByName(z)
			if err != nil {
				return nil, types.InvalidParameterErrorf("dialling %s: no interface %q in %s: %v", addr, z, ns, err)
			}
			sa6.ZoneId = uint32(link.Attrs().Index)
		}
		sa = sa6
	}
	typ := unix.SOCK_DGRAM
	switch network {
	case "udp":
	case "tcp":
		typ = unix.SOCK_STREAM
	default:
		return nil, types.InvalidParameterErrorf("dialling %s: unknown network %q", addr, network)
	}
	fd, err := ns.Socket(domain, typ|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "upstream")
	defer f.Close()
	if network == "udp" {
		// A UDP connect does not wait.
		if err := unix.Connect(fd, sa); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: net.UDPAddrFromAddrPort(addr), Err: os.NewSyscallError("connect", err)}
		}
		return net.FileConn(f)
	}
	// Register the connecting socket with the poller, wait until it is
	// writable, then make the conn of the connected socket (FileConn
	// learns the peer's address only once it is connected).
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(addr), Err: os.NewSyscallError("connect", err)}
	}
	pending, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	defer pending.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = pending.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = pending.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	rc, err := pending.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var connErr error
	if err := rc.Write(func(s uintptr) bool {
		v, gerr := unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case gerr != nil:
			connErr = gerr
		case v != 0:
			connErr = syscall.Errno(v)
		default:
			if _, perr := unix.Getpeername(int(s)); perr != nil {
				return false // still connecting: wait until writable
			}
			connErr = nil
		}
		return true
	}); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	if connErr != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(addr), Err: os.NewSyscallError("connect", connErr)}
	}
	return net.FileConn(f)
}

// aLongTimeAgo is a deadline in the past, to wake a pending connect.
var aLongTimeAgo = time.Unix(1, 0)
