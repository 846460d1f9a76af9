package firewall

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/types"
)

func port(proto types.Protocol, host string, hostPort uint16, ctr string, ctrPort uint16) PortRule {
	return PortRule{Proto: proto, HostIP: netip.MustParseAddr(host), HostPort: hostPort,
		ContainerIP: netip.MustParseAddr(ctr), ContainerPort: ctrPort}
}

var samplePorts = []PortRule{
	port(types.TCP, "0.0.0.0", 8080, "172.18.0.2", 80),
	port(types.UDP, "0.0.0.0", 8080, "172.18.0.2", 80),
	port(types.SCTP, "0.0.0.0", 9000, "172.18.0.2", 9000),
	port(types.TCP, "192.0.2.1", 8443, "172.18.0.3", 443),
	port(types.TCP, "::", 8080, "fd00:1::2", 80),
	port(types.UDP, "2001:db8::1", 5353, "fd00:1::3", 53),
}

func mustAddPorts(t testing.TB, f *Firewall, rules ...PortRule) {
	t.Helper()
	if err := f.AddPorts(rules); err != nil {
		t.Fatalf("AddPorts: %v", err)
	}
}

func TestPortsGolden(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault, netDual)
	mustAddPorts(t, f, samplePorts...)
	checkGolden(t, "ports", dump(t))
}

func TestPortsAddDelete(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	empty := dump(t)
	mustAddPorts(t, f, samplePorts...)
	full := dump(t)
	// Adding the same again changes nothing and is not an error.
	mustAddPorts(t, f, samplePorts[0], samplePorts[3])
	if got := dump(t); got != full {
		t.Errorf("re-adding published ports changed the table:\n%s\nwant:\n%s", got, full)
	}
	if got := f.Ports(); len(got) != len(samplePorts) {
		t.Errorf("Ports() = %v, want %d rules", got, len(samplePorts))
	}
	// Deleting one that is published elsewhere leaves it.
	other := samplePorts[0]
	other.ContainerIP = netip.MustParseAddr("172.18.0.9")
	if err := f.DeletePorts([]PortRule{other}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != full {
		t.Errorf("deleting a rule published to another container changed the table")
	}
	if err := f.DeletePorts(samplePorts); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != empty {
		t.Errorf("after DeletePorts:\n%s\nwant:\n%s", got, empty)
	}
	if err := f.DeletePorts(samplePorts); err != nil {
		t.Errorf("deleting unpublished ports: %v", err)
	}
}

func TestPortsConflictInstallsNothing(t *testing.T) {
	f := newFirewall(t)
	mustAddPorts(t, f, samplePorts[0])
	before := dump(t)
	taken := samplePorts[0]
	taken.ContainerIP = netip.MustParseAddr("172.18.0.7")
	err := f.AddPorts([]PortRule{samplePorts[1], taken})
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Fatalf("AddPorts of a taken host port: %v (%T), want a ForbiddenError", err, err)
	}
	if !strings.Contains(err.Error(), "8080/tcp") {
		t.Errorf("error does not name the port: %v", err)
	}
	if got := dump(t); got != before {
		t.Errorf("a refused batch changed the table:\n%s\nwant:\n%s", got, before)
	}
	// Two rules of one call for one host port.
	err = f.AddPorts([]PortRule{samplePorts[2], func() PortRule { r := samplePorts[2]; r.ContainerPort = 1; return r }()})
	if _, ok := err.(types.BadRequestError); !ok {
		t.Errorf("AddPorts with one host port twice: %v (%T), want BadRequestError", err, err)
	}
}

func TestPortRuleCheck(t *testing.T) {
	bad := []PortRule{
		port(types.ICMP, "0.0.0.0", 1, "10.0.0.2", 1),
		port(types.TCP, "0.0.0.0", 0, "10.0.0.2", 1),
		port(types.TCP, "0.0.0.0", 1, "10.0.0.2", 0),
		port(types.TCP, "::", 1, "10.0.0.2", 1),
		port(types.TCP, "0.0.0.0", 1, "0.0.0.0", 1),
		port(types.TCP, "::ffff:10.0.0.1", 1, "::ffff:10.0.0.2", 1),
		{Proto: types.TCP, HostPort: 1, ContainerPort: 1},
	}
	for _, r := range bad {
		if err := r.check(); !types.IsBadRequest(err) {
			t.Errorf("check(%v) = %v, want an invalid-parameter error", r, err)
		}
	}
	for _, r := range samplePorts {
		if err := r.check(); err != nil {
			t.Errorf("check(%v) = %v", r, err)
		}
		m := map[bool]string{true: mapPorts4, false: mapPorts6}[r.HostIP.Is4()]
		if r.HostIP.IsUnspecified() {
			m += "any"
		}
		got, err := portRuleOf(m, r.element())
		if err != nil || got != r {
			t.Errorf("portRuleOf(element(%v)) = %v, %v", r, got, err)
		}
	}
}

