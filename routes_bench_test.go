package libnetwork

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// BenchmarkHostRoutes measures listing the IPv4 routes a default pool
// request checks, with routes through one interface standing for other
// networks' bridges: path=dump dumps them (as list does when its cache
// cannot be trusted), path=cached answers from the cache, and
// path=cached-change answers from the cache after a route (untimed) was
// added or deleted, as a network's bridge does between two requests.
// path=index and path=index-change do the same with withIndex and one
// lookup, as a default pool request now does, instead of list.
func BenchmarkHostRoutes(b *testing.B) {
	for _, n := range []int{100, 4000} {
		for _, path := range []string{"dump", "cached", "cached-change", "index", "index-change"} {
			b.Run(fmt.Sprintf("routes=%d/path=%s", n, path), func(b *testing.B) {
				e := newEnv(b)
				h := e.host.Handle()
				link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "routed0"}}
				mustf(b, h.LinkAdd(link), "link")
				mustf(b, h.LinkSetUp(link), "up")
				for i := range n {
					dst := &net.IPNet{IP: net.IPv4(10, byte(i>>8), byte(i), 0), Mask: net.CIDRMask(24, 32)}
					mustf(b, h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}), "route %d", i)
				}
				l, err := newRouteLister(e.host)
				mustf(b, err, "route lister")
				b.Cleanup(func() { _ = l.close() })
				extra := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(11, 0, 0, 0), Mask: net.CIDRMask(24, 32)}}
				added := false
				want := n
				b.ReportAllocs()
				for b.Loop() {
					switch path {
					case "dump":
						l.mu.Lock()
						l.sets[0].valid = false
						l.mu.Unlock()
					case "cached-change", "index-change":
						b.StopTimer()
						if added {
							mustf(b, h.RouteDel(extra), "delete")
							want = n
						} else {
							mustf(b, h.RouteAdd(extra), "add")
							want = n + 1
						}
						added = !added
						b.StartTimer()
					}
					if path == "index" || path == "index-change" {
						var found bool
						err := l.withIndex(false, func(overlapping func(netip.Prefix) (netip.Prefix, bool)) error {
							_, found = overlapping(netip.MustParsePrefix("10.0.0.0/24"))
							return nil
						})
						mustf(b, err, "withIndex")
						if !found {
							b.Fatal("10.0.0.0/24 not found routed")
						}
						continue
					}
					routes, err := l.list(false)
					mustf(b, err, "list")
					if len(routes) != want {
						b.Fatalf("%d routes, want %d", len(routes), want)
					}
				}
			})
		}
	}
}
