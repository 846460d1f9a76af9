package libnetwork

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/vishvananda/netlink"
)

// The kill loop: a worker process (this test binary re-executed) starts a
// controller on the test's directories and runs random operations, printing
// "BEGIN ..." before and "ACK ..." after each one returns. The test kills
// it with SIGKILL at a random moment, starts a controller on the same
// directories and checks that every acknowledged operation is there, that
// nothing else is (in the stores or in the kernel) beyond what the one
// interrupted operation may have done, and that the controller works.

const killLoopEnv = "LIBNETWORK_TEST_KILL_LOOP"

// killLoopIterationsEnv overrides the number of iterations of
// TestRestartAfterKillLoop; killLoopSeedEnv replays a logged seed.
const (
	killLoopIterationsEnv = "LIBNETWORK_KILL_ITERATIONS"
	killLoopSeedEnv       = "LIBNETWORK_KILL_SEED"
)

// Bounds of the worker's world, so that an iteration stays short.
const (
	klMaxNetworks  = 3
	klMaxSandboxes = 3
	klMaxEndpoints = 5
)

// runKillLoopWorker is the body of the worker process; it never returns
// normally (the test kills it).
func runKillLoopWorker() bool {
	spec := os.Getenv(killLoopEnv)
	if spec == "" {
		return false
	}
	parts := strings.Split(spec, "|")
	seed, _ := strconv.ParseUint(parts[3], 10, 64)
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	nc, err := New(config.OptionDataDir(parts[0]), config.OptionExecRoot(parts[1]), config.OptionNetworkNamespace(parts[2]))
	if err != nil {
		out("FAIL new: %v", err)
		os.Exit(1)
	}
	out("STARTED")
	w := &klWorker{c: nc.(*controller), rng: rand.New(rand.NewPCG(seed, 0)), tag: parts[3], out: out}
	for i := 0; ; i++ {
		if err := w.step(i); err != nil {
			out("FAIL %v", err)
			os.Exit(1)
		}
	}
}

type klWorker struct {
	c   *controller
	rng *rand.Rand
	tag string
	out func(string, ...any)
}

