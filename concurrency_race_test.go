package libnetwork

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The tests in this file are written for the race detector: they run
// mutating operations against readers of the same objects, and each checks
// the end state (objects gone, addresses free, no links left). They pass
// without -race too, but only -race sees a read of a field that another
// goroutine writes without the lock.

// TestRaceAttachDetachWithReaders runs 16 goroutines of 100 container
// lifecycles each on two bridge networks (one dual-stack) while other
// goroutines walk every network, endpoint and sandbox and read their
// information.
func TestRaceAttachDetachWithReaders(t *testing.T) {
	e := newTmpfsEnv(t)
	c := e.start()
	nets := raceNetworks(t, c)
	before := e.snapshot(c)

	// The readers make a pass each time a lifecycle ends (passes that
	// would queue up are merged): they read throughout, while 16
	// lifecycles are in flight, without taking the CPU from them.
	stop := make(chan struct{})
	progress := make(chan struct{}, 1)
	var readers sync.WaitGroup
	var reads atomic.Int64
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				case <-progress:
				}
				readEverything(t, c)
				reads.Add(1)
			}
		}()
	}

	const workers, rounds = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := lifecycle(c, nets, fmt.Sprintf("w%dr%d", w, r)); err != nil {
					errs <- err
					return
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d reader passes", reads.Load())
	if reads.Load() == 0 {
		t.Error("the readers never completed a pass")
	}
	e.settle(c, before)
	e.requireSame(before, e.snapshot(c), "16x100 lifecycles")
	requireEmpty(t, c, nets)
}

// newTmpfsEnv is newEnv with the data dir and exec root on a tmpfs of
// their own, as the exec root is in production (/run). On this project's
// test machines a lifecycle on ext4 spends most of its time creating and
// removing the sandbox's directories and files (BenchmarkAttachDetach:
// 10.6 ms/op under t.TempDir() on ext4, 2.7 ms/op with TMPDIR on tmpfs),
// which would hide the races behind the disk.
func newTmpfsEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	root := filepath.Join(filepath.Dir(e.dataDir), "tmpfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary runs in a private mount namespace (testutil.Main).
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	e.dataDir, e.execRoot = filepath.Join(root, "data"), filepath.Join(root, "exec")
	t.Cleanup(func() {
		entries, _ := os.ReadDir(filepath.Join(e.execRoot, "netns"))
		for _, en := range entries {
			_ = osl.RemoveNamespaceFile(filepath.Join(e.execRoot, "netns", en.Name()))
		}
		_ = unix.Unmount(root, unix.MNT_DETACH)
	})
	return e
}

