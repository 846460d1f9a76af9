package libnetwork

import (
	"net"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// l3Driver is the bridge driver reporting at Join what ipvlan's l3 modes
// report (ipvlan itself cannot run on a kernel without it): no gateway,
// the gateway service disabled, and the interface itself as the default
// route of each family.
type l3Driver struct{ driverapi.Driver }

func (d l3Driver) Type() string { return "l3test" }

func (d l3Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, options map[string]interface{}) error {
	if err := d.Driver.Join(nid, eid, sboxKey, l3JoinInfo{jinfo}, options); err != nil {
		return err
	}
	jinfo.DisableGatewayService()
	for _, dst := range []string{"0.0.0.0/0", "::/0"} {
		_, n, _ := net.ParseCIDR(dst)
		if err := jinfo.AddStaticRoute(n, types.CONNECTED, nil); err != nil {
			return err
		}
	}
	return nil
}

// l3JoinInfo drops the bridge's gateways.
type l3JoinInfo struct{ driverapi.JoinInfo }

func (l3JoinInfo) SetGateway(net.IP) error     { return nil }
func (l3JoinInfo) SetGatewayIPv6(net.IP) error { return nil }

// defaultVia returns the sandbox's default routes of a family as
// "ifname" (no gateway) or "ifname via gw".
func defaultVia(t *testing.T, ns *osl.Namespace, family int) []string {
	t.Helper()
	routes, err := ns.Handle().RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	mustf(t, err, "routes")
	var out []string
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		l, err := ns.Handle().LinkByIndex(r.LinkIndex)
		mustf(t, err, "route link")
		s := l.Attrs().Name
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		out = append(out, s)
	}
	return out
}

// TestConnectedDefaultRoute: a driver's connected default route (ipvlan
// l3) is one of the sandbox's candidate default routes, chosen by
// priority then network name as gateways are. Another endpoint's gateway
// neither replaces it for good nor leaves the sandbox without one when it
// goes.
func TestConnectedDefaultRoute(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	c.drivers["l3test"] = l3Driver{c.drivers["bridge"]}
	l3, err := c.NewNetwork("l3test", "l3net", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.94.0.0/24"}}, []*IpamConf{{PreferredPool: "fd94::/64"}}, nil))
	mustf(t, err, "l3 network")
	br, err := c.NewNetwork("bridge", "br", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.95.0.0/24"}}, nil, nil))
	mustf(t, err, "bridge network")

	_, sb := joined(t, c, l3, "one")
	ns := nsOf(t, sb)
	want := func(family int, what string, routes ...string) {
		t.Helper()
		got := defaultVia(t, ns, family)
		if len(got) != len(routes) || (len(got) == 1 && got[0] != routes[0]) {
			t.Errorf("%s: family %d default routes %v, want %v", what, family, got, routes)
		}
	}
	want(netlink.FAMILY_V4, "l3 alone", "eth0")
	want(netlink.FAMILY_V6, "l3 alone", "eth0")

	// "br" sorts before "l3net": its gateway wins IPv4; IPv6 stays.
	bep, err := br.CreateEndpoint("one-br")
	mustf(t, err, "bridge endpoint")
	mustf(t, bep.Join(sb), "bridge join")
	want(netlink.FAMILY_V4, "bridge joined", "eth1 via 10.95.0.1")
	want(netlink.FAMILY_V6, "bridge joined", "eth0")
	mustf(t, bep.Leave(sb), "bridge leave")
	want(netlink.FAMILY_V4, "bridge left", "eth0")
	want(netlink.FAMILY_V6, "bridge left", "eth0")

	// A higher priority for the l3 network's endpoint keeps its route
	// when the bridge joins again.
	ep2, err := l3.CreateEndpoint("two")
	mustf(t, err, "endpoint")
	sb2, err := c.NewSandbox("ctr-two")
	mustf(t, err, "sandbox")
	mustf(t, ep2.Join(sb2, JoinOptionPriority(ep2, 10)), "l3 join with priority")
	bep2, err := br.CreateEndpoint("two-br")
	mustf(t, err, "bridge endpoint")
	mustf(t, bep2.Join(sb2), "bridge join")
	ns = nsOf(t, sb2)
	want(netlink.FAMILY_V4, "l3 with priority, bridge joined", "eth0")
	want(netlink.FAMILY_V6, "l3 with priority, bridge joined", "eth0")
}