// step runs one random operation that is valid in the current state.
func (w *klWorker) step(i int) error {
	c := w.c
	nets := c.Networks()
	sbs := c.Sandboxes()
	var eps, joined, free []Endpoint
	for _, n := range nets {
		for _, ep := range n.Endpoints() {
			eps = append(eps, ep)
			if ep.Info().Sandbox() != nil {
				joined = append(joined, ep)
			} else {
				free = append(free, ep)
			}
		}
	}
	pick := func(n int) int { return w.rng.IntN(n) }
	name := fmt.Sprintf("%s-%d", w.tag, i)
	// Weights: joins and leaves, the operations with the most kernel
	// steps, come up most.
	op := []int{0, 1, 2, 2, 3, 4, 5, 6, 6, 6, 7, 7}[pick(12)]
	switch {
	case op == 0 && len(nets) < klMaxNetworks:
		used := map[string]bool{}
		for _, n := range nets {
			for _, conf := range n.(*network).ipamV4Config {
				used[conf.PreferredPool] = true
			}
		}
		pool := ""
		for k := 0; pool == ""; k++ {
			if p := fmt.Sprintf("10.77.%d.0/26", k); !used[p] {
				pool = p
			}
		}
		w.out("BEGIN net+ %s", name)
		n, err := c.NewNetwork("bridge", name, NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: pool}}, nil, nil))
		if err != nil {
			return fmt.Errorf("network %s: %w", name, err)
		}
		w.out("ACK net+ %s %s", n.ID(), name)
	case op == 1 && len(nets) > 0:
		n := nets[pick(len(nets))]
		if len(n.Endpoints()) > 0 {
			return nil
		}
		w.out("BEGIN net- %s", n.ID())
		if err := n.Delete(); err != nil {
			return fmt.Errorf("deleting network %s: %w", n.Name(), err)
		}
		w.out("ACK net- %s", n.ID())
	case op == 2 && len(nets) > 0 && len(eps) < klMaxEndpoints:
		n := nets[pick(len(nets))]
		w.out("BEGIN ep+ %s %s", n.ID(), name)
		ep, err := n.CreateEndpoint(name)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", name, err)
		}
		w.out("ACK ep+ %s %s %s %s", ep.ID(), n.ID(), name, ep.Info().Iface().Address())
	case op == 3 && len(free) > 0:
		ep := free[pick(len(free))]
		w.out("BEGIN ep- %s", ep.ID())
		if err := ep.Delete(false); err != nil {
			return fmt.Errorf("deleting endpoint %s: %w", ep.Name(), err)
		}
		w.out("ACK ep- %s", ep.ID())
	case op == 4 && len(sbs) < klMaxSandboxes:
		w.out("BEGIN sb+ %s", name)
		sb, err := c.NewSandbox(name)
		if err != nil {
			return fmt.Errorf("sandbox %s: %w", name, err)
		}
		w.out("ACK sb+ %s %s %s", sb.ID(), name, sb.Key())
	case op == 5 && len(sbs) > 0:
		sb := sbs[pick(len(sbs))]
		w.out("BEGIN sb- %s", sb.ID())
		if err := sb.Delete(); err != nil {
			return fmt.Errorf("deleting sandbox %s: %w", sb.ID(), err)
		}
		w.out("ACK sb- %s", sb.ID())
	case op == 6 && len(free) > 0 && len(sbs) > 0:
		ep := free[pick(len(free))]
		sb := sbs[pick(len(sbs))]
		for _, other := range sb.Endpoints() {
			if other.Network() == ep.Network() {
				return nil
			}
		}
		w.out("BEGIN join %s %s", ep.ID(), sb.ID())
		if err := ep.Join(sb); err != nil {
			return fmt.Errorf("joining %s to %s: %w", ep.Name(), sb.ID(), err)
		}
		w.out("ACK join %s %s", ep.ID(), sb.ID())
	case op == 7 && len(joined) > 0:
		ep := joined[pick(len(joined))]
		sb := ep.Info().Sandbox()
		w.out("BEGIN leave %s %s", ep.ID(), sb.ID())
		if err := ep.Leave(sb); err != nil {
			return fmt.Errorf("%s leaving %s: %w", ep.Name(), sb.ID(), err)
		}
		w.out("ACK leave %s %s", ep.ID(), sb.ID())
	}
	return nil
}

// klFacts is the state the test compares, one string per fact:
// "net ID NAME", "ep ID NETID NAME ADDR", "sb ID CONTAINER KEY",
// "join EPID SBID".
type klFacts map[string]bool

// apply updates the facts with an acknowledged operation.
func (f klFacts) apply(ack []string) {
	switch ack[0] {
	case "net+":
		f["net "+ack[1]+" "+ack[2]] = true
	case "ep+":
		f["ep "+strings.Join(ack[1:], " ")] = true
	case "sb+":
		f["sb "+strings.Join(ack[1:], " ")] = true
	case "join":
		f["join "+ack[1]+" "+ack[2]] = true
	case "net-", "ep-", "sb-":
		kind := strings.TrimSuffix(ack[0], "-")
		gone := map[string]bool{}
		for k := range f {
			fs := strings.Fields(k)
			if fs[0] == kind && fs[1] == ack[1] {
				delete(f, k)
			}
			// A deleted sandbox has left and deleted its endpoints.
			if kind == "sb" && fs[0] == "join" && fs[2] == ack[1] {
				delete(f, k)
				gone[fs[1]] = true
			}
		}
		for k := range f {
			if fs := strings.Fields(k); fs[0] == "ep" && gone[fs[1]] {
				delete(f, k)
			}
		}
	case "leave":
		delete(f, "join "+ack[1]+" "+ack[2])
	}
}

