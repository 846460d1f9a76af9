package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventually retries check until it returns nil or the deadline passes,
// then fails with its last error. For state that other processes reach
// through the global store.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// udpEcho serves UDP echo on ip in ns; it returns the address.
func udpEcho(t *testing.T, ns *osl.Namespace, ip net.IP) string {
	t.Helper()
	var pc net.PacketConn
	mustf(t, ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0"))
		return err
	}), "UDP listen")
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), b[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpAsk sends "ping" to addr from ns and returns the answer.
func udpAsk(ns *osl.Namespace, addr string) (string, error) {
	var got string
	err := ns.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 64)
		n, err := c.Read(b)
		got = string(b[:n])
		return err
	})
	return got, err
}

// TestOverlayThreeHosts: three hosts (controller processes in namespaces
// of their own, on one underlay) share an etcd. A network created on one
// appears on the others; a container on each reaches the others over TCP
// and UDP, by address and by name (and alias) through its embedded DNS.
func TestOverlayThreeHosts(t *testing.T) {
	etcd := etcdtest.Start(t)
	cl := newCluster(t, 3, etcd.Endpoints()[0], "/test/"+t.Name())
	cl.hosts[0].must(hostReq{Op: "network", Name: "ov", Driver: "overlay", Subnet: "10.220.0.0/24"})
	for _, h := range cl.hosts[1:] {
		h.waitNetwork(t, "ov", true)
	}
	type ctr struct {
		name string
		rep  hostReply
		ns   *osl.Namespace
	}
	var ctrs []ctr
	for i, h := range cl.hosts {
		name := fmt.Sprintf("c%d", i+1)
		rep := h.must(hostReq{Op: "join", Network: "ov", Name: name, Aliases: []string{"web" + name}})
		ctrs = append(ctrs, ctr{name: name, rep: rep, ns: nsAt(t, rep.Key)})
	}
	// Every host lists the endpoints of every host (as v0.7 does); those
	// of other hosts are theirs to delete.
	var want []string
	for _, c := range ctrs {
		want = append(want, fmt.Sprintf("%s=%s/24", c.name, c.rep.IP))
	}
	for _, h := range cl.hosts {
		eventually(t, h.name+" lists every endpoint", func() error {
			if got := h.must(hostReq{Op: "endpoints", Network: "ov"}).Names; !slices.Equal(got, want) {
				return fmt.Errorf("endpoints %v, want %v", got, want)
			}
			return nil
		})
	}
	if rep := cl.hosts[0].call(hostReq{Op: "deleteep", Network: "ov", Name: "c2"}); rep.Class != "forbidden" || !strings.Contains(rep.Err, "another host") {
		t.Errorf("deleting another host's endpoint: %q (%s)", rep.Err, rep.Class)
	}
	// An endpoint name is the network's, across hosts; the refusal
	// leaves no address taken.
	addrKeys := func() int64 {
		resp, err := etcd.Client().Get(context.Background(), "/test/"+t.Name()+"/ip_", clientv3.WithPrefix(), clientv3.WithCountOnly())
		mustf(t, err, "counting address keys")
		return resp.Count
	}
	before := addrKeys()
	if rep := cl.hosts[1].call(hostReq{Op: "create", Network: "ov", Name: "c1"}); rep.Class != "forbidden" || !strings.Contains(rep.Err, "already exists") {
		t.Errorf("a second c1 on another host: %q (%s)", rep.Err, rep.Class)
	}
	if after := addrKeys(); after != before {
		t.Errorf("address keys %d after the refused endpoint, %d before", after, before)
	}
	for _, to := range ctrs {
		tcp := listen(t, to.ns, net.ParseIP(to.rep.IP))
		udp := udpEcho(t, to.ns, net.ParseIP(to.rep.IP))
		for _, from := range ctrs {
			if from.name == to.name {
				continue
			}
			eventually(t, fmt.Sprintf("TCP %s -> %s (%s)", from.name, to.name, tcp), func() error {
				got, err := dial(from.ns, tcp, time.Second)
				if err == nil && got != "echo:ping" {
					err = fmt.Errorf("answer %q", got)
				}
				return err
			})
			if got, err := udpAsk(from.ns, udp); err != nil || got != "echo:ping" {
				t.Errorf("UDP %s -> %s: %q %v", from.name, to.name, got, err)
			}
			for _, name := range []string{to.name, "web" + to.name, to.name + ".ov"} {
				eventually(t, fmt.Sprintf("%s resolves %s", from.name, name), func() error {
					r := dig(t, keyOnly(from.rep.Key), name, "A")
					if r.status != "NOERROR" || !slices.Equal(r.answers, []string{"A " + to.rep.IP}) {
						return fmt.Errorf("status %s answers %v, want A %s", r.status, r.answers, to.rep.IP)
					}
					return nil
				})
			}
		}
	}
}

