// Command netbench measures the attach and detach paths of the library on
// the real kernel. It re-executes itself in a new network and mount
// namespace (so nothing it does reaches the host's), creates a controller
// with its data dir and exec root on a tmpfs and one bridge network, then
// attaches N containers (NewSandbox + CreateEndpoint + Join) and detaches
// them (Leave + Delete + sandbox Delete), and prints the median and p99 of
// each path and step and the median of the first 20 against the last 20.
//
//	netbench -n 200
//	netbench -n 200 -json
//
// # Published ports
//
// With -ports N, each container's sandbox publishes N ports, as a user
// does, with libnetwork.OptionPortMapping: container ports 1 to N,
// alternately TCP (odd) and UDP (even), each on an ephemeral host port
// (HostPort 0) of all host addresses. Ephemeral ports because they are
// what most containers ask for (docker run -P, or -p without a host
// port), need no port plan for thousands of containers, and go through
// the allocator's search for a free port, which a fixed port skips. The
// mix of TCP and UDP is what services publish. The ports are
// published during Join, so their cost is in attach.join (and their
// removal in detach.leave). After the attach loop, outside the timing,
// netbench reads every endpoint's published bindings (DriverInfo) and
// fails unless each has its N ports on distinct host ports; the total is
// in the result's "published". The held host ports are one socket each,
// so netbench raises its own open-file limit to fit them when it may
// (CAP_SYS_RESOURCE), and otherwise refuses a run that cannot fit.
//
// -proto tcp or -proto udp publishes that protocol only, to tell the costs
// of the two apart (the library flushes the conntrack entries of each
// published UDP host port, so a UDP port costs more than a TCP one).
//
//	netbench -ports 2 -n 1000 -json
//	netbench -ports 2 -proto tcp -n 1000 -json
//
// -throughput measures the data path instead; see throughput.go. -overlay
// measures attach, detach and reachability on an overlay network of three
// hosts sharing an etcd, and with -throughput the overlay's data path; see
// overlay.go. -dns
// measures the embedded DNS server with dnsperf; see dns.go. -rootless
// measures a rootless published port through the built-in port driver and
// through rootlesskit's; see rootless.go.
//
// Each container's endpoint wants name resolution, so its sandbox starts
// the embedded DNS server at its join, in attach.join. With -no-resolver
// the endpoints are made with CreateOptionDisableResolution and no server
// starts: the difference is the resolver's cost to attach.
//
// # Kernel-only baseline
//
// With -kernel, netbench makes no controller: it does, with netlink and
// unix calls only and no library code in the measured path, the kernel
// operations the library makes for each attach and detach of a container
// on a default bridge network (ICC on, IPv4 only, MTU 1500), in the same
// order and with the same flags, and reports them in the same form, under
// steps named "kernel.*". Against a run without -kernel, it shows how
// much of the time, and of its growth with the number of containers, is
// the kernel's own and how much the library adds. The network is set up as
// the bridge driver does (a bridge with a fixed MAC, multicast snooping
// off, the MTU, the gateway address, up; IP forwarding on), except for its
// firewall rules, which only act on packets. Each attach then does:
//
//   - kernel.new_netns (attach.new_sandbox): a namespace made as
//     osl.NewNamespace makes it, held by a bind mount under an exec root on
//     a tmpfs, with netlink sockets inside it and lo up;
//   - kernel.veth: the veth pair in one RTM_NEWLINK with NLM_F_ECHO (host
//     side up, on the bridge, with the bridge's MAC; peer eth0 born in the
//     namespace with its 02:42 MAC), as osl.Namespace.AddVeth, then
//     disable_ipv6 on the host side through /proc/sys on a thread switched
//     into the host's namespace, as the bridge driver's noIPv6;
//   - kernel.configure: osl.Namespace.ConfigureInterface (look eth0 up,
//     addr_gen_mode none, the IPv4 address, up);
//   - kernel.gateway: osl.Namespace.SetDefaultGateway (look eth0 up,
//     replace the default route);
//
// and kernel.join is the three together (attach.join). Each detach does:
//
//   - kernel.unset_gateway: osl.Namespace.UnsetDefaultGateway (delete the
//     default route until none is left);
//   - kernel.retire: osl.Namespace.RetireInterface (look eth0 up, down,
//     list and delete its addresses, rename it away); kernel.leave is the
//     two together (detach.leave);
//   - kernel.destroy_netns (detach.delete_sandbox): as
//     osl.Namespace.DestroyHold (keep a descriptor, close the sockets and
//     the namespace's descriptor, unmount, remove the file), with the
//     descriptors released in batches as the controller's namespace
//     reaper does.
//
// detach.delete_endpoint makes no kernel call and has no counterpart. In
// the background, as the bridge driver's reaper does, each left host-side
// veth is looked up 2 s after its leave and deleted if it still exists.
// Left out, because they are not kernel work on the network: the store
// writes, IPAM, the sandbox's files (hosts, resolv.conf) and the
// library's bookkeeping and locks.
//
// -bridge-mtu-user, with -kernel, sets the bridge's MTU once more after
// creating it (to one less and back), which makes the kernel take it as
// set by the user (BROPT_MTU_SET_BY_USER), so that adding a port no longer
// recomputes it over all ports (br_mtu_auto_adjust). The library does not
// do this; the flag measures what it would save.
//
//	netbench -kernel -n 1000 -json
//	netbench -kernel -bridge-mtu-user -n 1000 -json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"syscall"
	"time"

	"github.com/netkit/libnetwork"
	"github.com/netkit/libnetwork/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const inNSEnv = "NETBENCH_IN_NETNS"

