package libnetwork

import (
	"net"
	"regexp"
	"strconv"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/osl"
	"github.com/vishvananda/netlink"
)

// router is a namespace outside the controller's host, linked to it by a
// veth that is not a bridge of the library's, routing the other router's
// subnets through the host: what a host that routes between two of its
// interfaces connects.
type router struct {
	ns     *osl.Namespace
	v4, v6 net.IP
}

// forwardingLab is a host namespace with two routers, left (192.0.2.0/24,
// fd00:2::/64) and right (198.51.100.0/24, fd00:3::/64), each running a TCP
// server on both families.
type forwardingLab struct {
	e           *testEnv
	left, right *router
}

func newForwardingLab(t *testing.T) *forwardingLab {
	t.Helper()
	e := newEnv(t)
	left := newRouter(t, e, "left", 2, 3)
	right := newRouter(t, e, "right", 3, 2)
	return &forwardingLab{e: e, left: left, right: right}
}

// newRouter links a namespace to e's host by a veth "<name>0"; its subnet
// is the one of net (2: 192.0.2.0/24, 3: 198.51.100.0/24, with fd00:<net>::/64)
// and it routes the subnet of peer through the host.
func newRouter(t *testing.T, e *testEnv, name string, net4, peer int) *router {
	t.Helper()
	subnet4 := map[int]string{2: "192.0.2.", 3: "198.51.100."}
	ip4 := func(n, host int) net.IP { return net.ParseIP(subnet4[n] + strconv.Itoa(host)).To4() }
	ip6 := func(n, host int) net.IP { return net.ParseIP("fd00:" + strconv.Itoa(n) + "::" + strconv.Itoa(host)) }
	ns, err := osl.NewNamespace(t.TempDir() + "/" + name)
	mustf(t, err, "namespace %s", name)
	t.Cleanup(func() { _ = ns.Destroy() })
	hostIf := name + "0"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
	mustf(t, e.host.Handle().LinkAdd(veth), "veth to %s", name)
	// A router sends the neighbour solicitations of forwarded packets
	// from its link-local address, which is unusable until DAD ends:
	// without DAD the lab routes at once.
	mustf(t, e.host.SetSysctl("net.ipv6.conf."+hostIf+".accept_dad", "0"), "no DAD on %s", hostIf)
	mustf(t, ns.SetSysctl("net.ipv6.conf.eth0.accept_dad", "0"), "no DAD in %s", name)
	mustf(t, e.host.ConfigureInterface(osl.IfaceConfig{Name: hostIf,
		Addr:   &net.IPNet{IP: ip4(net4, 1), Mask: net.CIDRMask(24, 32)},
		AddrV6: &net.IPNet{IP: ip6(net4, 1), Mask: net.CIDRMask(64, 128)},
	}), "host side of %s", name)
	r := &router{ns: ns, v4: ip4(net4, 2), v6: ip6(net4, 2)}
	mustf(t, ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0",
		Addr:   &net.IPNet{IP: r.v4, Mask: net.CIDRMask(24, 32)},
		AddrV6: &net.IPNet{IP: r.v6, Mask: net.CIDRMask(64, 128)},
		Routes: []osl.Route{
			{Dst: &net.IPNet{IP: ip4(peer, 0), Mask: net.CIDRMask(24, 32)}, Gw: ip4(net4, 1)},
			{Dst: &net.IPNet{IP: ip6(peer, 0), Mask: net.CIDRMask(64, 128)}, Gw: ip6(net4, 1)},
		},
	}), "%s address and routes", name)
	return r
}

// servers starts a TCP server on both addresses of r.
func (r *router) servers(t *testing.T) (v4, v6 string) {
	t.Helper()
	return listen(t, r.ns, r.v4), listen(t, r.ns, r.v6)
}

// forwarding returns the host's IPv4 and IPv6 forwarding sysctls.
func (l *forwardingLab) forwarding(t *testing.T) (v4, v6 string) {
	t.Helper()
	v4, err := l.e.host.Sysctl("net.ipv4.ip_forward")
	mustf(t, err, "reading ip_forward")
	v6, err = l.e.host.Sysctl("net.ipv6.conf.all.forwarding")
	mustf(t, err, "reading IPv6 forwarding")
	return v4, v6
}

// dualStackNetwork makes a bridge network with IPv6, which needs both
// families' forwarding.
func dualStackNetwork(t *testing.T, c *controller, name, v4, v6 string) Network {
	t.Helper()
	n, err := c.NewNetwork("bridge", name, NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: v4}}, []*IpamConf{{PreferredPool: v6}}, nil))
	mustf(t, err, "NewNetwork %s", name)
	return n
}

