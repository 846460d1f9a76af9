package main

// The -overlay mode: attach and detach on an overlay network spanning
// three hosts, how soon a container that joined on one host is reachable
// from another, and (with -throughput) TCP throughput over the overlay
// against the same traffic over the underlay.
//
// In its own namespaces, netbench starts an etcd server (Debian's
// /usr/bin/etcd, a child process on free loopback ports, its data dir on
// the run's tmpfs; see etcd.go) and makes three "hosts": network
// namespaces joined by veths to an underlay bridge in netbench's
// namespace, host i with 192.168.210.i/24 (MTU 1500) on its eth0, as the
// root package's multi-host tests make them. Each host has its own
// controller, all three in netbench's process: libnetwork.New with a data
// dir and exec root of the host's, OptionNetworkNamespace of the host's
// namespace, the same etcd and key prefix, and OptionDiscoveryAddress of
// the host's underlay address (the VTEP).
//
// Host 1 creates the overlay network "ov", with a subnet that fits every
// container; netbench waits until hosts 2 and 3 have it (the time each
// took after NewNetwork returned is in network_seen_ms; a first network
// went the same way before, so that the controllers follow the store). Then each host attaches -n containers, the
// three hosts at once (one goroutine per host, each attaching one
// container after another): NewSandbox, CreateEndpoint and Join, the
// steps the plain attach benchmark times, with the same figures per host
// and for all hosts together (in the order the attaches started). After
// the attach, outside the timing, netbench checks that the 3×N addresses
// are distinct. The hosts then detach their containers the same way, at
// once: Leave, Delete, sandbox Delete.
//
// # Reachability after join
//
// Before the attach, host 1 gets a "probe" container, and host 2 a first
// container that the probe reaches (so both hosts have each other's
// peers). During the attach, every 10th container of host 2 (the 1st,
// 11th, ...) runs a UDP echo server in its namespace, started between
// NewSandbox and CreateEndpoint (outside the timed steps). When its Join
// returns, the probe container sends it a datagram every millisecond
// until the first echo comes back; the time from Join's return to that
// echo is the sample (reach in the result: median, p90, max, every
// sample). It includes one round trip over the overlay, and the time the
// other host's controller takes to see the new endpoint in etcd and
// program it as a peer (FDB and neighbour entries on its VXLAN device).
// The probe container's ARP retransmit time (net.ipv4.neigh.eth0.
// retrans_time_ms) is set to 1 ms, which the kernel takes as 10 ms, its
// floor: with the default of 1 s, an ARP request that went out before the
// peer was programmed would be repeated only a second later, and the
// sample would measure the client's ARP timer rather than the library. A
// sample is thus at most about 10 ms late.
//
//	netbench -overlay -n 200
//	netbench -overlay -n 200 -json
//
// With -serial the hosts attach one after another (host 1's N, then host
// 2's, then host 3's), and detach so too: the cost of an attach without
// the other hosts' attaches competing for the machine's CPUs (the other
// hosts' controllers still follow the store and program each new peer).
// Three hosts in one machine share its CPUs, where real hosts would each
// have their own.
//
// # Throughput
//
// With -throughput, two hosts and one container on each, on an overlay
// network: an iperf3 server in host 2's container and one in host 2's own
// namespace, and iperf3 clients (nsenter --net) in host 1's container to
// the container's overlay address, and in host 1's namespace to host 2's
// underlay address, one TCP stream each for -duration seconds. With
// -rounds R each path runs R times, alternating which goes first; the
// medians and their ratio are reported. Both paths cross the same veths
// and underlay bridge; the overlay adds the containers' veths, the
// network's bridges and the VXLAN encapsulation (and an MTU 50 bytes
// smaller). A round's ratio moves by ±0.15 on a shared 2-CPU machine:
// use 7 to 9 rounds.
//
//	netbench -overlay -throughput -duration 3 -rounds 9 -json

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/netkit/libnetwork"
	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/osl"
	"github.com/vishvananda/netlink"
)

const (
	// overlayHosts is how many hosts the attach benchmark has.
	overlayHosts = 3
	// overlayNetwork is the name of the benchmark's overlay network.
	overlayNetwork = "ov"
	// reachEvery: every reachEvery-th container of host 2 is probed.
	reachEvery = 10
	// echoPort is the UDP port of the probed containers' echo servers.
	echoPort = 7777
	// reachTimeout bounds one reachability sample.
	reachTimeout = 5 * time.Second
	// maxOverlayN is the largest -n with -overlay: the subnet is at most
	// a /16.
	maxOverlayN = (1<<16 - 16) / overlayHosts
)

