package builtin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// listenBacklog is asked of listen(2); the kernel caps it at somaxconn.
const listenBacklog = 4096

// parentSocket is a spec's socket in the parent namespace, bound but, for
// TCP, not listening yet: the bind is the "in use" check, and nothing
// queues connections before the child has answered.
type parentSocket struct {
	fd   int
	addr string // the bound address, for errors and logs
}

// bindParent opens and binds the socket a valid spec listens on (see
// port.Spec.ListenAddrs): one dual-stack IPv6 socket for both families.
func bindParent(spec port.Spec) (*parentSocket, error) {
	addrs := spec.ListenAddrs()
	ip, dual := addrs[0], len(addrs) == 2
	if dual {
		ip = netip.IPv6Unspecified()
	}
	s, err := bindAddr(spec, ip, dual)
	if dual && errors.Is(err, unix.EAFNOSUPPORT) {
		// No IPv6 in this namespace: IPv4 is all "both" can be.
		s, err = bindAddr(spec, netip.IPv4Unspecified(), false)
	}
	return s, err
}

func bindAddr(spec port.Spec, ip netip.Addr, dual bool) (_ *parentSocket, retErr error) {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(spec.ParentPort))
	domain, typ := unix.AF_INET, unix.SOCK_STREAM
	if ip.Is6() {
		domain = unix.AF_INET6
	}
	if strings.HasPrefix(spec.Proto, "udp") {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, bindError(spec, addr, "socket", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if typ == unix.SOCK_STREAM {
		// As net.Listen: a port whose last connections are in TIME_WAIT
		// can be exposed again. (For UDP it would let a second socket
		// share the port, so not there.)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, bindError(spec, addr, "setsockopt SO_REUSEADDR", err)
		}
	}
	if domain == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return nil, bindError(spec, addr, "setsockopt IPV6_V6ONLY", err)
		}
	}
	var sa unix.Sockaddr
	if domain == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: spec.ParentPort, Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: spec.ParentPort, Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, bindError(spec, addr, "bind", err)
	}
	return &parentSocket{fd: fd, addr: addr}, nil
}

// listener starts listening and returns the socket as a *net.TCPListener.
// The parentSocket is closed either way.
func (s *parentSocket) listener(spec port.Spec) (*net.TCPListener, error) {
	defer s.close()
	if err := unix.Listen(s.fd, listenBacklog); err != nil {
		return nil, bindError(spec, s.addr, "listen", err)
	}
	f := os.NewFile(uintptr(s.fd), s.addr)
	s.fd = -1
	defer f.Close()
	ln, err := net.FileListener(f) // a dup of f
	if err != nil {
		return nil, types.InternalErrorf("adding port %s: listening on %s: %w", spec, s.addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// packetConn returns the socket as a *net.UDPConn. The parentSocket is
// closed either way.
func (s *parentSocket) packetConn(spec port.Spec) (*net.UDPConn, error) {
	defer s.close()
	f := os.NewFile(uintptr(s.fd), s.addr)
	s.fd = -1
	defer f.Close()
	c, err := net.FilePacketConn(f) // a dup of f
	if err != nil {
		return nil, types.InternalErrorf("adding port %s: listening on %s: %w", spec, s.addr, err)
	}
	return c.(*net.UDPConn), nil
}

func (s *parentSocket) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// bindError says why the parent address cannot be had.
func bindError(spec port.Spec, addr, op string, err error) error {
	err = os.NewSyscallError(op, err)
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return types.ForbiddenErrorf("adding port %s: parent address %s/%s is in use: %w", spec, addr, spec.Proto, err)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return types.BadRequestErrorf("adding port %s: parent address %s is not an address of the parent namespace: %w", spec, addr, err)
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return types.ForbiddenErrorf("adding port %s: parent address %s: %w%s", spec, addr, err, privilegedHint(spec.ParentPort))
	}
	return types.InternalErrorf("adding port %s: parent address %s: %w", spec, addr, err)
}

// privilegedHint explains a refused bind of a port below
// net.ipv4.ip_unprivileged_port_start (which covers IPv6 too).
func privilegedHint(p int) string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return ""
	}
	start, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p >= start {
		return ""
	}
	return fmt.Sprintf(" (ports below %d need CAP_NET_BIND_SERVICE; lower net.ipv4.ip_unprivileged_port_start or choose a port >= %d)", start, start)
}