// overlayJoin joins a container on host h to network nw and returns it.
type ovCtr struct {
	name string
	rep  hostReply
	ns   *osl.Namespace
}

func overlayJoin(t *testing.T, h *hostProc, nw, name string) ovCtr {
	t.Helper()
	rep := h.must(hostReq{Op: "join", Network: nw, Name: name})
	return ovCtr{name: name, rep: rep, ns: nsAt(t, rep.Key)}
}

// reaches waits until from reaches to's TCP server over the network.
func reaches(t *testing.T, from, to ovCtr) {
	t.Helper()
	srv := listen(t, to.ns, net.ParseIP(to.rep.IP))
	eventually(t, fmt.Sprintf("TCP %s -> %s", from.name, to.name), func() error {
		got, err := dial(from.ns, srv, time.Second)
		if err == nil && got != "echo:ping" {
			err = fmt.Errorf("answer %q", got)
		}
		return err
	})
}

// forgets waits until host h has no FDB entry for gone's MAC on network
// nid, and checks that from, a container on h, no longer resolves gone's
// name to its address (the resolver forwards a name that is not the
// network's any more, to an upstream the test's hosts do not have).
func forgets(t *testing.T, h *hostProc, nid string, from, gone ovCtr) {
	t.Helper()
	eventually(t, h.name+" drops the peer of "+gone.name, func() error {
		if fdbHas(t, h, nid, gone.rep.MAC) {
			return fmt.Errorf("FDB entry for %s (%s, gone) still on %s", gone.rep.MAC, gone.name, h.name)
		}
		return nil
	})
	if r := dig(t, keyOnly(from.rep.Key), gone.name, "A"); slices.Contains(r.answers, "A "+gone.rep.IP) {
		t.Errorf("%s still resolves %s, which is gone: %s %v", from.name, gone.name, r.status, r.answers)
	}
}

// fdbHas reports whether the overlay network nid's namespace on host h has
// a tunnel FDB entry (one with a remote VTEP, "dst") for mac. The bridge's
// own learnt entries do not count: they age out and send nowhere.
func fdbHas(t *testing.T, h *hostProc, nid, mac string) bool {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+filepath.Join(h.spec.ExecRoot, "overlay", nid), "bridge", "fdb", "show").CombinedOutput()
	mustf(t, err, "bridge fdb: %s", out)
	for _, l := range strings.Split(strings.ToLower(string(out)), "\n") {
		if strings.HasPrefix(l, strings.ToLower(mac)+" ") && strings.Contains(l, " dst ") {
			return true
		}
	}
	return false
}

// TestOverlayHostKilled: a host's controller killed with SIGKILL. The other
// hosts keep working (and still reach its containers: the kernel's data
// path outlives the controller). While it is down, a container elsewhere
// leaves and another joins; restarted, the host keeps its container,
// learns the new peer, drops the stale one, and joins again.
func TestOverlayHostKilled(t *testing.T) {
	cl, nid := overlayCluster(t, 3, "10.221.0.0/24", nil)
	h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
	c1, c2, c3 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2"), overlayJoin(t, h3, "ov", "c3")
	reaches(t, c2, c3)

	h2.kill()
	reaches(t, c1, c3)
	reaches(t, c1, c2)
	// c4 joins first, so it does not get c3's address (and MAC).
	c4 := overlayJoin(t, h3, "ov", "c4")
	h3.must(hostReq{Op: "leave", Network: "ov", Name: "c3"})
	reaches(t, c1, c4)

	h2.restart()
	reaches(t, c2, c4)
	reaches(t, c1, c2)
	forgets(t, h2, nid, c2, c3)
	c5 := overlayJoin(t, h2, "ov", "c5")
	reaches(t, c5, c1)
	reaches(t, c4, c5)
}

