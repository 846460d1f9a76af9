package libnetwork

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// routeVia adds to r's namespace a route to subnet through the host's
// address on r's link (192.0.2.1 or fd00:2::1 for the left router).
func routeVia(t *testing.T, r *router, subnet, gw string) {
	t.Helper()
	_, dst, err := net.ParseCIDR(subnet)
	mustf(t, err, "subnet %s", subnet)
	link, err := r.ns.Handle().LinkByName("eth0")
	mustf(t, err, "eth0 of the router")
	mustf(t, r.ns.Handle().RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: net.ParseIP(gw)}),
		"route to %s via %s", subnet, gw)
}

// gatewayModeNetwork makes a dual-stack bridge network with the given
// gateway modes ("" leaves the option out).
func gatewayModeNetwork(t *testing.T, c *controller, name, v4, v6, mode4, mode6 string) Network {
	t.Helper()
	opts := map[string]string{}
	if mode4 != "" {
		opts["com.docker.network.bridge.gateway_mode_ipv4"] = mode4
	}
	if mode6 != "" {
		opts["com.docker.network.bridge.gateway_mode_ipv6"] = mode6
	}
	n, err := c.NewNetwork("bridge", name, NetworkOptionEnableIPv6(true), NetworkOptionDriverOpts(opts),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: v4}}, []*IpamConf{{PreferredPool: v6}}, nil))
	mustf(t, err, "NewNetwork %s", name)
	return n
}

// ping sends one ICMP echo request from ns to the IPv4 address dst and
// reports whether a reply came back.
func ping(t *testing.T, ns *osl.Namespace, dst net.IP) bool {
	t.Helper()
	var c net.PacketConn
	mustf(t, ns.Do(func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}), "ICMP socket")
	defer c.Close()
	const id = 0x4c4e
	req := []byte{8, 0, 0, 0, id >> 8, id & 0xff, 0, 1, 'l', 'n'}
	var sum uint32
	for i := 0; i < len(req); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(req[i:]))
	}
	sum = (sum >> 16) + (sum & 0xffff)
	sum += sum >> 16
	binary.BigEndian.PutUint16(req[2:], ^uint16(sum))
	if _, err := c.WriteTo(req, &net.IPAddr{IP: dst}); err != nil {
		t.Fatalf("sending an echo request to %s: %v", dst, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return false
		}
		if from.(*net.IPAddr).IP.Equal(dst) && n >= 8 && b[0] == 0 && binary.BigEndian.Uint16(b[4:]) == id {
			return true
		}
	}
}

