package libnetwork

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
)

// The embedded DNS server as a container sees it: the real dig inside the
// sandbox's namespace, against 127.0.0.11, with real dnsmasq upstreams.

// setHostResolvConf points the controller at a host resolv.conf of the
// test's (and no systemd-resolved file), before the first sandbox.
func setHostResolvConf(t *testing.T, c *controller, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "host-resolv.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c.hostDNS.setPaths([2]string{path, filepath.Join(t.TempDir(), "no-resolved.conf")})
	return path
}

// dnsmasqServer is a dnsmasq process the test started, with its query log.
type dnsmasqServer struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func (d *dnsmasqServer) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

// queries counts the logged queries for name.
func (d *dnsmasqServer) queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Count(d.log.String(), "] "+name+" from ")
}

// startDnsmasq runs dnsmasq in the namespace at nsPath on addr:53 as an
// upstream server: example.test and what args add, authoritative for
// .test (NXDOMAIN for other names there), REFUSED for the rest.
func startDnsmasq(t *testing.T, nsPath, addr string, args ...string) *dnsmasqServer {
	t.Helper()
	d := &dnsmasqServer{}
	argv := append([]string{"--net=" + nsPath, "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=" + addr, "--bind-interfaces", "--port=53", "--local=/test/",
		"--log-queries", "--log-facility=-", "--pid-file=", "--user=root"}, args...)
	d.cmd = exec.Command("nsenter", argv...)
	d.cmd.Stderr = d
	// dnsmasq serves each TCP connection in a child process, which holds
	// the log pipe until the resolver closes its connection: do not wait
	// for it.
	d.cmd.WaitDelay = time.Second
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	})
	for i := 0; ; i++ {
		d.mu.Lock()
		ready := strings.Contains(d.log.String(), "started")
		d.mu.Unlock()
		if ready {
			break
		}
		if i == 100 {
			t.Fatalf("dnsmasq on %s did not start: %s", addr, d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// digResult is what dig printed, parsed.
type digResult struct {
	status  string
	flags   []string
	answers []string // "type value"
	out     string
}

// dig runs dig inside the sandbox's namespace and parses its answer.
func dig(t *testing.T, sb interface{ Key() string }, args ...string) digResult {
	t.Helper()
	argv := append([]string{"--net=" + sb.Key(), "dig", "+timeout=3", "+tries=1", "+nocookie"}, args...)
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "@") }) {
		argv = append(argv, "@127.0.0.11")
	}
	out, err := exec.Command("nsenter", argv...).CombinedOutput()
	r := digResult{out: string(out)}
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	section := ""
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				r.status = strings.TrimSuffix(strings.Fields(line[i+8:])[0], ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			f := strings.TrimPrefix(line, ";; flags:")
			f = f[:strings.Index(f, ";")]
			r.flags = strings.Fields(f)
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			section = "answer"
		case line == "" || strings.HasPrefix(line, ";;"):
			section = ""
		case section == "answer":
			fs := strings.Fields(line)
			if len(fs) >= 5 {
				r.answers = append(r.answers, fs[3]+" "+fs[4])
			}
		}
	}
	if r.status == "" {
		t.Fatalf("dig %v: no answer\n%s", args, out)
	}
	return r
}

func (r digResult) has(flag string) bool { return slices.Contains(r.flags, flag) }

// wantAnswer checks a NOERROR answer with exactly want ("A 10.0.0.2").
func (r digResult) wantAnswer(t *testing.T, what string, want ...string) {
	t.Helper()
	got := slices.Clone(r.answers)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if r.status != "NOERROR" || !slices.Equal(got, want) {
		t.Errorf("%s: status %s answers %v; want NOERROR %v\n%s", what, r.status, got, want, r.out)
	}
}

func ipOf(ep Endpoint) string  { return ep.Info().Iface().Address().IP.String() }
func ip6Of(ep Endpoint) string { return ep.Info().Iface().AddressIPv6().IP.String() }
func reverseOf(ip string) string {
	arpa, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return arpa
}

