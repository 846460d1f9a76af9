package ipvlan

import (
	"fmt"
	"io"
	"log/slog"
	"net"
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

// testDriver returns a driver on the test namespace.
func testDriver(t testing.TB) (*Driver, *osl.Namespace) {
	t.Helper()
	testutil.RequireRoot(t)
	host, err := osl.CurrentNamespace()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close() })
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := New(Config{Logger: logger, Host: host.Handle()})
	if err != nil {
		t.Fatal(err)
	}
	return d, host
}

// lanServer is the "LAN": a veth pair whose end lan0 stays in the test
// namespace as the parent, the other end in a namespace of its own with
// 192.168.90.1/24 and a TCP server answering "lan".
type lanServer struct {
	ns   *osl.Namespace
	addr string // host:port of the server
}

// newLAN builds the LAN with parent name parent.
func newLAN(t testing.TB, host *osl.Namespace, parent string) *lanServer {
	t.Helper()
	ns := newSandbox(t)
	h := host.Handle()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: parent}, PeerName: "lanpeer", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("creating the LAN veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := h.LinkByName(parent); err == nil {
			_ = h.LinkDel(l)
		}
	})
	if err := h.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	if err := ns.ConfigureInterface(osl.IfaceConfig{Name: "lanpeer", Addr: cidr(t, "192.168.90.1/24")}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "192.168.90.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go serve(ln, "lan")
	return &lanServer{ns: ns, addr: ln.Addr().String()}
}

// serve answers every connection with msg.
func serve(ln net.Listener, msg string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, msg)
		_ = c.Close()
	}
}

// listenIn starts a server answering msg in ns on addr.
func listenIn(t testing.TB, ns *osl.Namespace, addr, msg string) string {
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
	go serve(ln, msg)
	return ln.Addr().String()
}

// dialFrom connects from ns to addr and returns what the server said.
func dialFrom(ns *osl.Namespace, addr string) (string, error) {
	var got string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

// joinInfo is a driverapi.JoinInfo of a real sandbox namespace.
type joinInfo struct {
	ns       *osl.Namespace
	ifName   string
	created  bool
	moved    string
	gw4, gw6 net.IP
	noGW     bool
	routes   []route
}

// route is a static route a Join reported.
type route struct {
	dst     string
	typ     int
	nextHop net.IP
}

func (j *joinInfo) InterfaceName() driverapi.InterfaceNameInfo { return j }
func (j *joinInfo) Sandbox() driverapi.SandboxInfo             { return j }
func (j *joinInfo) NetNSFd() int {
	if j.ns == nil {
		return -1
	}
	return j.ns.Fd()
}
func (j *joinInfo) IfaceName() string              { return j.ifName }
func (j *joinInfo) SetNames(src, _ string) error   { j.moved = src; return nil }
func (j *joinInfo) SetCreatedInSandbox() error     { j.created = true; return nil }
func (j *joinInfo) SetGateway(ip net.IP) error     { j.gw4 = ip; return nil }
func (j *joinInfo) SetGatewayIPv6(ip net.IP) error { j.gw6 = ip; return nil }
func (j *joinInfo) AddStaticRoute(dst *net.IPNet, typ int, nh net.IP) error {
	j.routes = append(j.routes, route{dst.String(), typ, nh})
	return nil
}
func (j *joinInfo) DisableGatewayService() { j.noGW = true }

// ifInfo is a driverapi.InterfaceInfo.
type ifInfo struct {
	mac          net.HardwareAddr
	addr, addrV6 *net.IPNet
}

func (i *ifInfo) SetMacAddress(mac net.HardwareAddr) error {
	if i.mac != nil {
		return fmt.Errorf("MAC already set")
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

func newSandbox(t testing.TB) *osl.Namespace {
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

func ipamData(t testing.TB, pool, gw string) driverapi.IPAMData {
	t.Helper()
	_, p, err := net.ParseCIDR(pool)
	if err != nil {
		t.Fatal(err)
	}
	d := driverapi.IPAMData{Pool: p}
	if gw != "" {
		d.Gateway = &net.IPNet{IP: net.ParseIP(gw), Mask: p.Mask}
	}
	return d
}

// opts returns CreateNetwork's options with the driver options kv
// (key, value, ...).
func opts(kv ...string) map[string]interface{} {
	gen := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		gen[kv[i]] = kv[i+1]
	}
	return map[string]interface{}{netlabel.GenericData: gen}
}

// lanNetwork creates network nid on parent with mode and flag ("" for
// the default) on 192.168.90.0/24.
func lanNetwork(t testing.TB, d *Driver, nid, parent, mode, flag string) {
	t.Helper()
	kv := []string{ParentOption, parent}
	if mode != "" {
		kv = append(kv, ModeOption, mode)
	}
	if flag != "" {
		kv = append(kv, FlagOption, flag)
	}
	o := opts(kv...)
	v4 := []driverapi.IPAMData{ipamData(t, "192.168.90.0/24", "192.168.90.1")}
	if err := d.CreateNetwork(nid, o, v4, nil); err != nil {
		t.Fatalf("CreateNetwork %s on %s: %v", nid, parent, err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(nid) })
}

// joinNew creates endpoint eid with addr and joins it to a new sandbox as
// eth0, configured as the controller would.
func joinNew(t testing.TB, d *Driver, nid, eid, addr string) (*osl.Namespace, *joinInfo) {
	t.Helper()
	info := &ifInfo{addr: cidr(t, addr)}
	if err := d.CreateEndpoint(nid, eid, info, nil); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	sb := newSandbox(t)
	ji := &joinInfo{ns: sb, ifName: "eth0"}
	if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
		t.Fatalf("Join: %v", err)
	}
	cfg := osl.IfaceConfig{Name: "eth0", Addr: info.addr}
	for _, r := range ji.routes {
		_, dst, _ := net.ParseCIDR(r.dst)
		cfg.Routes = append(cfg.Routes, osl.Route{Dst: dst, Gw: r.nextHop})
	}
	if err := sb.ConfigureInterface(cfg); err != nil {
		t.Fatalf("ConfigureInterface: %v", err)
	}
	return sb, ji
}

// linkNames lists the links of the namespace of h, sorted.
func linkNames(t testing.TB, h *netlink.Handle) string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name+"/"+l.Type())
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}