// mayDiffer reports whether fact may be added (added) or removed (!added)
// by the interrupted operation begin, whose outcome is unknown; model is
// the state before it.
func mayDiffer(model klFacts, begin []string, fact string, added bool) bool {
	if begin == nil {
		return false
	}
	fs := strings.Fields(fact)
	if begin[0] == "sb-" && fs[0] == "ep" && !added {
		// Deleting a sandbox deletes the endpoints joined to it.
		return model["join "+fs[1]+" "+begin[1]]
	}
	switch begin[0] {
	case "net+":
		return added && fs[0] == "net" && fs[2] == begin[1]
	case "ep+":
		return added && fs[0] == "ep" && fs[2] == begin[1] && fs[3] == begin[2]
	case "sb+":
		return added && fs[0] == "sb" && fs[2] == begin[1]
	case "join":
		return added && fact == "join "+begin[1]+" "+begin[2]
	case "net-", "ep-":
		return !added && fs[0] == strings.TrimSuffix(begin[0], "-") && fs[1] == begin[1]
	case "sb-":
		return !added && (fs[0] == "sb" && fs[1] == begin[1] || fs[0] == "join" && fs[2] == begin[1])
	case "leave":
		return !added && fact == "join "+begin[1]+" "+begin[2]
	}
	return false
}

// factsOf reads the controller's state as facts.
func factsOf(c *controller) klFacts {
	f := klFacts{}
	for _, n := range c.Networks() {
		f["net "+n.ID()+" "+n.Name()] = true
		for _, ep := range n.Endpoints() {
			f[fmt.Sprintf("ep %s %s %s %s", ep.ID(), n.ID(), ep.Name(), ep.Info().Iface().Address())] = true
			if sb := ep.Info().Sandbox(); sb != nil {
				f["join "+ep.ID()+" "+sb.ID()] = true
			}
		}
	}
	for _, sb := range c.Sandboxes() {
		f["sb "+sb.ID()+" "+sb.ContainerID()+" "+sb.Key()] = true
	}
	return f
}

func killLoopIterations(t *testing.T) int {
	if s := os.Getenv(killLoopIterationsEnv); s != "" {
		n, err := strconv.Atoi(s)
		mustf(t, err, "%s", killLoopIterationsEnv)
		return n
	}
	if testing.Short() {
		return 6
	}
	return 20
}

// TestRestartAfterKillLoop kills a worker at random points of random
// operations, restarts a controller on its directories each time and checks
// that nothing acknowledged is lost and nothing unacknowledged is left half
// done. Set LIBNETWORK_KILL_ITERATIONS for more iterations and
// LIBNETWORK_KILL_SEED to replay a logged seed.
func TestRestartAfterKillLoop(t *testing.T) {
	e := newEnv(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(killLoopSeedEnv); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		mustf(t, err, "%s", killLoopSeedEnv)
	}
	t.Logf("seed %d (replay with %s=%d)", seed, killLoopSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	model := klFacts{}
	iterations := killLoopIterations(t)
	for it := 0; it < iterations && !t.Failed(); it++ {
		// Kill points: mostly during operations (counted from the
		// worker's start), sometimes during its own restore.
		delay := time.Duration(rng.IntN(150_000)) * time.Microsecond
		duringRestore := rng.IntN(5) == 0
		lines := e.runKillLoopWorker(t, seed+uint64(it)+1, delay, duringRestore)
		var begin []string
		acks := 0
		for _, l := range lines {
			fs := strings.Fields(l)
			switch {
			case len(fs) == 0:
			case fs[0] == "FAIL":
				t.Errorf("iteration %d: worker: %s", it, l)
			case fs[0] == "BEGIN":
				begin = fs[1:]
			case fs[0] == "ACK":
				model.apply(fs[1:])
				begin = nil
				acks++
			}
		}
		t.Logf("iteration %d: killed %v after start (during restore: %v), %d operations acknowledged, interrupted: %v", it, delay, duringRestore, acks, begin)
		model = e.checkAfterKill(t, it, model, begin)
	}
}

// runKillLoopWorker runs the worker, kills it delay after it started
// (after it reported that its controller started, unless duringRestore),
// and returns the lines it printed.
func (e *testEnv) runKillLoopWorker(t *testing.T, seed uint64, delay time.Duration, duringRestore bool) []string {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d", killLoopEnv, e.dataDir, e.execRoot, e.host.Path(), seed))
	stdout, err := cmd.StdoutPipe()
	mustf(t, err, "pipe")
	cmd.Stderr = os.Stderr
	mustf(t, cmd.Start(), "starting worker")
	var (
		mu      sync.Mutex
		lines   []string
		done    = make(chan struct{})
		started = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if sc.Text() == "STARTED" {
				close(started)
			}
		}
	}()
	if !duringRestore {
		select {
		case <-started:
		case <-done:
		}
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	_ = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	return lines
}

// checkAfterKill starts a controller after a kill and checks it against
// the model; it returns the restored state as the next model.
func (e *testEnv) checkAfterKill(t *testing.T, it int, model klFacts, begin []string) klFacts {
	t.Helper()
	var logs strings.Builder
	var logMu sync.Mutex
	nc, err := New(e.options(config.OptionLogger(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))))...)
	if err != nil {
		t.Fatalf("iteration %d: New after kill: %v", it, err)
	}
	c := nc.(*controller)
	defer c.Stop()
	defer func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("iteration %d: controller log:\n%s", it, logs.String())
			logMu.Unlock()
		}
	}()

	got := factsOf(c)
	for _, k := range sortedKeys(model) {
		if !got[k] && !mayDiffer(model, begin, k, false) {
			t.Errorf("iteration %d: acknowledged %q lost at restart (interrupted: %v)", it, k, begin)
		}
	}
	for _, k := range sortedKeys(got) {
		if !model[k] && !mayDiffer(model, begin, k, true) {
			t.Errorf("iteration %d: %q after restart was never acknowledged (interrupted: %v)", it, k, begin)
		}
	}
	e.checkNoLeaks(t, it, c)
	e.checkWorks(t, it, c)
	return got
}

