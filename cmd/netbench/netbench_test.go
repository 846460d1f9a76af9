package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestNetbenchJSON runs netbench briefly and checks the JSON it promises.
// It checks shape, not speed: figures come from real runs, not tests.
func TestNetbenchJSON(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("unshare", "-n", "-m", bin, "-n", "25", "-json").Output()
	if err != nil {
		t.Fatalf("netbench: %v\n%s", err, out)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("netbench -json printed %q: %v", out, err)
	}
	if res.N != 25 || res.Ports != 0 {
		t.Errorf("n=%d ports=%d", res.N, res.Ports)
	}
	for name, s := range map[string]stats{"attach": res.Attach, "detach": res.Detach} {
		if s.MedianMs <= 0 || s.P99Ms < s.MedianMs || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 {
			t.Errorf("%s figures %+v", name, s)
		}
		if len(s.TenthsMedianMs) != 10 {
			t.Errorf("%s: %d tenths, want 10: %+v", name, len(s.TenthsMedianMs), s)
		}
	}
	for _, step := range []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join", "detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"} {
		if res.Steps[step].MedianMs <= 0 {
			t.Errorf("step %s missing: %+v", step, res.Steps)
		}
	}
}

// TestNetbenchKernelJSON runs the kernel-only baseline briefly, plain and
// with -bridge-mtu-user, and checks that every kernel step has figures.
func TestNetbenchKernelJSON(t *testing.T) {
	testutil.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"-kernel"}, {"-kernel", "-bridge-mtu-user"}} {
		args := append([]string{"-n", "25", "-json"}, args...)
		out, err := exec.Command("unshare", append([]string{"-n", "-m", bin}, args...)...).Output()
		if err != nil {
			t.Fatalf("netbench %v: %v\n%s", args, err, out)
		}
		var res result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("netbench %v printed %q: %v", args, out, err)
		}
		if res.N != 25 || !res.Kernel || res.BridgeMTUUser != (len(args) == 5) {
			t.Errorf("%v: n=%d kernel=%v bridge_mtu_user=%v", args, res.N, res.Kernel, res.BridgeMTUUser)
		}
		for name, s := range map[string]stats{"attach": res.Attach, "detach": res.Detach} {
			if s.MedianMs <= 0 || s.P99Ms < s.MedianMs || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 {
				t.Errorf("%v: %s figures %+v", args, name, s)
			}
			if len(s.TenthsMedianMs) != 10 {
				t.Errorf("%v: %s: %d tenths, want 10: %+v", args, name, len(s.TenthsMedianMs), s)
			}
		}
		want := append(append([]string(nil), kernelAttachSteps...), kernelDetachSteps...)
		for _, step := range want {
			s, ok := res.Steps[step]
			if !ok || s.MedianMs <= 0 || s.P99Ms < s.MedianMs || len(s.TenthsMedianMs) != 10 {
				t.Errorf("%v: step %s: %+v", args, step, s)
			}
		}
		if len(res.Steps) != len(want) {
			t.Errorf("%v: steps %v, want exactly %v", args, res.Steps, want)
		}
		// The parts cannot take longer than the whole.
		if j, v := res.Steps["kernel.join"], res.Steps["kernel.veth"]; v.MedianMs > j.MedianMs {
			t.Errorf("%v: kernel.veth median %v > kernel.join median %v", args, v.MedianMs, j.MedianMs)
		}
		if res.Steps["kernel.join"].MedianMs > res.Attach.MedianMs {
			t.Errorf("%v: kernel.join median %v > attach median %v", args, res.Steps["kernel.join"].MedianMs, res.Attach.MedianMs)
		}
	}
	if err := exec.Command(bin, "-bridge-mtu-user").Run(); err == nil {
		t.Error("-bridge-mtu-user accepted without -kernel")
	}
}

