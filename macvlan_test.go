package libnetwork

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// macvlan through the controller: a "LAN" namespace behind a veth whose
// other end, in the controller's namespace, is the macvlan parent.
// Containers on the network reach the LAN server and each other, by address
// and through the embedded DNS by name; a published port is refused; after
// a restart they still reach the LAN.
func TestMacvlanNetwork(t *testing.T) {
	e := newEnv(t)
	lan, err := osl.NewNamespace(t.TempDir() + "/lan")
	mustf(t, err, "LAN namespace")
	t.Cleanup(func() { _ = lan.Destroy() })
	h := e.host.Handle()
	mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(lan.Fd())}), "LAN veth")
	parent, err := h.LinkByName("lan0")
	mustf(t, err, "parent")
	mustf(t, h.LinkSetUp(parent), "parent up")
	mustf(t, lan.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: net.ParseIP("192.168.91.1").To4(), Mask: net.CIDRMask(24, 32)}}), "LAN address")
	server := listen(t, lan, net.ParseIP("192.168.91.1"))

	c := e.start()
	n, err := c.NewNetwork("macvlan", "phys", NetworkOptionDriverOpts(map[string]string{"parent": "lan0"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.91.0/24", Gateway: "192.168.91.1"}}, nil, nil))
	mustf(t, err, "macvlan network")
	ep1, sb1 := joined(t, c, n, "one")
	ep2, sb2 := joined(t, c, n, "two")
	ns1, ns2 := nsOf(t, sb1), nsOf(t, sb2)
	mustReach(t, ns1, server)
	mustReach(t, ns2, server)
	mustReach(t, ns2, listen(t, ns1, ep1.Info().Iface().Address().IP))
	if gw := ep1.Info().Gateway(); gw.String() != "192.168.91.1" {
		t.Errorf("gateway %v, want the LAN router 192.168.91.1", gw)
	}
	dig(t, sb2, "one", "A").wantAnswer(t, "a macvlan peer by name", "A "+ipOf(ep1))
	_ = ep2

	// No port publishing on macvlan, as in docker.
	sb3, err := c.NewSandbox("pub", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18080}}))
	mustf(t, err, "sandbox")
	ep3, err := n.CreateEndpoint("pub")
	mustf(t, err, "endpoint")
	if err := ep3.Join(sb3); err == nil || !strings.Contains(err.Error(), "publish") {
		t.Errorf("join with a published port on macvlan: %v", err)
	}

	// Private mode on the same parent (another subnet): its containers
	// do not see each other.
	priv, err := c.NewNetwork("macvlan", "priv", NetworkOptionDriverOpts(map[string]string{"parent": "lan0", "macvlan_mode": "private"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.92.0/24"}}, nil, nil))
	mustf(t, err, "private macvlan network")
	p1, psb1 := joined(t, c, priv, "p1")
	_, psb2 := joined(t, c, priv, "p2")
	mustNotReach(t, nsOf(t, psb2), listen(t, nsOf(t, psb1), p1.Info().Iface().Address().IP))
	// A subnet overlapping another network's on the same parent is refused.
	if _, err := c.NewNetwork("macvlan", "clash", NetworkOptionDriverOpts(map[string]string{"parent": "lan0"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.91.0/25"}}, nil, nil)); err == nil {
		t.Error("a network overlapping phys on lan0 was created")
	}

	c.Stop()
	c = e.start()
	sb1b, err := c.SandboxByID(sb1.ID())
	mustf(t, err, "sandbox after restart")
	mustReach(t, nsOf(t, sb1b), server)
	n2, err := c.NetworkByName("phys")
	mustf(t, err, "network after restart")
	_, sb4 := joined(t, c, n2, "after")
	mustReach(t, nsOf(t, sb4), server)
}

// TestIpvlanNetwork: an ipvlan network through the controller. Where the
// kernel has no ipvlan link type (this machine's), decided by the join
// itself, the join is refused clearly and leaves the sandbox and the
// controller's namespace as they were; elsewhere the container reaches the
// LAN server.
func TestIpvlanNetwork(t *testing.T) {
	e := newEnv(t)
	lan, err := osl.NewNamespace(t.TempDir() + "/lan")
	mustf(t, err, "LAN namespace")
	t.Cleanup(func() { _ = lan.Destroy() })
	h := e.host.Handle()
	mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan1"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(lan.Fd())}), "LAN veth")
	parent, err := h.LinkByName("lan1")
	mustf(t, err, "parent")
	mustf(t, h.LinkSetUp(parent), "parent up")
	mustf(t, lan.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: net.ParseIP("192.168.93.1").To4(), Mask: net.CIDRMask(24, 32)}}), "LAN address")
	server := listen(t, lan, net.ParseIP("192.168.93.1"))

	c := e.start()
	n, err := c.NewNetwork("ipvlan", "l2net", NetworkOptionDriverOpts(map[string]string{"parent": "lan1", "ipvlan_mode": "l2"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.93.0/24", Gateway: "192.168.93.1"}}, nil, nil))
	mustf(t, err, "ipvlan network")
	ep, err := n.CreateEndpoint("one")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("one")
	mustf(t, err, "sandbox")
	before := e.snapshot(c)
	err = ep.Join(sb)
	var ni types.NotImplementedError
	switch {
	case errors.As(err, &ni):
		if !strings.Contains(err.Error(), "ipvlan") {
			t.Errorf("refusal %q does not name ipvlan", err)
		}
		if names := ifaceNames(t, nsOf(t, sb)); len(names) != 1 {
			t.Errorf("sandbox interfaces after the refused join: %v", names)
		}
		e.requireSame(before, e.snapshot(c), "after a refused ipvlan join")
		t.Skipf("the kernel has no ipvlan link type (the join said: %v); the refusal was checked, traffic cannot be", err)
	case err != nil:
		t.Fatalf("join: %v", err)
	}
	mustReach(t, nsOf(t, sb), server)
}
