package overlay

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// Network and endpoint IDs of the tests.
const (
	nid1 = "0a00000000000000000000000000000000000000000000000000000000000001"
	nid2 = "0b00000000000000000000000000000000000000000000000000000000000002"
	eid1 = "e100000000000000000000000000000000000000000000000000000000000001"
	eid2 = "e200000000000000000000000000000000000000000000000000000000000002"
	eid3 = "e300000000000000000000000000000000000000000000000000000000000003"
)

// underlay is the hosts' network: a bridge in a namespace of its own (the
// "switch"), with one veth per host.
type underlay struct {
	sw       *osl.Namespace
	bridge   int // index of the bridge in sw
	hostsDir string
	// ipv6 makes the hosts' addresses fd00:200::i/64 rather than
	// 192.168.200.i/24.
	ipv6 bool
}

// newUnderlay makes the switch.
func newUnderlay(t testing.TB) *underlay {
	t.Helper()
	testutil.RequireRoot(t)
	sw := drivertest.NewNamespace(t)
	h := sw.Handle()
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ul0", TxQLen: -1}}); err != nil {
		t.Fatalf("creating the underlay bridge: %v", err)
	}
	br, err := h.LinkByName("ul0")
	if err == nil {
		err = h.LinkSetUp(br)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &underlay{sw: sw, bridge: br.Attrs().Index, hostsDir: t.TempDir()}
}

// twoHosts makes two hosts on an underlay of their own, with network
// nid1 of VNI vni on subnet on both.
func twoHosts(tb testing.TB, vni int, subnet string) (*testHost, *testHost) {
	tb.Helper()
	u := newUnderlay(tb)
	h1, h2 := u.addHost(tb, 1), u.addHost(tb, 2)
	for _, h := range []*testHost{h1, h2} {
		h.createNet(tb, nid1, vni, subnet)
	}
	return h1, h2
}

// testHost is a "host": a namespace on the underlay with its driver.
type testHost struct {
	ns    *osl.Namespace
	vtep  net.IP
	d     *Driver
	nsDir string
}

// addHost makes host i (1, 2, ...) with address 192.168.200.i/24 (or
// fd00:200::i/64) on the underlay (MTU 1500), and a driver on it.
func (u *underlay) addHost(t testing.TB, i int) *testHost {
	t.Helper()
	ns := drivertest.NewNamespace(t)
	if _, err := u.sw.AddVeth(osl.Veth{Name: fmt.Sprintf("u%d", i), Master: u.bridge, Up: true, MTU: 1500,
		PeerName: "eth0", PeerNS: ns.Fd()}); err != nil {
		t.Fatalf("host %d: underlay veth: %v", i, err)
	}
	vtep := net.IPv4(192, 168, 200, byte(i)).To4()
	ifc := osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: vtep, Mask: net.CIDRMask(24, 32)}}
	if u.ipv6 {
		vtep = net.ParseIP(fmt.Sprintf("fd00:200::%d", i))
		ifc = osl.IfaceConfig{Name: "eth0", AddrV6: &net.IPNet{IP: vtep, Mask: net.CIDRMask(64, 128)}}
	}
	if err := ns.ConfigureInterface(ifc); err != nil {
		t.Fatal(err)
	}
	h := &testHost{ns: ns, vtep: vtep, nsDir: filepath.Join(u.hostsDir, fmt.Sprintf("overlay%d", i))}
	h.d = h.newDriver(t)
	return h
}

// newDriver returns a driver on h, as a restarted controller makes it.
// At cleanup it is closed and the namespaces it left are removed.
func (h *testHost) newDriver(t testing.TB) *Driver {
	t.Helper()
	d, err := New(Config{Logger: drivertest.Logger(t), Host: h.ns.Handle(), NamespaceDir: h.nsDir, VTEP: h.vtep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Close()
		if err := d.CollectOrphans(nil, nil); err != nil {
			t.Errorf("removing the driver's namespaces: %v", err)
		}
	})
	return d
}

// createNet creates network nid with VNI vni on subnet (gateway .1).
func (h *testHost) createNet(t testing.TB, nid string, vni int, subnet string) {
	t.Helper()
	if err := h.d.CreateNetwork(nid, vniOpts(fmt.Sprint(vni)), v4Data(t, subnet), nil); err != nil {
		t.Fatalf("CreateNetwork %s (VNI %d) on %s: %v", nid, vni, h.vtep, err)
	}
}

