package main

// The -throughput mode: TCP throughput through a published port against
// the same traffic sent straight to the container's address.
//
// In its own namespaces, as for the attach benchmark, netbench makes a
// controller and a bridge network and attaches one container whose
// sandbox publishes TCP port 5201 on an ephemeral host port. An "outside"
// namespace, linked to netbench's (the host) by a veth (host side
// 192.0.2.1/24, outside 192.0.2.2/24) and routing the container's subnet
// through the host, is the client: a host on the far side of the host's
// interface, as the root package's forwarding tests have. An iperf3 server
// runs in the sandbox (nsenter --net=<sandbox key>); an iperf3 client in
// the outside namespace sends to 192.0.2.1:<host port> (published: DNAT
// by the library's nftables rules, then forwarded to the bridge) and to
// <container address>:5201 (direct: forwarded only), one TCP stream each,
// for -duration seconds. With -rounds R each path runs R times,
// alternating which goes first; the medians are reported. Both paths cross
// the same veths, bridge and forwarding; the difference is the published
// port's NAT.
//
//	netbench -throughput
//	netbench -throughput -duration 5 -rounds 3 -json

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netkit/libnetwork"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

const (
	// iperfPort is the container port the iperf3 server listens on.
	iperfPort = 5201
	// The link between the host and the outside namespace.
	outsideHostIf = "outside0"
)

var (
	outsideHostAddr = &net.IPNet{IP: net.IPv4(192, 0, 2, 1).To4(), Mask: net.CIDRMask(24, 32)}
	outsideAddr     = &net.IPNet{IP: net.IPv4(192, 0, 2, 2).To4(), Mask: net.CIDRMask(24, 32)}
)

// throughputResult is what -throughput prints.
type throughputResult struct {
	// PublishedGbps and DirectGbps are the medians of the runs, in Gbit/s
	// received by the server.
	PublishedGbps float64 `json:"published_gbps"`
	DirectGbps    float64 `json:"direct_gbps"`
	// PublishedToDirect is PublishedGbps / DirectGbps.
	PublishedToDirect float64   `json:"published_to_direct"`
	PublishedRunsGbps []float64 `json:"published_runs_gbps"`
	DirectRunsGbps    []float64 `json:"direct_runs_gbps"`
	// The retransmissions the client counted, all runs of a path together.
	PublishedRetransmits int `json:"published_retransmits"`
	DirectRetransmits    int `json:"direct_retransmits"`
	DurationS            int `json:"duration_s"`
	Rounds               int `json:"rounds"`
	// PublishedAddr and DirectAddr are where the client sent.
	PublishedAddr string `json:"published_addr"`
	DirectAddr    string `json:"direct_addr"`
}

// checkThroughputFlags refuses what a -throughput run cannot do, and fails
// at once when iperf3 or nsenter is missing.
func checkThroughputFlags(duration, rounds int) {
	for _, name := range []string{"n", "ports", "proto", "kernel", "bridge-mtu-user", "no-resolver", "dns-peers", "dns-outstanding", "dns-paced"} {
		if flagSet(name) {
			fail("-throughput runs one container and no attach benchmark: -" + name + " does not apply")
		}
	}
	checkThroughputTools(duration, rounds)
}

// checkThroughputTools refuses a -duration or -rounds below 1, and fails
// at once when iperf3 or nsenter is missing.
func checkThroughputTools(duration, rounds int) {
	if duration < 1 {
		fail("-duration: at least 1 second")
	}
	if rounds < 1 {
		fail("-rounds: at least 1")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fail("-throughput needs iperf3 (Debian package iperf3): " + err.Error())
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		fail("-throughput needs nsenter (Debian package util-linux): " + err.Error())
	}
}

func runThroughput(duration, rounds int) (*throughputResult, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()

	c, nw, err := newBench(dir)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	sb, err := c.NewSandbox("iperf", libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: iperfPort}}))
	if err != nil {
		return nil, err
	}
	defer sb.Delete()
	ep, err := nw.CreateEndpoint("iperf")
	if err != nil {
		return nil, err
	}
	defer ep.Delete(true)
	if err := ep.Join(sb); err != nil {
		return nil, err
	}
	defer ep.Leave(sb)

	hostPort, err := publishedTCPPort(ep, iperfPort)
	if err != nil {
		return nil, err
	}
	ctrAddr := ep.Info().Iface().Address()
	if ctrAddr == nil {
		return nil, errors.New("the container has no IPv4 address")
	}
	subnet := &net.IPNet{IP: ctrAddr.IP.Mask(ctrAddr.Mask), Mask: ctrAddr.Mask}
	outside, err := newOutside(filepath.Join(dir, "outside"), subnet)
	if err != nil {
		return nil, err
	}
	defer outside.Destroy()

	stop, err := startIperfServer(sb.Key())
	if err != nil {
		return nil, err
	}
	defer stop()

	res := &throughputResult{
		DurationS:     duration,
		Rounds:        rounds,
		PublishedAddr: net.JoinHostPort(outsideHostAddr.IP.String(), fmt.Sprint(hostPort)),
		DirectAddr:    net.JoinHostPort(ctrAddr.IP.String(), fmt.Sprint(iperfPort)),
	}
	type path struct {
		addr    string
		runs    *[]float64
		retrans *int
	}
	paths := []path{
		{res.PublishedAddr, &res.PublishedRunsGbps, &res.PublishedRetransmits},
		{res.DirectAddr, &res.DirectRunsGbps, &res.DirectRetransmits},
	}
	for r := range rounds {
		for i := range paths {
			p := paths[(i+r)%2]
			gbps, retrans, err := iperfClient(outside.Path(), p.addr, duration)
			if err != nil {
				return nil, err
			}
			*p.runs = append(*p.runs, gbps)
			*p.retrans += retrans
		}
	}
	res.PublishedGbps = median(res.PublishedRunsGbps)
	res.DirectGbps = median(res.DirectRunsGbps)
	if res.DirectGbps > 0 {
		res.PublishedToDirect = res.PublishedGbps / res.DirectGbps
	}
	return res, nil
}

