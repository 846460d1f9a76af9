package libnetwork

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/ipamutils"
)

// routedLink makes an up bridge named name with address cidr in the
// namespace of h.
func routedLink(t *testing.T, h *netlink.Handle, name, cidr string) netlink.Link {
	t.Helper()
	link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	mustf(t, h.LinkAdd(link), "link %s", name)
	addr, err := netlink.ParseAddr(cidr)
	mustf(t, err, "addr %s", cidr)
	mustf(t, h.AddrAdd(link, addr), "address %s", cidr)
	mustf(t, h.LinkSetUp(link), "up %s", name)
	return link
}

func ipNet(t *testing.T, cidr string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(cidr)
	mustf(t, err, "parse %s", cidr)
	return n
}

// kernelRoutes returns what list must: the destinations of the main-table
// routes of the family other than the default, as the netlink library
// lists them, sorted.
func kernelRoutes(t *testing.T, h *netlink.Handle, v6 bool) []string {
	t.Helper()
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	mustf(t, err, "listing routes with the netlink library")
	var out []string
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			t.Fatalf("route to %v", r.Dst)
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(p.Unmap(), ones).String())
	}
	slices.Sort(out)
	return out
}

// listed calls l.list and returns its answer sorted; cached says whether
// the answer must come without a dump.
func listed(t *testing.T, l *routeLister, v6, cached bool) []string {
	t.Helper()
	before := l.dumps
	got, err := l.list(v6)
	mustf(t, err, "list")
	if dumped := l.dumps != before; dumped == cached {
		t.Errorf("list (v6=%v) dumped %d times, want a dump: %v", v6, l.dumps-before, !cached)
	}
	out := make([]string, len(got))
	for i, p := range got {
		out[i] = p.String()
	}
	slices.Sort(out)
	return out
}

// requireRoutes checks that list returns what the kernel holds, from the
// cache if cached.
func requireRoutes(t *testing.T, l *routeLister, h *netlink.Handle, v6, cached bool, what string) {
	t.Helper()
	got := listed(t, l, v6, cached)
	if want := kernelRoutes(t, h, v6); !slices.Equal(got, want) {
		if len(got)+len(want) > 40 {
			t.Fatalf("%s: list (v6=%v) has %d routes, the kernel %d, some differ", what, v6, len(got), len(want))
		}
		t.Fatalf("%s: list (v6=%v) = %v, want %v", what, v6, got, want)
	}
}

// indexProbes are the prefixes requireIndex looks up: the subnets
// TestRouteCacheRandom routes, their halves and neighbours, and prefixes
// holding several of them.
func indexProbes(v6 bool) []netip.Prefix {
	var out []netip.Prefix
	add := func(s string) { out = append(out, netip.MustParsePrefix(s)) }
	if v6 {
		for i := range 10 {
			add(fmt.Sprintf("fd00:%x::/64", i))
			add(fmt.Sprintf("fd00:%x::/65", i))
			add(fmt.Sprintf("fd00:%x:0:0:8000::/65", i))
			add(fmt.Sprintf("fd00:%x::/63", i&^1))
		}
		add("fd00::/48")
		add("fd00::/16")
		add("fd01::/64")
		return out
	}
	for b := 8; b < 14; b++ {
		for c := range 10 {
			add(fmt.Sprintf("10.%d.%d.0/24", b, c))
			add(fmt.Sprintf("10.%d.%d.128/25", b, c))
			add(fmt.Sprintf("10.%d.%d.0/23", b, c&^1))
		}
		add(fmt.Sprintf("10.%d.0.0/16", b))
		add(fmt.Sprintf("10.%d.0.0/21", b))
	}
	add("10.0.0.0/8")
	add("11.0.0.0/24")
	return out
}

// requireIndex checks that withIndex's lookup answers every probe as an
// index of the kernel's routes (listed by the netlink library) does, from
// the cache if cached.
func requireIndex(t *testing.T, l *routeLister, h *netlink.Handle, v6, cached bool, what string) {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range kernelRoutes(t, h, v6) {
		ps = append(ps, netip.MustParsePrefix(s).Masked())
	}
	want := ipamutils.NewPrefixIndex(ps, struct{}{})
	before := l.dumps
	called := 0
	err := l.withIndex(v6, func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error {
		called++
		for _, probe := range indexProbes(v6) {
			got, gotOK := overlapping(probe)
			w, _, wOK := want.Overlapping(probe)
			if got != w || gotOK != wOK {
				t.Errorf("%s: overlapping(%v) = %v, %v; an index of the kernel's routes says %v, %v", what, probe, got, gotOK, w, wOK)
			}
		}
		return nil
	})
	mustf(t, err, "withIndex")
	if called != 1 {
		t.Fatalf("%s: withIndex called fn %d times", what, called)
	}
	if dumped := l.dumps != before; dumped == cached {
		t.Errorf("%s: withIndex (v6=%v) dumped %d times, want a dump: %v", what, v6, l.dumps-before, !cached)
	}
}