// overlayResult is what -overlay prints.
type overlayResult struct {
	Overlay bool `json:"overlay"`
	Hosts   int  `json:"hosts"`
	// N is the number of containers per host.
	N int `json:"n"`
	// Serial is set when the hosts attached (and detached) one after
	// another instead of at once (-serial).
	Serial bool   `json:"serial,omitempty"`
	Subnet string `json:"subnet"`
	// NetworkSeenMs is, for each host but the first, the time from
	// NewNetwork's return on host 1 until the host had the network
	// (polled every millisecond).
	NetworkSeenMs []float64 `json:"network_seen_ms"`
	// Attach, Detach and Steps are of all hosts together, in the order
	// the operations started.
	Attach  stats            `json:"attach"`
	Detach  stats            `json:"detach"`
	Steps   map[string]stats `json:"steps"`
	PerHost []overlayHostRes `json:"per_host"`
	// Reach is the time from Join's return on host 2 until a container
	// on host 1 got an answer from the new container.
	Reach reachStats `json:"reach"`
	// DistinctAddrs is how many distinct addresses the 3×N endpoints had.
	DistinctAddrs int `json:"distinct_addresses"`
}

// overlayHostRes are one host's figures.
type overlayHostRes struct {
	Host   string           `json:"host"`
	VTEP   string           `json:"vtep"`
	Attach stats            `json:"attach"`
	Detach stats            `json:"detach"`
	Steps  map[string]stats `json:"steps"`
}

// reachStats are the reachability samples' figures, in milliseconds.
type reachStats struct {
	Samples  int       `json:"samples"`
	MedianMs float64   `json:"median_ms"`
	P90Ms    float64   `json:"p90_ms"`
	MaxMs    float64   `json:"max_ms"`
	RunsMs   []float64 `json:"runs_ms"`
}

// checkOverlayFlags refuses what an -overlay run cannot do, and fails at
// once when a tool it needs is missing.
func checkOverlayFlags(n int, throughput bool, duration, rounds int) {
	for _, name := range []string{"ports", "proto", "kernel", "bridge-mtu-user", "driver", "rootless", "dns", "dns-peers", "dns-outstanding", "dns-paced"} {
		if flagSet(name) {
			fail("-overlay: -" + name + " does not apply")
		}
	}
	if _, err := os.Stat(etcdBinary); err != nil {
		fail(fmt.Sprintf("%v: %v", errNoEtcd, err))
	}
	if throughput {
		for _, name := range []string{"n", "no-resolver", "serial"} {
			if flagSet(name) {
				fail("-overlay -throughput runs one container per host and no attach benchmark: -" + name + " does not apply")
			}
		}
		checkThroughputTools(duration, rounds)
		return
	}
	switch {
	case n < 1:
		fail("-n must be at least 1")
	case n > maxOverlayN:
		fail(fmt.Sprintf("-overlay: -n is at most %d (containers of %d hosts in one /16)", maxOverlayN, overlayHosts))
	case flagSet("duration"):
		fail("-duration needs -throughput, -dns or -rootless")
	case flagSet("rounds"):
		fail("-rounds needs -throughput or -rootless")
	}
}

// ovHost is one host of an -overlay run.
type ovHost struct {
	name string
	vtep net.IP
	ns   *osl.Namespace
	c    libnetwork.NetworkController
	nw   libnetwork.Network
}

// ovWorld is the multi-host world of an -overlay run.
type ovWorld struct {
	etcd  *etcdtest.Server
	hosts []*ovHost
	undo  []func()
}

// close stops the controllers and etcd, and removes the hosts.
func (w *ovWorld) close() {
	for i := len(w.undo) - 1; i >= 0; i-- {
		w.undo[i]()
	}
}