// TestOverlayEtcdOutage: with etcd stopped, local bridge networks keep
// working on every host and global operations fail clearly within their
// timeout; with etcd back, they succeed without restarting anything.
func TestOverlayEtcdOutage(t *testing.T) {
	etcd := etcdtest.Start(t)
	cl := newCluster(t, 2, etcd.Endpoints()[0], "/test/"+t.Name())
	h1, h2 := cl.hosts[0], cl.hosts[1]
	h1.must(hostReq{Op: "network", Name: "ov", Driver: "overlay", Subnet: "10.222.0.0/24"})
	h2.waitNetwork(t, "ov", true)
	c1, c2 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2")
	reaches(t, c1, c2)
	idle := h1.must(hostReq{Op: "create", Network: "ov", Name: "idle"})

	etcd.Stop()
	for i, h := range cl.hosts {
		h.must(hostReq{Op: "network", Name: "local", Driver: "bridge", Subnet: fmt.Sprintf("10.223.%d.0/24", i)})
		a, b := overlayJoin(t, h, "local", "la-"+h.name), overlayJoin(t, h, "local", "lb-"+h.name)
		reaches(t, a, b)
	}
	for _, req := range []hostReq{{Op: "network", Name: "ov2", Driver: "overlay", Subnet: "10.224.0.0/24"}, {Op: "join", Network: "ov", Name: "c3"},
		{Op: "deleteep", Network: "ov", Name: "idle"}, {Op: "leave", Network: "ov", Name: "c1"}} {
		rep := h1.call(req)
		if rep.Class != "timeout" || !strings.Contains(rep.Err, "global store") {
			t.Errorf("%s %s with etcd down: %q (%s), want a timeout naming the global store", req.Op, req.Name, rep.Err, rep.Class)
		}
	}
	reaches(t, c2, c1)
	// A controller restarted while etcd is away starts, keeps its
	// container and its local networks.
	h2.restart()
	reaches(t, c1, c2)
	if names := h2.must(hostReq{Op: "networks"}).Names; !slices.Contains(names, "ov") || !slices.Contains(names, "local") {
		t.Errorf("networks of host2 restarted without etcd: %v", names)
	}

	etcd.Start()
	eventually(t, "an overlay network once etcd is back", func() error {
		if rep := h1.call(hostReq{Op: "network", Name: "ov2", Driver: "overlay", Subnet: "10.224.0.0/24"}); rep.Err != "" {
			return fmt.Errorf("%s (%s)", rep.Err, rep.Class)
		}
		return nil
	})
	c3 := overlayJoin(t, h1, "ov", "c3")
	reaches(t, c2, c3)
	// Host2, restarted during the outage, caught up: a container it
	// attaches now reaches the others, and they it. And c1, whose refused
	// leave had tried to delete its record (which the store then no
	// longer puts back under a new lease), was repaired: host2 still has
	// it as a peer.
	c4 := overlayJoin(t, h2, "ov", "c4")
	reaches(t, c4, c3)
	reaches(t, c1, c4)
	// The refused delete changed nothing; done now, it frees the name
	// and the address for any host.
	h1.must(hostReq{Op: "deleteep", Network: "ov", Name: "idle"})
	h2.must(hostReq{Op: "createat", Network: "ov", Name: "idle", Subnet: idle.IP})
}

// TestOverlayHostGone: a host that disappears for good (killed, never
// back) has its endpoints removed from the store after its lease: the
// other hosts drop its peers and names.
func TestOverlayHostGone(t *testing.T) {
	etcd := etcdtest.Start(t)
	cl := newCluster(t, 2, etcd.Endpoints()[0], "/test/"+t.Name(), func(s *hostSpec) { s.LeaseTTL = 2 * time.Second })
	h1, h2 := cl.hosts[0], cl.hosts[1]
	nid := h1.must(hostReq{Op: "network", Name: "ov", Driver: "overlay", Subnet: "10.225.0.0/24"}).ID
	h2.waitNetwork(t, "ov", true)
	c1, c2 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2")
	reaches(t, c1, c2)
	if !fdbHas(t, h1, nid, c2.rep.MAC) {
		t.Fatal("no FDB entry for c2 on host1 while it runs")
	}
	h2.kill()
	forgets(t, h1, nid, c1, c2)
}

// overlayCluster starts n hosts on etcd with network ov (subnet) created
// on the first and seen by all.
func overlayCluster(t *testing.T, n int, subnet string, opts map[string]string, spec ...func(*hostSpec)) (*cluster, string) {
	t.Helper()
	return overlayClusterWith(t, n, hostReq{Subnet: subnet, Opts: opts}, spec...)
}

