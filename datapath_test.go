package libnetwork

import (
	"net"
	"slices"
	"testing"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/vishvananda/netlink"
)

// joined creates an endpoint on n and a sandbox, and joins them.
func joined(t *testing.T, c *controller, n Network, name string, opts ...SandboxOption) (Endpoint, Sandbox) {
	t.Helper()
	ep, err := n.CreateEndpoint(name)
	mustf(t, err, "CreateEndpoint %s", name)
	sb, err := c.NewSandbox("ctr-"+name, opts...)
	mustf(t, err, "NewSandbox %s", name)
	mustf(t, ep.Join(sb), "Join %s", name)
	return ep, sb
}

func TestDataPathSameNetwork(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "web", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.10.0.0/24"}}, []*IpamConf{{PreferredPool: "fd10::/64"}}, nil))
	mustf(t, err, "NewNetwork")
	epA, sbA := joined(t, c, n, "a")
	epB, sbB := joined(t, c, n, "b")

	nsA, nsB := nsOf(t, sbA), nsOf(t, sbB)
	if got := ifaceNames(t, nsA); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("interfaces in sandbox: %v, want eth0 and lo", got)
	}
	ifs, _ := nsA.Interfaces()
	for _, i := range ifs {
		if i.Name == "eth0" && i.MAC.String() != epA.Info().Iface().MacAddress().String() {
			t.Errorf("eth0 MAC %s, endpoint says %s", i.MAC, epA.Info().Iface().MacAddress())
		}
	}
	addrA := epA.Info().Iface().Address()
	if addrA == nil || !addrA.IP.Equal(net.ParseIP("10.10.0.2")) {
		t.Errorf("first endpoint address %v, want 10.10.0.2/24", addrA)
	}
	if gw := epA.Info().Gateway(); !gw.Equal(net.ParseIP("10.10.0.1")) {
		t.Errorf("gateway %v, want 10.10.0.1", gw)
	}
	// IPv4 and IPv6, both directions.
	srvB := listen(t, nsB, epB.Info().Iface().Address().IP)
	mustReach(t, nsA, srvB)
	srvB6 := listen(t, nsB, epB.Info().Iface().AddressIPv6().IP)
	mustReach(t, nsA, srvB6)
	srvA := listen(t, nsA, addrA.IP)
	mustReach(t, nsB, srvA)

	// The default route points at the gateway.
	routes, err := nsA.Handle().RouteList(nil, netlink.FAMILY_V4)
	mustf(t, err, "routes")
	found := false
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			found = r.Gw.Equal(net.ParseIP("10.10.0.1"))
		}
	}
	if !found {
		t.Errorf("no default route via 10.10.0.1 in sandbox: %v", routes)
	}

	// Statistics count the traffic.
	stats, err := sbA.Statistics()
	mustf(t, err, "Statistics")
	if s := stats["eth0"]; s == nil || s.TxBytes == 0 || s.RxBytes == 0 {
		t.Errorf("eth0 statistics %v, want traffic counted", s)
	}
	info, err := epA.DriverInfo()
	mustf(t, err, "DriverInfo")
	if mac, ok := info[netlabel.MacAddress].(net.HardwareAddr); !ok || mac.String() != epA.Info().Iface().MacAddress().String() {
		t.Errorf("DriverInfo MAC %v, want %s", info[netlabel.MacAddress], epA.Info().Iface().MacAddress())
	}
}

// outsideHost makes a namespace "outside" the controller's host, reachable
// from it over a veth (198.51.100.0/24), with a TCP server on it.
func outsideHost(t *testing.T, e *testEnv) string {
	t.Helper()
	out, err := osl.NewNamespace(t.TempDir() + "/outside")
	mustf(t, err, "outside namespace")
	t.Cleanup(func() { _ = out.Destroy() })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(out.Fd())}
	mustf(t, e.host.Handle().LinkAdd(veth), "uplink veth")
	mustf(t, e.host.ConfigureInterface(osl.IfaceConfig{Name: "uplink", Addr: &net.IPNet{IP: net.ParseIP("198.51.100.1").To4(), Mask: net.CIDRMask(24, 32)}}), "uplink address")
	mustf(t, out.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: net.ParseIP("198.51.100.2").To4(), Mask: net.CIDRMask(24, 32)}}), "outside address")
	return listen(t, out, net.ParseIP("198.51.100.2"))
}