// A host that did not route before the library turned forwarding on does
// not route between its other interfaces afterwards, across restarts,
// while containers still reach the outside; OptionForwardingNoDrop lifts
// the drop.
func TestForwardingTurnedOnDropsOtherTraffic(t *testing.T) {
	l := newForwardingLab(t)
	if v4, v6 := l.forwarding(t); v4 != "0" || v6 != "0" {
		t.Fatalf("a new namespace forwards (ip_forward %s, IPv6 %s)", v4, v6)
	}
	right4, right6 := l.right.servers(t)
	left4, _ := l.left.servers(t)

	c := l.e.start()
	n := dualStackNetwork(t, c, "fwd", "10.50.0.0/24", "fd00:50::/64")
	if v4, v6 := l.forwarding(t); v4 != "1" || v6 != "1" {
		t.Fatalf("after NewNetwork: ip_forward %s, IPv6 forwarding %s; want both on", v4, v6)
	}
	mustNotReach(t, l.left.ns, right4)
	mustNotReach(t, l.right.ns, left4)
	mustNotReach(t, l.left.ns, right6)
	// A container still reaches the outside, masqueraded.
	_, sb := joined(t, c, n, "ctr")
	ctr := nsOf(t, sb)
	mustReach(t, ctr, right4)
	mustReach(t, ctr, right6)

	// The controller restarts and finds forwarding on: it must remember
	// that it turned it on.
	c.Stop()
	c = l.e.start()
	mustNotReach(t, l.left.ns, right4)
	mustNotReach(t, l.left.ns, right6)
	dualStackNetwork(t, c, "fwd2", "10.51.0.0/24", "fd00:51::/64")
	mustNotReach(t, l.left.ns, right4)
	mustReach(t, ctr, right4)

	// The option removes the drop an earlier run installed.
	c.Stop()
	c = l.e.start(config.OptionForwardingNoDrop(true))
	mustReach(t, l.left.ns, right4)
	mustReach(t, l.right.ns, left4)
	mustReach(t, l.left.ns, right6)
	mustReach(t, ctr, right4)

	// And without it, forwarding found on stays as it was: open.
	c.Stop()
	l.e.start()
	mustReach(t, l.left.ns, right4)
	mustReach(t, l.left.ns, right6)
}

// Forwarding that was on before the library started is the host's
// choice: the traffic it carries is left alone.
func TestForwardingAlreadyOnLeftAlone(t *testing.T) {
	l := newForwardingLab(t)
	mustf(t, l.e.host.SetSysctl("net.ipv4.ip_forward", "1"), "ip_forward")
	mustf(t, l.e.host.SetSysctl("net.ipv6.conf.all.forwarding", "1"), "IPv6 forwarding")
	right4, right6 := l.right.servers(t)
	mustReach(t, l.left.ns, right4)

	c := l.e.start()
	n := dualStackNetwork(t, c, "fwd", "10.50.0.0/24", "fd00:50::/64")
	mustReach(t, l.left.ns, right4)
	mustReach(t, l.left.ns, right6)
	_, sb := joined(t, c, n, "ctr")
	mustReach(t, nsOf(t, sb), right4)
}

func TestForwardingNoDropOption(t *testing.T) {
	l := newForwardingLab(t)
	right4, right6 := l.right.servers(t)
	c := l.e.start(config.OptionForwardingNoDrop(true))
	n := dualStackNetwork(t, c, "fwd", "10.50.0.0/24", "fd00:50::/64")
	if v4, v6 := l.forwarding(t); v4 != "1" || v6 != "1" {
		t.Fatalf("after NewNetwork: ip_forward %s, IPv6 forwarding %s; want both on", v4, v6)
	}
	mustReach(t, l.left.ns, right4)
	mustReach(t, l.left.ns, right6)
	_, sb := joined(t, c, n, "ctr")
	mustReach(t, nsOf(t, sb), right4)
}

// Only the family whose forwarding the library turned on gets the drop:
// IPv6 forwarding that was on stays open when IPv4's is turned on.
func TestForwardingDropPerFamily(t *testing.T) {
	l := newForwardingLab(t)
	mustf(t, l.e.host.SetSysctl("net.ipv6.conf.all.forwarding", "1"), "IPv6 forwarding")
	right4, right6 := l.right.servers(t)
	c := l.e.start()
	dualStackNetwork(t, c, "fwd", "10.50.0.0/24", "fd00:50::/64")
	mustNotReach(t, l.left.ns, right4)
	mustReach(t, l.left.ns, right6)
}

var forwardDropElements = regexp.MustCompile(`(set forward_drop \{\n\t\ttype nf_proto\n)\t\telements = \{[^}]*\}\n`)

// withoutForwardDrop removes the elements of set forward_drop from a
// listing of the library's table. They say that the library turned
// forwarding on, which deleting every network does not undo, any more
// than it turns the sysctl off: a snapshot taken before the first network
// leaves them out.
func withoutForwardDrop(listing string) string {
	return forwardDropElements.ReplaceAllString(listing, "$1")
}

func TestWithoutForwardDrop(t *testing.T) {
	with := "\tset forward_drop {\n\t\ttype nf_proto\n\t\telements = { ipv4, ipv6 }\n\t}\n"
	want := "\tset forward_drop {\n\t\ttype nf_proto\n\t}\n"
	if got := withoutForwardDrop(with); got != want {
		t.Errorf("withoutForwardDrop(%q) = %q, want %q", with, got, want)
	}
}
