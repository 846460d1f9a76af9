package libnetwork

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestRouteLister: the routes a default pool request checks are those of
// the main table of the family asked for, without the default route and
// without another table's routes.
func TestRouteLister(t *testing.T) {
	e := newEnv(t)
	h := e.host.Handle()
	link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "routed0"}}
	mustf(t, h.LinkAdd(link), "link")
	mustf(t, h.LinkSetUp(link), "up")
	idx := link.Attrs().Index
	addr, err := netlink.ParseAddr("10.9.0.1/16")
	mustf(t, err, "addr")
	mustf(t, h.AddrAdd(link, addr), "address")
	for _, r := range []struct {
		dst   string
		table int
	}{
		{"10.1.0.0/24", 0}, {"10.2.0.0/16", 0}, {"10.3.0.0/24", 100}, {"0.0.0.0/0", 0},
		{"fd00:1::/64", 0}, {"fd00:2::/48", 100}, {"::/0", 0},
	} {
		_, dst, err := net.ParseCIDR(r.dst)
		mustf(t, err, "parse %s", r.dst)
		mustf(t, h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: dst, Table: r.table}), "route %s", r.dst)
	}
	l, err := newRouteLister(e.host)
	mustf(t, err, "route lister")
	defer l.close()
	for _, tc := range []struct {
		v6   bool
		want []string
	}{
		// 10.9.0.0/16 is the kernel's route for the bridge's address.
		{false, []string{"10.1.0.0/24", "10.2.0.0/16", "10.9.0.0/16"}},
		{true, []string{"fd00:1::/64"}},
	} {
		got, err := l.list(tc.v6)
		mustf(t, err, "list")
		var strs []string
		for _, p := range got {
			// The bridge's link-local route comes and goes with DAD.
			if !p.Addr().IsLinkLocalUnicast() {
				strs = append(strs, p.String())
			}
		}
		slices.Sort(strs)
		if !slices.Equal(strs, tc.want) {
			t.Errorf("routes (v6=%v) = %v, want %v", tc.v6, strs, tc.want)
		}
	}
	mustf(t, l.close(), "close")
	if _, err := l.list(false); err == nil {
		t.Error("list after close succeeded")
	}
}
