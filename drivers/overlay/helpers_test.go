package overlay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/netlabel"
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
	sw := newNamespace(t)
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
	ns := newNamespace(t)
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
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := New(Config{Logger: logger, Host: h.ns.Handle(), NamespaceDir: h.nsDir, VTEP: h.vtep})
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
	ji   *joinInfo
}

// join creates endpoint eid with addr on nid and joins it to a new
// sandbox as eth0, configured as the controller would.
func (h *testHost) join(t testing.TB, nid, eid, addr string) *container {
	t.Helper()
	info := &ifInfo{addr: cidr(t, addr)}
	if err := h.d.CreateEndpoint(nid, eid, info, nil); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	sb := newNamespace(t)
	ji := &joinInfo{ns: sb, ifName: "eth0"}
	if err := h.d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: info.addr}); err != nil {
		t.Fatalf("ConfigureInterface: %v", err)
	}
	return &container{eid: eid, ns: sb, addr: info.addr, mac: info.mac, ji: ji}
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
	addr := listenTCP(t, to.ns, net.JoinHostPort(to.addr.IP.String(), "0"), msg)
	// Beyond a SYN retransmission (1 s): a new bridge port forwards
	// only once the kernel's link watcher has seen its carrier, which
	// waits for the rtnl lock, held long by the clean-up of the
	// namespaces an earlier test destroyed.
	got, err := dialTCP(from.ns, addr, 5*time.Second)
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
	var pc net.PacketConn
	if err := to.ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(to.addr.IP.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	var c net.Conn
	if err := from.ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", pc.LocalAddr().String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("ping " + from.addr.IP.String())
	buf := make([]byte, 2048)
	// UDP is lossy: a few tries.
	for range 5 {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == string(msg) {
			return nil
		}
	}
	return fmt.Errorf("no UDP echo from %s", pc.LocalAddr())
}

// listenTCP starts a server in ns on addr answering msg and returns its
// address.
func listenTCP(t testing.TB, ns *osl.Namespace, addr, msg string) string {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, msg)
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// dialTCP connects from ns to addr and returns what the server said.
func dialTCP(ns *osl.Namespace, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// joinInfo is a driverapi.JoinInfo of a real sandbox namespace.
type joinInfo struct {
	ns       *osl.Namespace
	ifName   string
	created  bool
	moved    string
	gw4, gw6 net.IP
	noGW     bool
}

func (j *joinInfo) InterfaceName() driverapi.InterfaceNameInfo { return j }
func (j *joinInfo) Sandbox() driverapi.SandboxInfo             { return j }
func (j *joinInfo) NetNSFd() int                               { return j.ns.Fd() }
func (j *joinInfo) IfaceName() string                          { return j.ifName }
func (j *joinInfo) SetNames(src, _ string) error               { j.moved = src; return nil }
func (j *joinInfo) SetCreatedInSandbox() error                 { j.created = true; return nil }
func (j *joinInfo) SetGateway(ip net.IP) error                 { j.gw4 = ip; return nil }
func (j *joinInfo) SetGatewayIPv6(ip net.IP) error             { j.gw6 = ip; return nil }
func (j *joinInfo) AddStaticRoute(*net.IPNet, int, net.IP) error {
	return errors.New("no static routes expected")
}
func (j *joinInfo) DisableGatewayService() { j.noGW = true }

// ifInfo is a driverapi.InterfaceInfo.
type ifInfo struct {
	mac          net.HardwareAddr
	addr, addrV6 *net.IPNet
}

func (i *ifInfo) SetMacAddress(mac net.HardwareAddr) error {
	if i.mac != nil {
		return errors.New("MAC already set")
	}
	i.mac = mac
	return nil
}
func (i *ifInfo) SetIPAddress(ip *net.IPNet) error {
	if ip.IP.To4() != nil {
		i.addr = ip
	} else {
		i.addrV6 = ip
	}
	return nil
}
func (i *ifInfo) MacAddress() net.HardwareAddr { return i.mac }
func (i *ifInfo) Address() *net.IPNet          { return i.addr }
func (i *ifInfo) AddressIPv6() *net.IPNet      { return i.addrV6 }

// newNamespace makes a namespace destroyed at cleanup.
func newNamespace(t testing.TB) *osl.Namespace {
	t.Helper()
	ns, err := osl.NewNamespace(filepath.Join(t.TempDir(), "netns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Destroy() })
	return ns
}

func cidr(t testing.TB, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
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
	gen := map[string]string{VXLANIDListOption: vnis}
	for i := 0; i+1 < len(kv); i += 2 {
		gen[kv[i]] = kv[i+1]
	}
	return map[string]interface{}{netlabel.GenericData: gen}
}

// snapshot describes the kernel objects and files of a host, to compare
// before and after an operation that must leave nothing.
func (h *testHost) snapshot(t testing.TB) string {
	t.Helper()
	links, err := osl.Dump(h.ns.Handle().LinkList)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name+"/"+l.Type())
	}
	sort.Strings(names)
	entries, _ := os.ReadDir(h.nsDir)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	return "links: " + strings.Join(names, " ") + "; namespaces: " + strings.Join(files, " ")
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