// The cache follows routes someone else adds and deletes, in both
// families, without dumping; two routes to one prefix that differ only in
// metric are two routes, and deleting one keeps the other.
func TestRouteCacheFollowsChanges(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	link := routedLink(t, h, "routed0", "10.9.0.1/16")
	idx := link.Attrs().Index
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	for _, v6 := range []bool{false, true} {
		requireRoutes(t, l, h, v6, false, "first list")
		requireRoutes(t, l, h, v6, true, "second list")
	}
	for _, tc := range []struct{ v6 bool }{{false}, {true}} {
		dst := ipNet(t, "10.1.0.0/24")
		if tc.v6 {
			dst = ipNet(t, "fd00:1::/64")
		}
		low := &netlink.Route{LinkIndex: idx, Dst: dst, Priority: 10}
		high := &netlink.Route{LinkIndex: idx, Dst: dst, Priority: 20}
		mustf(t, h.RouteAdd(low), "route %v metric 10", dst)
		requireRoutes(t, l, h, tc.v6, true, "one route added")
		mustf(t, h.RouteAdd(high), "route %v metric 20", dst)
		got := listed(t, l, tc.v6, true)
		if n := countOf(got, dst.String()); n != 2 {
			t.Fatalf("%v listed %d times with two metrics, want 2: %v", dst, n, got)
		}
		mustf(t, h.RouteDel(low), "delete metric 10")
		got = listed(t, l, tc.v6, true)
		if n := countOf(got, dst.String()); n != 1 {
			t.Fatalf("%v listed %d times after one of its two routes was deleted, want 1: %v", dst, n, got)
		}
		requireRoutes(t, l, h, tc.v6, true, "metric 10 deleted")
		mustf(t, h.RouteDel(high), "delete metric 20")
		got = listed(t, l, tc.v6, true)
		if slices.Contains(got, dst.String()) {
			t.Fatalf("%v listed after both its routes were deleted: %v", dst, got)
		}
	}
	// Routes of another table are not listed, nor followed.
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(t, "10.3.0.0/24"), Table: 100}), "table 100")
	requireRoutes(t, l, h, false, true, "route in table 100")
	// Both families after the changes.
	requireRoutes(t, l, h, false, true, "after the changes")
	requireRoutes(t, l, h, true, true, "after the changes")
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// IPv4 drops a device's routes without notifications when it goes down
// or away: the cache drops them too, keeping those of host scope on a
// device that is only down. A deleted address that had routes makes the
// cache dump again.
func TestRouteCacheLinkDown(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	link := routedLink(t, h, "routed0", "10.9.0.1/16")
	other := routedLink(t, h, "routed1", "10.8.0.1/16")
	idx := link.Attrs().Index
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(t, "10.1.0.0/24")}), "route")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(t, "10.2.0.0/24"), Scope: netlink.SCOPE_HOST}), "host route")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(t, "fd00:1::/64")}), "IPv6 route")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: other.Attrs().Index, Dst: ipNet(t, "10.4.0.0/24")}), "route on the other link")
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	requireRoutes(t, l, h, false, false, "first list")
	requireRoutes(t, l, h, true, false, "first list")

	mustf(t, h.LinkSetDown(link), "down")
	requireRoutes(t, l, h, false, true, "link down")
	requireRoutes(t, l, h, true, true, "link down")
	if got := listed(t, l, false, true); !slices.Contains(got, "10.2.0.0/24") || slices.Contains(got, "10.1.0.0/24") {
		t.Fatalf("routes of a down link = %v, want the host route only", got)
	}

	mustf(t, h.LinkSetUp(link), "up")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: ipNet(t, "10.1.0.0/24")}), "route again")
	requireRoutes(t, l, h, false, true, "link up again")
	// The link's addresses go before the link does, and the host route
	// is still there when they do: the deleted address might have been
	// the last one, and the cache dumps.
	mustf(t, h.LinkDel(link), "delete link")
	requireRoutes(t, l, h, false, false, "link deleted")
	requireRoutes(t, l, h, true, true, "link deleted")

	// A link deleted with routes of its own only, as a network's bridge
	// is: no dump.
	third := routedLink(t, h, "routed2", "10.7.0.1/16")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: third.Attrs().Index, Dst: ipNet(t, "10.5.0.0/24")}), "route on the third link")
	requireRoutes(t, l, h, false, true, "third link")
	mustf(t, h.LinkDel(third), "delete the third link")
	requireRoutes(t, l, h, false, true, "third link deleted")

	// A device with a route joins a bridge and leaves it: the kernel
	// tells of the port leaving with an AF_BRIDGE RTM_DELLINK, but the
	// device and its route stay.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "port0"}, PeerName: "port1"}
	mustf(t, h.LinkAdd(veth), "veth")
	mustf(t, h.LinkSetUp(veth), "veth up")
	mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: veth.Attrs().Index, Dst: ipNet(t, "10.6.0.0/24")}), "route on the veth")
	requireRoutes(t, l, h, false, true, "route on a veth")
	mustf(t, h.LinkSetMaster(veth, other), "joining the bridge")
	requireRoutes(t, l, h, false, true, "veth in a bridge")
	mustf(t, h.LinkSetNoMaster(veth), "leaving the bridge")
	got := listed(t, l, false, true)
	if !slices.Contains(got, "10.6.0.0/24") {
		t.Fatalf("the route of a device that left a bridge is gone: %v", got)
	}
	requireRoutes(t, l, h, false, true, "veth out of the bridge")

	// The other link's last address: its routes go, unnotified.
	addr, err := netlink.ParseAddr("10.8.0.1/16")
	mustf(t, err, "addr")
	mustf(t, h.AddrDel(other, addr), "delete address")
	requireRoutes(t, l, h, false, false, "last address deleted")
	requireRoutes(t, l, h, false, true, "after the dump")
}

