package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// serveOn starts, in ns, a TCP and a UDP server on port of every address
// that answer with the address the client came from.
func serveOn(t testing.TB, ns *osl.Namespace, port uint16) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	addr := ":" + strconv.Itoa(int(port))
	mustf(t, ns.Do(func() (err error) {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", addr)
		return err
	}), "servers on %s", addr)
	t.Cleanup(func() { _ = ln.Close(); _ = pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = io.WriteString(c, host)
			_ = c.Close()
		}
	}()
	go func() {
		b := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			_, _ = pc.WriteTo([]byte(host), from)
		}
	}()
}

// whoAmI connects from ns to addr over network and returns the client
// address the server saw.
func whoAmI(ns *osl.Namespace, network, addr string) (string, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if network == "udp" {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b[:n]), nil
}

func mustSee(t *testing.T, ns *osl.Namespace, network, addr, want string) {
	t.Helper()
	got, err := whoAmI(ns, network, addr)
	if err != nil {
		t.Fatalf("%s to %s: %v", network, addr, err)
	}
	if got != want {
		t.Errorf("%s to %s: the server saw the client as %s, want %s", network, addr, got, want)
	}
}

func mustNotAnswer(t *testing.T, ns *osl.Namespace, network, addr string) {
	t.Helper()
	if got, err := whoAmI(ns, network, addr); err == nil {
		t.Errorf("%s to %s answered (server saw %s); want nothing", network, addr, got)
	}
}

// publishedPorts returns the host ports of the endpoint's published
// bindings, by "proto/containerport/hostaddress".
func publishedPorts(t *testing.T, ep Endpoint) map[string]uint16 {
	t.Helper()
	info, err := ep.DriverInfo()
	mustf(t, err, "DriverInfo")
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	out := map[string]uint16{}
	for _, b := range pbs {
		out[fmt.Sprintf("%s/%d/%s", b.Proto, b.Port, b.HostIP)] = b.HostPort
	}
	return out
}

func hostPort(addr string, port uint16) string {
	return net.JoinHostPort(addr, strconv.Itoa(int(port)))
}