func main() {
	servePluginIfAsked()
	serveRootlessChildIfAsked()
	n := flag.Int("n", 200, "number of containers to attach and detach")
	ports := flag.Int("ports", 0, "published ports per container: container ports 1..N, alternately tcp and udp, on ephemeral host ports")
	proto := flag.String("proto", "mixed", "with -ports: the protocol of the published ports: mixed (alternately tcp and udp), tcp or udp")
	asJSON := flag.Bool("json", false, "print one JSON object")
	kernel := flag.Bool("kernel", false, "make the library's kernel calls directly, without the library: the kernel-only baseline")
	mtuUser := flag.Bool("bridge-mtu-user", false, "with -kernel: make the bridge's MTU count as set by the user")
	throughput := flag.Bool("throughput", false, "measure TCP throughput with iperf3 through a published port and straight to the container, instead of attach and detach")
	duration := flag.Int("duration", 3, "with -throughput, -dns or -rootless: seconds of each run (default 10 with -dns, 5 with -rootless)")
	rounds := flag.Int("rounds", 1, "with -throughput or -rootless: runs of each path, alternating which goes first; the median is reported")
	rootless := flag.Bool("rootless", false, "measure TCP throughput (iperf3) and connection set-up rate through a rootless published port, with the built-in port driver and with rootlesskit's, instead of attach and detach")
	noResolver := flag.Bool("no-resolver", false, "attach containers with CreateOptionDisableResolution: no embedded DNS server (to compare attach with and without it)")
	dnsMode := flag.Bool("dns", false, "measure the embedded DNS server with dnsperf inside a container (local and forwarded names), instead of attach and detach")
	dnsPeers := flag.Int("dns-peers", 10, "with -dns: containers whose names are queried")
	dnsOutstanding := flag.Int("dns-outstanding", 100, "with -dns: queries dnsperf keeps in flight in the unpaced runs")
	dnsPaced := flag.Int("dns-paced", 1000, "with -dns: queries per second of the paced runs that measure latency")
	driver := flag.String("driver", "", "attach through another network driver: macvlan or ipvlan (built in, on a veth parent of netbench's own), or any other name for a remote driver: netbench runs the example veth plugin (examples/network-plugin) as a separate process under it, and reports the controller's own time per attach and detach (minus the time inside the plugin's handlers)")
	overlay := flag.Bool("overlay", false, "attach and detach on an overlay network of 3 hosts (namespaces of netbench's, each with its own controller) sharing an etcd netbench starts, and measure how soon a new container is reachable from another host; with -throughput, TCP throughput (iperf3) over the overlay against the underlay")
	serial := flag.Bool("serial", false, "with -overlay: the hosts attach (and detach) one after another instead of at once")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run (the library's and netbench's own goroutines; not dnsperf's, dnsmasq's or iperf3's) to this file, for go tool pprof")
	flag.Parse()
	switch {
	case *overlay:
		checkOverlayFlags(*n, *throughput, *duration, *rounds)
	case *rootless:
		if !flagSet("duration") {
			*duration = 5
		}
		checkRootlessFlags(*duration, *rounds)
	case *dnsMode:
		if !flagSet("duration") {
			*duration = 10
		}
		checkDNSFlags(*duration, *dnsPeers, *dnsOutstanding, *dnsPaced)
	case *throughput:
		checkThroughputFlags(*duration, *rounds)
	default:
		checkBenchFlags(*n, *ports, *kernel, *proto)
		if *driver != "" && (*kernel || *ports > 0) {
			fail("-driver: the example plugin publishes no ports and has no kernel-only baseline; run it without -kernel and -ports")
		}
	}
	if *mtuUser && !*kernel {
		fail("-bridge-mtu-user needs -kernel")
	}
	if *serial && !*overlay {
		fail("-serial needs -overlay")
	}
	if os.Getenv(inNSEnv) == "" {
		os.Exit(reexecInNamespace())
	}
	stopProfile := startCPUProfile(*cpuProfile)
	var (
		res interface{ print() }
		err error
	)
	switch {
	case *overlay && *throughput:
		res, err = runOverlayThroughput(*duration, *rounds)
	case *overlay:
		res, err = runOverlay(*n, *noResolver, *serial)
	case *rootless:
		res, err = runRootless(*duration, *rounds)
	case *dnsMode:
		res, err = runDNS(*duration, *dnsPeers, *dnsOutstanding, *dnsPaced)
	case *throughput:
		res, err = runThroughput(*duration, *rounds)
	case *kernel:
		res, err = runKernel(*n, *mtuUser)
	default:
		res, err = run(*n, *ports, *proto, *noResolver, *driver)
	}
	stopProfile()
	report(res, err, *asJSON)
}

// startCPUProfile starts writing a CPU profile to path, unless path is
// empty, and returns the function that ends it.
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fail(err.Error())
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fail(err.Error())
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fail(err.Error())
		}
	}
}

