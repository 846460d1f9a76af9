package main

// The -ports mode: what each container publishes, and the check that it
// was published.

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// portBindings returns what each container publishes with -ports n:
// container ports 1..n, each on an ephemeral host port of all host
// addresses; with proto "mixed" odd ones TCP and even ones UDP.
func portBindings(n int, p string) []types.PortBinding {
	pbs := make([]types.PortBinding, 0, n)
	for i := 1; i <= n; i++ {
		proto := types.TCP
		if p == "udp" || p == "mixed" && i%2 == 0 {
			proto = types.UDP
		}
		pbs = append(pbs, types.PortBinding{Proto: proto, Port: uint16(i)})
	}
	return pbs
}

// publishedOf returns how many bindings ep reports as published, after
// checking that each of its want container ports has one, on a host port
// that no other binding of the run (recorded in seen, by protocol, host
// address and port) has.
func publishedOf(ep libnetwork.Endpoint, want int, seen map[string]int) (int, error) {
	info, err := ep.DriverInfo()
	if err != nil {
		return 0, err
	}
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	ports := map[uint16]bool{}
	for _, b := range pbs {
		if b.HostPort == 0 {
			return 0, fmt.Errorf("endpoint %s: binding %s/%d published without a host port", ep.Name(), b.Proto, b.Port)
		}
		key := fmt.Sprintf("%s/%s/%d", b.Proto, b.HostIP, b.HostPort)
		if seen[key]++; seen[key] > 1 {
			return 0, fmt.Errorf("endpoint %s: host port %s given twice", ep.Name(), key)
		}
		ports[b.Port] = true
	}
	if len(ports) != want {
		return 0, fmt.Errorf("endpoint %s: %d of its %d container ports published: %v", ep.Name(), len(ports), want, pbs)
	}
	return len(pbs), nil
}

// fileReserve is room for the files netbench holds besides the published
// ports' sockets: about 3 per container (its namespace and netlink
// sockets) and the controller's.
func fileReserve(n int) uint64 { return uint64(4*n) + 1024 }

// raiseFileLimit makes room for the sockets of ports published host ports
// and the files of n containers. As root with CAP_SYS_RESOURCE netbench
// raises its own limit (up to fs.nr_open; the limit goes with the
// process); without it, it fails unless they fit under the hard limit.
func raiseFileLimit(n, ports int) error {
	if ports == 0 {
		return nil
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-file limit: %w", err)
	}
	need := uint64(ports) + fileReserve(n)
	if need <= lim.Cur {
		return nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if nrOpen, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && need > nrOpen {
			return fmt.Errorf("%d published ports need about %d open files (one socket each), more than fs.nr_open %d", ports, need, nrOpen)
		}
	}
	want := lim
	want.Cur, want.Max = need, max(lim.Max, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		if need <= lim.Max {
			lim.Cur = lim.Max
			return unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		}
		return fmt.Errorf("%d published ports need about %d open files (one socket each) but the hard limit is %d and raising it was refused (it needs CAP_SYS_RESOURCE): %w", ports, need, lim.Max, err)
	}
	return nil
}

// countOpenFiles returns how many files the process has open, or 0.
func countOpenFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