// TestOverlayConcurrentAddresses: many containers attached at once on
// every host get addresses unique across the hosts.
func TestOverlayConcurrentAddresses(t *testing.T) {
	cl, _ := overlayCluster(t, 3, "10.226.0.0/24", nil)
	const per = 20
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for _, h := range cl.hosts {
		wg.Go(func() {
			rep := h.call(hostReq{Op: "joinmany", Network: "ov", Name: "m" + h.name + "-", Count: per})
			if rep.Err != "" {
				t.Errorf("%s: %s", h.name, rep.Err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ip := range rep.IPs {
				if other, dup := seen[ip]; dup {
					t.Errorf("address %s given on %s and %s", ip, other, h.name)
				}
				seen[ip] = h.name
			}
		})
	}
	wg.Wait()
	if len(seen) != 3*per {
		t.Errorf("%d distinct addresses for %d containers", len(seen), 3*per)
	}
}

// TestOverlayWithLocalBridge: a container on an overlay network that also
// joins a local bridge network gets its default route from the bridge (the
// overlay gives none) and reaches both its overlay peers and addresses
// outside (here another host's underlay address, through the bridge's
// masquerade), as docker_gwbridge gives it.
func TestOverlayWithLocalBridge(t *testing.T) {
	cl, _ := overlayCluster(t, 2, "10.227.0.0/24", nil)
	h1, h2 := cl.hosts[0], cl.hosts[1]
	h1.must(hostReq{Op: "network", Name: "local", Driver: "bridge", Subnet: "10.228.0.0/24"})
	c1, c2 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2")
	if got := defaultVia(t, c1.ns, netlink.FAMILY_V4); len(got) != 0 {
		t.Errorf("default routes on the overlay alone: %v, want none", got)
	}
	h1.must(hostReq{Op: "connect", Network: "local", Name: "c1"})
	if got := defaultVia(t, c1.ns, netlink.FAMILY_V4); len(got) != 1 || got[0] != "eth1 via 10.228.0.1" {
		t.Errorf("default routes with the bridge: %v, want eth1 via 10.228.0.1", got)
	}
	outside := listen(t, h2.ns, net.ParseIP("192.168.210.2"))
	mustReach(t, c1.ns, outside)
	reaches(t, c1, c2)
}

// TestOverlayVNIAndMTU: the VNI asked for with the driver option is the
// network's on every host, another network cannot take it, and the
// containers' MTU leaves room for VXLAN's 50 bytes.
func TestOverlayVNIAndMTU(t *testing.T) {
	cl, nid := overlayCluster(t, 2, "10.229.0.0/24", map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "5001"})
	for _, h := range cl.hosts {
		out, err := exec.Command("nsenter", "--net="+filepath.Join(h.spec.ExecRoot, "overlay", nid), "ip", "-d", "link", "show", "type", "vxlan").CombinedOutput()
		mustf(t, err, "ip link: %s", out)
		if !strings.Contains(string(out), "vxlan id 5001 ") {
			t.Errorf("%s: VXLAN devices:\n%s\nwant id 5001", h.name, out)
		}
	}
	rep := cl.hosts[1].call(hostReq{Op: "network", Name: "ov2", Driver: "overlay", Subnet: "10.230.0.0/24",
		Opts: map[string]string{"com.docker.network.driver.overlay.vxlanid_list": "5001"}})
	if rep.Class != "forbidden" || !strings.Contains(rep.Err, "5001") {
		t.Errorf("a second network on VNI 5001: %q (%s), want Forbidden naming it", rep.Err, rep.Class)
	}
	c1 := overlayJoin(t, cl.hosts[0], "ov", "c1")
	l, err := c1.ns.Handle().LinkByName("eth0")
	mustf(t, err, "eth0")
	if mtu := l.Attrs().MTU; mtu != 1450 {
		t.Errorf("container MTU %d, want 1450 (underlay 1500 - 50)", mtu)
	}
}

// TestOverlayTLS: the global store over TLS (v0.7's kv.* options); with
// the wrong CA, global operations fail clearly and local ones work.
func TestOverlayTLS(t *testing.T) {
	etcd := etcdtest.StartTLS(t)
	files := etcd.TLS()
	e := newEnv(t)
	// The host's underlay: one end of a veth pair with the advertised
	// address.
	h := e.host.Handle()
	mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0"}, PeerName: "ul1"}), "underlay")
	mustf(t, e.host.ConfigureInterface(osl.IfaceConfig{Name: "ul0", Addr: &net.IPNet{IP: net.ParseIP("192.168.212.1").To4(), Mask: net.CIDRMask(24, 32)}}), "underlay address")
	opts := func(ca string) []config.Option {
		return []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL(etcd.Endpoints()[0]),
			config.OptionKVOpts(map[string]string{config.KVCACertFile: ca, config.KVCertFile: files.ClientCertFile, config.KVKeyFile: files.ClientKeyFile}),
			config.OptionKVPrefix("/test/" + t.Name()), config.OptionKVTimeouts(time.Second, 2*time.Second),
			config.OptionDiscoveryAddress("192.168.212.1")}
	}
	c := e.start(opts(files.CAFile)...)
	if _, err := c.NewNetwork("overlay", "ov", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.231.0.0/24"}}, nil, nil)); err != nil {
		t.Fatalf("overlay network over TLS: %v", err)
	}
	c.Stop()

	wrong := etcdtest.NewCertificates(t)
	c = e.start(opts(wrong.CAFile)...)
	_, err := c.NewNetwork("overlay", "ov2", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.232.0.0/24"}}, nil, nil))
	var te types.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("overlay network with the wrong CA: %v (%T), want a timeout saying why (the certificate)", err, err)
	}
	if _, err := c.NewNetwork("bridge", "local", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.233.0.0/24"}}, nil, nil)); err != nil {
		t.Errorf("a local network while the global store refuses us: %v", err)
	}
}

