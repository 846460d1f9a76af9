package libnetwork

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

const childEnv = "LIBNETWORK_TEST_KILLED_CHILD"

// runKilledChild is the body of the child process the kill test starts:
// it builds state in the directories and namespace it is given, reports
// ready, and waits to be killed.
func runKilledChild() bool {
	if runKillLoopWorker() || runMacvlanChild() || runHostWorker() {
		return true
	}
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	parts := strings.Split(spec, "|")
	c, err := New(config.OptionDataDir(parts[0]), config.OptionExecRoot(parts[1]), config.OptionNetworkNamespace(parts[2]))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	if err := buildState(c); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("READY", publishedPort(c))
	time.Sleep(time.Hour)
	return true
}

// publishedPort returns the host port endpoint a of network keep got for
// its published tcp/80, 0 if none.
func publishedPort(c NetworkController) uint16 {
	n, err := c.NetworkByName("keep")
	if err != nil {
		return 0
	}
	ep, err := n.EndpointByName("a")
	if err != nil {
		return 0
	}
	info, err := ep.DriverInfo()
	if err != nil {
		return 0
	}
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	for _, b := range pbs {
		if b.Proto == types.TCP && b.Port == 80 {
			return b.HostPort
		}
	}
	return 0
}

// buildState makes the state the restart tests check.
func buildState(c NetworkController) error {
	n, err := c.NewNetwork("bridge", "keep", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.50.0.0/24"}}, nil, nil))
	if err != nil {
		return err
	}
	tmp, err := c.NewNetwork("bridge", "ephemeral", NetworkOptionPersist(false), NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.51.0.0/24"}}, nil, nil))
	if err != nil {
		return err
	}
	for _, name := range []string{"a", "b"} {
		ep, err := n.CreateEndpoint(name)
		if err != nil {
			return err
		}
		// a publishes an ephemeral port, which must come back the same.
		var opts []SandboxOption
		if name == "a" {
			opts = append(opts, OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}}))
		}
		sb, err := c.NewSandbox("ctr-"+name, append(opts, OptionHostname(name))...)
		if err != nil {
			return err
		}
		if err := ep.Join(sb); err != nil {
			return err
		}
	}
	if _, err := tmp.CreateEndpoint("gone"); err != nil {
		return err
	}
	// An endpoint that joined and left: its host-side veth waits for the
	// reaper, which a crash never lets run.
	left, err := n.CreateEndpoint("left")
	if err != nil {
		return err
	}
	lsb, err := c.NewSandbox("ctr-left")
	if err != nil {
		return err
	}
	if err := left.Join(lsb); err != nil {
		return err
	}
	return left.Leave(lsb)
}

// stateOf describes what must survive a restart.
func stateOf(t *testing.T, c NetworkController) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range c.Networks() {
		out["net "+n.Name()] = n.ID()
		for _, ep := range n.Endpoints() {
			i := ep.Info().Iface()
			sbID := ""
			if sb := ep.Info().Sandbox(); sb != nil {
				sbID = sb.ID() + " " + sb.Key()
			}
			out["ep "+ep.Name()] = fmt.Sprintf("%s %s %s %s", ep.ID(), i.Address(), i.MacAddress(), sbID)
		}
	}
	for _, sb := range c.Sandboxes() {
		out["sb "+sb.ContainerID()] = sb.ID() + " " + sb.Key()
	}
	return out
}