// report prints the result of a run, as one JSON object with asJSON, or
// fails with the run's error.
func report(res interface{ print() }, err error, asJSON bool) {
	if err != nil {
		fail(err.Error())
	}
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return
	}
	res.print()
}

// checkBenchFlags refuses what an attach and detach run cannot do.
func checkBenchFlags(n, ports int, kernel bool, proto string) {
	switch {
	case n < 1:
		fail("-n must be at least 1")
	case ports < 0 || ports > 65535:
		fail(fmt.Sprintf("-ports %d: a container publishes 0 to 65535 ports (its ports 1..N)", ports))
	case ports > 0 && kernel:
		fail("-ports with -kernel: the kernel-only baseline has no port publishing to compare with; run -kernel with -ports 0")
	case proto != "mixed" && proto != "tcp" && proto != "udp":
		fail(fmt.Sprintf("-proto %q: mixed, tcp or udp", proto))
	case ports == 0 && flagSet("proto"):
		fail("-proto needs -ports")
	case kernel && n > maxKernelN:
		fail(fmt.Sprintf("-kernel: -n is at most %d (one /16 of addresses)", maxKernelN))
	}
	if flagSet("duration") {
		fail("-duration needs -throughput, -dns or -rootless")
	}
	if flagSet("rounds") {
		fail("-rounds needs -throughput or -rootless")
	}
	for _, name := range []string{"dns-peers", "dns-outstanding", "dns-paced"} {
		if flagSet(name) {
			fail("-" + name + " needs -dns")
		}
	}
	if kernel && flagSet("no-resolver") {
		fail("-no-resolver with -kernel: the kernel-only baseline has no resolver")
	}
}