// container is an endpoint joined to a sandbox of its own.
type container struct {
	eid  string
	ns   *osl.Namespace
	addr *net.IPNet
	mac  net.HardwareAddr
	ji   *drivertest.JoinInfo
}

// joinInfo returns a JoinInfo for the interface ifName in sb that
// refuses static routes: an overlay network reaches only its own subnet,
// and its driver must report none.
func joinInfo(sb *osl.Namespace, ifName string) *drivertest.JoinInfo {
	return &drivertest.JoinInfo{NS: sb, IfName: ifName, RefuseStaticRoutes: true}
}

// join creates endpoint eid with addr on nid and joins it to a new
// sandbox as eth0, configured as the controller would
// (drivertest.JoinNew), with a JoinInfo that refuses static routes.
func (h *testHost) join(t testing.TB, nid, eid, addr string) *container {
	t.Helper()
	sb, info, ji := drivertest.JoinNew(t, h.d, nid, eid, addr, joinInfo(nil, ""))
	return &container{eid: eid, ns: sb, addr: info.Addr, mac: info.MAC, ji: ji}
}

// peer is c as a peer on host h.
func (c *container) peer(h *testHost) Peer {
	return Peer{EndpointID: c.eid, IP: c.addr.IP, MAC: c.mac, VTEP: h.vtep}
}

// addPeers has every host learn the containers of the others.
func addPeers(t testing.TB, nid string, hosts []*testHost, ctrs []*container) {
	t.Helper()
	for _, h := range hosts {
		for i, c := range ctrs {
			if err := h.d.AddPeer(nid, c.peer(hosts[i])); err != nil {
				t.Fatalf("AddPeer %s on %s: %v", c.eid, h.vtep, err)
			}
		}
	}
}

// tcpCheck has from connect to a TCP server in to and read its greeting.
func tcpCheck(t testing.TB, from, to *container) error {
	t.Helper()
	msg := "hello from " + to.addr.IP.String()
	addr := drivertest.ListenTCP(t, to.ns, net.JoinHostPort(to.addr.IP.String(), "0"), msg)
	// Beyond a SYN retransmission (1 s): a new bridge port forwards
	// only once the kernel's link watcher has seen its carrier, which
	// waits for the rtnl lock, held long by the clean-up of the
	// namespaces an earlier test destroyed.
	got, err := drivertest.DialTCP(from.ns, addr, 5*time.Second)
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("got %q from %s, want %q", got, addr, msg)
	}
	return nil
}

// udpCheck has from send a datagram to an echo server in to and read
// the echo.
func udpCheck(t testing.TB, from, to *container) error {
	t.Helper()
	addr := drivertest.ListenUDPEcho(t, to.ns, net.JoinHostPort(to.addr.IP.String(), "0"))
	return drivertest.UDPEcho(from.ns, addr, "ping "+from.addr.IP.String())
}

// v4Data is the IPAM data of an IPv4 subnet with gateway .1.
func v4Data(t testing.TB, subnets ...string) []driverapi.IPAMData {
	t.Helper()
	var out []driverapi.IPAMData
	for _, s := range subnets {
		_, p, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		gw := make(net.IP, len(p.IP))
		copy(gw, p.IP)
		gw[len(gw)-1]++
		out = append(out, driverapi.IPAMData{Pool: p, Gateway: &net.IPNet{IP: gw, Mask: p.Mask}})
	}
	return out
}

// vniOpts returns CreateNetwork's options with the VNI list and the
// driver options kv (key, value, ...).
func vniOpts(vnis string, kv ...string) map[string]interface{} {
	return drivertest.GenericData(append([]string{VXLANIDListOption, vnis}, kv...)...)
}

// snapshot describes the kernel objects and files of a host, to compare
// before and after an operation that must leave nothing.
func (h *testHost) snapshot(t testing.TB) string {
	t.Helper()
	links := drivertest.LinkNames(t, h.ns.Handle())
	entries, _ := os.ReadDir(h.nsDir)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	return "links: " + links + "; namespaces: " + strings.Join(files, " ")
}

// nsLinks lists the links of the namespace of network nid on h, by name,
// as "name/type".
func (h *testHost) nsLinks(t testing.TB, nid string) map[string]netlink.Link {
	t.Helper()
	ns, err := osl.OpenNamespace(filepath.Join(h.nsDir, nid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	links, err := osl.Dump(ns.Handle().LinkList)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]netlink.Link{}
	for _, l := range links {
		out[l.Attrs().Name] = l
	}
	return out
}
