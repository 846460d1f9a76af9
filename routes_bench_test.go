package libnetwork

import (
	"fmt"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
)

// BenchmarkHostRoutes measures listing the IPv4 routes a default pool
// request checks, with routes through one interface standing for other
// networks' bridges.
func BenchmarkHostRoutes(b *testing.B) {
	for _, n := range []int{100, 4000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
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
			b.ReportAllocs()
			for b.Loop() {
				routes, err := l.list(false)
				mustf(b, err, "list")
				if len(routes) != n {
					b.Fatalf("%d routes, want %d", len(routes), n)
				}
			}
		})
	}
}
