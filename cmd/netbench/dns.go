package main

// The -dns mode: the embedded DNS server's throughput and latency, as a
// container sees them.
//
// In its own namespaces, as for the attach benchmark, netbench makes a
// controller and a bridge network, attaches -dns-peers containers named
// peer0, peer1, ... and one client container, and starts dnsmasq in its
// own namespace on 127.0.0.53 as the client's upstream server (a
// systemd-resolved or local cache would sit there; the library dials it
// from the controller's namespace) answering fwd0.test, fwd1.test, ... with
// fixed addresses from its configuration. dnsperf then runs inside the
// client's namespace against 127.0.0.11:53 (the resolver, through the
// library's redirect):
//
//   - names: the peers' names and name.network, as fast as dnsperf can
//     send them for -duration seconds (-dns-outstanding queries in flight);
//   - forwarded: the fwdN.test names the same way, each query forwarded to
//     dnsmasq;
//   - both again paced at -dns-paced queries per second with dnsperf's
//     per-query report (-v), for the latency quantiles;
//   - the forwarded names paced the same way but sent straight to dnsmasq
//     from netbench's own namespace: the quantiles a C server gets on the
//     same machine with nothing between, the floor for the others.
//
// The machine's cores are shared by dnsperf, the resolver and, for
// forwarded names, dnsmasq; the figures are those of all three together.
//
//	netbench -dns
//	netbench -dns -duration 10 -json

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netkit/libnetwork"
)

// dnsResult is what -dns prints.
type dnsResult struct {
	// NamesQPS and ForwardedQPS are dnsperf's "Queries per second" of the
	// unpaced runs.
	NamesQPS     float64 `json:"names_qps"`
	ForwardedQPS float64 `json:"forwarded_qps"`
	// The latency quantiles of the paced runs, in milliseconds.
	NamesP50Ms     float64 `json:"names_p50_ms"`
	NamesP99Ms     float64 `json:"names_p99_ms"`
	ForwardedP50Ms float64 `json:"forwarded_p50_ms"`
	ForwardedP99Ms float64 `json:"forwarded_p99_ms"`
	// The same paced run of the forwarded names sent straight to dnsmasq
	// from netbench's own namespace: the latency the machine gives a C
	// server with no redirect, no resolver and no container between,
	// to set the resolver's quantiles against.
	UpstreamP50Ms float64 `json:"upstream_p50_ms"`
	UpstreamP99Ms float64 `json:"upstream_p99_ms"`
	// Lost queries of the unpaced runs (no answer within dnsperf's
	// timeout), and answers that were not NOERROR in any run.
	NamesLost     int `json:"names_lost"`
	ForwardedLost int `json:"forwarded_lost"`
	NotNoError    int `json:"not_noerror"`
	DurationS     int `json:"duration_s"`
	Outstanding   int `json:"outstanding"`
	PacedQPS      int `json:"paced_qps"`
	Peers         int `json:"peers"`
	PacedAnswered int `json:"paced_answered"`
	// ResolverStats are the client sandbox's resolver counters at the end.
	ResolverStats libnetwork.ResolverStatistics `json:"resolver"`
}

const (
	dnsUpstream = "127.0.0.53"
	fwdNames    = 16
)

// checkDNSFlags refuses flags -dns does not use and fails at once when a
// tool is missing.
func checkDNSFlags(duration, peers, outstanding, paced int) {
	for _, name := range []string{"n", "ports", "proto", "kernel", "bridge-mtu-user", "throughput", "rounds", "no-resolver"} {
		if flagSet(name) {
			fail("-dns runs the DNS benchmark and no attach benchmark: -" + name + " does not apply")
		}
	}
	switch {
	case duration < 1:
		fail("-duration: at least 1 second")
	case peers < 1 || peers > 200:
		fail("-dns-peers: 1 to 200")
	case outstanding < 1:
		fail("-dns-outstanding: at least 1")
	case paced < 1:
		fail("-dns-paced: at least 1 query per second")
	}
	for _, tool := range []string{"dnsperf", "dnsmasq", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail("-dns needs " + tool + " (Debian packages dnsperf, dnsmasq-base, util-linux): " + err.Error())
		}
	}
}