func TestDataPathOutsideAndInternal(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	srv := outsideHost(t, e)

	pub, err := c.NewNetwork("bridge", "public", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.20.0.0/24"}}, nil, nil))
	mustf(t, err, "public network")
	_, sbPub := joined(t, c, pub, "pub")
	// Masqueraded: the outside host answers without a route back.
	mustReach(t, nsOf(t, sbPub), srv)

	internal, err := c.NewNetwork("bridge", "secret", NetworkOptionInternalNetwork(),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.30.0.0/24"}}, nil, nil))
	mustf(t, err, "internal network")
	epIn, sbIn := joined(t, c, internal, "in")
	if gw := epIn.Info().Gateway(); gw != nil {
		t.Errorf("endpoint on an internal network has gateway %v", gw)
	}
	nsIn := nsOf(t, sbIn)
	mustNotReach(t, nsIn, srv)
	// Even with a route the sandbox adds itself, the firewall drops it.
	mustf(t, nsIn.SetDefaultGateway(net.ParseIP("10.30.0.1"), "eth0"), "forcing a default route")
	mustNotReach(t, nsIn, srv)
	// Within the internal network traffic flows.
	epIn2, sbIn2 := joined(t, c, internal, "in2")
	mustReach(t, nsIn, listen(t, nsOf(t, sbIn2), epIn2.Info().Iface().Address().IP))
}

func TestDataPathNetworksIsolated(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n1, err := c.NewNetwork("bridge", "one", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.41.0.0/24"}}, nil, nil))
	mustf(t, err, "network one")
	n2, err := c.NewNetwork("bridge", "two", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.42.0.0/24"}}, nil, nil))
	mustf(t, err, "network two")
	_, sb1 := joined(t, c, n1, "x")
	ep2, sb2 := joined(t, c, n2, "y")
	mustNotReach(t, nsOf(t, sb1), listen(t, nsOf(t, sb2), ep2.Info().Iface().Address().IP))
}

func TestICCDisabled(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "noicc", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "false"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.43.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	_, sbA := joined(t, c, n, "a")
	epB, sbB := joined(t, c, n, "b")
	mustNotReach(t, nsOf(t, sbA), listen(t, nsOf(t, sbB), epB.Info().Iface().Address().IP))
}

func TestHostNetworkSandbox(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	// A link only the controller's host namespace has.
	mustf(t, e.host.Handle().LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hostonly0"}}), "dummy")
	n, err := c.NewNetwork("host", "host")
	mustf(t, err, "host network")
	ep, err := n.CreateEndpoint("h")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("hostctr", OptionUseDefaultSandbox())
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	names := ifaceNames(t, nsOf(t, sb))
	if !slices.Contains(names, "hostonly0") {
		t.Fatalf("host-network sandbox sees %v, want the host's hostonly0", names)
	}
	if _, err := c.NewNetwork("host", "host2"); err == nil {
		t.Error("a second host network was created")
	}
	mustf(t, ep.Leave(sb), "leave")
	mustf(t, sb.Delete(), "delete sandbox")
	// The host's namespace survives the sandbox.
	if _, err := e.host.Handle().LinkByName("hostonly0"); err != nil {
		t.Errorf("host namespace damaged by deleting a host sandbox: %v", err)
	}
}

func TestNullNetworkSandbox(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("null", "none")
	mustf(t, err, "null network")
	ep, sb := joined(t, c, n, "n")
	if got := ifaceNames(t, nsOf(t, sb)); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("null sandbox has %v, want lo only", got)
	}
	if ep.Info().Iface().Address() != nil {
		t.Errorf("null endpoint has address %v", ep.Info().Iface().Address())
	}
}

func TestBridgeMTU(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "small", NetworkOptionDriverOpts(map[string]string{"com.docker.network.driver.mtu": "1400"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.44.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	_, sb := joined(t, c, n, "m")
	ifs, err := nsOf(t, sb).Interfaces()
	mustf(t, err, "interfaces")
	for _, i := range ifs {
		if i.Name == "eth0" && i.MTU != 1400 {
			t.Errorf("eth0 MTU %d, want 1400", i.MTU)
		}
	}
	br, err := e.host.Handle().LinkByName("br-" + n.ID()[:12])
	mustf(t, err, "bridge")
	if br.Attrs().MTU != 1400 {
		t.Errorf("bridge MTU %d, want 1400", br.Attrs().MTU)
	}
}