// flagSet reports whether the flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "netbench:", msg)
	os.Exit(1)
}

// reexecInNamespace runs this program again in a new network and mount
// namespace and returns its exit status.
func reexecInNamespace() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), inNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "netbench: needs root to make its own namespaces:", err)
		return 1
	}
	return 0
}

// stats are the figures of one path or step, in milliseconds.
type stats struct {
	MedianMs        float64 `json:"median_ms"`
	P90Ms           float64 `json:"p90_ms"`
	P99Ms           float64 `json:"p99_ms"`
	First20MedianMs float64 `json:"first20_median_ms"`
	Last20MedianMs  float64 `json:"last20_median_ms"`
	// TenthsMedianMs are the medians of each tenth of the run, in order:
	// the shape of any growth with the number of containers.
	TenthsMedianMs []float64 `json:"tenths_median_ms,omitempty"`
}

type result struct {
	N      int              `json:"n"`
	Ports  int              `json:"ports"`
	Attach stats            `json:"attach"`
	Detach stats            `json:"detach"`
	Steps  map[string]stats `json:"steps"`

	// Published is the number of bindings the endpoints reported as
	// published, all containers together: N times Ports. OpenFiles is how
	// many files netbench had open with all containers attached (each
	// published host port is held by a socket).
	Published int    `json:"published"`
	Proto     string `json:"proto,omitempty"`
	OpenFiles int    `json:"open_files_attached,omitempty"`

	// Kernel is set for a -kernel run, whose steps are the kernel.* ones;
	// BridgeMTUUser for one with -bridge-mtu-user.
	Kernel        bool `json:"kernel,omitempty"`
	BridgeMTUUser bool `json:"bridge_mtu_user,omitempty"`

	// Driver is the remote driver of a -driver run; AttachOwn and
	// DetachOwn the controller's own time of each attach and detach
	// (minus the time inside the plugin's handlers).
	Driver    string `json:"driver,omitempty"`
	AttachOwn *stats `json:"attach_own,omitempty"`
	DetachOwn *stats `json:"detach_own,omitempty"`
}

// prepare makes the mounts private, mounts sysfs, mounts a tmpfs on a new
// temporary directory and brings lo up. It returns the directory and what
// undoes it.
func prepare() (string, func(), error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", nil, fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return "", nil, fmt.Errorf("mounting sysfs: %w", err)
	}
	dir, err := os.MkdirTemp("", "netbench-")
	if err != nil {
		return "", nil, err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("mounting tmpfs: %w", err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	return dir, func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		os.RemoveAll(dir)
	}, nil
}

// newBench makes the controller of a run, its data dir and exec root
// under dir, and its bridge network "bench". The caller stops the
// controller.
func newBench(dir string) (libnetwork.NetworkController, libnetwork.Network, error) {
	c, err := libnetwork.New(config.OptionDataDir(filepath.Join(dir, "data")), config.OptionExecRoot(filepath.Join(dir, "exec")))
	if err != nil {
		return nil, nil, err
	}
	nw, err := c.NewNetwork("bridge", "bench")
	if err != nil {
		c.Stop()
		return nil, nil, err
	}
	return c, nw, nil
}