// Notifications lost to a full socket buffer (ENOBUFS) make the cache
// dump again, and it stays subscribed.
func TestRouteCacheOverflow(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	link := routedLink(t, h, "routed0", "10.9.0.1/16")
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	requireRoutes(t, l, h, false, false, "first list")
	// The smallest buffer the kernel allows.
	mustf(t, unix.SetsockoptInt(l.sub, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 0), "shrinking the buffer")
	for i := range 500 {
		dst := &net.IPNet{IP: net.IPv4(10, 100+byte(i>>8), byte(i), 0), Mask: net.CIDRMask(24, 32)}
		mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}), "route %d", i)
	}
	requireRoutes(t, l, h, false, false, "after an overflow")
	// Subscribed still: a change is seen without a dump.
	mustf(t, h.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(t, "10.100.0.0/24")}), "delete")
	requireRoutes(t, l, h, false, true, "after the overflow")
}

// After a random series of additions and deletions in both families, on
// two links, with metrics and scopes and types, the cache lists what the
// kernel holds.
func TestRouteCacheRandom(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	links := []netlink.Link{routedLink(t, h, "routed0", "10.9.0.1/16"), routedLink(t, h, "routed1", "10.8.0.1/16")}
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	rng := rand.New(rand.NewPCG(1, 2))
	var present []*netlink.Route
	for round := range 20 {
		for range 30 {
			if len(present) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(present))
				mustf(t, h.RouteDel(present[i]), "delete %v", present[i])
				present = slices.Delete(present, i, i+1)
				continue
			}
			// Not metric 0: its deletion could take a route of another
			// metric.
			r := &netlink.Route{LinkIndex: links[rng.IntN(2)].Attrs().Index, Priority: 1 + rng.IntN(3)}
			if rng.IntN(2) == 0 {
				r.Dst = ipNet(t, fmt.Sprintf("10.%d.%d.0/24", 10+rng.IntN(3), rng.IntN(8)))
				if rng.IntN(4) == 0 {
					r.Scope = netlink.SCOPE_HOST
				}
			} else {
				r.Dst = ipNet(t, fmt.Sprintf("fd00:%x::/64", rng.IntN(8)))
			}
			if rng.IntN(6) == 0 {
				r.LinkIndex, r.Type = 0, unix.RTN_UNREACHABLE
			}
			if err := h.RouteAdd(r); err != nil {
				continue // the same route again: EEXIST
			}
			present = append(present, r)
		}
		if round%5 == 4 {
			// A link goes down and up: its routes go, those of IPv4
			// unnotified.
			link := links[rng.IntN(2)]
			mustf(t, h.LinkSetDown(link), "down")
			mustf(t, h.LinkSetUp(link), "up")
			present = slices.DeleteFunc(present, func(r *netlink.Route) bool {
				return r.LinkIndex == link.Attrs().Index
			})
		}
		for _, v6 := range []bool{false, true} {
			requireRoutes(t, l, h, v6, round > 0, fmt.Sprintf("round %d", round))
			requireIndex(t, l, h, v6, true, fmt.Sprintf("round %d", round))
		}
	}
}