// buildNetbench builds netbench into a temporary directory.
func buildNetbench(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runJSON runs netbench with args in new namespaces and decodes its JSON
// into v.
func runJSON(t *testing.T, bin string, v any, args ...string) {
	t.Helper()
	out, err := exec.Command("unshare", append([]string{"-n", "-m", bin, "-json"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("netbench %v: %v\n%s%s", args, err, out, stderr)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("netbench %v printed %q: %v", args, out, err)
	}
}

// refused checks that netbench refuses args with a message that says so.
func refused(t *testing.T, bin, wantMsg string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("netbench %v accepted", args)
		return
	}
	if !strings.Contains(string(out), wantMsg) {
		t.Errorf("netbench %v: %q, want it to mention %q", args, out, wantMsg)
	}
}

// TestNetbenchPorts runs netbench briefly with published ports: every
// container has its ports published on distinct host ports (netbench
// checks that itself), the result counts them, and the figures are there.
func TestNetbenchPorts(t *testing.T) {
	testutil.RequireRoot(t)
	bin := buildNetbench(t)
	var res result
	runJSON(t, bin, &res, "-n", "20", "-ports", "3")
	if res.N != 20 || res.Ports != 3 || res.Published != 60 || res.Proto != "mixed" {
		t.Errorf("n=%d ports=%d published=%d proto=%q, want 20, 3, 60, mixed", res.N, res.Ports, res.Published, res.Proto)
	}
	// Each published port is held by a socket.
	if res.OpenFiles < res.Published {
		t.Errorf("%d files open with %d ports published", res.OpenFiles, res.Published)
	}
	for name, s := range map[string]stats{"attach": res.Attach, "detach": res.Detach} {
		if s.MedianMs <= 0 || s.P99Ms < s.MedianMs || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 || len(s.TenthsMedianMs) != 10 {
			t.Errorf("%s figures %+v", name, s)
		}
	}
	for _, step := range []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join", "detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"} {
		if res.Steps[step].MedianMs <= 0 {
			t.Errorf("step %s missing: %+v", step, res.Steps)
		}
	}
	if res.Steps["attach.join"].MedianMs > res.Attach.MedianMs {
		t.Errorf("attach.join median %v > attach median %v", res.Steps["attach.join"].MedianMs, res.Attach.MedianMs)
	}

	for _, proto := range []string{"tcp", "udp"} {
		var one result
		runJSON(t, bin, &one, "-n", "10", "-ports", "2", "-proto", proto)
		if one.Published != 20 || one.Proto != proto {
			t.Errorf("-proto %s: published=%d proto=%q", proto, one.Published, one.Proto)
		}
	}

	refused(t, bin, "-kernel", "-ports", "2", "-kernel")
	refused(t, bin, "-proto", "-ports", "2", "-proto", "sctp")
	refused(t, bin, "-proto needs -ports", "-proto", "tcp")
	refused(t, bin, "-ports", "-ports", "-1")
	refused(t, bin, "-ports", "-ports", "70000")
}

// TestNetbenchThroughput measures both paths briefly. CI installs iperf3;
// elsewhere the test skips without it.
func TestNetbenchThroughput(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("iperf3"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("needs iperf3 (Debian package iperf3)")
	}
	bin := buildNetbench(t)
	var res throughputResult
	runJSON(t, bin, &res, "-throughput", "-duration", "1", "-rounds", "2")
	if res.PublishedGbps <= 0 || res.DirectGbps <= 0 || res.PublishedToDirect <= 0 {
		t.Errorf("throughput %+v", res)
	}
	if len(res.PublishedRunsGbps) != 2 || len(res.DirectRunsGbps) != 2 || res.DurationS != 1 || res.Rounds != 2 {
		t.Errorf("runs %+v, want 2 of 1 s per path", res)
	}
	if !strings.HasPrefix(res.PublishedAddr, "192.0.2.1:") || strings.HasSuffix(res.PublishedAddr, ":0") {
		t.Errorf("published address %q, want the host's outside address and a host port", res.PublishedAddr)
	}
	if !strings.HasSuffix(res.DirectAddr, ":5201") || strings.HasPrefix(res.DirectAddr, "192.0.2.") {
		t.Errorf("direct address %q, want the container's address and port 5201", res.DirectAddr)
	}
}

// TestNetbenchThroughputRefusals: -throughput says what it needs and
// refuses the attach benchmark's flags, and those refuse its own.
func TestNetbenchThroughputRefusals(t *testing.T) {
	bin := buildNetbench(t)
	cmd := exec.Command(bin, "-throughput")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs iperf3") {
		t.Errorf("-throughput without iperf3 on PATH: %v %q, want a failure naming iperf3", err, out)
	}
	refused(t, bin, "-n", "-throughput", "-n", "5")
	refused(t, bin, "-ports", "-throughput", "-ports", "1")
	refused(t, bin, "-kernel", "-throughput", "-kernel")
	refused(t, bin, "-proto", "-throughput", "-proto", "tcp")
	refused(t, bin, "-duration", "-throughput", "-duration", "0")
	refused(t, bin, "-duration needs -throughput", "-duration", "2")
	refused(t, bin, "-rounds needs -throughput", "-rounds", "2")
}

