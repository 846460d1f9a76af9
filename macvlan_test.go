package libnetwork

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/drivers/macvlan"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newLAN makes a namespace standing for the LAN: a veth whose end parent
// is in the controller's namespace (up, the macvlan/ipvlan parent) and
// whose other end, eth0 in the LAN namespace, has the router's addresses
// (an IPv4 and, if given, an IPv6 prefix).
func newLAN(t *testing.T, e *testEnv, parent, v4, v6 string) *osl.Namespace {
	t.Helper()
	lan, err := osl.NewNamespace(t.TempDir() + "/lan-" + parent)
	mustf(t, err, "LAN namespace")
	t.Cleanup(func() { _ = lan.Destroy() })
	h := e.host.Handle()
	mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: parent}, PeerName: "eth0", PeerNamespace: netlink.NsFd(lan.Fd())}), "LAN veth")
	l, err := h.LinkByName(parent)
	mustf(t, err, "parent")
	mustf(t, h.LinkSetUp(l), "parent up")
	cfg := osl.IfaceConfig{Name: "eth0"}
	ip, ipnet, err := net.ParseCIDR(v4)
	mustf(t, err, "LAN IPv4")
	cfg.Addr = &net.IPNet{IP: ip.To4(), Mask: ipnet.Mask}
	if v6 != "" {
		ip, ipnet, err := net.ParseCIDR(v6)
		mustf(t, err, "LAN IPv6")
		cfg.AddrV6 = &net.IPNet{IP: ip, Mask: ipnet.Mask}
	}
	mustf(t, lan.ConfigureInterface(cfg), "LAN addresses")
	return lan
}

// macvlan through the controller: a "LAN" namespace behind a veth whose
// other end, in the controller's namespace, is the macvlan parent.
// Containers on the network reach the LAN server and each other, by address
// (IPv4 and IPv6, on the LAN and beyond its router) and through the
// embedded DNS by name; a published port is refused; after
// a restart they still reach the LAN.
func TestMacvlanNetwork(t *testing.T) {
	e := newEnv(t)
	lan := newLAN(t, e, "lan0", "192.168.91.1/24", "fd91::1/64")
	server := listen(t, lan, net.ParseIP("192.168.91.1"))
	server6 := listen(t, lan, net.ParseIP("fd91::1"))
	// Servers beyond the router, reached through the default routes.
	lo, err := lan.Handle().LinkByName("lo")
	mustf(t, err, "LAN lo")
	for _, a := range []string{"198.51.100.1/32", "2001:db8:91::1/128"} {
		addr, err := netlink.ParseAddr(a)
		mustf(t, err, "address")
		addr.Flags = unix.IFA_F_NODAD
		mustf(t, lan.Handle().AddrAdd(lo, addr), "LAN address %s", a)
	}
	beyond := listen(t, lan, net.ParseIP("198.51.100.1"))
	beyond6 := listen(t, lan, net.ParseIP("2001:db8:91::1"))

	c := e.start()
	n, err := c.NewNetwork("macvlan", "phys", NetworkOptionDriverOpts(map[string]string{"parent": "lan0"}),
		NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.91.0/24", Gateway: "192.168.91.1"}},
			[]*IpamConf{{PreferredPool: "fd91::/64", Gateway: "fd91::1"}}, nil))
	mustf(t, err, "macvlan network")
	ep1, sb1 := joined(t, c, n, "one")
	ep2, sb2 := joined(t, c, n, "two")
	ns1, ns2 := nsOf(t, sb1), nsOf(t, sb2)
	mustReach(t, ns1, server)
	mustReach(t, ns2, server)
	mustReach(t, ns2, listen(t, ns1, ep1.Info().Iface().Address().IP))
	// IPv6: the LAN router and a peer.
	mustReach(t, ns1, server6)
	mustReach(t, ns1, beyond)
	mustReach(t, ns1, beyond6)
	mustReach(t, ns1, listen(t, ns2, ep2.Info().Iface().AddressIPv6().IP))
	if gw := ep1.Info().Gateway(); gw.String() != "192.168.91.1" {
		t.Errorf("gateway %v, want the LAN router 192.168.91.1", gw)
	}
	if gw := ep1.Info().GatewayIPv6(); gw.String() != "fd91::1" {
		t.Errorf("IPv6 gateway %v, want the LAN router fd91::1", gw)
	}
	if got := defaultVia(t, ns1, netlink.FAMILY_V6); len(got) != 1 || got[0] != "eth0 via fd91::1" {
		t.Errorf("IPv6 default routes %v, want eth0 via fd91::1", got)
	}
	dig(t, sb2, "one", "A").wantAnswer(t, "a macvlan peer by name", "A "+ipOf(ep1))
	dig(t, sb2, "one", "AAAA").wantAnswer(t, "a macvlan peer's IPv6 by name", "AAAA "+ip6Of(ep1))

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
	lan := newLAN(t, e, "lan1", "192.168.93.1/24", "")
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

