package libnetwork

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/ipamutils"
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
//
// Listing routes is also avoided: the lister keeps each family's routes in
// a routeSet, kept current from route notifications (see routecache.go),
// and dumps only when the set cannot be trusted.
type routeLister struct {
	mu sync.Mutex
	// fd is the netlink socket of the dumps, -1 once closed; seq numbers
	// its dumps; buf receives them. sub is the socket of the
	// notifications the sets follow, subBuf receives them. All are
	// guarded by mu: one dump or drain at a time.
	fd     int
	seq    uint32
	buf    []byte
	sub    int
	subBuf []byte
	// sets are the routes of IPv4 (0) and IPv6 (1).
	sets [2]routeSet
	// lastDump is the number of routes of the last dump, to size the next.
	lastDump int
	// dumps counts the dumps made, for tests.
	dumps int
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
	// Subscribed now, before any dump, so that no change after a dump
	// is missed.
	sub, err := subscribeRoutes(ns)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The kernel fills a dump message up to the reader's buffer size,
	// capped at 32 KiB plus a page. A notification is one message.
	return &routeLister{fd: fd, buf: make([]byte, 64<<10), sub: sub, subBuf: make([]byte, 64<<10)}, nil
}

func (l *routeLister) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	err := errors.Join(unix.Close(l.fd), unix.Close(l.sub))
	l.fd, l.sub = -1, -1
	l.sets = [2]routeSet{}
	return err
}

// list returns the destinations of the routes in the main table of the
// family, the default route (which covers nothing in particular) left out,
// one per route: a prefix with two routes is there twice. The slice is the
// caller's.
//
// The answer comes from the family's routeSet once the notifications
// queued since the last call are applied; the routes are dumped only when
// the set cannot be trusted (not made yet, notifications lost, or a change
// it does not follow).
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
	l.drainLocked()
	s := &l.sets[familyIndex(family)]
	if s.valid {
		return s.prefixes(), nil
	}
	routes, cacheable, err := l.dumpRetryLocked(family)
	if err != nil {
		return nil, err
	}
	if cacheable && s.reset(routes, v6) {
		// Notifications queued during the dump may repeat what it saw:
		// applied idempotently until the set has caught up.
		s.settling = true
		l.drainLocked()
		s.settling = false
		if s.valid {
			return s.prefixes(), nil
		}
	}
	out := make([]netip.Prefix, len(routes))
	for i, r := range routes {
		out[i] = r.key.dst
	}
	return out, nil
}

// withIndex runs fn with a lookup of the routes of the family that a
// default pool skips (those list returns, masked; see routeIndexed):
// overlapping returns one that overlaps a prefix. It is the defaultipam
// Config's HostRouteIndex.
//
// The lookup is the family's routeSet's own index, kept with the set, so
// a request neither copies nor indexes the routes: at 4,000 networks that
// was 1.4 MB and 0.6 ms per default pool. fn runs with l.mu held, and
// must not use overlapping after it returns; whoever calls withIndex with
// a lock of its own held, or takes one in fn, orders it after l.mu (the
// default IPAM takes its lock in fn only). When the set cannot be
// trusted and the dump cannot make it so, the routes dumped are indexed.
func (l *routeLister) withIndex(v6 bool, fn func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error) error {
	family := byte(unix.AF_INET)
	if v6 {
		family = unix.AF_INET6
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return errors.New("listing routes: the controller is stopped")
	}
	l.drainLocked()
	s := &l.sets[familyIndex(family)]
	if !s.valid {
		routes, cacheable, err := l.dumpRetryLocked(family)
		if err != nil {
			return err
		}
		if cacheable && s.reset(routes, v6) {
			s.settling = true
			l.drainLocked()
			s.settling = false
		}
		if !s.valid {
			ps := make([]netip.Prefix, 0, len(routes))
			for _, r := range routes {
				if p, ok := routeIndexed(r.key.dst, v6); ok {
					ps = append(ps, p)
				}
			}
			return fn(overlappingIn(ipamutils.NewPrefixIndex(ps, uint64(0))))
		}
	}
	return fn(overlappingIn(&s.index))
}

// overlappingIn returns x's lookup of a prefix overlapping another.
func overlappingIn(x *ipamutils.PrefixIndex[uint64]) func(netip.Prefix) (netip.Prefix, bool) {
	return func(want netip.Prefix) (netip.Prefix, bool) {
		p, _, ok := x.Overlapping(want)
		return p, ok
	}
}

// dumpRetryLocked dumps the main-table routes of family, again while the
// kernel marks the dump interrupted. cacheable reports that a routeSet
// could hold them: each is a plain route, and every message parsed. l.mu
// must be held.
func (l *routeLister) dumpRetryLocked(family byte) (routes []routeEntry, cacheable bool, err error) {
	for range routeDumpRetries {
		out, clean, intr, err := l.dumpLocked(family)
		if err != nil {
			return nil, false, err
		}
		if !intr {
			return out, clean, nil
		}
	}
	return nil, false, fmt.Errorf("listing routes: dump interrupted %d times by route changes", routeDumpRetries)
}

