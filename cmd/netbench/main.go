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
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	n := flag.Int("n", 200, "number of containers to attach and detach")
	ports := flag.Int("ports", 0, "published ports per container (port publishing is a later issue; must be 0 for now)")
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.Parse()
	if *n < 1 {
		fail("-n must be at least 1")
	}
	if *ports != 0 {
		fail("-ports: port publishing is not built yet; run with -ports 0")
	}
	if os.Getenv(inNSEnv) == "" {
		os.Exit(reexecInNamespace())
	}
	res, err := run(*n, *ports)
	if err != nil {
		fail(err.Error())
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return
	}
	res.print()
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
}

func run(n, ports int) (*result, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return nil, fmt.Errorf("mounting sysfs: %w", err)
	}
	dir, err := os.MkdirTemp("", "netbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		return nil, fmt.Errorf("mounting tmpfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}

	c, err := libnetwork.New(config.OptionDataDir(filepath.Join(dir, "data")), config.OptionExecRoot(filepath.Join(dir, "exec")))
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	nw, err := c.NewNetwork("bridge", "bench")
	if err != nil {
		return nil, err
	}

	steps := map[string][]time.Duration{}
	var attach, detach []time.Duration
	type pair struct {
		ep libnetwork.Endpoint
		sb libnetwork.Sandbox
	}
	pairs := make([]pair, 0, n)
	timed := func(step string, fn func() error) error {
		t0 := time.Now()
		err := fn()
		steps[step] = append(steps[step], time.Since(t0))
		return err
	}
	for i := 0; i < n; i++ {
		var p pair
		t0 := time.Now()
		err := timed("attach.new_sandbox", func() (err error) {
			p.sb, err = c.NewSandbox(fmt.Sprintf("ctr%d", i))
			return err
		})
		if err == nil {
			err = timed("attach.create_endpoint", func() (err error) {
				p.ep, err = nw.CreateEndpoint(fmt.Sprintf("ep%d", i))
				return err
			})
		}
		if err == nil {
			err = timed("attach.join", func() error { return p.ep.Join(p.sb) })
		}
		if err != nil {
			return nil, fmt.Errorf("attach %d: %w", i, err)
		}
		attach = append(attach, time.Since(t0))
		pairs = append(pairs, p)
	}
	for i, p := range pairs {
		t0 := time.Now()
		err := timed("detach.leave", func() error { return p.ep.Leave(p.sb) })
		if err == nil {
			err = timed("detach.delete_endpoint", func() error { return p.ep.Delete(false) })
		}
		if err == nil {
			err = timed("detach.delete_sandbox", p.sb.Delete)
		}
		if err != nil {
			return nil, fmt.Errorf("detach %d: %w", i, err)
		}
		detach = append(detach, time.Since(t0))
	}
	res := &result{N: n, Ports: ports, Attach: summarize(attach), Detach: summarize(detach), Steps: map[string]stats{}}
	for k, v := range steps {
		res.Steps[k] = summarize(v)
	}
	return res, nil
}

func summarize(d []time.Duration) stats {
	k := min(20, len(d))
	s := stats{
		MedianMs:        percentile(d, 50),
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
	fmt.Printf("netbench: n=%d ports=%d\n", r.N, r.Ports)
	fmt.Printf("%-24s %9s %9s %12s %12s  %s\n", "path/step", "median", "p99", "first20 med", "last20 med", "median of each tenth (ms)")
	row := func(name string, s stats) {
		fmt.Printf("%-24s %7.2fms %7.2fms %10.2fms %10.2fms ", name, s.MedianMs, s.P99Ms, s.First20MedianMs, s.Last20MedianMs)
		for _, t := range s.TenthsMedianMs {
			fmt.Printf(" %.2f", t)
		}
		fmt.Println()
	}
	row("attach", r.Attach)
	for _, k := range []string{"attach.new_sandbox", "attach.create_endpoint", "attach.join"} {
		row("  "+k, r.Steps[k])
	}
	row("detach", r.Detach)
	for _, k := range []string{"detach.leave", "detach.delete_endpoint", "detach.delete_sandbox"} {
		row("  "+k, r.Steps[k])
	}
}