// macvlanChildEnv selects the child of TestMacvlanRestartAfterKill: it
// builds macvlan state on the directories and namespace it is given,
// reports ready, and waits to be killed.
const macvlanChildEnv = "LIBNETWORK_TEST_MACVLAN_CHILD"

func runMacvlanChild() bool {
	spec := os.Getenv(macvlanChildEnv)
	if spec == "" {
		return false
	}
	parts := strings.Split(spec, "|")
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	c, err := New(config.OptionDataDir(parts[0]), config.OptionExecRoot(parts[1]), config.OptionNetworkNamespace(parts[2]))
	if err != nil {
		fail(err)
	}
	n, err := c.NewNetwork("macvlan", "phys", NetworkOptionDriverOpts(map[string]string{"parent": "lan0"}),
		NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.98.0/24", Gateway: "192.168.98.1"}},
			[]*IpamConf{{PreferredPool: "fd98::/64", Gateway: "fd98::1"}}, nil))
	if err != nil {
		fail(err)
	}
	// An internal network: its parent is a link of the driver's own.
	inner, err := c.NewNetwork("macvlan", "inner", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.98.0.0/24"}}, nil, nil))
	if err != nil {
		fail(err)
	}
	for _, j := range []struct {
		n    Network
		name string
	}{{n, "a"}, {inner, "b"}, {inner, "c"}} {
		ep, err := j.n.CreateEndpoint(j.name)
		if err != nil {
			fail(err)
		}
		sb, err := c.NewSandbox("ctr-" + j.name)
		if err != nil {
			fail(err)
		}
		if err := ep.Join(sb); err != nil {
			fail(err)
		}
	}
	fmt.Println("READY")
	time.Sleep(time.Hour)
	return true
}