// TestRemoteGlobalScopeAcrossHosts: a network of a remote driver of global
// scope lives in the global store too: created on one host, it appears on
// the other, whose controller asks the plugin to create it there as well;
// deleted, it goes from both.
func TestRemoteGlobalScopeAcrossHosts(t *testing.T) {
	etcd := etcdtest.Start(t)
	sockDir := t.TempDir()
	p := startHostilePlugin(t, sockDir, "globalp")
	p.set("NetworkDriver.GetCapabilities", hostileAnswer{status: 200, body: `{"Scope":"global"}`})
	cl := newCluster(t, 2, etcd.Endpoints()[0], "/test/"+t.Name(), func(s *hostSpec) { s.PluginDir = sockDir; s.LeaseTTL = 2 * time.Second })
	h1, h2 := cl.hosts[0], cl.hosts[1]
	nid := h1.must(hostReq{Op: "network", Name: "g1", Driver: "globalp", Subnet: "10.234.0.0/24"}).ID
	h2.waitNetwork(t, "g1", true)
	if n := p.called("NetworkDriver.CreateNetwork"); n != 2 {
		t.Errorf("the plugin created the network %d times, want once per host", n)
	}
	if b := p.lastBody("NetworkDriver.CreateNetwork"); !strings.Contains(b, nid) || !strings.Contains(b, "10.234.0.0/24") {
		t.Errorf("CreateNetwork on host2: %s", b)
	}
	// A second network of that name is refused on the other host.
	if rep := h2.call(hostReq{Op: "network", Name: "g1", Driver: "globalp", Subnet: "10.235.0.0/24"}); rep.Err == "" {
		t.Error("host2 created a second network g1")
	}
	h1.must(hostReq{Op: "deletenet", Name: "g1"})
	h2.waitNetwork(t, "g1", false)
	if n := p.called("NetworkDriver.DeleteNetwork"); n != 2 {
		t.Errorf("the plugin deleted the network %d times, want once per host", n)
	}

	// Node discovery: each host tells the plugin of both hosts (itself as
	// Self); a host gone for good is deleted after its lease.
	bodies := func(method string) string {
		p.mu.Lock()
		defer p.mu.Unlock()
		var b strings.Builder
		for i, m := range p.calls {
			if m == method {
				b.WriteString(p.bodies[i] + "\n")
			}
		}
		return b.String()
	}
	for _, want := range []string{`"Address":"192.168.210.1","BindAddress":"192.168.210.1","Self":true`, `"Address":"192.168.210.2","BindAddress":"192.168.210.2","Self":true`,
		`"Address":"192.168.210.1","BindAddress":"","Self":false`, `"Address":"192.168.210.2","BindAddress":"","Self":false`} {
		eventually(t, "DiscoverNew "+want, func() error {
			if got := bodies("NetworkDriver.DiscoverNew"); !strings.Contains(got, `"DiscoveryType":1`) || !strings.Contains(got, want) {
				return fmt.Errorf("DiscoverNew calls:\n%s", got)
			}
			return nil
		})
	}
	h2.kill()
	eventually(t, "DiscoverDelete of host2", func() error {
		if got := bodies("NetworkDriver.DiscoverDelete"); !strings.Contains(got, `"Address":"192.168.210.2"`) {
			return fmt.Errorf("DiscoverDelete calls:\n%s", got)
		}
		return nil
	})
}