// checkNoLeaks checks the kernel and IPAM against the restored objects.
func (e *testEnv) checkNoLeaks(t *testing.T, it int, c *controller) {
	t.Helper()
	joins := 0
	bridges := map[string]bool{}
	for _, n := range c.Networks() {
		bridges["br-"+n.ID()[:12]] = true
		for _, ep := range n.Endpoints() {
			if ep.Info().Sandbox() != nil {
				joins++
			}
		}
	}
	// Links in the controller's namespace: one bridge per network, one
	// veth per joined endpoint.
	links, err := osl.Dump(e.host.Handle().LinkList)
	mustf(t, err, "listing links")
	var veths, brs []string
	for _, l := range links {
		switch l.Type() {
		case "veth":
			veths = append(veths, l.Attrs().Name)
		case "bridge":
			brs = append(brs, l.Attrs().Name)
			if !bridges[l.Attrs().Name] {
				t.Errorf("iteration %d: bridge %s of no network", it, l.Attrs().Name)
			}
		}
	}
	if len(veths) != joins {
		t.Errorf("iteration %d: %d veths in the host namespace (%v), want %d (joined endpoints)", it, len(veths), veths, joins)
	}
	if len(brs) != len(bridges) {
		t.Errorf("iteration %d: bridges %v, want those of the %d networks", it, brs, len(bridges))
	}
	// Rules: only for live networks, and for all of them.
	rules := e.nft()
	for _, b := range regexp.MustCompile(`br-[0-9a-f]{12}`).FindAllString(rules, -1) {
		if !bridges[b] {
			t.Errorf("iteration %d: nftables rules for %s, a bridge of no network", it, b)
		}
	}
	for b := range bridges {
		if !strings.Contains(rules, b) {
			t.Errorf("iteration %d: no nftables rules for %s", it, b)
		}
	}
	// Namespaces: one mount per sandbox, and in each the interfaces of its
	// joined endpoints, up with their address; anything else is retired
	// (down, no address).
	keys := map[string]bool{}
	for _, sb := range c.Sandboxes() {
		keys[filepath.Base(sb.Key())] = true
		want := map[string]*net.IPNet{}
		for _, ep := range sb.Endpoints() {
			ep := ep.(*endpoint)
			ep.mu.Lock()
			want[ep.join.ifName] = ep.iface.addr
			ep.mu.Unlock()
		}
		ns, err := osl.OpenNamespace(sb.Key())
		if err != nil {
			t.Errorf("iteration %d: sandbox %s: %v", it, sb.ContainerID(), err)
			continue
		}
		checkSandboxLinks(t, it, sb.ContainerID(), ns.Handle(), want)
		ns.Close()
	}
	entries, _ := os.ReadDir(filepath.Join(e.execRoot, "netns"))
	for _, en := range entries {
		if !keys[en.Name()] {
			t.Errorf("iteration %d: netns mount %s of no sandbox", it, en.Name())
		}
	}
	// IPAM: exactly the gateways and the endpoints' addresses are held.
	for _, nw := range c.Networks() {
		n := nw.(*network)
		held := map[string]bool{}
		for _, ep := range n.Endpoints() {
			held[ep.Info().Iface().Address().IP.String()] = true
		}
		for _, info := range n.ipamV4Info {
			if info.Gateway != nil {
				held[info.Gateway.IP.String()] = true
			}
			checkPoolHolds(t, it, n, info, held)
		}
	}
}