func TestPortsSurviveRestartAndReconcile(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault, netDual)
	mustAddPorts(t, f, samplePorts...)
	full := dump(t)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := openFirewall(t)
	if got := g.Ports(); !slices.Equal(got, sortedPorts(samplePorts)) {
		t.Fatalf("restarted firewall learned ports %v, want %v", got, sortedPorts(samplePorts))
	}
	// Reconciling the networks keeps the ports in the same batch.
	if err := g.Reconcile([]NetworkRules{netDefault, netDual}); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != full {
		t.Errorf("Reconcile lost published ports:\n%s\nwant:\n%s", got, full)
	}
	// ReconcilePorts drops what nobody recorded and adds what is missing.
	extra := port(types.TCP, "0.0.0.0", 7000, "172.18.0.4", 7000)
	keep := append(slices.Clone(samplePorts[2:]), extra)
	if err := g.ReconcilePorts(keep); err != nil {
		t.Fatal(err)
	}
	if got := g.Ports(); !slices.Equal(got, sortedPorts(keep)) {
		t.Errorf("after ReconcilePorts: %v, want %v", got, sortedPorts(keep))
	}
	listing := dump(t)
	if strings.Contains(listing, "172.18.0.2 . 80") {
		t.Errorf("a port nobody recorded is still published:\n%s", listing)
	}
	if !strings.Contains(listing, "tcp . 7000 : 172.18.0.4 . 7000") {
		t.Errorf("a recorded port was not published:\n%s", listing)
	}
}

func sortedPorts(rules []PortRule) []PortRule {
	out := slices.Clone(rules)
	slices.SortFunc(out, comparePortRules)
	return out
}

// portLab is a host (the test's namespace) with a bridge, two containers on
// it and an outside machine on the far side of a veth:
//
//	outside 192.0.2.2 --- 192.0.2.1 host 10.77.0.1 [brp0] --- c1 10.77.0.2, c2 10.77.0.3
type portLab struct {
	outside, c1, c2 *os.File
}

func newPortLab(t *testing.T) *portLab {
	t.Helper()
	l := &portLab{outside: newNetNS(t), c1: newNetNS(t), c2: newNetNS(t)}
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "brp0"}}
	must(h.LinkAdd(br), "bridge")
	t.Cleanup(func() { _ = h.LinkDel(br) })
	must(h.AddrAdd(br, mustAddr("10.77.0.1/24")), "bridge address")
	must(h.AddrAdd(br, &netlink.Addr{IPNet: mustAddr("fd00:77::1/64").IPNet, Flags: unix.IFA_F_NODAD}), "bridge IPv6 address")
	must(os.WriteFile("/proc/sys/net/ipv6/conf/brp0/accept_dad", []byte("0"), 0), "bridge DAD")
	must(h.LinkSetUp(br), "bridge up")
	for _, s := range []struct{ key, value string }{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/brp0/route_localnet", "1"},
		{"net/ipv6/conf/all/forwarding", "1"},
	} {
		must(os.WriteFile("/proc/sys/"+s.key, []byte(s.value), 0), s.key)
	}
	plug := func(ns *os.File, hostSide, addr, gw, addr6, gw6 string, master netlink.Link) {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostSide}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd()))}
		must(h.LinkAdd(v), "veth "+hostSide)
		t.Cleanup(func() { _ = h.LinkDel(v) })
		if master != nil {
			must(h.LinkSetMaster(v, master), "master")
		}
		must(h.LinkSetUp(v), "up "+hostSide)
		in, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
		must(err, "handle")
		defer in.Close()
		eth, err := in.LinkByName("eth0")
		must(err, "eth0")
		must(in.AddrAdd(eth, mustAddr(addr)), "address "+addr)
		must(in.LinkSetUp(eth), "eth0 up")
		lo, err := in.LinkByName("lo")
		must(err, "lo")
		must(in.LinkSetUp(lo), "lo up")
		must(in.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP(gw)}), "default route")
		must(in.AddrAdd(eth, &netlink.Addr{IPNet: mustAddr(addr6).IPNet, Flags: unix.IFA_F_NODAD}), "address "+addr6)
		must(in.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP(gw6)}), "default IPv6 route")
	}
	plug(l.c1, "vc1", "10.77.0.2/24", "10.77.0.1", "fd00:77::2/64", "fd00:77::1", br)
	plug(l.c2, "vc2", "10.77.0.3/24", "10.77.0.1", "fd00:77::3/64", "fd00:77::1", br)
	plug(l.outside, "vout", "192.0.2.2/24", "192.0.2.1", "2001:db8::2/64", "2001:db8::1", nil)
	out, err := h.LinkByName("vout")
	must(err, "vout")
	must(h.AddrAdd(out, mustAddr("192.0.2.1/24")), "host address")
	must(h.AddrAdd(out, &netlink.Addr{IPNet: mustAddr("2001:db8::1/64").IPNet, Flags: unix.IFA_F_NODAD}), "host IPv6 address")
	return l
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// inNS runs fn on a thread in ns (nil: the test's namespace).
func inNS(ns *os.File, fn func() error) error {
	if ns == nil {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(ns.Fd())); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return err // the thread stays locked and dies with its goroutine
	}
	runtime.UnlockOSThread()
	return ferr
}