func checkRestored(t *testing.T, e *testEnv, c *controller, before map[string]string) {
	t.Helper()
	after := stateOf(t, c)
	for k, v := range before {
		if strings.Contains(k, "ephemeral") || k == "ep gone" {
			continue
		}
		if after[k] != v {
			t.Errorf("%s: before restart %q, after %q", k, v, after[k])
		}
	}
	if _, err := c.NetworkByName("ephemeral"); err == nil {
		t.Error("the non-persistent network came back")
	}
	// The kernel state is there: the sandboxes still talk.
	n, err := c.NetworkByName("keep")
	mustf(t, err, "network keep")
	a, _ := n.EndpointByName("a")
	b, _ := n.EndpointByName("b")
	if a == nil || b == nil {
		t.Fatalf("endpoints missing after restart: %v", after)
	}
	mustReach(t, nsOf(t, a.Info().Sandbox()), listen(t, nsOf(t, b.Info().Sandbox()), b.Info().Iface().Address().IP))
	// The next address continues after the restored ones.
	ep, err := n.CreateEndpoint("c")
	mustf(t, err, "endpoint after restart")
	if got := ep.Info().Iface().Address().IP; got.Equal(a.Info().Iface().Address().IP) || got.Equal(b.Info().Iface().Address().IP) {
		t.Errorf("new endpoint got %v, already in use", got)
	}
	// The ephemeral network's bridge was collected.
	links, _ := osl.Dump(e.host.Handle().LinkList)
	bridges := 0
	for _, l := range links {
		if l.Type() == "bridge" {
			bridges++
		}
	}
	if bridges != 1 {
		t.Errorf("%d bridges in the host namespace after restart, want 1 (the ephemeral one collected)", bridges)
	}
	// New sandboxes still work and sandbox IDs are not reused.
	sb, err := c.NewSandbox("ctr-new")
	mustf(t, err, "sandbox after restart")
	mustf(t, ep.Join(sb), "join after restart")
}

func TestRestartAfterStop(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	mustf(t, buildState(nc), "building state")
	before := stateOf(t, nc)
	id := nc.ID()
	nc.Stop()
	if _, err := nc.NewNetwork("bridge", "late"); err == nil {
		t.Error("a stopped controller created a network")
	}

	c := e.start()
	if c.ID() != id {
		t.Errorf("controller ID changed across restart: %s, was %s", c.ID(), id)
	}
	checkRestored(t, e, c, before)
}