// TestMacvlanRestartAfterKill: a controller with macvlan networks (one on
// a LAN parent with IPv4 and IPv6, one internal) is killed with SIGKILL.
// The next New restores both: the containers keep their interfaces and
// reach the LAN and each other, new joins work, an orphaned link of the
// driver's is removed, and deleting the internal network removes its
// parent link.
func TestMacvlanRestartAfterKill(t *testing.T) {
	e := newEnv(t)
	lan := newLAN(t, e, "lan0", "192.168.98.1/24", "fd98::1/64")
	server := listen(t, lan, net.ParseIP("192.168.98.1"))
	server6 := listen(t, lan, net.ParseIP("fd98::1"))

	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), macvlanChildEnv+"="+e.dataDir+"|"+e.execRoot+"|"+e.host.Path())
	stdout, err := cmd.StdoutPipe()
	mustf(t, err, "pipe")
	cmd.Stderr = os.Stderr
	mustf(t, cmd.Start(), "starting child")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	mustf(t, cmd.Process.Signal(syscall.SIGKILL), "killing child")
	_ = cmd.Wait()

	// A link of the driver's that no network claims, as a crash between
	// creating an internal parent and recording its network leaves.
	h := e.host.Handle()
	orphan := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "dm-0rphan00000"}}
	mustf(t, h.LinkAdd(orphan), "orphan link")
	mustf(t, h.LinkSetAlias(orphan, macvlan.Mark), "marking the orphan")
	links := func() []string {
		ls, err := osl.Dump(h.LinkList)
		mustf(t, err, "links")
		var out []string
		for _, l := range ls {
			out = append(out, l.Attrs().Name)
		}
		return out
	}

	c := e.start()
	if got := links(); slices.Contains(got, "dm-0rphan00000") {
		t.Errorf("orphaned macvlan link kept at start: %v", got)
	}
	phys, err := c.NetworkByName("phys")
	mustf(t, err, "phys after the kill")
	inner, err := c.NetworkByName("inner")
	mustf(t, err, "inner after the kill")
	sandbox := func(name string) (Endpoint, *osl.Namespace) {
		sb, err := c.SandboxByID(sandboxIDOf(t, c, "ctr-"+name))
		mustf(t, err, "sandbox %s after the kill", name)
		var ep Endpoint
		for _, n := range []Network{phys, inner} {
			if e, err := n.EndpointByName(name); err == nil {
				ep = e
			}
		}
		if ep == nil {
			t.Fatalf("endpoint %s lost in the kill", name)
		}
		return ep, nsOf(t, sb)
	}
	_, nsA := sandbox("a")
	mustReach(t, nsA, server)
	mustReach(t, nsA, server6)
	epB, nsB := sandbox("b")
	_, nsC := sandbox("c")
	mustReach(t, nsC, listen(t, nsB, epB.Info().Iface().Address().IP))

	_, sbD := joined(t, c, phys, "d")
	mustReach(t, nsOf(t, sbD), server)

	// The internal network's parent goes with it.
	before := links()
	for _, name := range []string{"b", "c"} {
		ep, err := inner.EndpointByName(name)
		mustf(t, err, "endpoint %s", name)
		sb, err := c.SandboxByID(sandboxIDOf(t, c, "ctr-"+name))
		mustf(t, err, "sandbox %s", name)
		mustf(t, ep.Leave(sb), "leave %s", name)
		mustf(t, ep.Delete(false), "delete %s", name)
	}
	mustf(t, inner.Delete(), "deleting inner")
	after := links()
	if len(after) != len(before)-1 {
		t.Errorf("links after deleting the internal network: %v, before %v; want its parent gone", after, before)
	}
}

// sandboxIDOf returns the ID of the sandbox of container ctr.
func sandboxIDOf(t *testing.T, c *controller, ctr string) string {
	t.Helper()
	for _, sb := range c.Sandboxes() {
		if sb.ContainerID() == ctr {
			return sb.ID()
		}
	}
	t.Fatalf("no sandbox for container %s", ctr)
	return ""
}

