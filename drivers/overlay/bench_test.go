package overlay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/osl"
)

// BenchmarkJoin measures Join on an overlay network of a host: one veth
// pair made in the network's namespace with its container side born in
// the sandbox, each endpoint into a sandbox of its own (made outside the
// timing). Run with -benchtime=200x for the N=200.
func BenchmarkJoin(b *testing.B) {
	u := newUnderlay(b)
	h := u.addHost(b, 1)
	h.createNet(b, nid1, 4500, "10.90.0.0/16")
	eids := drivertest.CreateEndpoints(b, h.d, nid1, "10.90", b.N)
	sbs := make([]*osl.Namespace, b.N)
	for i := range sbs {
		sbs[i] = drivertest.NewNamespace(b)
	}
	b.ResetTimer()
	for i, eid := range eids {
		ji := joinInfo(sbs[i], "eth0")
		if err := h.d.Join(nid1, eid, sbs[i].Path(), ji, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// BenchmarkIperf3 compares the TCP throughput between containers on two
// hosts over the overlay with the throughput between the two hosts'
// underlay addresses, in one run: iperf3 servers run inside the
// namespaces (by PID, stopped at the end), and the two measurements
// alternate, five rounds of two seconds each, so that the load of a
// shared machine weighs on both alike. It reports the medians and the
// median of the rounds' ratios (the target: overlay >= 0.85 of
// underlay). Run with -benchtime=1x.
//
// The two "hosts" share the machine's CPUs. In shared-cpus, the kernel
// processes a packet to its end on the CPU that sent it (a veth hands it
// over on the same CPU), so the sender's CPU does the work of both
// hosts. cpu-per-host is closer to two machines: host 1's iperf3 runs on
// CPU 0 and host 2's on CPU 1, and RPS on each host's underlay interface
// moves what the host receives to its own CPU; both measurements run so.
func BenchmarkIperf3(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("iperf3 is not installed")
		}
		b.Skip("iperf3 is not installed")
	}
	b.Run("shared-cpus", func(b *testing.B) { benchIperf3(b, false) })
	b.Run("cpu-per-host", func(b *testing.B) {
		if runtime.NumCPU() < 2 {
			b.Skip("one CPU: nothing to give each host")
		}
		benchIperf3(b, true)
	})
}

func benchIperf3(b *testing.B, cpuPerHost bool) {
	h1, h2 := twoHosts(b, 4600, "10.80.0.0/24")
	c1 := h1.join(b, nid1, eid1, "10.80.0.11/24")
	c2 := h2.join(b, nid1, eid2, "10.80.0.12/24")
	addPeers(b, nid1, []*testHost{h1, h2}, []*container{c1, c2})
	cpu1, cpu2 := -1, -1
	if cpuPerHost {
		cpu1, cpu2 = 0, 1
		setRPS(b, h1.ns, "eth0", 1<<cpu1)
		setRPS(b, h2.ns, "eth0", 1<<cpu2)
	}
	iperfServer(b, h2.ns, cpu2, "192.168.200.2", 5201)
	iperfServer(b, c2.ns, cpu2, "10.80.0.12", 5202)
	const rounds = 5
	var under, over, ratios []float64
	for range b.N {
		for r := range rounds {
			// Alternating which goes first cancels a load that drifts.
			var u, o float64
			if r%2 == 0 {
				u = iperfClient(b, h1.ns, cpu1, "192.168.200.2", 5201)
				o = iperfClient(b, c1.ns, cpu1, "10.80.0.12", 5202)
			} else {
				o = iperfClient(b, c1.ns, cpu1, "10.80.0.12", 5202)
				u = iperfClient(b, h1.ns, cpu1, "192.168.200.2", 5201)
			}
			under, over, ratios = append(under, u), append(over, o), append(ratios, o/u)
		}
	}
	b.Logf("underlay Gbit/s %.2f; overlay Gbit/s %.2f; ratios %.2f", under, over, ratios)
	b.ReportMetric(median(under), "underlay-Gbit/s")
	b.ReportMetric(median(over), "overlay-Gbit/s")
	b.ReportMetric(median(ratios), "overlay/underlay")
}

// inNS returns the command that runs argv in ns's network namespace,
// on CPU cpu unless it is negative.
func inNS(ns *osl.Namespace, cpu int, argv ...string) *exec.Cmd {
	args := []string{"--net=" + ns.Path()}
	if cpu >= 0 {
		args = append(args, "taskset", "-c", fmt.Sprint(cpu))
	}
	return exec.Command("nsenter", append(args, argv...)...)
}

// setRPS steers what ifName in ns receives to the CPUs of mask. The
// queue's file is in a sysfs of ns's own, mounted in a mount namespace of
// the command's.
func setRPS(b *testing.B, ns *osl.Namespace, ifName string, mask int) {
	b.Helper()
	script := fmt.Sprintf("mount -t sysfs sysfs /sys && echo %x > /sys/class/net/%s/queues/rx-0/rps_cpus", mask, ifName)
	if out, err := inNS(ns, -1, "unshare", "-m", "sh", "-c", script).CombinedOutput(); err != nil {
		b.Fatalf("setting RPS on %s in %s: %v\n%s", ifName, ns, err, out)
	}
}

// iperfServer starts an iperf3 server in ns (on CPU cpu unless it is
// negative) on addr:port and stops it, by PID, at cleanup.
func iperfServer(b *testing.B, ns *osl.Namespace, cpu int, addr string, port int) {
	b.Helper()
	cmd := inNS(ns, cpu, "iperf3", "-s", "--forceflush", "-B", addr, "-p", fmt.Sprint(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting iperf3 in %s: %v", ns, err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server listening") {
				listening <- true
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		listening <- false
	}()
	select {
	case ok := <-listening:
		if ok {
			return
		}
	case <-time.After(10 * time.Second):
	}
	b.Fatalf("iperf3 server on %s:%d did not start", addr, port)
}

// iperfClient runs a 2-second iperf3 test from ns (on CPU cpu unless it
// is negative) and returns the throughput received, in Gbit/s.
func iperfClient(b *testing.B, ns *osl.Namespace, cpu int, addr string, port int) float64 {
	b.Helper()
	out, err := inNS(ns, cpu, "iperf3", "-c", addr, "-p", fmt.Sprint(port), "-t", "2", "-J").Output()
	if err != nil {
		b.Fatalf("iperf3 to %s:%d: %v\n%s", addr, port, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
		b.Fatalf("iperf3 to %s:%d: %v\n%s", addr, port, err, out)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