// TestOverlayStopKeepsPeers: a controller stopped cleanly (an upgrade)
// leaves its containers running, so the other hosts keep their peers; the
// controller started again takes its records over.
func TestOverlayStopKeepsPeers(t *testing.T) {
	cl, nid := overlayCluster(t, 2, "10.236.0.0/24", nil, func(s *hostSpec) { s.LeaseTTL = 2 * time.Second })
	h1, h2 := cl.hosts[0], cl.hosts[1]
	c1, c2 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2")
	reaches(t, c1, c2)
	h2.must(hostReq{Op: "quit"})
	_ = h2.cmd.Wait()
	// Within the lease (2 s): the peer is still there and works.
	time.Sleep(500 * time.Millisecond)
	if !fdbHas(t, h1, nid, c2.rep.MAC) {
		t.Error("host1 dropped c2's peer when host2's controller stopped")
	}
	reaches(t, c1, c2)
	h2.start()
	c3 := overlayJoin(t, h2, "ov", "c3")
	reaches(t, c1, c3)
	reaches(t, c2, c1)
	// After the old lease has run out, c2's record lives on under the new
	// one.
	time.Sleep(3 * time.Second)
	if !fdbHas(t, h1, nid, c2.rep.MAC) {
		t.Error("c2's peer went with host2's old lease")
	}
}

// TestOverlayFailedJoinUnpublishes: a join that fails after its record was
// published (concurrently with the interface) takes the record back, and
// a refused endpoint leaves neither name nor address in the global store.
func TestOverlayFailedJoinUnpublishes(t *testing.T) {
	etcd := etcdtest.Start(t)
	e := newEnv(t)
	h := e.host.Handle()
	mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0"}, PeerName: "ul1"}), "underlay")
	mustf(t, e.host.ConfigureInterface(osl.IfaceConfig{Name: "ul0", Addr: &net.IPNet{IP: net.ParseIP("192.168.213.1").To4(), Mask: net.CIDRMask(24, 32)}}), "underlay address")
	prefix := "/test/" + t.Name()
	c := e.start(config.OptionKVProvider("etcd"), config.OptionKVProviderURL(etcd.Endpoints()[0]), config.OptionKVPrefix(prefix),
		config.OptionDiscoveryAddress("192.168.213.1"))
	n, err := c.NewNetwork("overlay", "ov", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.237.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	keys := func(kind string) int64 {
		resp, err := etcd.Client().Get(context.Background(), prefix+"/"+kind+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		mustf(t, err, "counting %s keys", kind)
		return resp.Count
	}
	ep, err := n.CreateEndpoint("a")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("a")
	mustf(t, err, "sandbox")
	c.failPoint = func(p string) error {
		if p == "join-before-configure" {
			return errors.New("injected")
		}
		return nil
	}
	if err := ep.Join(sb); err == nil {
		t.Fatal("join succeeded through the failure point")
	}
	if n := keys("endpoint"); n != 0 {
		t.Errorf("%d endpoint records after the failed join", n)
	}
	c.failPoint = nil
	mustf(t, ep.Join(sb), "join")
	if n := keys("endpoint"); n != 1 {
		t.Errorf("%d endpoint records after the join, want 1", n)
	}
	mustf(t, sb.Delete(), "sandbox delete")
	for _, kind := range []string{"endpoint", "epname"} {
		if n := keys(kind); n != 0 {
			t.Errorf("%d %s keys after the sandbox (and its endpoint) went", n, kind)
		}
	}
	if n := keys("ip_10.237.0.0_24"); n != 1 {
		t.Errorf("%d address keys after the endpoint went, want the gateway's only", n)
	}
}