// A container publishes ports as its users do, with OptionPortMapping, and
// is reached from an outside host (its address intact), from the host on
// its own address and on 127.0.0.1, and from a sibling through the host's
// address; the bindings are in DriverInfo, come back with the same host
// ports after a restart, and go at leave.
func TestPublishPorts(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	c := e.start()
	n := dualStackNetwork(t, c, "pub", "10.40.0.0/24", "fd00:40::/64")
	bindings := []types.PortBinding{
		{Proto: types.TCP, Port: 80},                                       // ephemeral, both families
		{Proto: types.UDP, Port: 53, HostPort: 15353},                      // fixed
		{Proto: types.TCP, Port: 443, HostPort: 18440, HostPortEnd: 18449}, // range
		{Proto: types.TCP, Port: 80, HostIP: net.ParseIP("192.0.2.1"), HostPort: 18080},
		{Proto: types.SCTP, Port: 9000, HostPort: 19000}, // rules even where the kernel has no SCTP
	}
	ep, sb := joined(t, c, n, "web", OptionPortMapping(bindings))
	ns := nsOf(t, sb)
	for _, p := range []uint16{80, 53, 443} {
		serveOn(t, ns, p)
	}
	ports := publishedPorts(t, ep)
	eph4, eph6 := ports["tcp/80/0.0.0.0"], ports["tcp/80/::"]
	if eph4 == 0 || eph4 != eph6 || ports["udp/53/0.0.0.0"] != 15353 || ports["udp/53/::"] != 15353 || ports["tcp/80/192.0.2.1"] != 18080 {
		t.Fatalf("published ports %v: want one ephemeral port for tcp/80 on both families and 15353 for udp/53", ports)
	}
	if r := ports["tcp/443/0.0.0.0"]; r < 18440 || r > 18449 {
		t.Errorf("tcp/443 got host port %d, want one of 18440-18449", r)
	}
	if listing := e.nft(); !strings.Contains(listing, "sctp . 19000 : 10.40.0.2 . 9000") {
		t.Errorf("no SCTP element for host port 19000:\n%s", listing)
	}
	out := l.left // 192.0.2.2 / fd00:2::2, on the far side of the host's 192.0.2.1
	t.Run("outside", func(t *testing.T) {
		mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", eph4), "192.0.2.2")
		mustSee(t, out.ns, "tcp", hostPort("fd00:2::1", eph6), "fd00:2::2")
		mustSee(t, out.ns, "udp", hostPort("192.0.2.1", 15353), "192.0.2.2")
		mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", ports["tcp/443/0.0.0.0"]), "192.0.2.2")
		mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", 18080), "192.0.2.2")
	})
	t.Run("host", func(t *testing.T) {
		mustSee(t, e.host, "tcp", hostPort("192.0.2.1", eph4), "192.0.2.1")
		mustSee(t, e.host, "tcp", hostPort("127.0.0.1", eph4), "10.40.0.1")
		// Bound to 192.0.2.1 only.
		mustNotAnswer(t, e.host, "tcp", hostPort("127.0.0.1", 18080))
	})
	t.Run("hairpin", func(t *testing.T) {
		_, sb2 := joined(t, c, n, "client")
		mustSee(t, nsOf(t, sb2), "tcp", hostPort("192.0.2.1", eph4), "10.40.0.1")
	})

	// The host ports are held: another program cannot take them.
	if err := e.host.Do(func() error {
		ln, err := net.Listen("tcp4", hostPort("0.0.0.0", eph4))
		if err == nil {
			ln.Close()
			return fmt.Errorf("listening on published port %d succeeded", eph4)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Restart: the same host ports, still answering.
	c.Stop()
	c = e.start()
	ep2, err := c.NetworkByName("pub")
	mustf(t, err, "network after restart")
	rep, err := ep2.EndpointByName("web")
	mustf(t, err, "endpoint after restart")
	if got := publishedPorts(t, rep); !mapsEqual(got, ports) {
		t.Fatalf("after restart published ports are %v, want %v", got, ports)
	}
	mustSee(t, out.ns, "tcp", hostPort("192.0.2.1", eph4), "192.0.2.2")
	mustSee(t, out.ns, "udp", hostPort("192.0.2.1", 15353), "192.0.2.2")
	if n := conntrackEntries(t, e, eph4, 15353); n == 0 {
		t.Fatalf("no conntrack entry for published ports %d and 15353 after traffic", eph4)
	}

	// Leave: nothing is published any more and the ports are free.
	rsb, err := c.SandboxByID(sb.ID())
	mustf(t, err, "sandbox after restart")
	mustf(t, rep.Leave(rsb), "Leave")
	if got := publishedPorts(t, rep); len(got) != 0 {
		t.Errorf("after Leave DriverInfo still has ports %v", got)
	}
	listing := e.nft()
	for _, p := range ports {
		if strings.Contains(listing, ". "+strconv.Itoa(int(p))+" :") {
			t.Errorf("port %d still in the table after Leave:\n%s", p, listing)
		}
	}
	// The entries are flushed in the background, at once.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := conntrackEntries(t, e, eph4, 15353)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d conntrack entries of unpublished ports %d and 15353 are left", n, eph4)
			break
		}
	}
	mustNotAnswer(t, out.ns, "tcp", hostPort("192.0.2.1", eph4))
	mustf(t, e.host.Do(func() error {
		ln, err := net.Listen("tcp4", hostPort("0.0.0.0", eph4))
		if err == nil {
			ln.Close()
		}
		return err
	}), "binding a port released at leave")
}

// conntrackEntries counts the conntrack entries of the host's namespace
// whose original destination port is one of ports.
func conntrackEntries(t *testing.T, e *testEnv, ports ...uint16) int {
	t.Helper()
	n := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := e.host.Handle().ConntrackTableList(netlink.ConntrackTable, fam)
		mustf(t, err, "listing conntrack entries")
		for _, f := range flows {
			if slices.Contains(ports, f.Forward.DstPort) {
				n++
			}
		}
	}
	return n
}