func TestRestartAfterKill(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+e.dataDir+"|"+e.execRoot+"|"+e.host.Path())
	stdout, err := cmd.StdoutPipe()
	mustf(t, err, "pipe")
	cmd.Stderr = os.Stderr
	mustf(t, cmd.Start(), "starting child")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY") {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q %v", line, err)
	}
	mustf(t, cmd.Process.Signal(syscall.SIGKILL), "killing child")
	_ = cmd.Wait()
	port, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "READY")))
	if err != nil || port == 0 {
		t.Fatalf("child published no port: %q", line)
	}

	c := e.start()
	// The published port comes back with the same host port, held again.
	if got := publishedPort(c); got != uint16(port) {
		t.Errorf("after kill -9 endpoint a publishes host port %d, want %d", got, port)
	}
	if listing := e.nft(); !strings.Contains(listing, "tcp . "+strconv.Itoa(port)+" :") {
		t.Errorf("published port %d is not in the table after kill -9:\n%s", port, listing)
	}
	if err := e.host.Do(func() error {
		ln, err := net.Listen("tcp4", "0.0.0.0:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			return fmt.Errorf("host port %d is not held after the restart", port)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if len(c.Networks()) != 1 {
		t.Errorf("networks after kill: %d, want 1", len(c.Networks()))
	}
	before := map[string]string{}
	// IDs were never seen by this process; check shape and connectivity.
	checkRestored(t, e, c, before)
	// The child's orphan endpoint of the ephemeral network is gone, and
	// the state store agrees.
	if st := e.snapshot(c); st.records[kindEndpoint] != 4 {
		t.Errorf("endpoint records after kill restart: %d, want 4 (a, b, c, left)", st.records[kindEndpoint])
	}
	// Only joined endpoints own a veth: a, b and c. The one "left" had
	// before the kill was collected.
	links, _ := osl.Dump(e.host.Handle().LinkList)
	veths := 0
	for _, l := range links {
		if l.Type() == "veth" {
			veths++
		}
	}
	if veths != 3 {
		t.Errorf("%d veths in the host namespace after restart, want 3", veths)
	}
}

// TestRestartReconciles breaks the kernel state behind a stopped
// controller's back and checks that New repairs it: a missing bridge and
// flushed rules come back, an orphaned netns mount and a stray veth go.
func TestRestartReconciles(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	n, err := nc.NewNetwork("bridge", "net", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "br-fixme"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.130.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("a")
	mustf(t, err, "endpoint")
	sb, err := nc.NewSandbox("a")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	rulesBefore := e.nft()
	nc.Stop()

	h := e.host.Handle()
	br, err := h.LinkByName("br-fixme")
	mustf(t, err, "bridge")
	mustf(t, h.LinkDel(br), "deleting the bridge behind the controller's back")
	out, err := exec.Command("nsenter", "--net="+e.host.Path(), "nft", "flush", "table", "inet", "libnetwork").CombinedOutput()
	mustf(t, err, "flushing rules: %s", out)
	orphan, err := osl.NewNamespace(e.execRoot + "/netns/deadbeef0000")
	mustf(t, err, "orphan namespace")
	orphan.Close()
	// A network of a crashed run whose record is gone: its bridge, with
	// the library's mark, and a stray veth on it. (A veth of our name on
	// no bridge is not provably the library's and is left alone.)
	strayBr := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-0123456789ab"}}
	mustf(t, h.LinkAdd(strayBr), "stray bridge")
	mustf(t, h.LinkSetAlias(strayBr, "libnetwork:0123456789ab"+strings.Repeat("0", 52)), "marking the stray bridge")
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0123456789a", MasterIndex: strayBr.Attrs().Index}, PeerName: "veth0123456789b"}
	mustf(t, h.LinkAdd(stray), "stray veth")

	c := e.start()
	if _, err := h.LinkByName("br-fixme"); err != nil {
		t.Errorf("missing bridge not recreated: %v", err)
	}
	if got := e.nft(); got != rulesBefore {
		t.Errorf("rules not restored:\nbefore:\n%s\nafter:\n%s", rulesBefore, got)
	}
	if osl.IsNamespaceMount(e.execRoot + "/netns/deadbeef0000") {
		t.Error("orphaned netns mount survived")
	}
	if _, err := h.LinkByName("veth0123456789a"); err == nil {
		t.Error("stray veth survived")
	}
	if _, err := h.LinkByName("br-0123456789ab"); err == nil {
		t.Error("stray bridge survived")
	}
	// The endpoint's veth went with the bridge; restore put it back, so the
	// sandbox talks again.
	_, sb2 := joined(t, c, mustNetwork(t, c, "net"), "b")
	a, _ := mustNetwork(t, c, "net").EndpointByName("a")
	mustReach(t, nsOf(t, sb2), listen(t, nsOf(t, a.Info().Sandbox()), a.Info().Iface().Address().IP))
}

func mustNetwork(t *testing.T, c NetworkController, name string) Network {
	t.Helper()
	n, err := c.NetworkByName(name)
	mustf(t, err, "network %s", name)
	return n
}

// TestCorruptStore: a corrupt network store is moved aside with a log line
// and the controller starts empty instead of failing or panicking.
func TestCorruptStore(t *testing.T) {
	e := newEnv(t)
	mustf(t, os.MkdirAll(e.dataDir, 0o700), "data dir")
	db := e.dataDir + "/network.db"
	mustf(t, os.WriteFile(db, []byte(strings.Repeat("not a bolt file ", 512)), 0o600), "garbage db")
	var logs strings.Builder
	c := e.start(config.OptionLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if len(c.Networks()) != 0 {
		t.Errorf("networks from a corrupt store: %v", c.Networks())
	}
	if !strings.Contains(logs.String(), "corrupt") {
		t.Errorf("no log line about the corrupt store:\n%s", logs.String())
	}
	aside, _ := filepath.Glob(db + ".corrupt-*")
	if len(aside) != 1 {
		t.Errorf("corrupt store not kept aside: %v", aside)
	}
	_, err := c.NewNetwork("bridge", "fresh", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.131.0.0/24"}}, nil, nil))
	mustf(t, err, "network on the fresh store")
}

// TestRestartRecreatesRetiredInterface: a Leave killed after it retired the
// sandbox's interface and before it recorded the endpoint as unjoined
// leaves a joined record whose interface is gone from the sandbox (its host
// side is still there). Restore makes the interface again, as the record
// says, instead of dropping the endpoint and releasing its address.
func TestRestartRecreatesRetiredInterface(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	n, err := nc.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.132.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	joined(t, nc.(*controller), n, "a")
	b, sbB := joined(t, nc.(*controller), n, "b")
	addr := b.Info().Iface().Address().String()
	key := sbB.Key()
	nc.Stop()

	// What the killed Leave did in the kernel.
	ns, err := osl.OpenNamespace(key)
	mustf(t, err, "sandbox namespace")
	mustf(t, ns.RetireInterface("eth0", "gone0"), "retiring eth0 behind the controller")
	ns.Close()

	c := e.start()
	b2, err := mustNetwork(t, c, "net").EndpointByName("b")
	mustf(t, err, "endpoint b after restart")
	if b2.ID() != b.ID() || b2.Info().Iface().Address().String() != addr {
		t.Fatalf("endpoint b after restart: %s %s, was %s %s", b2.ID(), b2.Info().Iface().Address(), b.ID(), addr)
	}
	sb2 := b2.Info().Sandbox()
	if sb2 == nil || sb2.ID() != sbB.ID() {
		t.Fatalf("endpoint b no longer joined to its sandbox after restart: %v", sb2)
	}
	a2, _ := mustNetwork(t, c, "net").EndpointByName("a")
	mustReach(t, nsOf(t, a2.Info().Sandbox()), listen(t, nsOf(t, sb2), b2.Info().Iface().Address().IP))
	// Only the joined endpoints' veths are left in the host namespace: the
	// broken pair was removed.
	veths := 0
	links, _ := osl.Dump(e.host.Handle().LinkList)
	for _, l := range links {
		if l.Type() == "veth" {
			veths++
		}
	}
	if veths != 2 {
		t.Errorf("%d veths in the host namespace after restart, want 2", veths)
	}
}

// TestRestartRetiredNamesUnique: interfaces retired at Leave keep their
// tombstone names in the sandbox until it goes; after a restart, new
// tombstones must not collide with those, or retiring fails, the
// interface stays under its ethN name and the next join into the sandbox
// fails with "file exists".
func TestRestartRetiredNamesUnique(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	n, err := nc.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.133.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	a, sb := joined(t, nc.(*controller), n, "a")
	mustf(t, a.Leave(sb), "leave before restart")
	nc.Stop()
	// The interface a's Leave retired is still in the sandbox when the
	// next controller runs (its host side not yet collected, as after a
	// crash): keep one under the first name of the old counter.
	ns, err := osl.OpenNamespace(sb.Key())
	mustf(t, err, "sandbox namespace")
	mustf(t, ns.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gone0"}, PeerName: "leftover0"}), "leftover retired interface")
	ns.Close()

	c := e.start()
	sb2, err := c.SandboxByID(sb.ID())
	mustf(t, err, "sandbox after restart")
	n2 := mustNetwork(t, c, "net")
	for _, name := range []string{"b", "c"} {
		ep, err := n2.CreateEndpoint(name)
		mustf(t, err, "endpoint %s", name)
		mustf(t, ep.Join(sb2), "join %s after restart", name)
		mustf(t, ep.Leave(sb2), "leave %s after restart", name)
	}
	// Nothing is left under an ethN name, and every retired interface is
	// down.
	ifs, err := nsOf(t, sb2).Handle().LinkList()
	mustf(t, err, "listing the sandbox's links")
	for _, l := range ifs {
		if strings.HasPrefix(l.Attrs().Name, "eth") || l.Attrs().Name != "lo" && l.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("sandbox link %s (up: %v) after leaving every endpoint", l.Attrs().Name, l.Attrs().Flags&net.FlagUp != 0)
		}
	}
}

// TestRestartJoinOverLeftoverInterface: a join killed after it made its
// veth leaves the sandbox side under the ethN name the next join picks,
// until orphan collection removes the pair. A join that meets it moves it
// away, as it does a leftover host side, instead of failing with "file
// exists".
func TestRestartJoinOverLeftoverInterface(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.134.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	ns := nsOf(t, sb)
	// The leftover pair: its host side under the driver's own name form
	// on the network's bridge (a join makes the pair there in one
	// request; a veth of that name elsewhere is not the library's), its
	// sandbox side as eth0.
	br, err := e.host.Handle().LinkByName("br-" + n.ID()[:12])
	mustf(t, err, "the network's bridge")
	mustf(t, e.host.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0123456789a", MasterIndex: br.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}), "leftover interface")

	ep, err := n.CreateEndpoint("a")
	mustf(t, err, "endpoint")
	mustf(t, ep.Join(sb), "join over a leftover eth0")
	l, err := ns.Handle().LinkByName("eth0")
	mustf(t, err, "eth0 after join")
	if l.Type() != "veth" || l.Attrs().HardwareAddr.String() != ep.Info().Iface().MacAddress().String() {
		t.Errorf("eth0 after join is not the endpoint's interface: %s %s", l.Type(), l.Attrs().HardwareAddr)
	}
	_, other := joined(t, c, n, "b")
	mustReach(t, nsOf(t, other), listen(t, ns, ep.Info().Iface().Address().IP))

	// A link the library did not make is never moved: the join fails
	// and the link stays as it was.
	sb2, err := c.NewSandbox("ctr2")
	mustf(t, err, "sandbox")
	ns2 := nsOf(t, sb2)
	mustf(t, ns2.Handle().LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}}), "foreign eth0")
	mustf(t, ns2.Handle().LinkSetUp(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}}), "foreign eth0 up")
	ep3, err := n.CreateEndpoint("c")
	mustf(t, err, "endpoint")
	if err := ep3.Join(sb2); err == nil {
		t.Error("a join moved a link the library did not make")
	}
	l, err = ns2.Handle().LinkByName("eth0")
	if err != nil || l.Type() != "bridge" || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("the foreign eth0 was touched: %v %v", l, err)
	}
}

