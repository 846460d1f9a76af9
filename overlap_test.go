package libnetwork

import (
	"net"
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
)

// TestSubnetIndex checks the overlap lookup against a scan of every pool,
// with nested, repeated, adjacent and IPv6 pools in two address spaces,
// and that a removed network is no longer found.
func TestSubnetIndex(t *testing.T) {
	mk := func(name, space string, pools ...string) *network {
		n := &network{name: name, ipamType: "default", addrSpace: space}
		for _, s := range pools {
			_, ipn, _ := net.ParseCIDR(s)
			if ipn.IP.To4() != nil {
				n.ipamV4Info = append(n.ipamV4Info, &IpamInfo{IPAMData: driverapi.IPAMData{Pool: ipn}})
			} else {
				n.ipamV6Info = append(n.ipamV6Info, &IpamInfo{IPAMData: driverapi.IPAMData{Pool: ipn}})
			}
		}
		return n
	}
	nets := []*network{
		mk("a", "local", "10.0.0.0/8"), mk("b", "local", "10.1.0.0/16", "fd00::/64"),
		mk("c", "local", "10.1.0.0/16"), mk("d", "global", "172.17.0.0/16"), mk("e", "local", "192.168.1.0/24"),
	}
	var x subnetIndex
	for _, n := range nets {
		x.add(n)
	}
	x.remove(nets[4])
	live := nets[:4]
	for _, q := range []struct{ space, pool string }{
		{"", "10.5.0.0/16"}, {"local", "11.0.0.0/8"}, {"", "172.17.3.0/24"}, {"local", "172.17.3.0/24"},
		{"", "172.16.0.0/12"}, {"", "192.168.1.0/24"}, {"local", "0.0.0.0/1"}, {"", "fd00::/48"},
		{"", "fd01::/64"}, {"local", "fd00::8/125"}, {"global", "10.1.2.0/24"},
	} {
		want := netip.MustParsePrefix(q.pool)
		var expect bool
		for _, n := range live {
			if q.space != "" && n.addrSpace != q.space {
				continue
			}
			for _, p := range poolPrefixes(n) {
				expect = expect || p.Overlaps(want)
			}
		}
		n, p := x.overlapping("default", q.space, want)
		if (n != nil) != expect || (n != nil && !p.Overlaps(want)) {
			t.Errorf("overlapping(%q, %v) = %v, %v; want an overlap: %v", q.space, want, n, p, expect)
		}
		if n, _ := x.overlapping("other", q.space, want); n != nil {
			t.Errorf("overlapping(other IPAM, %v) found network %s", want, n.name)
		}
	}
}