// An internal network publishes nothing: the join succeeds and no port is
// programmed or held.
func TestPublishOnInternalNetwork(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "inside", NetworkOptionInternalNetwork(),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.42.0.0/24"}}, nil, nil))
	mustf(t, err, "internal network")
	ep, _ := joined(t, c, n, "db", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 5432, HostPort: 15432}}))
	if got := publishedPorts(t, ep); len(got) != 0 {
		t.Errorf("endpoint of an internal network published %v", got)
	}
	if listing := e.nft(); strings.Contains(listing, "15432") {
		t.Errorf("internal network's port is in the table:\n%s", listing)
	}
	mustf(t, e.host.Do(func() error {
		ln, err := net.Listen("tcp4", "0.0.0.0:15432")
		if err == nil {
			ln.Close()
		}
		return err
	}), "host port 15432 must be free")
}

func mapsEqual(a, b map[string]uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A host port another program holds, or another container publishes, is
// refused with an error naming it, and the join leaves nothing behind; the
// container that has the port keeps answering.
func TestPublishPortConflicts(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	c := e.start()
	n, err := c.NewNetwork("bridge", "pub", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.41.0.0/24"}}, nil, nil))
	mustf(t, err, "network")

	// Another program on the host.
	var held net.Listener
	mustf(t, e.host.Do(func() (err error) { held, err = net.Listen("tcp4", "0.0.0.0:18500"); return err }), "other program")
	defer held.Close()
	ep, err := n.CreateEndpoint("a")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr-a", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18500}}))
	mustf(t, err, "sandbox")
	before := e.snapshot(c)
	err = ep.Join(sb)
	if err == nil {
		t.Fatal("join publishing a port another program holds succeeded")
	}
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Errorf("error %v (%T) is not a ForbiddenError", err, err)
	}
	if !strings.Contains(err.Error(), "18500/tcp") {
		t.Errorf("error does not name the port: %v", err)
	}
	e.requireSame(before, e.snapshot(c), "a join refused for a port in use")

	// Two containers, one host port.
	epB, sbB := joined(t, c, n, "b", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18501}}))
	serveOn(t, nsOf(t, sbB), 80)
	_ = epB
	epC, err := n.CreateEndpoint("c")
	mustf(t, err, "endpoint c")
	sbC, err := c.NewSandbox("ctr-c", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18501}}))
	mustf(t, err, "sandbox c")
	before = e.snapshot(c)
	err = epC.Join(sbC)
	if err == nil || !strings.Contains(err.Error(), "18501/tcp") {
		t.Fatalf("second container on host port 18501: %v, want an error naming 18501/tcp", err)
	}
	e.requireSame(before, e.snapshot(c), "a join refused for a port another container publishes")
	mustSee(t, l.left.ns, "tcp", "192.0.2.1:18501", "192.0.2.2")
}

// A sandbox whose namespace comes later (SetKey, as runc's hook gives it)
// publishes its ports when the namespace arrives, and they answer.
func TestPublishPortsExternalKey(t *testing.T) {
	l := newForwardingLab(t)
	e := l.e
	c := e.start()
	n, err := c.NewNetwork("bridge", "pub", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.43.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ext")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey(),
		OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18600}}))
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join before SetKey")
	if got := publishedPorts(t, ep); len(got) != 0 {
		t.Errorf("ports published before the sandbox has a namespace: %v", got)
	}
	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey")
	if got := publishedPorts(t, ep); got["tcp/80/0.0.0.0"] != 18600 {
		t.Fatalf("after SetKey published ports are %v, want tcp/80 on 18600", got)
	}
	ns, err := osl.OpenNamespace(key)
	mustf(t, err, "container namespace")
	defer ns.Close()
	serveOn(t, ns, 80)
	mustSee(t, l.left.ns, "tcp", "192.0.2.1:18600", "192.0.2.2")
	// The record has them: a restart publishes the same.
	c.Stop()
	c = e.start()
	rn, err := c.NetworkByName("pub")
	mustf(t, err, "network after restart")
	rep, err := rn.EndpointByName("ext")
	mustf(t, err, "endpoint after restart")
	if got := publishedPorts(t, rep); got["tcp/80/0.0.0.0"] != 18600 {
		t.Errorf("after restart published ports are %v", got)
	}
}