// publishedTCPPort returns the host port ep published for its TCP port.
func publishedTCPPort(ep libnetwork.Endpoint, port uint16) (uint16, error) {
	info, err := ep.DriverInfo()
	if err != nil {
		return 0, err
	}
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	for _, b := range pbs {
		if b.Proto == types.TCP && b.Port == port && b.HostPort != 0 {
			return b.HostPort, nil
		}
	}
	return 0, fmt.Errorf("port %d/tcp not published (bindings %v)", port, pbs)
}

// newOutside makes the outside namespace at path, linked to the host by a
// veth, and routes subnet through the host.
func newOutside(path string, subnet *net.IPNet) (_ *osl.Namespace, retErr error) {
	ns, err := osl.NewNamespace(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = ns.Destroy()
		}
	}()
	host, err := osl.CurrentNamespace()
	if err != nil {
		return nil, err
	}
	defer host.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: outsideHostIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := host.Handle().LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("veth to the outside namespace: %w", err)
	}
	if err := host.ConfigureInterface(osl.IfaceConfig{Name: outsideHostIf, Addr: outsideHostAddr, NoIPv6LinkLocal: true}); err != nil {
		return nil, err
	}
	err = ns.ConfigureInterface(osl.IfaceConfig{
		Name:            "eth0",
		Addr:            outsideAddr,
		NoIPv6LinkLocal: true,
		Routes:          []osl.Route{{Dst: subnet, Gw: outsideHostAddr.IP}},
	})
	if err != nil {
		return nil, err
	}
	return ns, nil
}

// startIperfServer starts an iperf3 server in the namespace at netnsPath,
// waits until it listens, and returns what stops it.
func startIperfServer(netnsPath string) (func(), error) {
	var out bytes.Buffer
	// nsenter enters the namespace and execs iperf3: the PID is iperf3's.
	cmd := exec.Command("nsenter", "--net="+netnsPath, "iperf3", "-s", "-p", fmt.Sprint(iperfPort))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the iperf3 server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if listening(cmd.Process.Pid, iperfPort) {
			return stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("the iperf3 server did not listen on port %d within 5s: %s", iperfPort, strings.TrimSpace(out.String()))
}

// listening reports whether the process pid has a TCP socket listening on
// port, from the tables of its network namespace (/proc/<pid>/net).
func listening(pid int, port uint16) bool {
	want := fmt.Sprintf(":%04X ", port)
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st ...; st 0A is LISTEN.
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// iperfReport is the part of iperf3's -J output that netbench reads.
type iperfReport struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// iperfClient runs an iperf3 client in the namespace at netnsPath (in
// netbench's own if it is empty) against addr ("host:port") for seconds,
// and returns the Gbit/s the server received and the retransmissions the
// client counted.
func iperfClient(netnsPath, addr string, seconds int) (float64, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, err
	}
	args := []string{"iperf3", "-c", host, "-p", port, "-t", fmt.Sprint(seconds), "-J"}
	if netnsPath != "" {
		args = append([]string{"nsenter", "--net=" + netnsPath}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var rep iperfReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return 0, 0, fmt.Errorf("iperf3 client to %s: %v: output %q %s", addr, runErr, out, strings.TrimSpace(stderr.String()))
	}
	if rep.Error != "" || runErr != nil {
		return 0, 0, fmt.Errorf("iperf3 client to %s: %s (%v) %s", addr, rep.Error, runErr, strings.TrimSpace(stderr.String()))
	}
	if rep.End.SumReceived.BitsPerSecond <= 0 {
		return 0, 0, fmt.Errorf("iperf3 client to %s: no throughput in its report %s", addr, out)
	}
	return rep.End.SumReceived.BitsPerSecond / 1e9, rep.End.SumSent.Retransmits, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *throughputResult) print() {
	fmt.Printf("netbench: throughput, iperf3, one TCP stream, %d s per run, %d round(s), from an outside namespace to a server in a sandbox\n", r.DurationS, r.Rounds)
	fmt.Printf("  published (%s): %.2f Gbit/s  runs %v, %d retransmits\n", r.PublishedAddr, r.PublishedGbps, r.PublishedRunsGbps, r.PublishedRetransmits)
	fmt.Printf("  direct    (%s): %.2f Gbit/s  runs %v, %d retransmits\n", r.DirectAddr, r.DirectGbps, r.DirectRunsGbps, r.DirectRetransmits)
	fmt.Printf("  published / direct: %.2f\n", r.PublishedToDirect)
}