func TestResolverNamesWithDig(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\nsearch corp.test\noptions timeout:2 attempts:1\n")
	up := startDnsmasq(t, e.host.Path(), "127.0.0.53", "--address=/example.test/192.0.2.1")

	n, err := c.NewNetwork("bridge", "Front", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.97.0.0/24"}}, []*IpamConf{{PreferredPool: "fd97::/64"}}, nil))
	mustf(t, err, "network")
	web, _ := n.CreateEndpoint("web", CreateOptionMyAlias("www"))
	db, _ := n.CreateEndpoint("db")
	anon, _ := n.CreateEndpoint("anon", CreateOptionAnonymous(), CreateOptionMyAlias("hidden"))
	cli, _ := n.CreateEndpoint("cli", CreateOptionAlias("db", "dbalias"))
	sbW, _ := c.NewSandbox("w")
	sbD, _ := c.NewSandbox("d")
	sbA, _ := c.NewSandbox("a")
	sbC, err := c.NewSandbox("c")
	mustf(t, err, "sandbox")
	mustf(t, web.Join(sbW), "join web")
	mustf(t, db.Join(sbD), "join db")
	mustf(t, anon.Join(sbA), "join anon")
	mustf(t, cli.Join(sbC), "join cli")

	rc, err := os.ReadFile(c.sandboxes[sbC.ID()].resolvConfPath())
	mustf(t, err, "reading resolv.conf")
	for _, want := range []string{"nameserver 127.0.0.11\n", "search corp.test\n", "options timeout:2 attempts:1 ndots:0\n"} {
		if !strings.Contains(string(rc), want) {
			t.Errorf("sandbox resolv.conf lacks %q:\n%s", want, rc)
		}
	}
	if strings.Contains(string(rc), "127.0.0.53") {
		t.Errorf("sandbox resolv.conf names the upstream:\n%s", rc)
	}

	t.Run("local names", func(t *testing.T) {
		dig(t, sbC, "web", "A").wantAnswer(t, "web A", "A "+ipOf(web))
		dig(t, sbC, "www", "A").wantAnswer(t, "alias www", "A "+ipOf(web))
		dig(t, sbC, "web.front", "A").wantAnswer(t, "web.front", "A "+ipOf(web))
		dig(t, sbC, "WEB.Front.", "A").wantAnswer(t, "WEB.Front.", "A "+ipOf(web))
		dig(t, sbC, "dbalias", "A").wantAnswer(t, "link alias", "A "+ipOf(db))
		dig(t, sbC, "hidden", "A").wantAnswer(t, "anonymous by alias", "A "+ipOf(anon))
		dig(t, sbC, "web", "AAAA").wantAnswer(t, "web AAAA", "AAAA "+ip6Of(web))
		dig(t, sbC, "-x", ipOf(web)).wantAnswer(t, "PTR", "PTR web.Front.")
		dig(t, sbC, "-x", ip6Of(db)).wantAnswer(t, "PTR v6", "PTR db.Front.")
		// The PTR name resolves back.
		dig(t, sbC, "web.Front.", "A").wantAnswer(t, "PTR name", "A "+ipOf(web))
		dig(t, sbC, "+tcp", "db", "A").wantAnswer(t, "db over TCP", "A "+ipOf(db))
		// A known name, another type: empty NOERROR, not forwarded.
		before := up.queries("web")
		dig(t, sbC, "web", "MX").wantAnswer(t, "web MX")
		if up.queries("web") != before {
			t.Errorf("a known name's MX query was forwarded")
		}
		// Anonymous endpoints are not known by name.
		if r := dig(t, sbC, "anon", "A"); len(r.answers) != 0 {
			t.Errorf("anonymous endpoint resolved by name: %v", r.answers)
		}
		// Go API and DNS agree.
		ips, _ := sbC.ResolveName("www", net.IPv4len)
		if len(ips) != 1 || ips[0].String() != ipOf(web) {
			t.Errorf("ResolveName www = %v", ips)
		}
		if got := sbC.ResolveIP(reverseOf(ipOf(web))); got != "web.Front" {
			t.Errorf("ResolveIP = %q, want web.Front", got)
		}
	})

	t.Run("forwarded", func(t *testing.T) {
		dig(t, sbC, "example.test", "A").wantAnswer(t, "example.test", "A 192.0.2.1")
		dig(t, sbC, "+tcp", "example.test", "A").wantAnswer(t, "example.test over TCP", "A 192.0.2.1")
		if r := dig(t, sbC, "nosuch.test", "A"); r.status != "NXDOMAIN" {
			t.Errorf("nosuch.test: status %s, want the upstream's NXDOMAIN", r.status)
		}
		if up.queries("example.test") < 2 {
			t.Errorf("dnsmasq logged %d queries for example.test, want 2", up.queries("example.test"))
		}
	})

	t.Run("truncation", func(t *testing.T) {
		bulk, err := c.NewSandbox("bulk")
		mustf(t, err, "sandbox")
		var want []string
		for i := range 40 {
			ep, err := n.CreateEndpoint(fmt.Sprintf("m%d", i), CreateOptionMyAlias("many"))
			mustf(t, err, "endpoint")
			mustf(t, ep.Join(bulk), "join")
			want = append(want, "A "+ipOf(ep))
		}
		r := dig(t, sbC, "+noedns", "+ignore", "many", "A")
		if !r.has("tc") {
			t.Errorf("40 A records over UDP without EDNS: flags %v, want tc", r.flags)
		}
		dig(t, sbC, "+tcp", "many", "A").wantAnswer(t, "many over TCP", want...)
		// dig retries over TCP itself after a truncated answer.
		dig(t, sbC, "+noedns", "many", "A").wantAnswer(t, "many, retried over TCP", want...)
	})

	t.Run("leave", func(t *testing.T) {
		mustf(t, db.Leave(sbD), "leave")
		before := up.queries("db.front")
		// No longer the sandbox's name: forwarded, and dnsmasq refuses
		// it (not a .test name).
		if r := dig(t, sbC, "db.front", "A"); len(r.answers) != 0 || r.status != "REFUSED" {
			t.Errorf("db.front after leave: status %s answers %v, want the upstream's REFUSED", r.status, r.answers)
		}
		if up.queries("db.front") != before+1 {
			t.Errorf("db.front after leave was not forwarded")
		}
		if r := dig(t, sbC, "dbalias", "A"); len(r.answers) != 0 {
			t.Errorf("dbalias still answers after leave: %v", r.answers)
		}
		mustf(t, db.Join(sbD), "join again")
		dig(t, sbC, "db", "A").wantAnswer(t, "db after rejoin", "A "+ipOf(db))
	})

	t.Run("rename", func(t *testing.T) {
		mustf(t, sbD.Rename("database"), "rename")
		dig(t, sbC, "database", "A").wantAnswer(t, "new name", "A "+ipOf(db))
		dig(t, sbC, "-x", ipOf(db)).wantAnswer(t, "PTR after rename", "PTR database.Front.")
		if r := dig(t, sbC, "db", "A"); len(r.answers) != 0 {
			t.Errorf("old name still answers: %v", r.answers)
		}
		mustf(t, sbD.Rename("db"), "rename back")
	})

	t.Run("container binds port 53", func(t *testing.T) {
		// A server of the container's own on 0.0.0.0:53.
		cmd := exec.Command("nsenter", "--net="+sbC.Key(), "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
			"--port=53", "--address=/inner.test/203.0.113.9", "--pid-file=", "--user=root")
		mustf(t, cmd.Start(), "dnsmasq in the sandbox")
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		var r digResult
		for range 50 {
			if r = dig(t, sbC, "@127.0.0.1", "inner.test", "A"); len(r.answers) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.wantAnswer(t, "the container's own server", "A 203.0.113.9")
		dig(t, sbC, "web", "A").wantAnswer(t, "the resolver, beside it", "A "+ipOf(web))
	})

	st, err := SandboxResolverStatistics(sbC)
	mustf(t, err, "statistics")
	if st.Queries == 0 || st.Local == 0 || st.Forwarded == 0 || st.LocalLatency.Count != st.Local || st.ForwardedLatency.Count == 0 {
		t.Errorf("statistics %+v", st)
	}
	if _, err := SandboxResolverStatistics(nil); err == nil {
		t.Errorf("statistics of a nil sandbox: no error")
	}
}

// newRemote makes a namespace reachable from the controller's through a
// veth, 198.51.100.1 (controller side) to 198.51.100.2 (remote side).
func newRemote(t *testing.T, e *testEnv) *osl.Namespace {
	t.Helper()
	remote, err := osl.NewNamespace(filepath.Join(t.TempDir(), "remote"))
	mustf(t, err, "remote namespace")
	t.Cleanup(func() { _ = remote.Destroy() })
	h := e.host.Handle()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rmt0"}, PeerName: "rmt1"}
	mustf(t, h.LinkAdd(veth), "veth")
	peer, err := h.LinkByName("rmt1")
	mustf(t, err, "peer")
	mustf(t, h.LinkSetNsFd(peer, remote.Fd()), "move peer")
	local, _ := h.LinkByName("rmt0")
	mustf(t, h.AddrAdd(local, &netlink.Addr{IPNet: mustCIDR("198.51.100.1/24")}), "addr")
	mustf(t, h.LinkSetUp(local), "up")
	rh := remote.Handle()
	rpeer, err := rh.LinkByName("rmt1")
	mustf(t, err, "remote peer")
	mustf(t, rh.AddrAdd(rpeer, &netlink.Addr{IPNet: mustCIDR("198.51.100.2/24")}), "remote addr")
	mustf(t, rh.LinkSetUp(rpeer), "remote up")
	return remote
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// udpServer answers every query on addr (in the controller's namespace)
// with rcode, counting them; rcode -1 never answers (a dead server).
func udpServer(t *testing.T, e *testEnv, addr string, rcode int) *countingServer {
	t.Helper()
	var pc net.PacketConn
	mustf(t, e.host.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}), "listen %s", addr)
	s := &countingServer{}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		if rcode < 0 {
			return
		}
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

type countingServer struct {
	mu sync.Mutex
	n  int
}

func (s *countingServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func TestResolverUpstreams(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	hostRC := setHostResolvConf(t, c, "nameserver 127.0.0.53\noptions timeout:2\n")
	local := startDnsmasq(t, e.host.Path(), "127.0.0.53", "--address=/example.test/192.0.2.1")
	remote := newRemote(t, e)
	far := startDnsmasq(t, remote.Path(), "198.51.100.2", "--address=/example.test/192.0.2.2")
	dead := udpServer(t, e, "127.0.0.54:53", -1)
	servfail := udpServer(t, e, "127.0.0.55:53", dns.RcodeServerFailure)

	n, err := c.NewNetwork("bridge", "out", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.98.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sealed, err := c.NewNetwork("bridge", "sealed", NetworkOptionInternalNetwork(),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.99.0.0/24"}}, nil, nil))
	mustf(t, err, "internal network")
	join := func(name string, net Network, opts ...SandboxOption) Sandbox {
		t.Helper()
		sb, err := c.NewSandbox(name, opts...)
		mustf(t, err, "sandbox %s", name)
		ep, err := net.CreateEndpoint(name)
		mustf(t, err, "endpoint %s", name)
		mustf(t, ep.Join(sb), "join %s", name)
		return sb
	}

	t.Run("dead first upstream", func(t *testing.T) {
		sb := join("dead", n, OptionDNS("127.0.0.54"), OptionDNS("127.0.0.53"), OptionDNSOptions("timeout:2"))
		// One try of dig's own 3 s: the dead server may take only its
		// share (1 s) of the sandbox's 2 s timeout.
		dig(t, sb, "+timeout=3", "example.test", "A").wantAnswer(t, "after a dead upstream", "A 192.0.2.1")
		if dead.count() == 0 {
			t.Errorf("the dead upstream was never asked")
		}
	})
	t.Run("refresh changes the timeout", func(t *testing.T) {
		// With timeout:30 the dead upstream would hold a query for
		// 13.5 s; Refresh writes timeout:2, and the running resolver
		// splits 2 s instead, within dig's 3 s.
		sb := join("refreshed", n, OptionDNS("127.0.0.54"), OptionDNS("127.0.0.53"), OptionDNSOptions("timeout:30"))
		mustf(t, sb.Refresh(OptionDNS("127.0.0.54"), OptionDNS("127.0.0.53"), OptionDNSOptions("timeout:2")), "refresh")
		dig(t, sb, "example.test", "A").wantAnswer(t, "after a refresh to timeout:2", "A 192.0.2.1")
	})
	t.Run("SERVFAIL upstream", func(t *testing.T) {
		sb := join("servfail", n, OptionDNS("127.0.0.55"), OptionDNS("127.0.0.53"))
		dig(t, sb, "example.test", "A").wantAnswer(t, "after a SERVFAIL upstream", "A 192.0.2.1")
		if servfail.count() == 0 {
			t.Errorf("the SERVFAIL upstream was never asked")
		}
		only := join("servfailonly", n, OptionDNS("127.0.0.55"))
		if r := dig(t, only, "example.test", "A"); r.status != "SERVFAIL" {
			t.Errorf("only a SERVFAIL upstream: status %s, want SERVFAIL", r.status)
		}
		st, _ := SandboxResolverStatistics(only)
		if st.UpstreamFailures == 0 {
			t.Errorf("statistics after a SERVFAIL: %+v", st)
		}
	})
	t.Run("remote upstream from the sandbox", func(t *testing.T) {
		sb := join("remote", n, OptionDNS("198.51.100.2"))
		dig(t, sb, "example.test", "A").wantAnswer(t, "remote upstream", "A 192.0.2.2")
		dig(t, sb, "+tcp", "example.test", "A").wantAnswer(t, "remote upstream over TCP", "A 192.0.2.2")
		if far.queries("example.test") < 2 {
			t.Errorf("remote dnsmasq logged %d queries", far.queries("example.test"))
		}
	})
	t.Run("host resolv.conf change", func(t *testing.T) {
		sb := join("follows", n)
		dig(t, sb, "example.test", "A").wantAnswer(t, "host's upstream", "A 192.0.2.1")
		mustf(t, os.WriteFile(hostRC, []byte("nameserver 198.51.100.2\n"), 0o644), "rewriting host resolv.conf")
		dig(t, sb, "example.test", "A").wantAnswer(t, "host's new upstream", "A 192.0.2.2")
	})
	t.Run("internal network never forwards", func(t *testing.T) {
		mustf(t, os.WriteFile(hostRC, []byte("nameserver 127.0.0.53\n"), 0o644), "rewriting host resolv.conf")
		sb := join("sealed", sealed)
		before := local.queries("example.test")
		r := dig(t, sb, "example.test", "A")
		if len(r.answers) != 0 || r.status != "NXDOMAIN" {
			t.Errorf("internal network: status %s answers %v, want NXDOMAIN and none", r.status, r.answers)
		}
		if local.queries("example.test") != before {
			t.Errorf("a query from an internal network reached the upstream")
		}
		dig(t, sb, "sealed", "A").wantAnswer(t, "own name on an internal network", "A "+ipOf(epByName(t, sealed, "sealed")))
		if st, _ := SandboxResolverStatistics(sb); st.Forwarded != 0 {
			t.Errorf("internal network: %d forwarded", st.Forwarded)
		}
		// On an internal and an external network, it forwards (as
		// docker does: the external network gives it a way out).
		both := join("both", sealed)
		ep, err := n.CreateEndpoint("both-out")
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(both), "join the external network")
		dig(t, both, "example.test", "A").wantAnswer(t, "internal and external", "A 192.0.2.1")
	})
}

func epByName(t *testing.T, n Network, name string) Endpoint {
	t.Helper()
	ep, err := n.EndpointByName(name)
	mustf(t, err, "endpoint %s", name)
	return ep
}

// No resolver where it has nothing to do: a sandbox in the host's
// namespace, one with only a null network, an endpoint that disables
// resolution.
func TestResolverNotStarted(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 192.0.2.53\n")
	null, err := c.NewNetwork("null", "none")
	mustf(t, err, "null network")
	br, err := c.NewNetwork("bridge", "br", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.100.0.0/24"}}, nil, nil))
	mustf(t, err, "bridge network")
	for _, tc := range []struct {
		name string
		net  Network
		opts []EndpointOption
	}{
		{"nullonly", null, nil},
		{"noresolution", br, []EndpointOption{CreateOptionDisableResolution()}},
	} {
		sb, err := c.NewSandbox(tc.name)
		mustf(t, err, "sandbox")
		ep, err := tc.net.CreateEndpoint(tc.name, tc.opts...)
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(sb), "join")
		if c.sandboxes[sb.ID()].resolverRunning() {
			t.Errorf("%s: resolver running", tc.name)
		}
		rc, _ := os.ReadFile(c.sandboxes[sb.ID()].resolvConfPath())
		if strings.Contains(string(rc), "127.0.0.11") {
			t.Errorf("%s: resolv.conf names the resolver:\n%s", tc.name, rc)
		}
		out, _ := exec.Command("nsenter", "--net="+sb.Key(), "nft", "list", "tables").CombinedOutput()
		if strings.Contains(string(out), "dns") {
			t.Errorf("%s: DNS redirect table in the sandbox: %s", tc.name, out)
		}
	}
}

// The resolver comes back after a controller restart, on new ports, with
// the names restored.
func TestResolverRestart(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\n")
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.101.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	a, _ := n.CreateEndpoint("a")
	b, _ := n.CreateEndpoint("b")
	sbA, _ := c.NewSandbox("ca")
	sbB, _ := c.NewSandbox("cb")
	mustf(t, a.Join(sbA), "join")
	mustf(t, b.Join(sbB), "join")
	dig(t, sbA, "b", "A").wantAnswer(t, "before restart", "A "+ipOf(b))
	udp1, _ := c.sandboxes[sbA.ID()].resolver.server.Ports()
	c.Stop()

	c2 := e.start()
	setHostResolvConf(t, c2, "nameserver 127.0.0.53\n")
	var sb2 Sandbox
	c2.WalkSandboxes(SandboxContainerWalker(&sb2, "ca"))
	if sb2 == nil {
		t.Fatal("sandbox not restored")
	}
	dig(t, sb2, "b", "A").wantAnswer(t, "after restart", "A "+ipOf(b))
	dig(t, sb2, "+tcp", "b.net", "A").wantAnswer(t, "after restart over TCP", "A "+ipOf(b))
	udp2, _ := c2.sandboxes[sb2.ID()].resolver.server.Ports()
	out, _ := exec.Command("nsenter", "--net="+sb2.Key(), "nft", "list", "tables").CombinedOutput()
	if strings.Count(string(out), "\n") != 1 {
		t.Errorf("tables in the sandbox after restart (want the one redirect table): %s", out)
	}
	t.Logf("resolver UDP port %d before, %d after restart", udp1, udp2)

	// Delete takes the resolver's sockets and rules with the namespace.
	mustf(t, sb2.Delete(), "delete")
	if r := c2.sandboxes[sb2.ID()]; r != nil {
		t.Errorf("sandbox still registered")
	}
}

// upstreamsOf returns the servers the sandbox's resolver forwards to.
func upstreamsOf(sb Sandbox) []string {
	s := sb.(*sandbox)
	s.mu.Lock()
	r := s.resolver
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	var out []string
	for _, u := range r.upstreams() {
		out = append(out, u.Addr.String())
	}
	return out
}

// A runtime's own namespace (external key) gets the resolver at SetKey,
// with lo brought up; deleting the sandbox takes the redirect out of the
// namespace, which lives on with its process.
func TestResolverExternalKey(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\n")
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.102.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ext")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join before SetKey")
	if c.sandboxes[sb.ID()].resolverRunning() {
		t.Fatal("resolver running before the namespace is known")
	}
	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey")
	dig(t, sb, "ext", "A").wantAnswer(t, "own name in the runtime's namespace", "A "+ipOf(ep))

	mustf(t, sb.Delete(), "delete")
	out, err := exec.Command("nsenter", "--net="+key, "nft", "list", "tables").CombinedOutput()
	mustf(t, err, "nft list tables: %s", out)
	if strings.Contains(string(out), "dns") {
		t.Errorf("the DNS redirect outlived the sandbox in the runtime's namespace: %s", out)
	}
}

// Deleting a sandbox (and stopping the controller) while the container
// floods its resolver with forwarded queries returns: the forwarder's
// queries in flight never wait for what Delete holds.
func TestResolverDeleteUnderLoad(t *testing.T) {
	if _, err := exec.LookPath("dnsperf"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("needs dnsperf (Debian package dnsperf)")
	}
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\n")
	startDnsmasq(t, e.host.Path(), "127.0.0.53", "--address=/example.test/192.0.2.1")
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.103.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	data := filepath.Join(t.TempDir(), "queries")
	mustf(t, os.WriteFile(data, []byte("example.test A\n"), 0o644), "queries")
	for round := range 3 {
		sb, err := c.NewSandbox(fmt.Sprintf("load%d", round))
		mustf(t, err, "sandbox")
		ep, err := n.CreateEndpoint(fmt.Sprintf("load%d", round))
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(sb), "join")
		perf := exec.Command("nsenter", "--net="+sb.Key(), "dnsperf", "-s", "127.0.0.11", "-d", data, "-l", "5", "-q", "500")
		mustf(t, perf.Start(), "dnsperf")
		// Until the resolver has forwarded queries (and has some in
		// flight), then delete under it.
		for i := 0; ; i++ {
			if st, _ := SandboxResolverStatistics(sb); st.Forwarded > 1000 {
				break
			}
			if i == 500 {
				t.Fatal("dnsperf's queries never reached the upstream")
			}
			time.Sleep(10 * time.Millisecond)
		}
		mustf(t, sb.Delete(), "delete under load")
		_ = perf.Process.Kill()
		_ = perf.Wait()
	}
}

// A container pipelining TCP queries towards an upstream that never
// answers its SYN does not make the controller start a thread per query:
// the upstream sockets are made in the sandbox's namespace but connect on
// the runtime's poller.
func TestResolverDeadTCPUpstreamThreads(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\n")
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.104.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	// 198.51.100.9 is routed out of the sandbox (default route through
	// the bridge) and nowhere from the controller's namespace: the SYNs
	// go unanswered.
	sb, err := c.NewSandbox("dead", OptionDNS("198.51.100.9"), OptionDNSOptions("timeout:3"))
	mustf(t, err, "sandbox")
	ep, err := n.CreateEndpoint("dead")
	mustf(t, err, "endpoint")
	mustf(t, ep.Join(sb), "join")
	threads := func() int {
		b, _ := os.ReadFile("/proc/self/status")
		var n int
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				fmt.Sscan(strings.TrimSpace(v), &n)
			}
		}
		return n
	}
	before := threads()
	ns := nsOf(t, sb)
	var conns []net.Conn
	for range 4 {
		var conn net.Conn
		mustf(t, ns.Do(func() error {
			var err error
			conn, err = net.Dial("tcp", "127.0.0.11:53")
			return err
		}), "dial the resolver over TCP")
		defer conn.Close()
		conns = append(conns, conn)
	}
	// 4 connections × 50 pipelined queries, all forwarded over TCP.
	for i, conn := range conns {
		for j := range 50 {
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("q%d-%d.example.", i, j), dns.TypeA)
			b, _ := m.Pack()
			_, err := conn.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
			mustf(t, err, "query")
		}
	}
	peak := before
	for range 20 {
		peak = max(peak, threads())
		time.Sleep(50 * time.Millisecond)
	}
	if peak > before+40 {
		t.Errorf("threads went from %d to %d with 200 TCP queries waiting on a dead upstream", before, peak)
	}
	t.Logf("threads: %d before, %d at the peak", before, peak)
}