// On a routed network an outside host that routes to the containers'
// subnet through the host reaches a published port at the container's
// own address, unNATed, and nothing else of it but ICMP; the container
// goes out unmasqueraded; the host itself reaches every port. Leave
// closes the port. A nat network beside it is unaffected.
func TestRoutedNetwork(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	c := e.start()
	rn := gatewayModeNetwork(t, c, "routed", "10.60.0.0/24", "fd00:60::/64", "routed", "routed")
	nn := gatewayModeNetwork(t, c, "nat", "10.61.0.0/24", "fd00:61::/64", "", "nat-unprotected")
	out := l.left // 192.0.2.2 / fd00:2::2, on the far side of the host's 192.0.2.1
	for _, s := range []string{"10.60.0.0/24", "10.61.0.0/24"} {
		routeVia(t, out, s, "192.0.2.1")
	}
	for _, s := range []string{"fd00:60::/64", "fd00:61::/64"} {
		routeVia(t, out, s, "fd00:2::1")
	}
	serveOn(t, out.ns, 9090)

	published := []types.PortBinding{{Proto: types.TCP, Port: 80}, {Proto: types.UDP, Port: 53}}
	ep, sb := joined(t, c, rn, "web", OptionPortMapping(published))
	ns := nsOf(t, sb)
	for _, p := range []uint16{80, 53, 8081} {
		serveOn(t, ns, p)
	}
	ctr4 := ep.Info().Iface().Address().IP.String()
	ctr6 := ep.Info().Iface().AddressIPv6().IP.String()
	// A sibling that publishes nothing: the opened port is its neighbour's.
	ep2, sb2 := joined(t, c, rn, "quiet")
	serveOn(t, nsOf(t, sb2), 80)
	quiet4 := ep2.Info().Iface().Address().IP.String()

	if got := publishedPorts(t, ep); got["tcp/80/"+ctr4] != 80 || got["tcp/80/"+ctr6] != 80 || got["udp/53/"+ctr4] != 53 {
		t.Errorf("published ports %v: want tcp/80 and udp/53 on the container's own addresses", got)
	}
	t.Run("opened", func(t *testing.T) {
		mustSee(t, out.ns, "tcp", hostPort(ctr4, 80), "192.0.2.2")
		mustSee(t, out.ns, "tcp", hostPort(ctr6, 80), "fd00:2::2")
		mustSee(t, out.ns, "udp", hostPort(ctr4, 53), "192.0.2.2")
		mustSee(t, out.ns, "udp", hostPort(ctr6, 53), "fd00:2::2")
		if !ping(t, out.ns, net.ParseIP(ctr4)) {
			t.Errorf("ping to %s of a routed network: no reply", ctr4)
		}
	})
	t.Run("not opened", func(t *testing.T) {
		mustNotAnswer(t, out.ns, "tcp", hostPort(ctr4, 8081))
		mustNotAnswer(t, out.ns, "tcp", hostPort(ctr6, 8081))
		mustNotAnswer(t, out.ns, "udp", hostPort(ctr4, 80)) // tcp/80 is, not udp/80
		mustNotAnswer(t, out.ns, "tcp", hostPort(quiet4, 80))
		// Nothing went through NAT on the host's addresses either.
		mustNotAnswer(t, out.ns, "tcp", hostPort("192.0.2.1", 80))
	})
	t.Run("outgoing not masqueraded", func(t *testing.T) {
		mustSee(t, ns, "tcp", hostPort("192.0.2.2", 9090), ctr4)
		mustSee(t, ns, "tcp", hostPort("fd00:2::2", 9090), ctr6)
	})
	t.Run("host", func(t *testing.T) {
		mustSee(t, e.host, "tcp", hostPort(ctr4, 8081), "10.60.0.1")
	})

	t.Run("nat unaffected", func(t *testing.T) {
		nep, nsb := joined(t, c, nn, "natweb", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
		nns := nsOf(t, nsb)
		serveOn(t, nns, 80)
		serveOn(t, nns, 8081)
		nat4 := nep.Info().Iface().Address().IP.String()
		eph := publishedPorts(t, nep)["tcp/80/0.0.0.0"]
		if eph == 0 {
			t.Fatalf("nat network: no host port for tcp/80: %v", publishedPorts(t, nep))
		}
		mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", eph), "192.0.2.2")
		mustSee(t, out.ns, "tcp", hostPort(nat4, 8081), "192.0.2.2")
		mustSee(t, nns, "tcp", hostPort("192.0.2.2", 9090), "192.0.2.1")
	})

	// Restart: the opened ports are still open, the others still closed.
	c.Stop()
	c = e.start()
	mustSee(t, out.ns, "tcp", hostPort(ctr4, 80), "192.0.2.2")
	mustNotAnswer(t, out.ns, "tcp", hostPort(ctr4, 8081))
	if listing := e.nft(); !strings.Contains(listing, ctr4+" . tcp . 80") {
		t.Fatalf("after restart the open port is not in the table:\n%s", listing)
	}

	rn2, err := c.NetworkByName("routed")
	mustf(t, err, "network after restart")
	rep, err := rn2.EndpointByName("web")
	mustf(t, err, "endpoint after restart")
	rsb, err := c.SandboxByID(sb.ID())
	mustf(t, err, "sandbox after restart")
	mustf(t, rep.Leave(rsb), "Leave")
	listing := e.nft()
	for _, a := range []string{ctr4, ctr6} {
		if strings.Contains(listing, a+" . ") {
			t.Errorf("%s still opened after Leave:\n%s", a, listing)
		}
	}
	mustNotAnswer(t, out.ns, "tcp", hostPort(ctr4, 80))
}

// With IPv6 routed and IPv4 NATed (docker's usual setup), a binding is
// published through NAT on the host's IPv4 addresses and opened at the
// container's own IPv6 address.
func TestRoutedIPv6Only(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	c := e.start()
	n := gatewayModeNetwork(t, c, "r6", "10.62.0.0/24", "fd00:62::/64", "nat", "routed")
	out := l.left
	routeVia(t, out, "10.62.0.0/24", "192.0.2.1")
	routeVia(t, out, "fd00:62::/64", "fd00:2::1")
	serveOn(t, out.ns, 9090)
	ep, sb := joined(t, c, n, "web", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
	ns := nsOf(t, sb)
	serveOn(t, ns, 80)
	serveOn(t, ns, 8081)
	ctr4 := ep.Info().Iface().Address().IP.String()
	ctr6 := ep.Info().Iface().AddressIPv6().IP.String()
	ports := publishedPorts(t, ep)
	eph := ports["tcp/80/0.0.0.0"]
	if eph == 0 || ports["tcp/80/"+ctr6] != 80 {
		t.Fatalf("published ports %v: want a host port on 0.0.0.0 and port 80 at %s", ports, ctr6)
	}
	mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", eph), "192.0.2.2")
	mustSee(t, out.ns, "tcp", hostPort(ctr6, 80), "fd00:2::2")
	mustNotAnswer(t, out.ns, "tcp", hostPort(ctr6, 8081))
	// IPv4 is not filtered (nat) and is masqueraded; IPv6 is not.
	mustSee(t, out.ns, "tcp", hostPort(ctr4, 8081), "192.0.2.2")
	mustSee(t, ns, "tcp", hostPort("192.0.2.2", 9090), "192.0.2.1")
	mustSee(t, ns, "tcp", hostPort("fd00:2::2", 9090), ctr6)
}

// An unknown gateway mode is refused and creates nothing.
func TestGatewayModeRefused(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	for _, key := range []string{"com.docker.network.bridge.gateway_mode_ipv4", "com.docker.network.bridge.gateway_mode_ipv6"} {
		_, err := c.NewNetwork("bridge", "bad", NetworkOptionDriverOpts(map[string]string{key: "isolated"}),
			NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.63.0.0/24"}}, nil, nil))
		if !types.IsBadRequest(err) {
			t.Fatalf("%s=isolated: %v (%T), want an invalid-parameter error", key, err, err)
		}
		if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "isolated") {
			t.Errorf("error does not say what was refused: %v", err)
		}
		if _, err := c.NetworkByName("bad"); err == nil {
			t.Errorf("the refused network exists")
		}
	}
}