// newOverlayWorld starts etcd and makes n hosts with their controllers
// under dir.
func newOverlayWorld(dir string, n int) (_ *ovWorld, retErr error) {
	w := &ovWorld{}
	defer func() {
		if retErr != nil {
			w.close()
		}
	}()
	etcd, err := etcdtest.Launch(filepath.Join(dir, "etcd"))
	if err != nil {
		return nil, err
	}
	w.etcd = etcd
	w.undo = append(w.undo, etcd.Stop)

	self, err := osl.CurrentNamespace()
	if err != nil {
		return nil, err
	}
	w.undo = append(w.undo, func() { self.Close() })
	h := self.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "underlay0"}}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("underlay bridge: %w", err)
	}
	w.undo = append(w.undo, func() { _ = h.LinkDel(br) })
	if err := h.LinkSetUp(br); err != nil {
		return nil, err
	}
	for i := range n {
		name := fmt.Sprintf("host%d", i+1)
		hdir := filepath.Join(dir, name)
		ns, err := osl.NewNamespace(filepath.Join(hdir, "ns"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		w.undo = append(w.undo, func() { _ = ns.Destroy() })
		port := "ul-" + name
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
		if err := h.LinkAdd(veth); err != nil {
			return nil, fmt.Errorf("%s: underlay veth: %w", name, err)
		}
		if err := h.LinkSetUp(veth); err != nil {
			return nil, fmt.Errorf("%s: underlay port up: %w", name, err)
		}
		vtep := net.IPv4(192, 168, 210, byte(i+1)).To4()
		if err := ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: vtep, Mask: net.CIDRMask(24, 32)}, NoIPv6LinkLocal: true}); err != nil {
			return nil, fmt.Errorf("%s: underlay address: %w", name, err)
		}
		c, err := libnetwork.New(
			config.OptionDataDir(filepath.Join(hdir, "data")),
			config.OptionExecRoot(filepath.Join(hdir, "exec")),
			config.OptionNetworkNamespace(ns.Path()),
			config.OptionKVProvider("etcd"),
			config.OptionKVProviderURL(etcd.Endpoints()[0]),
			config.OptionKVPrefix("/netbench"),
			config.OptionDiscoveryAddress(vtep.String()),
		)
		if err != nil {
			return nil, fmt.Errorf("%s: controller: %w", name, err)
		}
		w.undo = append(w.undo, c.Stop)
		w.hosts = append(w.hosts, &ovHost{name: name, vtep: vtep, ns: ns, c: c})
	}
	return w, nil
}

// newNetwork creates the overlay network on host 1 and waits until every
// other host has it; it returns how long each of those took after
// NewNetwork returned. A first network, "warmup", goes the same way
// before, untimed: controllers just started may still be starting to
// follow the store (their first listing and watch), which would be
// counted otherwise.
func (w *ovWorld) newNetwork(subnet *net.IPNet) ([]float64, error) {
	warm := &net.IPNet{IP: net.IPv4(10, 201, 0, 0).To4(), Mask: net.CIDRMask(24, 32)}
	if _, err := w.createAndWait("warmup", warm); err != nil {
		return nil, err
	}
	return w.createAndWait(overlayNetwork, subnet)
}