// serve starts, in ns, a TCP and a UDP server on port that answer each
// connection or datagram with the address it came from.
func serve(t *testing.T, ns *os.File, port int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNS(ns, func() (err error) {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close(); _ = pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().String())
			_ = c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(from.String()), from)
		}
	}()
}

// ask connects from ns to addr over network ("tcp" or "udp") and returns
// what the server said: the client address it saw.
func ask(ns *os.File, network, addr string) (string, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if network == "udp" {
		if _, err := c.Write([]byte("hi")); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	host, _, _ := net.SplitHostPort(string(buf[:n]))
	return host, nil
}

func TestPortsTraffic(t *testing.T) {
	f := newFirewall(t)
	l := newPortLab(t)
	mustAdd(t, f, NetworkRules{Bridge: "brp0", Subnets: []netip.Prefix{pfx("10.77.0.0/24")}, ICC: true, Masquerade: true})
	serve(t, l.c1, 80)
	mustAddPorts(t, f,
		port(types.TCP, "0.0.0.0", 8080, "10.77.0.2", 80),
		port(types.UDP, "0.0.0.0", 8080, "10.77.0.2", 80),
		port(types.TCP, "192.0.2.1", 8081, "10.77.0.2", 80),
		port(types.TCP, "::", 8080, "fd00:77::2", 80),
		port(types.UDP, "2001:db8::1", 8082, "fd00:77::2", 80),
		port(types.UDP, "::", 8083, "fd00:77::2", 80),
		port(types.TCP, "2001:db8::1", 8084, "fd00:77::2", 80),
	)
	tests := []struct {
		name, network, addr string
		from                *os.File
		want                string // the client address the server sees
	}{
		{"outside tcp", "tcp", "192.0.2.1:8080", l.outside, "192.0.2.2"},
		{"outside udp", "udp", "192.0.2.1:8080", l.outside, "192.0.2.2"},
		{"outside to the bound address", "tcp", "192.0.2.1:8081", l.outside, "192.0.2.2"},
		{"outside tcp6", "tcp", "[2001:db8::1]:8080", l.outside, "2001:db8::2"},
		{"outside udp6 to the bound address", "udp", "[2001:db8::1]:8082", l.outside, "2001:db8::2"},
		{"outside udp6", "udp", "[2001:db8::1]:8083", l.outside, "2001:db8::2"},
		{"outside tcp6 to the bound address", "tcp", "[2001:db8::1]:8084", l.outside, "2001:db8::2"},
		{"host on its own address", "tcp", "192.0.2.1:8080", nil, "192.0.2.1"},
		{"host on loopback", "tcp", "127.0.0.1:8080", nil, "10.77.0.1"},
		{"hairpin from a sibling", "tcp", "192.0.2.1:8080", l.c2, "10.77.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ask(tt.from, tt.network, tt.addr)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.network, tt.addr, err)
			}
			if got != tt.want {
				t.Errorf("server saw the client as %s, want %s", got, tt.want)
			}
		})
	}
	// Not published: the bound-address port on another address, and a
	// port after it is unpublished.
	if got, err := ask(l.outside, "tcp", "10.77.0.1:8081"); err == nil {
		t.Errorf("8081 answered on an address it is not published on (server saw %s)", got)
	}
	if err := f.DeletePorts([]PortRule{port(types.TCP, "0.0.0.0", 8080, "10.77.0.2", 80)}); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(l.outside, "tcp", "192.0.2.1:8080"); err == nil {
		t.Errorf("8080 still answers after DeletePorts (server saw %s)", got)
	}
}

// A port an earlier run left published to another container is replaced
// by a restore's AddPorts, until ReconcilePorts; a port this run published
// still refuses a second destination.
func TestPortsInheritedAreReplaced(t *testing.T) {
	f := newFirewall(t)
	old := port(types.TCP, "0.0.0.0", 8080, "172.18.0.9", 80)
	mustAddPorts(t, f, old)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := openFirewall(t)
	restored := port(types.TCP, "0.0.0.0", 8080, "172.18.0.2", 80)
	mustAddPorts(t, g, restored)
	if got := g.Ports(); !slices.Equal(got, []PortRule{restored}) {
		t.Fatalf("after the restore's AddPorts: %v, want %v", got, restored)
	}
	if listing := dump(t); strings.Contains(listing, "172.18.0.9") {
		t.Errorf("the earlier run's element is still there:\n%s", listing)
	}
	other := port(types.TCP, "0.0.0.0", 8080, "172.18.0.3", 80)
	if err := g.AddPorts([]PortRule{other}); !types.IsForbidden(err) {
		t.Errorf("publishing a port this run published to another container: %v, want Forbidden", err)
	}
}
