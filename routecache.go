package libnetwork

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/osl"
)

// The route cache: each family's main-table routes, as a dump lists them,
// kept current from the kernel's notifications so that a default pool
// request does not dump every network's route. There is no goroutine: the
// notifications queue on a socket of their own, and list drains them
// without blocking before it answers. With 4,000 routes, answering from
// the set took 0.13-0.18 ms where a dump took 4.7 ms (BenchmarkHostRoutes).
//
// The kernel does not notify every change. IPv4 routes through a device
// are dropped without a notification when the device goes down or is
// deleted, or loses its last address, and routes whose preferred source
// was a deleted address go the same way. So the socket also follows links
// and IPv4 addresses: a link going down or away drops its routes from the
// set as the kernel does, and a deleted address that had routes through
// its device or from its address makes the set untrusted. IPv6 notifies
// these deletions.
//
// Whatever the set cannot follow makes it untrusted, and the next list
// dumps: lost notifications (ENOBUFS), a message it cannot parse, a
// replaced route, routes with several nexthops or a nexthop object, and
// a notification that does not fit the set (a deletion of a route it does
// not hold, an addition of one it holds).

// routeSubRcvBuf is the receive buffer asked for the notification socket.
// Link notifications are the bulk: 80 veth pairs made, joined to a bridge
// and set up between two default pool requests fit, 160 overflowed it (and
// the next request dumped).
const routeSubRcvBuf = 1 << 20

// routeDrainMax bounds the notifications one drain reads.
const routeDrainMax = 1 << 16

// subscribeRoutes opens a netlink socket in ns that receives the
// notifications of links, IPv4 addresses and routes of both families.
func subscribeRoutes(ns *osl.Namespace) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("opening a netlink socket for route notifications in %s: %w", ns, err)
	}
	groups := uint32(0)
	for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE} {
		groups |= 1 << (g - 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("subscribing to route notifications: %w", err)
	}
	// Without the privilege to force it, the buffer is capped by
	// net.core.rmem_max; a smaller one only means more dumps.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, routeSubRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, routeSubRcvBuf)
	}
	return fd, nil
}

// familyIndex is the index in routeLister.sets of family.
func familyIndex(family byte) int {
	if family == unix.AF_INET6 {
		return 1
	}
	return 0
}

// routeSet is one family's main-table routes, as list returns them.
type routeSet struct {
	// valid: routes is the main table as of the notifications applied.
	valid bool
	// settling: the set was just dumped, and notifications queued during
	// the dump may repeat what it saw, so they apply idempotently.
	settling bool
	// v6: the set holds IPv6 routes.
	v6 bool
	// routes maps each route to its number in index, which tells apart
	// routes to the same prefix; nextID numbers the next route added.
	routes map[routeKey]uint64
	nextID uint64
	// index holds the destinations of routes a default pool skips (see
	// routeIndexed), each with its route's number, kept with routes so
	// that a default pool request looks up routes without copying or
	// indexing them (see routeLister.withIndex).
	index ipamutils.PrefixIndex[uint64]
	// byOIF and bySrc count the routes by device and by preferred source,
	// for the link and address events.
	byOIF map[uint32]int
	bySrc map[netip.Addr]int
	// list is routes' destinations, nil when stale.
	list []netip.Prefix
}

// reset makes the set hold routes, of IPv6 if v6, and valid, unless two
// of them have the same key: the set could not tell them apart.
func (s *routeSet) reset(routes []routeEntry, v6 bool) bool {
	if s.routes == nil {
		s.routes = make(map[routeKey]uint64, len(routes))
		s.byOIF = make(map[uint32]int)
		s.bySrc = make(map[netip.Addr]int)
	}
	clear(s.routes)
	clear(s.byOIF)
	clear(s.bySrc)
	s.index = ipamutils.PrefixIndex[uint64]{}
	s.list = nil
	s.v6 = v6
	// Added in the index's order, each addition appends rather than
	// inserts: O(n log n) for the lot instead of O(n²).
	sorted := slices.Clone(routes)
	slices.SortFunc(sorted, func(a, b routeEntry) int {
		pa, _ := routeIndexed(a.key.dst, v6)
		pb, _ := routeIndexed(b.key.dst, v6)
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	})
	for _, r := range sorted {
		if _, dup := s.routes[r.key]; dup {
			s.valid = false
			return false
		}
		s.add(r.key)
	}
	s.valid = true
	return true
}

// routeIndexed returns the prefix under which a route to dst is indexed
// for a default pool request of the family, and whether it is: valid, not
// the default route, of the family, masked. These are the routes the
// default IPAM keeps of what HostRoutes returns.
func routeIndexed(dst netip.Prefix, v6 bool) (netip.Prefix, bool) {
	if !dst.IsValid() || dst.Bits() <= 0 || dst.Addr().Is6() != v6 {
		return netip.Prefix{}, false
	}
	return dst.Masked(), true
}

// prefixes returns the destinations of the routes, one per route, in a
// slice of the caller's.
func (s *routeSet) prefixes() []netip.Prefix {
	if s.list == nil {
		s.list = make([]netip.Prefix, 0, len(s.routes))
		for k := range s.routes {
			s.list = append(s.list, k.dst)
		}
	}
	out := make([]netip.Prefix, len(s.list))
	copy(out, s.list)
	return out
}

func (s *routeSet) add(k routeKey) {
	id := s.nextID
	s.nextID++
	s.routes[k] = id
	if p, ok := routeIndexed(k.dst, s.v6); ok {
		s.index.Add(p, id)
	}
	s.byOIF[k.oif]++
	if k.prefsrc.IsValid() {
		s.bySrc[k.prefsrc]++
	}
	s.list = nil
}