func run(n, ports int, proto string, noResolver bool, driver string) (*result, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := raiseFileLimit(n, n*ports); err != nil {
		return nil, err
	}
	var epOpts []libnetwork.EndpointOption
	if noResolver {
		epOpts = append(epOpts, libnetwork.CreateOptionDisableResolution())
	}
	var sbOpts []libnetwork.SandboxOption
	if ports > 0 {
		sbOpts = append(sbOpts, libnetwork.OptionPortMapping(portBindings(ports, proto)))
	}

	var (
		c      libnetwork.NetworkController
		nw     libnetwork.Network
		plugin *benchPlugin
	)
	switch {
	case driver == "":
		c, nw, err = newBench(dir)
	case parentDrivers[driver]:
		c, nw, err = newParentDriverBench(dir, driver)
	default:
		sockDir := filepath.Join(dir, "plugins")
		if err := os.MkdirAll(sockDir, 0o755); err != nil {
			return nil, err
		}
		if plugin, err = startBenchPlugin(sockDir, driver); err != nil {
			return nil, err
		}
		defer plugin.stop()
		c, nw, err = newDriverBench(dir, sockDir, driver)
	}
	if err != nil {
		return nil, err
	}
	defer c.Stop()

	var attach, detach []time.Duration
	// The controller's own time of each attach and detach on a remote
	// driver: the operation's time minus its plugin's handlers'.
	var attachOwn, detachOwn []time.Duration
	own := func(into *[]time.Duration, took time.Duration, before time.Duration) error {
		if plugin == nil {
			return nil
		}
		after, err := plugin.handlerTime()
		if err != nil {
			return err
		}
		*into = append(*into, took-(after-before))
		return nil
	}
	pluginTime := func() (time.Duration, error) {
		if plugin == nil {
			return 0, nil
		}
		return plugin.handlerTime()
	}
	steps := stepTimes{}
	pairs := make([]container, 0, n)
	for i := 0; i < n; i++ {
		before, err := pluginTime()
		if err != nil {
			return nil, err
		}
		p, took, err := attachOne(c, nw, fmt.Sprintf("ctr%d", i), fmt.Sprintf("ep%d", i), sbOpts, epOpts, steps, nil)
		if err != nil {
			return nil, fmt.Errorf("attach %d: %w", i, err)
		}
		attach = append(attach, took)
		if err := own(&attachOwn, took, before); err != nil {
			return nil, err
		}
		pairs = append(pairs, p)
	}
	openFiles := countOpenFiles()
	published := 0
	seen := map[string]int{}
	for i, p := range pairs {
		got, err := publishedOf(p.ep, ports, seen)
		if err != nil {
			return nil, fmt.Errorf("container %d: %w", i, err)
		}
		published += got
	}
	for i, p := range pairs {
		before, err := pluginTime()
		if err != nil {
			return nil, err
		}
		took, err := detachOne(p, steps)
		if err != nil {
			return nil, fmt.Errorf("detach %d: %w", i, err)
		}
		detach = append(detach, took)
		if err := own(&detachOwn, took, before); err != nil {
			return nil, err
		}
	}
	if ports == 0 {
		proto = ""
	}
	res := &result{N: n, Ports: ports, Proto: proto, Published: published, OpenFiles: openFiles, Attach: summarize(attach), Detach: summarize(detach), Steps: map[string]stats{}}
	for k, v := range steps {
		res.Steps[k] = summarize(v)
	}
	if plugin != nil {
		a, d := summarize(attachOwn), summarize(detachOwn)
		res.Driver, res.AttachOwn, res.DetachOwn = driver, &a, &d
	}
	return res, nil
}

// container is an attached container: its endpoint and sandbox.
type container struct {
	ep libnetwork.Endpoint
	sb libnetwork.Sandbox
}

// stepTimes are the times of each step of the attach and detach paths, in
// the order they ran.
type stepTimes map[string][]time.Duration

// timed runs fn and records its time under step.
func (s stepTimes) timed(step string, fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	took := time.Since(t0)
	s[step] = append(s[step], took)
	return took, err
}