// createAndWait creates overlay network name on host 1 and waits until
// every other host has it; it sets the hosts' nw when name is the
// benchmark's network.
func (w *ovWorld) createAndWait(name string, subnet *net.IPNet) ([]float64, error) {
	h1 := w.hosts[0]
	nw, err := h1.c.NewNetwork("overlay", name,
		libnetwork.NetworkOptionIpam("", "", []*libnetwork.IpamConf{{PreferredPool: subnet.String()}}, nil, nil))
	if err != nil {
		return nil, fmt.Errorf("%s: creating overlay network %s: %w", h1.name, name, err)
	}
	t0 := time.Now()
	set := func(h *ovHost, nw libnetwork.Network) {
		if name == overlayNetwork {
			h.nw = nw
		}
	}
	set(h1, nw)
	var seen []float64
	for _, h := range w.hosts[1:] {
		for {
			if nw, err := h.c.NetworkByName(name); err == nil {
				set(h, nw)
				seen = append(seen, float64(time.Since(t0).Microseconds())/1000)
				break
			}
			if time.Since(t0) > 10*time.Second {
				return nil, fmt.Errorf("%s has not seen network %s 10 s after its creation on %s", h.name, name, h1.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return seen, nil
}

// overlaySubnet returns a subnet of 10.200.0.0/16 with room for n
// containers (and the network's gateway and a few more).
func overlaySubnet(n int) *net.IPNet {
	bits := 8
	for 1<<bits < n+16 {
		bits++
	}
	return &net.IPNet{IP: net.IPv4(10, 200, 0, 0).To4(), Mask: net.CIDRMask(32-bits, 32)}
}

// echoServer is a UDP echo server in a container's namespace.
type echoServer struct{ pc net.PacketConn }

// startEcho starts a UDP echo server on echoPort of the namespace at path.
func startEcho(path string) (*echoServer, error) {
	ns, err := osl.OpenNamespace(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", echoPort))
		return err
	}); err != nil {
		return nil, fmt.Errorf("echo server in %s: %w", path, err)
	}
	go func() {
		b := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(b[:n], from)
		}
	}()
	return &echoServer{pc: pc}, nil
}

func (e *echoServer) close() { e.pc.Close() }

// prober sends datagrams from a container's namespace.
type prober struct{ ns *osl.Namespace }

// newProber makes a prober in the container joined in sb, whose ARP
// requests are retried every millisecond (see the package comment).
func newProber(sb libnetwork.Sandbox) (*prober, error) {
	ns, err := osl.OpenNamespace(sb.Key())
	if err != nil {
		return nil, err
	}
	if err := ns.SetSysctl("net.ipv4.neigh.eth0.retrans_time_ms", "1"); err != nil {
		ns.Close()
		return nil, err
	}
	return &prober{ns: ns}, nil
}

func (p *prober) close() { p.ns.Close() }

// reach sends a datagram to ip's echo server every millisecond until one
// comes back, and returns when it did.
func (p *prober) reach(ip net.IP, timeout time.Duration) (time.Time, error) {
	var pc net.PacketConn
	if err := p.ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		return time.Time{}, err
	}
	defer pc.Close()
	deadline := time.Now().Add(timeout)
	_ = pc.SetReadDeadline(deadline)
	got := make(chan time.Time, 1)
	go func() {
		defer close(got)
		b := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			if u, ok := from.(*net.UDPAddr); ok && u.IP.Equal(ip) && bytes.Equal(b[:n], []byte("probe")) {
				got <- time.Now()
				return
			}
		}
	}()
	to := &net.UDPAddr{IP: ip, Port: echoPort}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		// Errors (a neighbour not resolved yet) only mean: again.
		_, _ = pc.WriteTo([]byte("probe"), to)
		select {
		case t, ok := <-got:
			if !ok {
				return time.Time{}, fmt.Errorf("no answer from %s within %v", ip, timeout)
			}
			return t, nil
		case <-tick.C:
		}
	}
}

// hostRun is what one host's attach loop recorded.
type hostRun struct {
	ctrs           []container
	attach, detach []time.Duration
	attachStart    []time.Time
	detachStart    []time.Time
	steps          stepTimes
}

// timedOp is an operation's time and start, to order those of all hosts.
type timedOp struct {
	start time.Time
	took  time.Duration
}

// inStartOrder returns the times of ops of all runs in the order they
// started.
func inStartOrder(runs []*hostRun, pick func(*hostRun) ([]time.Time, []time.Duration)) []time.Duration {
	var ops []timedOp
	for _, r := range runs {
		starts, took := pick(r)
		for i := range took {
			ops = append(ops, timedOp{starts[i], took[i]})
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].start.Before(ops[j].start) })
	out := make([]time.Duration, len(ops))
	for i, o := range ops {
		out[i] = o.took
	}
	return out
}