// raceNetworks makes two bridge networks with small pools, the second
// dual-stack, so AddressIPv6 has something to read. A /27 holds 29
// endpoints besides the gateway, enough for 16 workers.
func raceNetworks(t *testing.T, c *controller) []Network {
	t.Helper()
	n0, err := c.NewNetwork("bridge", "r0", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.170.0.0/27"}}, nil, nil))
	mustf(t, err, "network r0")
	n1, err := c.NewNetwork("bridge", "r1", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.171.0.0/27"}}, []*IpamConf{{PreferredPool: "fd17:1::/64"}}, nil))
	mustf(t, err, "network r1")
	return []Network{n0, n1}
}

// readEverything calls the read-only accessors of every network, endpoint
// and sandbox, as an embedder's inspector would, and checks that what it
// reads is whole: an address lies in its network's pool, a name is not
// empty.
func readEverything(t *testing.T, c *controller) {
	c.WalkNetworks(func(n Network) bool {
		v4, v6 := n.Info().IpamInfo()
		pools := poolsOf(append(v4, v6...))
		_, _, _, _ = n.Info().IpamConfig()
		_ = n.Info().Labels()
		n.WalkEndpoints(func(ep Endpoint) bool {
			if ep.Name() == "" {
				t.Errorf("endpoint %s of network %s has no name", ep.ID(), n.Name())
			}
			info := ep.Info()
			iface := info.Iface()
			for _, a := range []*net.IPNet{iface.Address(), iface.AddressIPv6()} {
				if a != nil && len(pools) > 0 && !slices.ContainsFunc(pools, func(p *net.IPNet) bool { return p.Contains(a.IP) }) {
					t.Errorf("endpoint %s: address %s outside the pools %v of network %s", ep.Name(), a, pools, n.Name())
				}
			}
			_ = iface.MacAddress()
			_, _ = info.Gateway(), info.GatewayIPv6()
			_ = info.StaticRoutes()
			_ = info.Sandbox()
			_, _ = ep.DriverInfo()
			return false
		})
		for _, ep := range n.Endpoints() {
			_, _ = n.EndpointByName(ep.Name())
		}
		return false
	})
	stats := true
	c.WalkSandboxes(func(sb Sandbox) bool {
		_, _ = sb.Key(), sb.Labels()
		if stats {
			// A netlink dump: one sandbox a pass, or the readers
			// would take most of the CPU the writers race them for.
			_, _ = sb.Statistics()
			stats = false
		}
		for _, ep := range sb.Endpoints() {
			name := ep.Name()
			if ips, _ := sb.ResolveName(name, net.IPv4len); len(ips) > 0 {
				_ = sb.ResolveIP(reverseName(ips[0]))
			}
		}
		return false
	})
}

// spinReaders runs readEverything in a loop in another goroutine until the
// returned function is called, which waits for it.
func spinReaders(t *testing.T, c *controller) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			readEverything(t, c)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func poolsOf(infos []*IpamInfo) []*net.IPNet {
	var out []*net.IPNet
	for _, i := range infos {
		out = append(out, i.Pool)
	}
	return out
}

// reverseName is ip's PTR name.
func reverseName(ip net.IP) string {
	v4 := ip.To4()
	if v4 == nil {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0])
}

// settle releases the namespaces deleted sandboxes still hold and waits
// for the kernel, which frees them asynchronously, to remove their veths
// from the controller's namespace.
func (e *testEnv) settle(c *controller, before kernelState) {
	e.t.Helper()
	c.nsReaper.release()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// A link dump the kernel's clean-up interrupts is tried again.
		links, err := e.host.Handle().LinkList()
		if err == nil {
			var names []string
			for _, l := range links {
				names = append(names, l.Attrs().Name)
			}
			slices.Sort(names)
			if slices.Equal(names, before.links) {
				return
			}
		} else if !errors.Is(err, netlink.ErrDumpInterrupted) {
			e.t.Fatalf("listing links: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireEmpty checks that the networks have no endpoints and that IPAM
// holds none of their addresses: a new endpoint gets each network's first
// address again, and the whole IPv4 pool can be filled.
func requireEmpty(t *testing.T, c *controller, nets []Network) {
	t.Helper()
	if sbs := c.Sandboxes(); len(sbs) != 0 {
		t.Errorf("%d sandboxes left", len(sbs))
	}
	for _, n := range nets {
		if eps := n.Endpoints(); len(eps) != 0 {
			t.Errorf("network %s: %d endpoints left", n.Name(), len(eps))
		}
		v4, v6 := n.Info().IpamInfo()
		ep, err := n.CreateEndpoint("probe")
		mustf(t, err, "probe endpoint on %s", n.Name())
		if want := firstAddr(v4); !ep.Info().Iface().Address().IP.Equal(want) {
			t.Errorf("network %s: a new endpoint got %s, want the first address %s", n.Name(), ep.Info().Iface().Address(), want)
		}
		if len(v6) > 0 {
			if want := firstAddr(v6); ep.Info().Iface().AddressIPv6() == nil || !ep.Info().Iface().AddressIPv6().IP.Equal(want) {
				t.Errorf("network %s: a new endpoint got %s, want the first address %s", n.Name(), ep.Info().Iface().AddressIPv6(), want)
			}
		}
		probes := []Endpoint{ep}
		// The networks here are /27s (or larger): 29 endpoints besides
		// the gateway.
		for i := 1; i < 29; i++ {
			ep, err := n.CreateEndpoint(fmt.Sprintf("probe%d", i))
			mustf(t, err, "address %d of network %s after the storm", i, n.Name())
			probes = append(probes, ep)
		}
		for _, ep := range probes {
			mustf(t, ep.Delete(false), "deleting probe")
		}
	}
}

// firstAddr is the address after the gateway of the first pool.
func firstAddr(infos []*IpamInfo) net.IP {
	ip := slices.Clone(infos[0].Gateway.IP.To16())
	ip[len(ip)-1]++
	return ip
}

// TestRaceNewNetworkVsDelete creates a network on a pool while the network
// holding that pool is deleted: the overlap check and IpamInfo read the
// pools of a network that is going away. The creator retries until it
// succeeds; until the old network's pools are back every try must be
// refused as overlapping, and then it must succeed.
func TestRaceNewNetworkVsDelete(t *testing.T) {
	e := newTmpfsEnv(t)
	c := e.start()
	before := e.snapshot(c)
	const pool = "10.172.0.0/24"
	ipam := NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: pool}}, nil, nil)

	stopReaders := spinReaders(t, c)
	old, err := c.NewNetwork("bridge", "net0", ipam)
	mustf(t, err, "first network")
	refusals := 0
	for i := 1; i <= 30; i++ {
		var wg sync.WaitGroup
		var delErr error
		var nw Network
		wg.Add(2)
		go func() { defer wg.Done(); delErr = old.Delete() }()
		go func() {
			defer wg.Done()
			for {
				var err error
				if nw, err = c.NewNetwork("bridge", fmt.Sprintf("net%d", i), ipam); err == nil {
					return
				}
				if !types.IsForbidden(err) || !strings.Contains(err.Error(), "overlaps") {
					t.Errorf("round %d: NewNetwork: %v, want success or an overlap refusal", i, err)
					return
				}
				refusals++
			}
		}()
		wg.Wait()
		mustf(t, delErr, "round %d: Delete", i)
		if nw == nil {
			t.FailNow()
		}
		if got := c.Networks(); len(got) != 1 || got[0] != nw {
			t.Fatalf("round %d: networks %v, want only the new one", i, got)
		}
		old = nw
	}
	stopReaders()
	t.Logf("%d overlap refusals in 30 rounds", refusals)
	mustf(t, old.Delete(), "last network")
	requireSettled(e, c, before, "network create/delete races")
	// The pool is free again, whole.
	n, err := c.NewNetwork("bridge", "after", ipam)
	mustf(t, err, "network on the pool after the races")
	v4, _ := n.Info().IpamInfo()
	if len(v4) != 1 || v4[0].Pool.String() != pool || v4[0].Gateway.IP.String() != "10.172.0.1" {
		t.Errorf("pool after the races: %+v, want %s with gateway 10.172.0.1", v4, pool)
	}
	requireEmpty(t, c, []Network{n})
	mustf(t, n.Delete(), "network after the races")
}

// requireSettled waits for deleted namespaces to be freed, then compares
// the kernel and the stores with before.
func requireSettled(e *testEnv, c *controller, before kernelState, what string) {
	e.t.Helper()
	e.settle(c, before)
	e.requireSame(before, e.snapshot(c), what)
}

// TestRaceResolveVsLeaveDelete resolves a peer's name and address from
// another sandbox while the peer joins, leaves and is deleted over and
// over. An answer is the peer's address or nothing.
func TestRaceResolveVsLeaveDelete(t *testing.T) {
	e := newTmpfsEnv(t)
	c := e.start()
	nets := raceNetworks(t, c)
	n := nets[1]
	before := e.snapshot(c)

	asker, err := c.NewSandbox("asker")
	mustf(t, err, "asker sandbox")
	own, err := n.CreateEndpoint("asker")
	mustf(t, err, "asker endpoint")
	mustf(t, own.Join(asker), "asker join")
	peerSb, err := c.NewSandbox("peer")
	mustf(t, err, "peer sandbox")

	stopReaders := spinReaders(t, c)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var answers atomic.Int64
	for _, iplen := range []int{net.IPv4len, net.IPv6len} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ips, _ := asker.ResolveName("peer", iplen)
				for _, ip := range ips {
					answers.Add(1)
					if !ip.Equal(net.ParseIP("10.171.0.3")) && !ip.Equal(net.ParseIP("fd17:1::3")) {
						t.Errorf("peer resolved to %s, want 10.171.0.3 or fd17:1::3", ip)
					}
					if name := asker.ResolveIP(reverseName(ip)); ip.To4() != nil && name != "" && name != "peer.r1" {
						t.Errorf("%s resolved back to %q, want peer.r1", ip, name)
					}
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		ep, err := n.CreateEndpoint("peer")
		mustf(t, err, "round %d: peer endpoint", i)
		mustf(t, ep.Join(peerSb), "round %d: peer join", i)
		mustf(t, ep.Leave(peerSb), "round %d: peer leave", i)
		mustf(t, ep.Delete(false), "round %d: peer delete", i)
	}
	close(stop)
	readers.Wait()
	stopReaders()
	t.Logf("%d answers while the peer came and went", answers.Load())
	if ips, _ := asker.ResolveName("peer", net.IPv4len); len(ips) != 0 {
		t.Errorf("deleted peer still resolves to %v", ips)
	}
	mustf(t, peerSb.Delete(), "peer sandbox delete")
	mustf(t, own.Leave(asker), "asker leave")
	mustf(t, own.Delete(false), "asker endpoint delete")
	mustf(t, asker.Delete(), "asker sandbox delete")
	requireSettled(e, c, before, "resolve against leave and delete")
	requireEmpty(t, c, nets)
}

// TestRaceJoinVsEndpointDelete joins an endpoint while it is deleted:
// exactly one of the two wins, and the loser leaves nothing behind.
func TestRaceJoinVsEndpointDelete(t *testing.T) {
	e := newTmpfsEnv(t)
	c := e.start()
	nets := raceNetworks(t, c)
	n := nets[1]
	before := e.snapshot(c)

	stopReaders := spinReaders(t, c)
	wins := map[string]int{}
	for i := 0; i < 50; i++ {
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i))
		mustf(t, err, "round %d: sandbox", i)
		ep, err := n.CreateEndpoint(fmt.Sprintf("e%d", i))
		mustf(t, err, "round %d: endpoint", i)
		var wg sync.WaitGroup
		var joinErr, delErr error
		wg.Add(2)
		go func() { defer wg.Done(); joinErr = ep.Join(sb) }()
		go func() { defer wg.Done(); delErr = ep.Delete(false) }()
		wg.Wait()
		links := sandboxLinks(t, sb)
		switch {
		case joinErr == nil && delErr == nil:
			t.Fatalf("round %d: both Join and Delete succeeded", i)
		case joinErr == nil:
			wins["join"]++
			if !errors.As(delErr, new(*ActiveContainerError)) && !types.IsForbidden(delErr) {
				t.Errorf("round %d: Delete lost to Join with %v, want an active-container or busy refusal", i, delErr)
			}
			if !slices.Contains(links, "eth0") {
				t.Errorf("round %d: Join won but the sandbox has %v", i, links)
			}
			mustf(t, ep.Leave(sb), "round %d: leave", i)
			mustf(t, ep.Delete(false), "round %d: delete after the join won", i)
		case delErr == nil:
			wins["delete"]++
			var unknown *UnknownEndpointError
			if !errors.As(joinErr, &unknown) && !errors.As(joinErr, new(ErrInvalidJoin)) {
				t.Errorf("round %d: Join lost to Delete with %v, want an unknown-endpoint or invalid-join refusal", i, joinErr)
			}
			if !slices.Equal(links, []string{"lo"}) {
				t.Errorf("round %d: Delete won but the sandbox has %v", i, links)
			}
			if _, err := n.EndpointByID(ep.ID()); err == nil {
				t.Errorf("round %d: deleted endpoint still in its network", i)
			}
		default:
			t.Fatalf("round %d: both failed: join %v, delete %v", i, joinErr, delErr)
		}
		mustf(t, sb.Delete(), "round %d: sandbox delete", i)
	}
	stopReaders()
	t.Logf("wins: %v", wins)
	requireSettled(e, c, before, "join against delete")
	requireEmpty(t, c, nets)
}

