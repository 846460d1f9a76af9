package libnetwork

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/osl"
)

// routeLister lists the routed prefixes of the controller's namespace, so
// that default pools skip subnets already in use there. Every default pool
// request lists them, and every network's bridge has a route, so this is
// done cheaply: on a netlink socket of its own with strict checking of dump
// requests on, the kernel dumps only the main table of the one family
// asked for (instead of every table of both families, each bridge's local
// and broadcast routes included), and the answer is read into one buffer
// and parsed in place, without a netlink.Route per route. At 4,000
// networks that took a default pool request from 9.6 MB allocated to a
// slice of prefixes.
type routeLister struct {
	mu sync.Mutex
	// fd is the netlink socket, -1 once closed; seq numbers its dumps; buf
	// receives them. All three are guarded by mu: one dump at a time.
	fd  int
	seq uint32
	buf []byte
}

// routeDumpRetries is how many times a dump the kernel marks interrupted
// (routes changed during it) is tried.
const routeDumpRetries = 5

func newRouteLister(ns *osl.Namespace) (*routeLister, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket to list routes in %s: %w", ns, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding the route listing socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink strict checking: %w", err)
	}
	// The kernel fills a dump message up to the reader's buffer size,
	// capped at 32 KiB plus a page.
	return &routeLister{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (l *routeLister) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	err := unix.Close(l.fd)
	l.fd = -1
	return err
}

// list returns the destinations of the routes in the main table of the
// family, the default route (which covers nothing in particular) left out.
func (l *routeLister) list(v6 bool) ([]netip.Prefix, error) {
	family := byte(unix.AF_INET)
	if v6 {
		family = unix.AF_INET6
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil, errors.New("listing routes: the controller is stopped")
	}
	for range routeDumpRetries {
		out, intr, err := l.dumpLocked(family)
		if err != nil || !intr {
			return out, err
		}
	}
	return nil, fmt.Errorf("listing routes: dump interrupted %d times by route changes", routeDumpRetries)
}

// dumpLocked dumps the main-table routes of family once; intr reports
// that the kernel marked the dump inconsistent. l.mu must be held.
func (l *routeLister) dumpLocked(family byte) (out []netip.Prefix, intr bool, err error) {
	ne := binary.NativeEndian
	l.seq++
	var req [unix.SizeofNlMsghdr + unix.SizeofRtMsg]byte
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETROUTE)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], l.seq)
	req[unix.SizeofNlMsghdr] = family               // rtm_family
	req[unix.SizeofNlMsghdr+4] = unix.RT_TABLE_MAIN // rtm_table: with strict checking, a filter
	if err := unix.Sendto(l.fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, false, fmt.Errorf("listing routes: sending the dump request: %w", err)
	}
	for {
		// MSG_TRUNC: n is the message's length even if buf was too short.
		n, _, err := unix.Recvfrom(l.fd, l.buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("listing routes: %w", err)
		}
		if n > len(l.buf) {
			return nil, false, fmt.Errorf("listing routes: a %d-byte dump message does not fit the %d-byte buffer", n, len(l.buf))
		}
		for b := l.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			size := int(ne.Uint32(b[0:]))
			if size < unix.SizeofNlMsghdr || size > len(b) {
				return nil, false, fmt.Errorf("listing routes: malformed netlink message of %d bytes", size)
			}
			typ, flags, seq := ne.Uint16(b[4:]), ne.Uint16(b[6:]), ne.Uint32(b[8:])
			msg := b[unix.SizeofNlMsghdr:size]
			b = b[min(len(b), nlAlign(size)):]
			if seq != l.seq {
				continue // the rest of an earlier dump
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch typ {
			case unix.NLMSG_DONE:
				return out, intr, nil
			case unix.NLMSG_ERROR:
				if len(msg) >= 4 {
					if errno := int32(ne.Uint32(msg)); errno != 0 {
						return nil, false, fmt.Errorf("listing routes: %w", unix.Errno(-errno))
					}
				}
				return out, intr, nil
			case unix.RTM_NEWROUTE:
				if p, ok := mainRoute(msg, family); ok {
					out = append(out, p)
				}
			}
		}
	}
}

// mainRoute returns the destination of the route in msg (an rtmsg and its
// attributes) if it is a route of the main table of family with a
// destination other than the default.
func mainRoute(msg []byte, family byte) (netip.Prefix, bool) {
	ne := binary.NativeEndian
	if len(msg) < unix.SizeofRtMsg {
		return netip.Prefix{}, false
	}
	dstLen, table := int(msg[1]), uint32(msg[4])
	if msg[0] != family || dstLen == 0 || ne.Uint32(msg[8:])&unix.RTM_F_CLONED != 0 {
		return netip.Prefix{}, false
	}
	var dst netip.Addr
	for a := msg[unix.SizeofRtMsg:]; len(a) >= unix.SizeofRtAttr; {
		size := int(ne.Uint16(a[0:]))
		if size < unix.SizeofRtAttr || size > len(a) {
			return netip.Prefix{}, false
		}
		data := a[unix.SizeofRtAttr:size]
		switch ne.Uint16(a[2:]) {
		case unix.RTA_TABLE:
			if len(data) == 4 {
				table = ne.Uint32(data)
			}
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(data)
		}
		a = a[min(len(a), nlAlign(size)):]
	}
	if table != unix.RT_TABLE_MAIN || !dst.IsValid() || dstLen > dst.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(dst, dstLen), true
}

// nlAlign rounds a netlink message or attribute length up to 4 bytes.
func nlAlign(n int) int { return (n + 3) &^ 3 }