func runOverlay(n int, noResolver, serial bool) (*overlayResult, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	w, err := newOverlayWorld(dir, overlayHosts)
	if err != nil {
		return nil, err
	}
	defer w.close()
	subnet := overlaySubnet(overlayHosts*n + 2)
	res := &overlayResult{Overlay: true, Hosts: overlayHosts, N: n, Serial: serial, Subnet: subnet.String(), Steps: map[string]stats{}}
	if res.NetworkSeenMs, err = w.newNetwork(subnet); err != nil {
		return nil, err
	}
	h1, h2 := w.hosts[0], w.hosts[1]

	// The probe on host 1, and a first container on host 2 that it
	// reaches: both hosts have each other's peers before the samples.
	probeCtr, _, err := attachOne(h1.c, h1.nw, "h1-probe", "h1-probe", nil, nil, stepTimes{}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: the probe container: %w", h1.name, err)
	}
	defer func() { _, _ = detachOne(probeCtr, stepTimes{}) }()
	probe, err := newProber(probeCtr.sb)
	if err != nil {
		return nil, err
	}
	defer probe.close()
	var echo *echoServer
	first, _, err := attachOne(h2.c, h2.nw, "h2-first", "h2-first", nil, nil, stepTimes{}, func(sb libnetwork.Sandbox) (err error) {
		echo, err = startEcho(sb.Key())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: the first container: %w", h2.name, err)
	}
	defer func() { _, _ = detachOne(first, stepTimes{}) }()
	_, err = probe.reach(first.ep.Info().Iface().Address().IP, 10*time.Second)
	echo.close()
	if err != nil {
		return nil, fmt.Errorf("the probe on %s does not reach the first container on %s: %w", h1.name, h2.name, err)
	}

	var epOpts []libnetwork.EndpointOption
	if noResolver {
		epOpts = append(epOpts, libnetwork.CreateOptionDisableResolution())
	}
	runs := make([]*hostRun, len(w.hosts))
	for i := range runs {
		runs[i] = &hostRun{steps: stepTimes{}}
	}
	var (
		reachMu  sync.Mutex
		reaches  []time.Duration
		reachErr error
		probes   sync.WaitGroup
	)
	sample := func(ip net.IP, joined time.Time, echo *echoServer) {
		defer probes.Done()
		defer echo.close()
		t, err := probe.reach(ip, reachTimeout)
		reachMu.Lock()
		defer reachMu.Unlock()
		if err != nil {
			reachErr = errors.Join(reachErr, err)
			return
		}
		reaches = append(reaches, t.Sub(joined))
	}
	errs := make([]error, len(w.hosts))
	var wg sync.WaitGroup
	for hi, h := range w.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runs[hi]
			for i := range n {
				var echo *echoServer
				var hook func(libnetwork.Sandbox) error
				if hi == 1 && i%reachEvery == 0 {
					hook = func(sb libnetwork.Sandbox) (err error) {
						echo, err = startEcho(sb.Key())
						return err
					}
				}
				t0 := time.Now()
				p, took, err := attachOne(h.c, h.nw, fmt.Sprintf("h%d-ctr%d", hi+1, i), fmt.Sprintf("h%d-ep%d", hi+1, i), nil, epOpts, r.steps, hook)
				joined := time.Now()
				if err != nil {
					if echo != nil {
						echo.close()
					}
					errs[hi] = fmt.Errorf("%s: attach %d: %w", h.name, i, err)
					return
				}
				if echo != nil {
					probes.Add(1)
					go sample(p.ep.Info().Iface().Address().IP, joined, echo)
				}
				r.ctrs = append(r.ctrs, p)
				r.attach = append(r.attach, took)
				r.attachStart = append(r.attachStart, t0)
			}
		}()
		if serial {
			wg.Wait()
		}
	}
	wg.Wait()
	probes.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if reachErr != nil {
		return nil, fmt.Errorf("reachability from %s: %w", h1.name, reachErr)
	}
	addrs := map[string]string{}
	for hi, r := range runs {
		for _, p := range r.ctrs {
			a := p.ep.Info().Iface().Address()
			if a == nil {
				return nil, fmt.Errorf("%s: endpoint %s has no address", w.hosts[hi].name, p.ep.Name())
			}
			if other, dup := addrs[a.IP.String()]; dup {
				return nil, fmt.Errorf("address %s given to %s and %s", a.IP, other, p.ep.Name())
			}
			addrs[a.IP.String()] = p.ep.Name()
		}
	}
	res.DistinctAddrs = len(addrs)

	for hi, h := range w.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := runs[hi]
			for i, p := range r.ctrs {
				t0 := time.Now()
				took, err := detachOne(p, r.steps)
				if err != nil {
					errs[hi] = fmt.Errorf("%s: detach %d: %w", h.name, i, err)
					return
				}
				r.detach = append(r.detach, took)
				r.detachStart = append(r.detachStart, t0)
			}
		}()
		if serial {
			wg.Wait()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	all := stepTimes{}
	for hi, r := range runs {
		hr := overlayHostRes{Host: w.hosts[hi].name, VTEP: w.hosts[hi].vtep.String(), Attach: summarize(r.attach), Detach: summarize(r.detach), Steps: map[string]stats{}}
		for k, v := range r.steps {
			hr.Steps[k] = summarize(v)
		}
		res.PerHost = append(res.PerHost, hr)
	}
	res.Attach = summarize(inStartOrder(runs, func(r *hostRun) ([]time.Time, []time.Duration) { return r.attachStart, r.attach }))
	res.Detach = summarize(inStartOrder(runs, func(r *hostRun) ([]time.Time, []time.Duration) { return r.detachStart, r.detach }))
	// Each step of all hosts, in the order of the attaches (or detaches)
	// they belong to.
	for _, step := range []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join"} {
		all[step] = inStartOrder(runs, func(r *hostRun) ([]time.Time, []time.Duration) { return r.attachStart, r.steps[step] })
	}
	for _, step := range []string{"detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"} {
		all[step] = inStartOrder(runs, func(r *hostRun) ([]time.Time, []time.Duration) { return r.detachStart, r.steps[step] })
	}
	for k, v := range all {
		res.Steps[k] = summarize(v)
	}
	res.Reach = summarizeReach(reaches)
	return res, nil
}