// A sandbox whose endpoints all left before a restart keeps its resolver
// after it: its resolv.conf still names 127.0.0.11.
func TestResolverRestartWithoutEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	setHostResolvConf(t, c, "nameserver 127.0.0.53\n")
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.105.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, _ := n.CreateEndpoint("gone")
	sb, err := c.NewSandbox("left")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	mustf(t, ep.Leave(sb), "leave")
	c.Stop()

	c2 := e.start()
	var sb2 Sandbox
	c2.WalkSandboxes(SandboxContainerWalker(&sb2, "left"))
	if sb2 == nil {
		t.Fatal("sandbox not restored")
	}
	if !c2.sandboxes[sb2.ID()].resolverRunning() {
		t.Fatal("resolver not restarted for a sandbox whose resolv.conf names it")
	}
	// On no network, it forwards nothing: the resolver itself answers.
	setHostResolvConf(t, c2, "nameserver 127.0.0.53\n")
	if r := dig(t, sb2, "gone", "A"); r.status != "NXDOMAIN" {
		t.Fatalf("restarted resolver: status %s, want its own NXDOMAIN", r.status)
	}
}

// The host's resolv.conf is read again when it changes, appears or goes,
// and the version moves with each read.
func TestHostDNSFollowsFile(t *testing.T) {
	var h hostDNS
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	h.setPaths([2]string{path, filepath.Join(dir, "resolved.conf")})
	content, v1, err := h.get()
	if err != nil || len(content) != 0 {
		t.Fatalf("missing file: %q, %v; want nothing and no error", content, err)
	}
	for i, want := range []string{"nameserver 192.0.2.1\n", "nameserver 192.0.2.22\n"} {
		mustf(t, os.WriteFile(path, []byte(want), 0o644), "write")
		// A look at the files holds for hostDNSRecheck.
		time.Sleep(2 * hostDNSRecheck)
		content, v2, err := h.get()
		if err != nil || string(content) != want || v2 <= v1 {
			t.Fatalf("write %d: %q version %d (was %d), %v; want %q and a new version", i, content, v2, v1, err, want)
		}
		v1 = v2
	}
	if _, v, _ := h.get(); v != v1 {
		t.Errorf("unchanged file read again: version %d, was %d", v, v1)
	}
}