func runDNS(duration, peers, outstanding, paced int) (*dnsResult, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()

	args := []string{"-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--listen-address=" + dnsUpstream,
		"--bind-interfaces", "--port=53", "--local=/test/", "--pid-file=", "--user=root"}
	for i := range fwdNames {
		args = append(args, fmt.Sprintf("--address=/fwd%d.test/192.0.2.%d", i, i+1))
	}
	dm := exec.Command("dnsmasq", args...)
	var dmErr bytes.Buffer
	dm.Stderr = &dmErr
	// dnsmasq serves TCP in child processes that keep the pipe open.
	dm.WaitDelay = time.Second
	if err := dm.Start(); err != nil {
		return nil, fmt.Errorf("starting dnsmasq: %w", err)
	}
	defer func() {
		_ = dm.Process.Kill()
		_ = dm.Wait()
	}()

	c, nw, err := newBench(dir)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	attach := func(name string, opts ...libnetwork.SandboxOption) (libnetwork.Sandbox, error) {
		sb, err := c.NewSandbox(name, opts...)
		if err != nil {
			return nil, err
		}
		ep, err := nw.CreateEndpoint(name)
		if err != nil {
			return nil, err
		}
		return sb, ep.Join(sb)
	}
	var names []string
	for i := range peers {
		name := fmt.Sprintf("peer%d", i)
		if _, err := attach(name); err != nil {
			return nil, err
		}
		names = append(names, name+" A", name+".bench A")
	}
	client, err := attach("client", libnetwork.OptionDNS(dnsUpstream))
	if err != nil {
		return nil, err
	}
	var fwd []string
	for i := range fwdNames {
		fwd = append(fwd, fmt.Sprintf("fwd%d.test A", i))
	}
	namesFile := filepath.Join(dir, "names.txt")
	fwdFile := filepath.Join(dir, "fwd.txt")
	if err := os.WriteFile(namesFile, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(fwdFile, []byte(strings.Join(fwd, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	res := &dnsResult{DurationS: duration, Outstanding: outstanding, PacedQPS: paced, Peers: peers}
	// A first query through each path, so that neither run starts cold.
	if _, err := dnsperf(client.Key(), resolverAddr, fwdFile, []string{"-n", "1"}); err != nil {
		return nil, err
	}
	run := func(file string) (float64, int, error) {
		out, err := dnsperf(client.Key(), resolverAddr, file, []string{"-l", strconv.Itoa(duration), "-q", strconv.Itoa(outstanding), "-c", "2", "-T", "2"})
		if err != nil {
			return 0, 0, err
		}
		qps, err := dnsperfFloat(out, `Queries per second:\s+([0-9.]+)`)
		if err != nil {
			return 0, 0, err
		}
		lost, _ := dnsperfFloat(out, `Queries lost:\s+([0-9]+)`)
		return qps, int(lost), nil
	}
	if res.NamesQPS, res.NamesLost, err = run(namesFile); err != nil {
		return nil, err
	}
	if res.ForwardedQPS, res.ForwardedLost, err = run(fwdFile); err != nil {
		return nil, err
	}
	pacedRun := func(key, server, file string) (p50, p99 float64, err error) {
		out, err := dnsperf(key, server, file, []string{"-l", strconv.Itoa(duration), "-Q", strconv.Itoa(paced), "-v"})
		if err != nil {
			return 0, 0, err
		}
		lat, bad := perQuery(out)
		res.NotNoError += bad
		res.PacedAnswered += len(lat)
		if len(lat) == 0 {
			return 0, 0, errors.New("dnsperf -v reported no query")
		}
		sort.Float64s(lat)
		return quantileMs(lat, 0.50), quantileMs(lat, 0.99), nil
	}
	if res.NamesP50Ms, res.NamesP99Ms, err = pacedRun(client.Key(), resolverAddr, namesFile); err != nil {
		return nil, err
	}
	if res.ForwardedP50Ms, res.ForwardedP99Ms, err = pacedRun(client.Key(), resolverAddr, fwdFile); err != nil {
		return nil, err
	}
	if res.UpstreamP50Ms, res.UpstreamP99Ms, err = pacedRun("", dnsUpstream, fwdFile); err != nil {
		return nil, err
	}
	if res.ResolverStats, err = libnetwork.SandboxResolverStatistics(client); err != nil {
		return nil, err
	}
	return res, nil
}

// resolverAddr is where a container reaches its resolver.
const resolverAddr = "127.0.0.11"

// dnsperf runs dnsperf against server, inside the namespace at key, or in
// netbench's own with no key.
func dnsperf(key, server, file string, args []string) (string, error) {
	argv := append([]string{"dnsperf", "-s", server, "-d", file, "-t", "2"}, args...)
	if key != "" {
		argv = append([]string{"nsenter", "--net=" + key}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("dnsperf %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

func dnsperfFloat(out, pattern string) (float64, error) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("dnsperf output lacks %q:\n%s", pattern, out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// perQuery parses dnsperf -v's lines ("> NOERROR name A 0.000123"): the
// latencies in seconds, and how many answers were not NOERROR.
func perQuery(out string) (lat []float64, notNoError int) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != ">" {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		if f[1] != "NOERROR" {
			notNoError++
		}
		lat = append(lat, v)
	}
	return lat, notNoError
}

// quantileMs returns the q-quantile of sorted latencies in seconds, in
// milliseconds (nearest rank).
func quantileMs(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return math.Round(sorted[i]*1e6) / 1e3
}

func (r *dnsResult) print() {
	fmt.Printf("embedded DNS, dnsperf inside a container, %d s per run, %d queries outstanding\n", r.DurationS, r.Outstanding)
	fmt.Printf("  local names:     %9.0f q/s   lost %d\n", r.NamesQPS, r.NamesLost)
	fmt.Printf("  forwarded names: %9.0f q/s   lost %d\n", r.ForwardedQPS, r.ForwardedLost)
	fmt.Printf("paced at %d q/s (%d answers, %d not NOERROR):\n", r.PacedQPS, r.PacedAnswered, r.NotNoError)
	fmt.Printf("  local names:     p50 %.3f ms   p99 %.3f ms\n", r.NamesP50Ms, r.NamesP99Ms)
	fmt.Printf("  forwarded names: p50 %.3f ms   p99 %.3f ms\n", r.ForwardedP50Ms, r.ForwardedP99Ms)
	fmt.Printf("  dnsmasq directly: p50 %.3f ms   p99 %.3f ms (the machine's floor)\n", r.UpstreamP50Ms, r.UpstreamP99Ms)
	s := r.ResolverStats
	fmt.Printf("resolver counters: %d queries, %d local, %d forwarded, %d upstream failures, %d refused, %d malformed\n",
		s.Queries, s.Local, s.Forwarded, s.UpstreamFailures, s.Refused, s.Malformed)
}