// TestNetbenchDNS runs -dns briefly: dnsperf inside a container against the
// embedded resolver, local and forwarded names. It checks that every query
// was answered as it should be, not how fast.
func TestNetbenchDNS(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"dnsperf", "dnsmasq"} {
		if _, err := exec.LookPath(tool); err != nil && os.Getenv("CI") != "true" {
			t.Skipf("needs %s (Debian packages dnsperf, dnsmasq-base)", tool)
		}
	}
	bin := buildNetbench(t)
	var res dnsResult
	runJSON(t, bin, &res, "-dns", "-duration", "1", "-dns-peers", "3", "-dns-paced", "200")
	if res.NamesQPS <= 0 || res.ForwardedQPS <= 0 || res.NamesP99Ms <= 0 || res.ForwardedP99Ms <= 0 || res.UpstreamP99Ms <= 0 {
		t.Errorf("figures %+v", res)
	}
	if res.NotNoError != 0 || res.PacedAnswered == 0 {
		t.Errorf("paced runs: %d answers, %d not NOERROR", res.PacedAnswered, res.NotNoError)
	}
	s := res.ResolverStats
	if s.Local == 0 || s.Forwarded == 0 || s.Refused != 0 {
		t.Errorf("resolver counters %+v: want local and forwarded answers and nothing refused", s)
	}
}

func TestNetbenchDNSRefusals(t *testing.T) {
	bin := buildNetbench(t)
	refused(t, bin, "-n", "-dns", "-n", "5")
	refused(t, bin, "-throughput", "-dns", "-throughput")
	refused(t, bin, "-dns-peers", "-dns", "-dns-peers", "0")
	refused(t, bin, "-dns-peers", "-dns-peers", "3")
	refused(t, bin, "-no-resolver", "-kernel", "-no-resolver")
}

// TestNetbenchDriver runs -driver briefly: attach and detach through the
// example veth plugin as a process of netbench's, with the controller's own
// time beside the totals.
func TestNetbenchDriver(t *testing.T) {
	testutil.RequireRoot(t)
	bin := buildNetbench(t)
	var res result
	runJSON(t, bin, &res, "-driver", "veth-example", "-n", "3")
	if res.Driver != "veth-example" || res.AttachOwn == nil || res.DetachOwn == nil {
		t.Fatalf("result %+v lacks the remote driver's figures", res)
	}
	if res.AttachOwn.MedianMs <= 0 || res.AttachOwn.MedianMs > res.Attach.MedianMs {
		t.Errorf("attach median %v ms, the controller's own %v ms: own must be positive and at most the total", res.Attach.MedianMs, res.AttachOwn.MedianMs)
	}
	var mv result
	runJSON(t, bin, &mv, "-driver", "macvlan", "-n", "3")
	if mv.N != 3 || mv.Attach.MedianMs <= 0 || mv.AttachOwn != nil {
		t.Errorf("-driver macvlan: %+v", mv)
	}
	refused(t, bin, "-driver", "-driver", "veth-example", "-kernel")
	refused(t, bin, "-driver", "-driver", "veth-example", "-ports", "2")
}