func summarizeReach(d []time.Duration) reachStats {
	s := reachStats{Samples: len(d), MedianMs: percentile(d, 50), P90Ms: percentile(d, 90), MaxMs: percentile(d, 100)}
	for _, v := range d {
		s.RunsMs = append(s.RunsMs, float64(v.Microseconds())/1000)
	}
	return s
}

func (r *overlayResult) print() {
	how := "the hosts attaching at once"
	if r.Serial {
		how = "the hosts attaching one after another"
	}
	fmt.Printf("netbench: overlay network %s (%s) on %d hosts sharing an etcd, n=%d containers per host, %s\n", overlayNetwork, r.Subnet, r.Hosts, r.N, how)
	fmt.Printf("network seen by the other hosts after (ms): %v; distinct addresses: %d\n", r.NetworkSeenMs, r.DistinctAddrs)
	fmt.Printf("%-26s %9s %9s %9s %12s %12s  %s\n", "path/step", "median", "p90", "p99", "first20 med", "last20 med", "median of each tenth (ms)")
	row := func(name string, s stats) {
		fmt.Printf("%-26s %7.2fms %7.2fms %7.2fms %10.2fms %10.2fms ", name, s.MedianMs, s.P90Ms, s.P99Ms, s.First20MedianMs, s.Last20MedianMs)
		for _, t := range s.TenthsMedianMs {
			fmt.Printf(" %.2f", t)
		}
		fmt.Println()
	}
	steps := func(prefix string, all map[string]stats, names ...string) {
		for _, k := range names {
			row(prefix+k, all[k])
		}
	}
	fmt.Println("all hosts:")
	row("attach", r.Attach)
	steps("  ", r.Steps, "attach.new_sandbox", "attach.create_endpoint", "attach.join")
	row("detach", r.Detach)
	steps("  ", r.Steps, "detach.leave", "detach.delete_endpoint", "detach.delete_sandbox")
	for _, h := range r.PerHost {
		fmt.Printf("%s (VTEP %s):\n", h.Host, h.VTEP)
		row("attach", h.Attach)
		steps("  ", h.Steps, "attach.join")
		row("detach", h.Detach)
	}
	fmt.Printf("reachable from host1 after Join returned on host2 (%d samples): median %.2fms p90 %.2fms max %.2fms\n", r.Reach.Samples, r.Reach.MedianMs, r.Reach.P90Ms, r.Reach.MaxMs)
}

// overlayThroughputResult is what -overlay -throughput prints.
type overlayThroughputResult struct {
	// OverlayGbps and UnderlayGbps are the medians of the runs, in
	// Gbit/s received by the server.
	OverlayGbps  float64 `json:"overlay_gbps"`
	UnderlayGbps float64 `json:"underlay_gbps"`
	// OverlayToUnderlay is OverlayGbps / UnderlayGbps.
	OverlayToUnderlay float64 `json:"overlay_to_underlay"`
	// RoundRatios are each round's overlay / underlay: the two runs of a
	// round are back to back, so a load that drifts weighs on both alike.
	RoundRatios         []float64 `json:"round_ratios"`
	OverlayRunsGbps     []float64 `json:"overlay_runs_gbps"`
	UnderlayRunsGbps    []float64 `json:"underlay_runs_gbps"`
	OverlayRetransmits  int       `json:"overlay_retransmits"`
	UnderlayRetransmits int       `json:"underlay_retransmits"`
	DurationS           int       `json:"duration_s"`
	Rounds              int       `json:"rounds"`
	OverlayAddr         string    `json:"overlay_addr"`
	UnderlayAddr        string    `json:"underlay_addr"`
	OverlayMTU          int       `json:"overlay_mtu"`
	UnderlayMTU         int       `json:"underlay_mtu"`
}