// attachOne attaches a container as a runtime does: NewSandbox (container
// ID ctrID), CreateEndpoint (name epName) on nw, Join; each step is timed
// into steps, and the attach's time, their sum, is returned. afterSandbox,
// if not nil, runs untimed between NewSandbox and CreateEndpoint (to start
// a server in the new namespace). On failure what was made is left for
// the run's end, which discards the namespaces anyway.
func attachOne(c libnetwork.NetworkController, nw libnetwork.Network, ctrID, epName string, sbOpts []libnetwork.SandboxOption, epOpts []libnetwork.EndpointOption, steps stepTimes, afterSandbox func(libnetwork.Sandbox) error) (container, time.Duration, error) {
	var p container
	took, err := steps.timed("attach.new_sandbox", func() (err error) {
		p.sb, err = c.NewSandbox(ctrID, sbOpts...)
		return err
	})
	if err == nil && afterSandbox != nil {
		err = afterSandbox(p.sb)
	}
	if err != nil {
		return p, 0, err
	}
	d, err := steps.timed("attach.create_endpoint", func() (err error) {
		p.ep, err = nw.CreateEndpoint(epName, epOpts...)
		return err
	})
	took += d
	if err != nil {
		return p, 0, err
	}
	d, err = steps.timed("attach.join", func() error { return p.ep.Join(p.sb) })
	return p, took + d, err
}

// detachOne detaches a container: Leave, Delete of the endpoint and of
// the sandbox, each timed into steps; it returns their sum.
func detachOne(p container, steps stepTimes) (time.Duration, error) {
	took, err := steps.timed("detach.leave", func() error { return p.ep.Leave(p.sb) })
	if err != nil {
		return 0, err
	}
	d, err := steps.timed("detach.delete_endpoint", func() error { return p.ep.Delete(false) })
	took += d
	if err != nil {
		return 0, err
	}
	d, err = steps.timed("detach.delete_sandbox", p.sb.Delete)
	return took + d, err
}

func summarize(d []time.Duration) stats {
	k := min(20, len(d))
	s := stats{
		MedianMs:        percentile(d, 50),
		P90Ms:           percentile(d, 90),
		P99Ms:           percentile(d, 99),
		First20MedianMs: percentile(d[:k], 50),
		Last20MedianMs:  percentile(d[len(d)-k:], 50),
	}
	if len(d) >= 10 {
		for i := range 10 {
			s.TenthsMedianMs = append(s.TenthsMedianMs, percentile(d[i*len(d)/10:(i+1)*len(d)/10], 50))
		}
	}
	return s
}

// percentile returns the p-th percentile (nearest rank) in milliseconds.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s))*p/100+0.5) - 1
	idx = max(0, min(idx, len(s)-1))
	return float64(s[idx].Microseconds()) / 1000
}

func (r *result) print() {
	attachSteps := []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join"}
	detachSteps := []string{"detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"}
	mode := ""
	if r.Kernel {
		attachSteps, detachSteps = kernelAttachSteps, kernelDetachSteps
		mode = " kernel only"
		if r.BridgeMTUUser {
			mode += ", bridge MTU set by user"
		}
	}
	fmt.Printf("netbench: n=%d ports=%d%s\n", r.N, r.Ports, mode)
	if r.Ports > 0 {
		fmt.Printf("published: %d bindings (%s)\n", r.Published, r.Proto)
	}
	fmt.Printf("%-24s %9s %9s %12s %12s  %s\n", "path/step", "median", "p99", "first20 med", "last20 med", "median of each tenth (ms)")
	row := func(name string, s stats) {
		fmt.Printf("%-24s %7.2fms %7.2fms %10.2fms %10.2fms ", name, s.MedianMs, s.P99Ms, s.First20MedianMs, s.Last20MedianMs)
		for _, t := range s.TenthsMedianMs {
			fmt.Printf(" %.2f", t)
		}
		fmt.Println()
	}
	row("attach", r.Attach)
	for _, k := range attachSteps {
		row("  "+k, r.Steps[k])
	}
	row("detach", r.Detach)
	for _, k := range detachSteps {
		row("  "+k, r.Steps[k])
	}
	if r.AttachOwn != nil {
		fmt.Printf("remote driver %s, the controller's own time (minus the plugin's handlers):\n", r.Driver)
		row("attach (own)", *r.AttachOwn)
		row("detach (own)", *r.DetachOwn)
	}
}