// The index the cache keeps answers as an index of a fresh dump after a
// random series of additions and deletions, duplicates of a prefix
// (another metric, another link) among them, and links going down; when
// the cache cannot hold the routes (one has several nexthops), withIndex
// indexes a dump instead, every time.
func TestRouteCacheIndexRandom(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	links := []netlink.Link{routedLink(t, h, "routed0", "10.9.0.1/16"), routedLink(t, h, "routed1", "10.8.0.1/16")}
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	requireIndex(t, l, h, false, false, "first")
	requireIndex(t, l, h, true, false, "first")
	rng := rand.New(rand.NewPCG(3, 4))
	var present []*netlink.Route
	for round := range 30 {
		for range 40 {
			if len(present) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(present))
				mustf(t, h.RouteDel(present[i]), "delete %v", present[i])
				present = slices.Delete(present, i, i+1)
				continue
			}
			r := &netlink.Route{LinkIndex: links[rng.IntN(2)].Attrs().Index, Priority: 1 + rng.IntN(3)}
			switch rng.IntN(3) {
			case 0:
				r.Dst = ipNet(t, fmt.Sprintf("10.%d.%d.0/24", 10+rng.IntN(3), rng.IntN(8)))
			case 1:
				// Nested in the /24s, or holding two of them.
				r.Dst = ipNet(t, fmt.Sprintf("10.%d.%d.%d/%d", 10+rng.IntN(3), rng.IntN(8)&^1, 0, 23+rng.IntN(3)))
			default:
				r.Dst = ipNet(t, fmt.Sprintf("fd00:%x::/%d", rng.IntN(8), 63+rng.IntN(3)))
			}
			r.Dst.IP = r.Dst.IP.Mask(r.Dst.Mask)
			if err := h.RouteAdd(r); err != nil {
				continue // the same route again: EEXIST
			}
			present = append(present, r)
		}
		if round%7 == 6 {
			link := links[rng.IntN(2)]
			mustf(t, h.LinkSetDown(link), "down")
			mustf(t, h.LinkSetUp(link), "up")
			present = slices.DeleteFunc(present, func(r *netlink.Route) bool {
				return r.LinkIndex == link.Attrs().Index
			})
		}
		for _, v6 := range []bool{false, true} {
			requireIndex(t, l, h, v6, true, fmt.Sprintf("round %d", round))
		}
	}

	multi := &netlink.Route{Dst: ipNet(t, "10.13.0.0/24"), MultiPath: []*netlink.NexthopInfo{
		{LinkIndex: links[0].Attrs().Index}, {LinkIndex: links[1].Attrs().Index},
	}}
	mustf(t, h.RouteAdd(multi), "multipath route")
	for i := range 2 {
		requireIndex(t, l, h, false, false, fmt.Sprintf("with a multipath route, %d", i))
	}
	mustf(t, h.RouteDel(multi), "delete the multipath route")
	requireIndex(t, l, h, false, false, "the multipath route gone")
	requireIndex(t, l, h, false, true, "the multipath route gone, cached")
}

// A default pool request skips a subnet someone else routed after the
// cache was made, and takes it once the route is gone.
func TestDefaultPoolSeesRouteAddedLater(t *testing.T) {
	e := newEnv(t)
	c := e.start(config.OptionDefaultAddressPools([]config.PoolSpec{{Base: netip.MustParsePrefix("10.50.0.0/16"), Size: 24}}))
	pool := func(name string) string {
		t.Helper()
		n, err := c.NewNetwork("bridge", name)
		mustf(t, err, "network %s", name)
		v4, _ := n.Info().IpamInfo()
		return v4[0].Pool.String()
	}
	if got := pool("first"); got != "10.50.0.0/24" {
		t.Fatalf("first default pool %s, want 10.50.0.0/24", got)
	}
	h := e.host.Handle()
	link := routedLink(t, h, "taken0", "192.168.7.1/24")
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(t, "10.50.1.0/24")}
	mustf(t, h.RouteAdd(route), "route")
	if got := pool("second"); got != "10.50.2.0/24" {
		t.Fatalf("default pool %s with 10.50.1.0/24 routed, want 10.50.2.0/24", got)
	}
	mustf(t, h.RouteDel(route), "delete route")
	if got := pool("third"); got != "10.50.1.0/24" {
		t.Fatalf("default pool %s once 10.50.1.0/24 is no longer routed, want it", got)
	}
}
