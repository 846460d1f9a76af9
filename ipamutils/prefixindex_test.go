package ipamutils

import (
	"net/netip"
	"testing"
)

// TestPrefixIndexOverlapping checks the lookup (the route lookup of default
// pool selection, the controller's overlap check) against a scan, on nested, adjacent and mixed-family routes.
func TestPrefixIndexOverlapping(t *testing.T) {
	routes := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.5.0/24"),
		netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("fd00::/64"),
	}
	x := NewPrefixIndex(routes, struct{}{})
	for _, s := range []string{
		"10.5.0.0/16", "11.0.0.0/16", "172.17.3.0/24", "172.18.0.0/16", "172.18.4.0/24",
		"172.16.0.0/12", "192.168.0.0/24", "192.168.0.0/16", "0.0.0.0/1", "fd00::/48", "fd01::/64", "fd00::8/125",
	} {
		p := netip.MustParsePrefix(s)
		want := false
		for _, r := range routes {
			if r.Overlaps(p) {
				want = true
			}
		}
		got, _, ok := x.Overlapping(p)
		if ok != want || (ok && !got.Overlaps(p)) {
			t.Errorf("Overlapping(%v) = %v, %v; want a route overlapping it: %v", p, got, ok, want)
		}
	}
}