func runOverlayThroughput(duration, rounds int) (*overlayThroughputResult, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	w, err := newOverlayWorld(dir, 2)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if _, err := w.newNetwork(overlaySubnet(2)); err != nil {
		return nil, err
	}
	h1, h2 := w.hosts[0], w.hosts[1]
	client, _, err := attachOne(h1.c, h1.nw, "h1-iperf", "h1-iperf", nil, nil, stepTimes{}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h1.name, err)
	}
	defer func() { _, _ = detachOne(client, stepTimes{}) }()
	var echo *echoServer
	server, _, err := attachOne(h2.c, h2.nw, "h2-iperf", "h2-iperf", nil, nil, stepTimes{}, func(sb libnetwork.Sandbox) (err error) {
		echo, err = startEcho(sb.Key())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h2.name, err)
	}
	defer func() { _, _ = detachOne(server, stepTimes{}) }()
	srvIP := server.ep.Info().Iface().Address().IP
	probe, err := newProber(client.sb)
	if err != nil {
		return nil, err
	}
	_, err = probe.reach(srvIP, 10*time.Second)
	probe.close()
	echo.close()
	if err != nil {
		return nil, fmt.Errorf("the container on %s does not reach the one on %s: %w", h1.name, h2.name, err)
	}
	res := &overlayThroughputResult{
		DurationS:    duration,
		Rounds:       rounds,
		OverlayAddr:  net.JoinHostPort(srvIP.String(), fmt.Sprint(iperfPort)),
		UnderlayAddr: net.JoinHostPort(h2.vtep.String(), fmt.Sprint(iperfPort)),
	}
	if res.OverlayMTU, err = mtuOf(server.sb.Key(), "eth0"); err != nil {
		return nil, err
	}
	if res.UnderlayMTU, err = mtuOf(h2.ns.Path(), "eth0"); err != nil {
		return nil, err
	}
	for _, ns := range []string{server.sb.Key(), h2.ns.Path()} {
		stop, err := startIperfServer(ns)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	type path struct {
		from, addr string
		runs       *[]float64
		retrans    *int
	}
	paths := []path{
		{client.sb.Key(), res.OverlayAddr, &res.OverlayRunsGbps, &res.OverlayRetransmits},
		{h1.ns.Path(), res.UnderlayAddr, &res.UnderlayRunsGbps, &res.UnderlayRetransmits},
	}
	for r := range rounds {
		for i := range paths {
			p := paths[(i+r)%2]
			gbps, retrans, err := iperfClient(p.from, p.addr, duration)
			if err != nil {
				return nil, err
			}
			*p.runs = append(*p.runs, gbps)
			*p.retrans += retrans
		}
	}
	for r := range rounds {
		res.RoundRatios = append(res.RoundRatios, res.OverlayRunsGbps[r]/res.UnderlayRunsGbps[r])
	}
	res.OverlayGbps = median(res.OverlayRunsGbps)
	res.UnderlayGbps = median(res.UnderlayRunsGbps)
	if res.UnderlayGbps > 0 {
		res.OverlayToUnderlay = res.OverlayGbps / res.UnderlayGbps
	}
	return res, nil
}

// mtuOf returns the MTU of interface name in the namespace at path.
func mtuOf(path, name string) (int, error) {
	ns, err := osl.OpenNamespace(path)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	l, err := ns.Handle().LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("%s in %s: %w", name, path, err)
	}
	return l.Attrs().MTU, nil
}

func (r *overlayThroughputResult) print() {
	fmt.Printf("netbench: overlay throughput, iperf3, one TCP stream, %d s per run, %d round(s), host1 to host2\n", r.DurationS, r.Rounds)
	fmt.Printf("  overlay  (container to container, %s, MTU %d): %.2f Gbit/s  runs %v, %d retransmits\n", r.OverlayAddr, r.OverlayMTU, r.OverlayGbps, r.OverlayRunsGbps, r.OverlayRetransmits)
	fmt.Printf("  underlay (host to host, %s, MTU %d): %.2f Gbit/s  runs %v, %d retransmits\n", r.UnderlayAddr, r.UnderlayMTU, r.UnderlayGbps, r.UnderlayRunsGbps, r.UnderlayRetransmits)
	fmt.Printf("  overlay / underlay: %.2f (each round: %.2f)\n", r.OverlayToUnderlay, r.RoundRatios)
}