// TestRestartCollectsFilesWithoutNetnsDir: orphan collection goes through
// all its steps even when one finds nothing to list: a sandbox's files
// left behind are removed though no netns directory exists.
func TestRestartCollectsFilesWithoutNetnsDir(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	nc.Stop()
	mustf(t, os.RemoveAll(filepath.Join(e.execRoot, "netns")), "removing the netns dir")
	left := filepath.Join(e.execRoot, "files", "deadbeef0000")
	mustf(t, os.MkdirAll(left, 0o755), "leftover sandbox files")
	e.start()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("files of a sandbox that is gone survived the restart: %v", err)
	}
}

// TestRestartRecreatesLostNamespace: a sandbox whose namespace mount is
// gone gets a fresh namespace at restart, and its joined endpoints get
// their interfaces in it again, with their addresses, whether or not the
// kernel has finished removing the old pair yet.
func TestRestartRecreatesLostNamespace(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	n, err := nc.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.135.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	joined(t, nc.(*controller), n, "a")
	b, sbB := joined(t, nc.(*controller), n, "b")
	addr := b.Info().Iface().Address().String()
	nc.Stop()
	mustf(t, osl.RemoveNamespaceFile(sbB.Key()), "unmounting the sandbox's namespace behind the controller")

	c := e.start()
	b2, err := mustNetwork(t, c, "net").EndpointByName("b")
	mustf(t, err, "endpoint b after restart")
	if b2.Info().Sandbox() == nil || b2.Info().Iface().Address().String() != addr {
		t.Fatalf("endpoint b after restart: joined to %v with %s, want joined with %s", b2.Info().Sandbox(), b2.Info().Iface().Address(), addr)
	}
	a2, _ := mustNetwork(t, c, "net").EndpointByName("a")
	mustReach(t, nsOf(t, a2.Info().Sandbox()), listen(t, nsOf(t, b2.Info().Sandbox()), b2.Info().Iface().Address().IP))
}