// dumpLocked dumps the main-table routes of family once; intr reports
// that the kernel marked the dump inconsistent, clean that every route is
// plain and every message parsed. l.mu must be held.
func (l *routeLister) dumpLocked(family byte) (out []routeEntry, clean, intr bool, err error) {
	ne := binary.NativeEndian
	l.seq++
	l.dumps++
	clean = true
	out = make([]routeEntry, 0, l.lastDump)
	defer func() { l.lastDump = len(out) }()
	var req [unix.SizeofNlMsghdr + unix.SizeofRtMsg]byte
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETROUTE)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], l.seq)
	req[unix.SizeofNlMsghdr] = family               // rtm_family
	req[unix.SizeofNlMsghdr+4] = unix.RT_TABLE_MAIN // rtm_table: with strict checking, a filter
	if err := unix.Sendto(l.fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, false, false, fmt.Errorf("listing routes: sending the dump request: %w", err)
	}
	for {
		// MSG_TRUNC: n is the message's length even if buf was too short.
		n, _, err := unix.Recvfrom(l.fd, l.buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, false, fmt.Errorf("listing routes: %w", err)
		}
		if n > len(l.buf) {
			return nil, false, false, fmt.Errorf("listing routes: a %d-byte dump message does not fit the %d-byte buffer", n, len(l.buf))
		}
		for b := l.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			size := int(ne.Uint32(b[0:]))
			if size < unix.SizeofNlMsghdr || size > len(b) {
				return nil, false, false, fmt.Errorf("listing routes: malformed netlink message of %d bytes", size)
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
				return out, clean, intr, nil
			case unix.NLMSG_ERROR:
				if len(msg) >= 4 {
					if errno := int32(ne.Uint32(msg)); errno != 0 {
						return nil, false, false, fmt.Errorf("listing routes: %w", unix.Errno(-errno))
					}
				}
				return out, clean, intr, nil
			case unix.RTM_NEWROUTE:
				r, ok, err := parseRoute(msg, family)
				if err != nil {
					clean = false
				}
				if !ok {
					continue
				}
				if !r.plain {
					clean = false
				}
				out = append(out, r)
			}
		}
	}
}

// routeEntry is a route of the main table as a routeSet keeps it.
type routeEntry struct {
	key routeKey
	// plain: the route has one nexthop, given in the message itself, and
	// not several (RTA_MULTIPATH) nor a nexthop object (RTA_NH_ID), whose
	// changes a routeSet does not follow.
	plain bool
}

// routeKey tells apart the routes of a main table that can be there at
// the same time: two routes to the same prefix that differ in metric,
// device, gateway, type or any other field here are two keys. It leaves
// out what can change during a route's life (metrics, cache info, flags),
// so that a route's deletion names the key its addition did.
type routeKey struct {
	dst, src          netip.Prefix
	gateway, prefsrc  netip.Addr
	oif, prio, flow   uint32
	tos, proto, scope uint8
	typ               uint8
}

// parseRoute parses msg (an rtmsg and its attributes). ok reports that it
// is a route of the main table of family with a destination other than
// the default, and not a cached clone: one list returns. err reports a
// malformed message.
func parseRoute(msg []byte, family byte) (r routeEntry, ok bool, err error) {
	ne := binary.NativeEndian
	if len(msg) < unix.SizeofRtMsg {
		return routeEntry{}, false, fmt.Errorf("a %d-byte route message", len(msg))
	}
	dstLen, srcLen, table := int(msg[1]), int(msg[2]), uint32(msg[4])
	if msg[0] != family || dstLen == 0 || ne.Uint32(msg[8:])&unix.RTM_F_CLONED != 0 {
		return routeEntry{}, false, nil
	}
	r.plain = true
	r.key.tos, r.key.proto, r.key.scope, r.key.typ = msg[3], msg[5], msg[6], msg[7]
	var dst, src netip.Addr
	for a := msg[unix.SizeofRtMsg:]; len(a) >= unix.SizeofRtAttr; {
		size := int(ne.Uint16(a[0:]))
		if size < unix.SizeofRtAttr || size > len(a) {
			return routeEntry{}, false, fmt.Errorf("a malformed attribute of %d bytes", size)
		}
		data := a[unix.SizeofRtAttr:size]
		switch ne.Uint16(a[2:]) {
		case unix.RTA_TABLE:
			if len(data) == 4 {
				table = ne.Uint32(data)
			}
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(data)
		case unix.RTA_SRC:
			src, _ = netip.AddrFromSlice(data)
		case unix.RTA_GATEWAY:
			r.key.gateway, _ = netip.AddrFromSlice(data)
		case unix.RTA_VIA:
			if len(data) > 2 {
				r.key.gateway, _ = netip.AddrFromSlice(data[2:])
			}
		case unix.RTA_PREFSRC:
			r.key.prefsrc, _ = netip.AddrFromSlice(data)
		case unix.RTA_OIF:
			r.key.oif = u32(data)
		case unix.RTA_PRIORITY:
			r.key.prio = u32(data)
		case unix.RTA_FLOW:
			r.key.flow = u32(data)
		case unix.RTA_MULTIPATH, rtaNHID:
			r.plain = false
		}
		a = a[min(len(a), nlAlign(size)):]
	}
	if table != unix.RT_TABLE_MAIN || !dst.IsValid() || dstLen > dst.BitLen() {
		return routeEntry{}, false, nil
	}
	r.key.dst = netip.PrefixFrom(dst, dstLen)
	if src.IsValid() && srcLen <= src.BitLen() {
		r.key.src = netip.PrefixFrom(src, srcLen)
	}
	return r, true, nil
}

// rtaNHID is RTA_NH_ID (linux/rtnetlink.h), which x/sys/unix lacks: the
// route uses a nexthop object.
const rtaNHID = 30

// u32 reads a 4-byte attribute, 0 if it has another size.
func u32(data []byte) uint32 {
	if len(data) != 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(data)
}

// nlAlign rounds a netlink message or attribute length up to 4 bytes.
func nlAlign(n int) int { return (n + 3) &^ 3 }