// TestMacvlanExternalKey: a sandbox whose namespace is the container's
// (the runtime's set-key path) joins a macvlan network before the
// container exists; at SetKey its interface appears in the process's
// namespace, reaches the LAN, and goes at Delete.
func TestMacvlanExternalKey(t *testing.T) {
	e := newEnv(t)
	lan := newLAN(t, e, "lan0", "192.168.99.1/24", "")
	server := listen(t, lan, net.ParseIP("192.168.99.1"))
	c := e.start()
	n, err := c.NewNetwork("macvlan", "phys", NetworkOptionDriverOpts(map[string]string{"parent": "lan0"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.99.0/24", Gateway: "192.168.99.1"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ext")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join before SetKey")

	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey")
	procNS, err := osl.OpenNamespace(key)
	mustf(t, err, "opening the container's namespace")
	defer procNS.Close()
	if got := ifaceNames(t, procNS); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("container namespace has %v, want eth0 and lo", got)
	}
	mustReach(t, procNS, server)
	_, sb2 := joined(t, c, n, "peer")
	mustReach(t, nsOf(t, sb2), listen(t, procNS, ep.Info().Iface().Address().IP))
	mustf(t, sb.Delete(), "delete")
	if got := ifaceNames(t, procNS); slices.Contains(got, "eth0") {
		t.Errorf("eth0 left in the container namespace: %v", got)
	}
}

// TestMacvlanVLANsOfTwoHosts: two hosts (controllers in namespaces of
// their own) on one LAN segment, each with a macvlan network of the same
// subnet on a different VLAN of its parent lan0 (lan0.10, lan0.20), the
// LAN's router on VLAN 10 only. The container on VLAN 10 reaches the
// router; the one on VLAN 20 reaches neither the router nor the other
// container. Where the kernel has no 802.1q (this machine's), decided by
// the network creation itself, the refusal is checked (typed, names the
// parent, leaves nothing) and the test says so in its skip.
func TestMacvlanVLANsOfTwoHosts(t *testing.T) {
	lanNS, err := osl.NewNamespace(t.TempDir() + "/lan")
	mustf(t, err, "LAN namespace")
	t.Cleanup(func() { _ = lanNS.Destroy() })
	lh := lanNS.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	mustf(t, lh.LinkAdd(br), "LAN switch")
	mustf(t, lh.LinkSetUp(br), "LAN switch up")
	var hosts []*testEnv
	var ctrls []*controller
	for i := range 2 {
		e := newEnv(t)
		port := fmt.Sprintf("port%d", i)
		mustf(t, e.host.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: port, PeerNamespace: netlink.NsFd(lanNS.Fd())}), "host %d on the LAN", i)
		l, err := e.host.Handle().LinkByName("lan0")
		mustf(t, err, "lan0")
		mustf(t, e.host.Handle().LinkSetUp(l), "lan0 up")
		p, err := lh.LinkByName(port)
		mustf(t, err, "port")
		mustf(t, lh.LinkSetMaster(p, br), "port on the switch")
		mustf(t, lh.LinkSetUp(p), "port up")
		hosts = append(hosts, e)
		ctrls = append(ctrls, e.start())
	}
	ipam := NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "192.168.97.0/24", Gateway: "192.168.97.1"}}, nil, nil)
	before := hosts[0].snapshot(ctrls[0])
	n10, err := ctrls[0].NewNetwork("macvlan", "vlan10", NetworkOptionDriverOpts(map[string]string{"parent": "lan0.10"}), ipam)
	if err != nil {
		var ni types.NotImplementedError
		if !errors.As(err, &ni) || !strings.Contains(err.Error(), "lan0.10") {
			t.Fatalf("VLAN parent refused with %v (%T); want a NotImplementedError naming lan0.10", err, err)
		}
		hosts[0].requireSame(before, hosts[0].snapshot(ctrls[0]), "after the refused VLAN parent")
		t.Skipf("the kernel has no 802.1q VLAN links (creating lan0.10 said: %v); the refusal was checked, traffic cannot be", err)
	}
	n20, err := ctrls[1].NewNetwork("macvlan", "vlan20", NetworkOptionDriverOpts(map[string]string{"parent": "lan0.20"}), ipam)
	mustf(t, err, "network on lan0.20")
	// The router, on VLAN 10 of the switch.
	mustf(t, lh.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "br0.10", ParentIndex: br.Attrs().Index}, VlanId: 10}), "router VLAN")
	mustf(t, lanNS.ConfigureInterface(osl.IfaceConfig{Name: "br0.10", Addr: &net.IPNet{IP: net.ParseIP("192.168.97.1").To4(), Mask: net.CIDRMask(24, 32)}}), "router address")
	router := listen(t, lanNS, net.ParseIP("192.168.97.1"))

	ep10, sb10 := joined(t, ctrls[0], n10, "ten")
	_, sb20 := joined(t, ctrls[1], n20, "twenty")
	ns10, ns20 := nsOf(t, sb10), nsOf(t, sb20)
	mustReach(t, ns10, router)
	mustNotReach(t, ns20, router)
	mustNotReach(t, ns20, listen(t, ns10, ep10.Info().Iface().Address().IP))
}
