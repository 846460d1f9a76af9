package portallocator

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// How a host port is held, per protocol:
//
// TCP: a SOCK_STREAM socket bound to the address and port, never listening.
// Linux refuses a second bind of an overlapping address and port unless both
// sockets set SO_REUSEADDR and neither listens (or both set SO_REUSEPORT
// under one uid); ours sets neither, so a bound socket is enough to hold the
// port against every other program, whatever options it uses. Docker
// listens because it sets SO_REUSEADDR on its socket (and needs a listener
// for its userland proxy); a listening socket completes handshakes before
// the DNAT rules exist, so it must also attach a drop-all filter and detach
// it later. Not listening gains: no accept queue, no connection ever
// accepted by a socket nobody reads, nothing to undo when the rules arrive
// (a SYN that the rules do not catch is answered with RST, as for a closed
// port). It costs visibility: `ss -tln` and `netstat -tln` list listeners
// only, so the port does not show up there (`ss -tan --bound-inactive`,
// iproute2 6.5+ on Linux 6.5+, does show it).
//
// UDP: a SOCK_DGRAM socket, bound, with the smallest receive buffer.
// Published datagrams are DNATed before the socket lookup and never reach
// it, but those the rules do not catch (sent before the rules are
// installed, or to an address they do not cover) queue on a socket nobody
// reads. SO_RCVBUF 0 (the kernel raises it to its minimum, about 2 kB)
// bounds that to a datagram or two; later ones are dropped and counted. A
// drop-all socket filter, as docker attaches, would queue nothing, but the
// kernel JIT-compiles every attached filter: it measured 20 µs per socket
// here, as much as the rest of the allocation, against 0.3 µs for the
// setsockopt.
//
// SCTP: a SOCK_STREAM socket with IPPROTO_SCTP, bound, like TCP. A kernel
// without SCTP refuses the socket (EPROTONOSUPPORT or ESOCKTNOSUPPORT); then
// no program can use SCTP ports at all, so the port is reserved in the
// allocator's table only and the binding says so (Binding.NoSocket).
//
// All sockets are close-on-exec and leave SO_REUSEADDR off (the default);
// IPv6 sockets set IPV6_V6ONLY, so a binding of [::]:p and one of 0.0.0.0:p
// coexist as two independent reservations.

// openSocket creates the socket that holds a host port for proto, for
// addresses of addr's family, without binding it. It must run on a thread
// in the allocator's namespace (inside Do): a socket belongs to the
// namespace of the thread that creates it, and stays there.
func openSocket(proto types.Protocol, addr netip.Addr) (int, error) {
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	typ, ipproto := unix.SOCK_STREAM, unix.IPPROTO_TCP
	switch proto {
	case types.UDP:
		typ, ipproto = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	case types.SCTP:
		ipproto = unix.IPPROTO_SCTP
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, ipproto)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setting IPV6_V6ONLY: %w", err)
		}
	}
	if proto == types.UDP {
		if err := shrinkReceiveBuffer(fd); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// shrinkReceiveBuffer sets fd's receive buffer to the kernel's minimum.
func shrinkReceiveBuffer(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil {
		return fmt.Errorf("setting SO_RCVBUF: %w", err)
	}
	return nil
}

// bindSocket binds fd to addr and port. A failed bind leaves fd unbound.
func bindSocket(fd int, addr netip.Addr, port uint16) error {
	var sa unix.Sockaddr
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Addr: addr.As4(), Port: int(port)}
	} else {
		sa = &unix.SockaddrInet6{Addr: addr.As16(), Port: int(port)}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// tableOnly reports whether a socket(2) error for proto means the port is
// to be reserved in the table only: SCTP on a kernel without SCTP. Every
// other failure is an error.
func tableOnly(proto types.Protocol, err error) bool {
	return proto == types.SCTP && noKernelSupport(err)
}

// noKernelSupport reports whether err from socket(2) means the kernel has no
// support for the protocol (SCTP not built or not loadable), as opposed to
// a failure worth reporting. EAFNOSUPPORT is not one: it means the address
// family (IPv6) is missing, which the caller must hear about.
func noKernelSupport(err error) bool {
	return errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT)
}