// TestNetbenchRootless runs -rootless briefly: the built-in port driver
// and rootlesskit's each publish a child's iperf3 and one-byte servers,
// and both figures of both sides are there. CI installs the tools;
// elsewhere the test skips without them.
func TestNetbenchRootless(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range rootlessTools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (Debian packages iperf3, rootlesskit, slirp4netns, uidmap): %v", tool, err)
			}
			t.Skipf("needs %s (Debian packages iperf3, rootlesskit, slirp4netns, uidmap): %v", tool, err)
		}
	}
	bin := buildNetbench(t)
	var res rootlessResult
	runJSON(t, bin, &res, "-rootless", "-duration", "1")
	if res.BuiltinGbps <= 0 || res.RootlesskitGbps <= 0 || res.BuiltinConnPerS <= 0 || res.RootlesskitConnPerS <= 0 {
		t.Errorf("figures %+v: want all four > 0", res)
	}
	if res.DurationS != 1 || res.Rounds != 1 || len(res.BuiltinRunsGbps) != 1 || len(res.RootlesskitRunsConnPerS) != 1 {
		t.Errorf("runs %+v, want one of 1 s per side", res)
	}
	if !strings.Contains(res.RootlesskitVersion, "rootlesskit") {
		t.Errorf("rootlesskit version %q", res.RootlesskitVersion)
	}
}

// TestNetbenchRootlessRefusals: -rootless refuses the other modes' flags,
// and says what it needs.
func TestNetbenchRootlessRefusals(t *testing.T) {
	bin := buildNetbench(t)
	refused(t, bin, "-n does not apply", "-rootless", "-n", "5")
	refused(t, bin, "-ports does not apply", "-rootless", "-ports", "2")
	refused(t, bin, "-throughput does not apply", "-rootless", "-throughput")
	refused(t, bin, "-driver does not apply", "-rootless", "-driver", "veth-example")
	refused(t, bin, "-duration", "-rootless", "-duration", "0")
	refused(t, bin, "-rounds", "-rootless", "-rounds", "0")
	refused(t, bin, "-rounds needs -throughput or -rootless", "-rounds", "2")
	cmd := exec.Command(bin, "-rootless")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-rootless needs") {
		t.Errorf("-rootless with nothing on PATH: %v %q, want a failure naming what it needs", err, out)
	}
}

// requireEtcd skips without the etcd server, or fails under CI=true,
// where .ci/run installs it.
func requireEtcd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs the etcd server %s (Debian package etcd-server): %v", etcdBinary, err)
		}
		t.Skipf("needs the etcd server %s (Debian package etcd-server): %v", etcdBinary, err)
	}
}

// TestNetbenchOverlay runs -overlay briefly: three hosts attach and detach
// containers on one overlay network at once, with figures for each host
// and all together, distinct addresses across hosts, and a reachability
// sample of host 2's first container from host 1.
func TestNetbenchOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	requireEtcd(t)
	bin := buildNetbench(t)
	var res overlayResult
	runJSON(t, bin, &res, "-overlay", "-n", "5")
	checkOverlayResult(t, res, false)
	var serial overlayResult
	runJSON(t, bin, &serial, "-overlay", "-serial", "-n", "5")
	checkOverlayResult(t, serial, true)
}

// checkOverlayResult checks the figures of an -overlay -n 5 run.
func checkOverlayResult(t *testing.T, res overlayResult, serial bool) {
	t.Helper()
	if res.Serial != serial {
		t.Errorf("serial=%v, want %v", res.Serial, serial)
	}
	if !res.Overlay || res.Hosts != 3 || res.N != 5 || res.DistinctAddrs != 15 {
		t.Errorf("overlay=%v hosts=%d n=%d distinct addresses=%d, want true, 3, 5, 15", res.Overlay, res.Hosts, res.N, res.DistinctAddrs)
	}
	if len(res.NetworkSeenMs) != 2 {
		t.Errorf("network seen by %d other hosts, want 2: %v", len(res.NetworkSeenMs), res.NetworkSeenMs)
	}
	sane := func(what string, s stats) {
		t.Helper()
		if s.MedianMs <= 0 || s.P90Ms < s.MedianMs || s.P99Ms < s.P90Ms || s.First20MedianMs <= 0 || s.Last20MedianMs <= 0 {
			t.Errorf("%s figures %+v", what, s)
		}
	}
	sane("attach", res.Attach)
	sane("detach", res.Detach)
	if len(res.Attach.TenthsMedianMs) != 10 {
		t.Errorf("attach of 15 containers: %d tenths, want 10", len(res.Attach.TenthsMedianMs))
	}
	steps := []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join", "detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"}
	for _, step := range steps {
		sane("step "+step, res.Steps[step])
	}
	if len(res.PerHost) != 3 {
		t.Fatalf("%d hosts' figures, want 3", len(res.PerHost))
	}
	for i, h := range res.PerHost {
		if want := fmt.Sprintf("host%d", i+1); h.Host != want || h.VTEP != fmt.Sprintf("192.168.210.%d", i+1) {
			t.Errorf("host %d: %s VTEP %s", i, h.Host, h.VTEP)
		}
		sane(h.Host+" attach", h.Attach)
		sane(h.Host+" detach", h.Detach)
		for _, step := range steps {
			if h.Steps[step].MedianMs <= 0 {
				t.Errorf("%s: step %s missing: %+v", h.Host, step, h.Steps)
			}
		}
	}
	// One sample: host 2's first container.
	r := res.Reach
	if r.Samples != 1 || len(r.RunsMs) != 1 || r.MedianMs <= 0 || r.P90Ms != r.MedianMs || r.MaxMs != r.MedianMs {
		t.Errorf("reachability %+v, want one positive sample", r)
	}
}