// A port another program took while the controller was down cannot be
// published again at restart: the endpoint then says it publishes nothing
// (DriverInfo and its record), instead of reporting ports that do not
// answer.
func TestPublishRestartPortTaken(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "pub", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.44.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, _ := joined(t, c, n, "web", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18700}}))
	if got := publishedPorts(t, ep); got["tcp/80/0.0.0.0"] != 18700 {
		t.Fatalf("published %v, want tcp/80 on 18700", got)
	}
	c.Stop()
	var held net.Listener
	mustf(t, e.host.Do(func() (err error) { held, err = net.Listen("tcp4", "0.0.0.0:18700"); return err }), "another program takes 18700")
	defer held.Close()
	c = e.start()
	rn, err := c.NetworkByName("pub")
	mustf(t, err, "network after restart")
	rep, err := rn.EndpointByName("web")
	mustf(t, err, "endpoint after restart")
	if got := publishedPorts(t, rep); len(got) != 0 {
		t.Errorf("after a restart that could not publish, DriverInfo says %v", got)
	}
	if listing := e.nft(); strings.Contains(listing, "18700") {
		t.Errorf("port 18700 is in the table although its host port could not be held:\n%s", listing)
	}
	var rec endpointRecord
	mustf(t, c.state.View(func(tx *datastore.Tx) error { return tx.Get(kindEndpoint, rep.ID(), &rec) }), "endpoint record")
	if rec.Join == nil || len(rec.Join.Published) != 0 {
		t.Errorf("endpoint record after the failed re-publish: %+v", rec.Join)
	}
}

// A recorded published binding is asked for again only if a requested
// binding allows it: a forged record cannot publish port 22.
func TestAllowedBy(t *testing.T) {
	req := []types.PortBinding{
		{Proto: types.TCP, Port: 80},
		{Proto: types.UDP, Port: 53, HostPort: 5300, HostPortEnd: 5310},
		{Proto: types.TCP, Port: 443, HostIP: net.ParseIP("192.0.2.1"), HostPort: 8443},
	}
	for _, tc := range []struct {
		b    types.PortBinding
		want bool
	}{
		{types.PortBinding{Proto: types.TCP, Port: 80, HostIP: net.IPv4zero, HostPort: 33000}, true},
		{types.PortBinding{Proto: types.TCP, Port: 80, HostIP: net.IPv6zero, HostPort: 33000}, true},
		{types.PortBinding{Proto: types.UDP, Port: 80, HostIP: net.IPv4zero, HostPort: 33000}, false},
		{types.PortBinding{Proto: types.TCP, Port: 22, HostIP: net.IPv4zero, HostPort: 22}, false},
		{types.PortBinding{Proto: types.UDP, Port: 53, HostIP: net.IPv4zero, HostPort: 5305}, true},
		{types.PortBinding{Proto: types.UDP, Port: 53, HostIP: net.IPv4zero, HostPort: 5311}, false},
		{types.PortBinding{Proto: types.TCP, Port: 443, HostIP: net.ParseIP("192.0.2.1"), HostPort: 8443}, true},
		{types.PortBinding{Proto: types.TCP, Port: 443, HostIP: net.ParseIP("127.0.0.1"), HostPort: 8443}, false},
	} {
		if got := allowedBy(tc.b, req); got != tc.want {
			t.Errorf("allowedBy(%s) = %v, want %v", tc.b.String(), got, tc.want)
		}
	}
}

// An ephemeral host port another program took while the controller was
// down: the restart publishes the binding again on another port, as a new
// join would, instead of nothing.
func TestPublishRestartEphemeralTaken(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "pub", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.45.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, _ := joined(t, c, n, "web", OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
	first := publishedPorts(t, ep)["tcp/80/0.0.0.0"]
	if first == 0 {
		t.Fatal("no ephemeral port published")
	}
	c.Stop()
	var held net.Listener
	mustf(t, e.host.Do(func() (err error) { held, err = net.Listen("tcp4", hostPort("0.0.0.0", first)); return err }), "another program takes %d", first)
	defer held.Close()
	c = e.start()
	rn, err := c.NetworkByName("pub")
	mustf(t, err, "network after restart")
	rep, err := rn.EndpointByName("web")
	mustf(t, err, "endpoint after restart")
	got := publishedPorts(t, rep)["tcp/80/0.0.0.0"]
	if got == 0 || got == first {
		t.Errorf("after the restart tcp/80 publishes host port %d; want a new ephemeral port, not %d", got, first)
	}
}