func (s *routeSet) remove(k routeKey) {
	id, ok := s.routes[k]
	if !ok {
		return
	}
	delete(s.routes, k)
	if p, ok := routeIndexed(k.dst, s.v6); ok {
		s.index.Remove(p, id)
	}
	if s.byOIF[k.oif]--; s.byOIF[k.oif] <= 0 {
		delete(s.byOIF, k.oif)
	}
	if k.prefsrc.IsValid() {
		if s.bySrc[k.prefsrc]--; s.bySrc[k.prefsrc] <= 0 {
			delete(s.bySrc, k.prefsrc)
		}
	}
	s.list = nil
}

// removeOIF removes the routes through device oif, those of host scope
// too if hostScope.
func (s *routeSet) removeOIF(oif uint32, hostScope bool) {
	if s.byOIF[oif] == 0 {
		return
	}
	for k := range s.routes {
		if k.oif == oif && (hostScope || k.scope != unix.RT_SCOPE_HOST) {
			s.remove(k)
		}
	}
}

// applyRoute applies a route notification of typ (RTM_NEWROUTE or
// RTM_DELROUTE) with the netlink flags to the set.
func (s *routeSet) applyRoute(typ, flags uint16, r routeEntry, v6 bool) {
	_, held := s.routes[r.key]
	switch {
	case !r.plain:
		s.valid = false
	case typ == unix.RTM_DELROUTE:
		if !held && !s.settling {
			s.valid = false
			return
		}
		s.remove(r.key)
	case flags&unix.NLM_F_REPLACE != 0:
		// Which route it replaced is not said.
		s.valid = false
	case v6 && flags&unix.NLM_F_APPEND != 0:
		// An IPv6 route appended to one of the same metric makes one
		// route of several nexthops of them.
		s.valid = false
	case held:
		if !s.settling {
			s.valid = false
		}
	default:
		s.add(r.key)
	}
}

// drainLocked applies the notifications queued on l.sub, without waiting
// for more. l.mu must be held.
func (l *routeLister) drainLocked() {
	ne := binary.NativeEndian
	for i := 0; ; i++ {
		if i == routeDrainMax {
			// Changes come faster than they are read: a dump will do.
			l.invalidateLocked()
			return
		}
		n, _, err := unix.Recvfrom(l.sub, l.subBuf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost; the socket stays subscribed.
			l.invalidateLocked()
			continue
		case err != nil:
			l.invalidateLocked()
			return
		case n > len(l.subBuf):
			l.invalidateLocked()
			continue
		}
		for b := l.subBuf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			size := int(ne.Uint32(b[0:]))
			if size < unix.SizeofNlMsghdr || size > len(b) {
				l.invalidateLocked()
				break
			}
			typ, flags := ne.Uint16(b[4:]), ne.Uint16(b[6:])
			l.applyLocked(typ, flags, b[unix.SizeofNlMsghdr:size])
			b = b[min(len(b), nlAlign(size)):]
		}
	}
}

// invalidateLocked makes both sets untrusted. l.mu must be held.
func (l *routeLister) invalidateLocked() {
	l.sets[0].valid, l.sets[1].valid = false, false
}

// applyLocked applies one notification to the sets. l.mu must be held.
func (l *routeLister) applyLocked(typ, flags uint16, msg []byte) {
	ne := binary.NativeEndian
	v4 := &l.sets[0]
	switch typ {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(msg) < unix.SizeofRtMsg {
			l.invalidateLocked()
			return
		}
		family := msg[0]
		if family != unix.AF_INET && family != unix.AF_INET6 {
			return
		}
		s := &l.sets[familyIndex(family)]
		if !s.valid {
			return
		}
		r, ok, err := parseRoute(msg, family)
		if err != nil {
			s.valid = false
			return
		}
		if ok {
			s.applyRoute(typ, flags, r, family == unix.AF_INET6)
		}
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(msg) < unix.SizeofIfInfomsg {
			l.invalidateLocked()
			return
		}
		// AF_BRIDGE messages tell of bridge ports: its RTM_DELLINK is a
		// port leaving its bridge, not a device going away.
		if msg[0] != unix.AF_UNSPEC || !v4.valid {
			return
		}
		index, up := ne.Uint32(msg[4:]), ne.Uint32(msg[8:])&unix.IFF_UP != 0
		switch {
		case typ == unix.RTM_DELLINK:
			v4.removeOIF(index, true)
		case !up:
			// Routes of host scope stay on a device that is down; the
			// others cannot be added to one, so there are none to keep.
			v4.removeOIF(index, false)
		}
	case unix.RTM_DELADDR:
		if len(msg) < unix.SizeofIfAddrmsg {
			l.invalidateLocked()
			return
		}
		if msg[0] != unix.AF_INET || !v4.valid {
			return
		}
		index := ne.Uint32(msg[4:])
		var local, addr netip.Addr
		for a := msg[unix.SizeofIfAddrmsg:]; len(a) >= unix.SizeofRtAttr; {
			size := int(ne.Uint16(a[0:]))
			if size < unix.SizeofRtAttr || size > len(a) {
				v4.valid = false
				return
			}
			switch ne.Uint16(a[2:]) {
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(a[unix.SizeofRtAttr:size])
			case unix.IFA_ADDRESS:
				addr, _ = netip.AddrFromSlice(a[unix.SizeofRtAttr:size])
			}
			a = a[min(len(a), nlAlign(size)):]
		}
		if !local.IsValid() {
			local = addr
		}
		// The device may have lost its last address, and its routes
		// with it; the address may have been some routes' source.
		if v4.byOIF[index] > 0 || (local.IsValid() && v4.bySrc[local] > 0) {
			v4.valid = false
		}
	}
}