// TestNetbenchOverlayThroughput measures both paths between two hosts
// briefly, and checks the figures are there and the MTUs differ by the
// VXLAN overhead.
func TestNetbenchOverlayThroughput(t *testing.T) {
	testutil.RequireRoot(t)
	requireEtcd(t)
	if _, err := exec.LookPath("iperf3"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("needs iperf3 (Debian package iperf3)")
	}
	bin := buildNetbench(t)
	var res overlayThroughputResult
	runJSON(t, bin, &res, "-overlay", "-throughput", "-duration", "1", "-rounds", "2")
	if res.OverlayGbps <= 0 || res.UnderlayGbps <= 0 || res.OverlayToUnderlay <= 0 {
		t.Errorf("throughput %+v", res)
	}
	if len(res.OverlayRunsGbps) != 2 || len(res.UnderlayRunsGbps) != 2 || len(res.RoundRatios) != 2 || res.DurationS != 1 || res.Rounds != 2 {
		t.Errorf("runs %+v, want 2 of 1 s per path", res)
	}
	if res.UnderlayAddr != "192.168.210.2:5201" || !strings.HasPrefix(res.OverlayAddr, "10.200.") || !strings.HasSuffix(res.OverlayAddr, ":5201") {
		t.Errorf("addresses: overlay %q underlay %q", res.OverlayAddr, res.UnderlayAddr)
	}
	if res.UnderlayMTU != 1500 || res.OverlayMTU != 1450 {
		t.Errorf("MTU: overlay %d underlay %d, want 1450 and 1500", res.OverlayMTU, res.UnderlayMTU)
	}
}

// TestNetbenchOverlayRefusals: -overlay refuses the flags of the other
// modes, and its throughput variant those of the attach benchmark.
func TestNetbenchOverlayRefusals(t *testing.T) {
	bin := buildNetbench(t)
	requireEtcd(t)
	refused(t, bin, "-ports does not apply", "-overlay", "-ports", "2")
	refused(t, bin, "-kernel does not apply", "-overlay", "-kernel")
	refused(t, bin, "-driver does not apply", "-overlay", "-driver", "macvlan")
	refused(t, bin, "-dns does not apply", "-overlay", "-dns")
	refused(t, bin, "-rootless does not apply", "-overlay", "-rootless")
	refused(t, bin, "-n must be at least 1", "-overlay", "-n", "0")
	refused(t, bin, "-n is at most", "-overlay", "-n", "100000")
	refused(t, bin, "-duration needs -throughput", "-overlay", "-duration", "2")
	refused(t, bin, "-rounds needs -throughput", "-overlay", "-rounds", "2")
	refused(t, bin, "-n does not apply", "-overlay", "-throughput", "-n", "5")
	refused(t, bin, "-serial does not apply", "-overlay", "-throughput", "-serial")
	refused(t, bin, "-serial needs -overlay", "-serial")
	refused(t, bin, "-duration", "-overlay", "-throughput", "-duration", "0")
}