func checkSandboxLinks(t *testing.T, it int, ctr string, h *netlink.Handle, want map[string]*net.IPNet) {
	t.Helper()
	links, err := osl.Dump(h.LinkList)
	if err != nil {
		t.Errorf("iteration %d: sandbox %s: listing links: %v", it, ctr, err)
		return
	}
	for _, l := range links {
		name := l.Attrs().Name
		if name == "lo" {
			continue
		}
		addrs, _ := osl.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
		var have []string
		for _, a := range addrs {
			have = append(have, a.IPNet.String())
		}
		up := l.Attrs().Flags&net.FlagUp != 0
		addr, joined := want[name]
		delete(want, name)
		switch {
		case joined && (!up || !slices.Contains(have, addr.String())):
			t.Errorf("iteration %d: sandbox %s: %s up=%v with %v, want up with %s", it, ctr, name, up, have, addr)
		case !joined && (up || len(have) > 0):
			t.Errorf("iteration %d: sandbox %s: %s of no joined endpoint is up=%v with %v", it, ctr, name, up, have)
		}
	}
	for name := range want {
		t.Errorf("iteration %d: sandbox %s: joined interface %s missing", it, ctr, name)
	}
}

// checkPoolHolds checks that IPAM holds exactly the addresses in held in
// the pool of info.
func checkPoolHolds(t *testing.T, it int, n *network, info *IpamInfo, held map[string]bool) {
	t.Helper()
	base := info.Pool.IP.To4()
	ones, bits := info.Pool.Mask.Size()
	size := 1 << (bits - ones)
	for i := 1; i < size-1; i++ {
		ip := net.IPv4(base[0], base[1], base[2], base[3]+byte(i)).To4()
		_, _, err := n.ipam.RequestAddress(info.PoolID, ip, nil)
		switch {
		case err == nil:
			_ = n.ipam.ReleaseAddress(info.PoolID, ip)
			if held[ip.String()] {
				t.Errorf("iteration %d: network %s: address %s of an endpoint or gateway is free in IPAM", it, n.name, ip)
			}
		case errors.Is(err, ipamapi.ErrIPAlreadyAllocated):
			if !held[ip.String()] {
				t.Errorf("iteration %d: network %s: address %s is allocated but held by no record", it, n.name, ip)
			}
		default:
			t.Errorf("iteration %d: network %s: requesting %s: %v", it, n.name, ip, err)
		}
	}
}

// checkWorks makes a sandbox, joins a new endpoint to it, and undoes both.
func (e *testEnv) checkWorks(t *testing.T, it int, c *controller) {
	t.Helper()
	nets := c.Networks()
	if len(nets) == 0 {
		return
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].ID() < nets[j].ID() })
	name := fmt.Sprintf("probe-%d", it)
	sb, err := c.NewSandbox(name)
	if err != nil {
		t.Errorf("iteration %d: sandbox after restart: %v", it, err)
		return
	}
	defer func() {
		if err := sb.Delete(); err != nil {
			t.Errorf("iteration %d: deleting the probe sandbox: %v", it, err)
		}
	}()
	ep, err := nets[0].CreateEndpoint(name)
	if err != nil {
		t.Errorf("iteration %d: endpoint after restart: %v", it, err)
		return
	}
	defer func() {
		if err := ep.Delete(true); err != nil {
			t.Errorf("iteration %d: deleting the probe endpoint: %v", it, err)
		}
	}()
	if err := ep.Join(sb); err != nil {
		t.Errorf("iteration %d: join after restart: %v", it, err)
		return
	}
	if err := ep.Leave(sb); err != nil {
		t.Errorf("iteration %d: leave after restart: %v", it, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