// TestRaceRenameVsReaders renames a sandbox's endpoints while others read
// their names, list and look them up by name, and resolve them.
func TestRaceRenameVsReaders(t *testing.T) {
	e := newTmpfsEnv(t)
	c := e.start()
	nets := raceNetworks(t, c)
	before := e.snapshot(c)
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	var eps []Endpoint
	for _, n := range nets {
		ep, err := n.CreateEndpoint("name0")
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(sb), "join")
		eps = append(eps, ep)
	}
	other, err := c.NewSandbox("other")
	mustf(t, err, "other sandbox")
	oep, err := nets[0].CreateEndpoint("other")
	mustf(t, err, "other endpoint")
	mustf(t, oep.Join(other), "other join")

	const renames = 100
	valid := func(name string) bool {
		var i int
		_, err := fmt.Sscanf(name, "name%d", &i)
		return err == nil && i >= 0 && i <= renames
	}
	stopReaders := spinReaders(t, c)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Endpoints sorts by name: two endpoints on nets[0].
			for _, ep := range nets[0].Endpoints() {
				if name := ep.Name(); name != "other" && !valid(name) {
					t.Errorf("endpoint name %q was never given", name)
				}
			}
		}
	}()
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			name := eps[0].Name()
			if ips, _ := other.ResolveName(name, net.IPv4len); len(ips) > 0 {
				if got := other.ResolveIP(reverseName(ips[0])); got != "" && !valid(strings.TrimSuffix(got, ".r0")) {
					t.Errorf("%s resolved back to %q", ips[0], got)
				}
			}
		}
	}()
	for i := 1; i <= renames; i++ {
		mustf(t, sb.Rename(fmt.Sprintf("name%d", i)), "rename %d", i)
	}
	close(stop)
	readers.Wait()
	stopReaders()
	last := fmt.Sprintf("name%d", renames)
	for i, n := range nets {
		got, err := n.EndpointByName(last)
		if err != nil || got != eps[i] {
			t.Errorf("network %s: EndpointByName(%s) = %v, %v; want the renamed endpoint", n.Name(), last, got, err)
		}
		if _, err := n.EndpointByName("name0"); err == nil {
			t.Errorf("network %s: the first name still finds an endpoint", n.Name())
		}
	}
	for _, ep := range eps {
		mustf(t, ep.Leave(sb), "leave")
		mustf(t, ep.Delete(false), "delete")
	}
	mustf(t, oep.Leave(other), "other leave")
	mustf(t, oep.Delete(false), "other delete")
	mustf(t, sb.Delete(), "sandbox delete")
	mustf(t, other.Delete(), "other sandbox delete")
	requireSettled(e, c, before, "renames")
	requireEmpty(t, c, nets)
}

// sandboxLinks lists the interfaces in sb's namespace, without keeping the
// namespace open.
func sandboxLinks(t *testing.T, sb Sandbox) []string {
	t.Helper()
	ns, err := osl.OpenNamespace(sb.Key())
	mustf(t, err, "opening the namespace of sandbox %s", sb.ID())
	defer ns.Close()
	return ifaceNames(t, ns)
}
