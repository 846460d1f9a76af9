package libnetwork

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Multi-host tests run each "host" as its own OS process: this test binary
// re-executed with hostWorkerEnv set, running one controller on its own
// data dir, exec root and network namespace, and serving the requests the
// test writes to its stdin (one JSON object per line) with one JSON reply
// per line on its stdout. The hosts' namespaces are joined by veths to an
// underlay bridge in the test's namespace; the test reaches the containers
// itself, through their namespaces' paths (sandbox keys).

const hostWorkerEnv = "LIBNETWORK_TEST_HOST_WORKER"

// hostSpec is what a host worker is started with.
type hostSpec struct {
	DataDir, ExecRoot, NS string
	Etcd, Prefix          string
	Advertise             string
	LeaseTTL              time.Duration
	RequestTimeout        time.Duration
	// PluginDir is where the host finds plugins' sockets; "" for none.
	PluginDir string
}

// hostReq is one request to a host worker.
type hostReq struct {
	Op      string   `json:"op"`
	Name    string   `json:"name,omitempty"`
	Network string   `json:"network,omitempty"`
	Driver  string   `json:"driver,omitempty"`
	Subnet  string   `json:"subnet,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// Opts are a network's driver options.
	Opts map[string]string `json:"opts,omitempty"`
	// Count is how many containers "joinmany" attaches at once.
	Count int `json:"count,omitempty"`
	// Subnets are a network's IPv4 pools after Subnet; Subnet6, an IPv6
	// pool, turns IPv6 on.
	Subnets []string `json:"subnets,omitempty"`
	Subnet6 string   `json:"subnet6,omitempty"`
	// IP is the IPv4 address "join" asks for.
	IP string `json:"ip,omitempty"`
}

// hostReply is a host worker's answer.
type hostReply struct {
	Err   string   `json:"err,omitempty"`
	Class string   `json:"class,omitempty"`
	ID    string   `json:"id,omitempty"`
	Key   string   `json:"key,omitempty"`
	IP    string   `json:"ip,omitempty"`
	IP6   string   `json:"ip6,omitempty"`
	MAC   string   `json:"mac,omitempty"`
	Names []string `json:"names,omitempty"`
	// IPs are the addresses "joinmany" got.
	IPs []string `json:"ips,omitempty"`
}

// errorClass names the types class of err, for the test to check.
func errorClass(err error) string {
	switch {
	case types.IsBadRequest(err):
		return "badrequest"
	case types.IsNotFound(err):
		return "notfound"
	case types.IsForbidden(err):
		return "forbidden"
	}
	var te types.TimeoutError
	var ns types.NoServiceError
	switch {
	case errors.As(err, &te):
		return "timeout"
	case errors.As(err, &ns):
		return "noservice"
	}
	return fmt.Sprintf("%T", err)
}

// runHostWorker is the body of a host worker process.
func runHostWorker() bool {
	raw := os.Getenv(hostWorkerEnv)
	if raw == "" {
		return false
	}
	var spec hostSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Println(`{"err":"bad spec"}`)
		os.Exit(1)
	}
	opts := []config.Option{config.OptionDataDir(spec.DataDir), config.OptionExecRoot(spec.ExecRoot),
		config.OptionNetworkNamespace(spec.NS), config.OptionDiscoveryAddress(spec.Advertise),
		config.OptionLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	dirs := []string{}
	if spec.PluginDir != "" {
		dirs = append(dirs, spec.PluginDir)
	}
	opts = append(opts, config.OptionPluginSocketDirs(dirs...), config.OptionPluginSpecDirs())
	if spec.Etcd != "" {
		opts = append(opts, config.OptionKVProvider("etcd"), config.OptionKVProviderURL(spec.Etcd),
			config.OptionKVPrefix(spec.Prefix), config.OptionKVLeaseTTL(spec.LeaseTTL),
			config.OptionKVTimeouts(spec.RequestTimeout, spec.RequestTimeout))
	}
	out := json.NewEncoder(os.Stdout)
	c, err := New(opts...)
	if err != nil {
		_ = out.Encode(hostReply{Err: err.Error(), Class: errorClass(err)})
		os.Exit(1)
	}
	_ = out.Encode(hostReply{ID: c.ID()})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var req hostReq
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			_ = out.Encode(hostReply{Err: err.Error()})
			continue
		}
		if req.Op == "quit" {
			c.Stop()
			_ = out.Encode(hostReply{})
			os.Exit(0)
		}
		rep, err := serveHostReq(c, req)
		if err != nil {
			rep = hostReply{Err: err.Error(), Class: errorClass(err)}
		}
		_ = out.Encode(rep)
	}
	c.Stop()
	os.Exit(0)
	return true
}

func serveHostReq(c NetworkController, req hostReq) (hostReply, error) {
	// The network the request names, if any.
	var n Network
	if req.Network != "" {
		var err error
		if n, err = c.NetworkByName(req.Network); err != nil {
			return hostReply{}, err
		}
	}
	switch req.Op {
	case "network":
		var ipam, v6 NetworkOption
		if req.Subnet != "" || req.Subnet6 != "" {
			var v4s, v6s []*IpamConf
			for _, s := range append([]string{req.Subnet}, req.Subnets...) {
				if s != "" {
					v4s = append(v4s, &IpamConf{PreferredPool: s})
				}
			}
			if req.Subnet6 != "" {
				v6s = []*IpamConf{{PreferredPool: req.Subnet6}}
				v6 = NetworkOptionEnableIPv6(true)
			}
			ipam = NetworkOptionIpam("", "", v4s, v6s, nil)
		}
		n, err := c.NewNetwork(req.Driver, req.Name, ipam, v6, NetworkOptionDriverOpts(req.Opts))
		if err != nil {
			return hostReply{}, err
		}
		return hostReply{ID: n.ID()}, nil
	case "deletenet":
		n, err := c.NetworkByName(req.Name)
		if err != nil {
			return hostReply{}, err
		}
		return hostReply{}, n.Delete()
	case "networks":
		var names []string
		for _, n := range c.Networks() {
			names = append(names, n.Name())
		}
		return hostReply{Names: names}, nil
	case "join":
		var eopts []EndpointOption
		for _, a := range req.Aliases {
			eopts = append(eopts, CreateOptionMyAlias(a))
		}
		if req.IP != "" {
			eopts = append(eopts, CreateOptionIpam(net.ParseIP(req.IP), nil, nil))
		}
		ep, err := n.CreateEndpoint(req.Name, eopts...)
		if err != nil {
			return hostReply{}, err
		}
		sb, err := c.NewSandbox("ctr-"+req.Name, OptionHostname(req.Name))
		if err != nil {
			_ = ep.Delete(false)
			return hostReply{}, err
		}
		if err := ep.Join(sb); err != nil {
			_ = sb.Delete()
			_ = ep.Delete(false)
			return hostReply{}, err
		}
		i := ep.Info().Iface()
		rep := hostReply{ID: ep.ID(), Key: sb.Key(), IP: i.Address().IP.String(), MAC: i.MacAddress().String()}
		if a := i.AddressIPv6(); a != nil {
			rep.IP6 = a.IP.String()
		}
		return rep, nil
	case "endpoints":
		var names []string
		for _, ep := range n.Endpoints() {
			names = append(names, ep.Name()+"="+ep.Info().Iface().Address().String())
		}
		return hostReply{Names: names}, nil
	case "create":
		// An endpoint that joins nothing.
		ep, err := n.CreateEndpoint(req.Name)
		if err != nil {
			return hostReply{}, err
		}
		return hostReply{ID: ep.ID(), IP: ep.Info().Iface().Address().IP.String()}, nil
	case "createat":
		// An endpoint at a given address (Subnet holds it).
		ep, err := n.CreateEndpoint(req.Name, CreateOptionIpam(net.ParseIP(req.Subnet), nil, nil))
		if err != nil {
			return hostReply{}, err
		}
		return hostReply{ID: ep.ID(), IP: ep.Info().Iface().Address().IP.String()}, nil
	case "deleteep":
		ep, err := n.EndpointByName(req.Name)
		if err != nil {
			return hostReply{}, err
		}
		return hostReply{}, ep.Delete(false)
	case "joinmany":
		ips := make([]string, req.Count)
		errs := make([]error, req.Count)
		var wg sync.WaitGroup
		for i := range req.Count {
			wg.Go(func() {
				name := fmt.Sprintf("%s%d", req.Name, i)
				ep, err := n.CreateEndpoint(name)
				if err != nil {
					errs[i] = err
					return
				}
				sb, err := c.NewSandbox("ctr-" + name)
				if err != nil {
					errs[i] = err
					return
				}
				if err := ep.Join(sb); err != nil {
					errs[i] = err
					return
				}
				ips[i] = ep.Info().Iface().Address().IP.String()
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return hostReply{}, err
		}
		return hostReply{IPs: ips}, nil
	case "connect":
		// Another network for an existing container.
		ep, err := n.CreateEndpoint(req.Name + "-" + req.Network)
		if err != nil {
			return hostReply{}, err
		}
		sb := containerSandbox(c, req.Name)
		if sb == nil {
			return hostReply{}, types.NotFoundErrorf("no container %s", req.Name)
		}
		if err := ep.Join(sb); err != nil {
			return hostReply{}, err
		}
		return hostReply{IP: ep.Info().Iface().Address().IP.String()}, nil
	case "rename":
		// The container's sandbox renames its endpoints to Subnet.
		sb := containerSandbox(c, req.Name)
		if sb == nil {
			return hostReply{}, types.NotFoundErrorf("no container %s", req.Name)
		}
		return hostReply{}, sb.Rename(req.Subnet)
	case "sbdel":
		// The container's sandbox goes, with its joined endpoints.
		sb := containerSandbox(c, req.Name)
		if sb == nil {
			return hostReply{}, types.NotFoundErrorf("no container %s", req.Name)
		}
		return hostReply{}, sb.Delete()
	case "leave":
		ep, err := n.EndpointByName(req.Name)
		if err != nil {
			return hostReply{}, err
		}
		if sb := containerSandbox(c, req.Name); sb != nil {
			if err := sb.Delete(); err != nil {
				return hostReply{}, err
			}
		}
		// Deleting the sandbox deleted the endpoint too, as in v0.7.
		if _, err := n.EndpointByID(ep.ID()); err == nil {
			return hostReply{}, ep.Delete(false)
		}
		return hostReply{}, nil
	}
	return hostReply{}, fmt.Errorf("unknown op %q", req.Op)
}

// containerSandbox returns the sandbox of the harness's container name,
// nil if there is none.
func containerSandbox(c NetworkController, name string) Sandbox {
	var sb Sandbox
	c.WalkSandboxes(func(s Sandbox) bool {
		if s.ContainerID() == "ctr-"+name {
			sb = s
			return true
		}
		return false
	})
	return sb
}

// hostProc is a running host worker, seen from the test.
type hostProc struct {
	t    *testing.T
	name string
	spec hostSpec
	ns   *osl.Namespace
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	id   string
}

// cluster is the multi-host world of a test: an underlay bridge in the
// test's namespace, and hosts on it.
type cluster struct {
	t     *testing.T
	dir   string
	hosts []*hostProc
}

// newCluster makes n host namespaces on an underlay bridge, the i-th with
// address 192.168.210.(i+1)/24 on its eth0 (MTU 1500), and starts a host
// worker in each with spec's store settings.
func newCluster(t *testing.T, n int, etcd, prefix string, opts ...func(*hostSpec)) *cluster {
	t.Helper()
	cl := &cluster{t: t, dir: t.TempDir()}
	self, err := osl.CurrentNamespace()
	mustf(t, err, "own namespace")
	t.Cleanup(func() { self.Close() })
	h := self.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "underlay0"}}
	mustf(t, h.LinkAdd(br), "underlay bridge")
	t.Cleanup(func() { _ = h.LinkDel(br) })
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, hp := range cl.hosts {
			var lines []string
			for _, l := range strings.Split(hp.log(), "\n") {
				if !strings.Contains(l, "level=DEBUG") {
					lines = append(lines, l)
				}
			}
			t.Logf("%s's log (without DEBUG):\n%s", hp.name, strings.Join(lines, "\n"))
		}
	})
	mustf(t, h.LinkSetUp(br), "underlay up")
	for i := range n {
		name := fmt.Sprintf("host%d", i+1)
		dir := filepath.Join(cl.dir, name)
		ns, err := osl.NewNamespace(filepath.Join(dir, "ns"))
		mustf(t, err, "%s namespace", name)
		t.Cleanup(func() { _ = ns.Destroy() })
		port := "ul-" + name
		mustf(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}), "%s underlay veth", name)
		p, err := h.LinkByName(port)
		mustf(t, err, "port")
		// Deleted by hand: the host's namespace may outlive the test for
		// a while (the kernel frees namespaces asynchronously), and the
		// next test's port would clash with this one.
		t.Cleanup(func() { _ = h.LinkDel(p) })
		mustf(t, h.LinkSetUp(p), "port up")
		addr := fmt.Sprintf("192.168.210.%d", i+1)
		mustf(t, ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: &net.IPNet{IP: net.ParseIP(addr).To4(), Mask: net.CIDRMask(24, 32)}}), "%s underlay address", name)
		hp := &hostProc{t: t, name: name, ns: ns, spec: hostSpec{DataDir: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"),
			NS: ns.Path(), Etcd: etcd, Prefix: prefix, Advertise: addr, LeaseTTL: 5 * time.Second, RequestTimeout: 2 * time.Second}}
		for _, o := range opts {
			o(&hp.spec)
		}
		t.Cleanup(func() {
			// After the worker is gone (cleanups run last first): its
			// sandboxes' and networks' namespace files.
			_ = filepath.WalkDir(hp.spec.ExecRoot, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && osl.IsNamespaceMount(path) {
					_ = osl.RemoveNamespaceFile(path)
				}
				return nil
			})
		})
		hp.start()
		cl.hosts = append(cl.hosts, hp)
	}
	return cl
}

// start starts the host's worker and waits for its controller.
func (hp *hostProc) start() {
	t := hp.t
	t.Helper()
	spec, _ := json.Marshal(hp.spec)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), hostWorkerEnv+"="+string(spec))
	in, err := cmd.StdinPipe()
	mustf(t, err, "stdin")
	out, err := cmd.StdoutPipe()
	mustf(t, err, "stdout")
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(hp.spec.NS), "worker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	mustf(t, err, "worker log")
	cmd.Stderr = logf
	mustf(t, cmd.Start(), "starting %s", hp.name)
	logf.Close()
	hp.mu.Lock()
	hp.cmd, hp.in, hp.out = cmd, in, bufio.NewScanner(out)
	hp.out.Buffer(make([]byte, 1<<20), 1<<20)
	hp.mu.Unlock()
	t.Cleanup(hp.kill)
	rep := hp.read()
	if rep.Err != "" {
		t.Fatalf("%s: New: %s", hp.name, rep.Err)
	}
	hp.id = rep.ID
}

func (hp *hostProc) read() hostReply {
	hp.t.Helper()
	if !hp.out.Scan() {
		hp.t.Fatalf("%s: worker gone: %v\n%s", hp.name, hp.out.Err(), hp.log())
	}
	var rep hostReply
	mustf(hp.t, json.Unmarshal(hp.out.Bytes(), &rep), "%s: reply %q", hp.name, hp.out.Bytes())
	return rep
}

// log returns the tail of the worker's stderr.
func (hp *hostProc) log() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(hp.spec.NS), "worker.log"))
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	return string(b)
}

// call sends req and returns the reply; it is safe for concurrent use.
func (hp *hostProc) call(req hostReq) hostReply {
	hp.t.Helper()
	hp.mu.Lock()
	defer hp.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := hp.in.Write(append(b, '\n')); err != nil {
		hp.t.Fatalf("%s: %v", hp.name, err)
	}
	return hp.read()
}

// must is call that fails the test on an error reply.
func (hp *hostProc) must(req hostReq) hostReply {
	hp.t.Helper()
	rep := hp.call(req)
	if rep.Err != "" {
		hp.t.Fatalf("%s: %s %s: %s (%s)", hp.name, req.Op, req.Name, rep.Err, rep.Class)
	}
	return rep
}

// restart starts a new worker on the host's directories, after kill.
func (hp *hostProc) restart() {
	hp.t.Helper()
	hp.kill()
	hp.start()
}

// kill ends the worker with SIGKILL, as a crash would.
// waitNetwork waits until the host lists network name (present) or no
// longer lists it.
func (hp *hostProc) waitNetwork(t *testing.T, name string, present bool) {
	t.Helper()
	what := hp.name + " sees " + name
	if !present {
		what = hp.name + " drops " + name
	}
	eventually(t, what, func() error {
		if names := hp.must(hostReq{Op: "networks"}).Names; slices.Contains(names, name) != present {
			return fmt.Errorf("networks %v", names)
		}
		return nil
	})
}

func (hp *hostProc) kill() {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	if hp.cmd == nil || hp.cmd.ProcessState != nil {
		return
	}
	_ = hp.cmd.Process.Signal(syscall.SIGKILL)
	_ = hp.cmd.Wait()
}

// nsAt opens the namespace at path (a sandbox key a worker returned).
func nsAt(t *testing.T, path string) *osl.Namespace {
	t.Helper()
	ns, err := osl.OpenNamespace(path)
	mustf(t, err, "opening %s", path)
	t.Cleanup(func() { ns.Close() })
	return ns
}

// keyOnly is a sandbox known only by its key, for dig.
type keyOnly string

func (k keyOnly) Key() string { return string(k) }

var _ = strings.TrimSpace
