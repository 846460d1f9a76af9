package main

// The -rootless mode: a published rootless port's TCP throughput and
// connection set-up rate, through this project's built-in port driver
// (package rootless/port/builtin) and through rootlesskit's
// (--port-driver=builtin), on the same machine in one run.
//
// netbench, in its own namespaces as for the other modes, is the "host".
// Each side has a child namespace, the "rootless" one, in which a child
// process (netbench itself, re-executed with rootlessChildEnv set) serves
// on 127.0.0.1 an iperf3 server (port 5201) and a TCP server that writes
// one byte to each connection and closes it (port 5202):
//
//   - builtin: netbench starts the child in a new user (root mapped to
//     root), network and mount namespace, runs the built-in driver's
//     parent itself and the child runs its child driver;
//   - rootlesskit: netbench runs `rootlesskit --net=slirp4netns
//     --port-driver=builtin` with the child as its program, and publishes
//     through rootlesskit's API socket (package rootless/port/apiclient).
//     rootlesskit as root wants sub-IDs: netbench bind-mounts a file
//     giving root 100000:65536 over /etc/subuid and /etc/subgid in its own
//     mount namespace only.
//
// Each side publishes both ports on 127.0.0.1 of the host. Then, for each
// side in turn, an iperf3 client in netbench's namespace sends one TCP
// stream through the iperf3 port for -duration seconds (the Gbit/s the
// server received), and then netbench dials the other port, reads the
// byte and closes, one connection after the other, for -duration seconds
// (completed connections per second). With -rounds R it does this R
// times, alternating which side goes first; the medians are reported.
//
//	netbench -rootless
//	netbench -rootless -duration 5 -rounds 3 -json

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/rootless/port/apiclient"
	"github.com/netkit/libnetwork/rootless/port/builtin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rootlessChildEnv, set, makes netbench the child process of a -rootless
// side; its value is the rootlessChildConfig as JSON.
const rootlessChildEnv = "NETBENCH_ROOTLESS_CHILD"

// connPort is the port of the child's one-byte TCP server.
const connPort = 5202

// The host ports each side publishes its child's ports on.
const (
	builtinIperfPort     = 15201
	builtinConnPort      = 15202
	rootlesskitIperfPort = 25201
	rootlesskitConnPort  = 25202
)

// rootlessChildConfig is what a child process is told.
type rootlessChildConfig struct {
	// Opaque is the built-in parent driver's OpaqueForChild: the child
	// runs the built-in child driver with it, after making its mounts
	// private and mounting its own sysfs. It is nil under rootlesskit,
	// whose own child does the port work.
	Opaque map[string]string `json:"opaque,omitempty"`
}

// rootlessResult is what -rootless prints.
type rootlessResult struct {
	// The medians of the runs: iperf3's Gbit/s received by the server,
	// and completed connections (dial, read one byte, close) per second.
	BuiltinGbps         float64 `json:"builtin_gbps"`
	RootlesskitGbps     float64 `json:"rootlesskit_gbps"`
	BuiltinConnPerS     float64 `json:"builtin_conn_per_s"`
	RootlesskitConnPerS float64 `json:"rootlesskit_conn_per_s"`
	// The built-in driver's medians over rootlesskit's.
	BuiltinToRootlesskitGbps  float64 `json:"builtin_to_rootlesskit_gbps"`
	BuiltinToRootlesskitConns float64 `json:"builtin_to_rootlesskit_conn"`

	BuiltinRunsGbps         []float64 `json:"builtin_runs_gbps"`
	RootlesskitRunsGbps     []float64 `json:"rootlesskit_runs_gbps"`
	BuiltinRunsConnPerS     []float64 `json:"builtin_runs_conn_per_s"`
	RootlesskitRunsConnPerS []float64 `json:"rootlesskit_runs_conn_per_s"`
	// The retransmissions the iperf3 client counted, all runs together.
	BuiltinRetransmits     int    `json:"builtin_retransmits"`
	RootlesskitRetransmits int    `json:"rootlesskit_retransmits"`
	DurationS              int    `json:"duration_s"`
	Rounds                 int    `json:"rounds"`
	RootlesskitVersion     string `json:"rootlesskit_version"`
}

// rootlessTools are the programs a -rootless run needs.
var rootlessTools = []string{"iperf3", "rootlesskit", "slirp4netns", "newuidmap", "newgidmap"}

// checkRootlessFlags refuses what a -rootless run cannot do, and fails at
// once when a program it needs is missing.
func checkRootlessFlags(duration, rounds int) {
	for _, name := range []string{"n", "ports", "proto", "kernel", "bridge-mtu-user", "no-resolver", "throughput", "dns", "dns-peers", "dns-outstanding", "dns-paced", "driver"} {
		if flagSet(name) {
			fail("-rootless measures rootless port drivers and no controller: -" + name + " does not apply")
		}
	}
	if duration < 1 {
		fail("-duration: at least 1 second")
	}
	if rounds < 1 {
		fail("-rounds: at least 1")
	}
	for _, tool := range rootlessTools {
		if _, err := exec.LookPath(tool); err != nil {
			fail("-rootless needs " + tool + " (Debian packages iperf3, rootlesskit, slirp4netns, uidmap): " + err.Error())
		}
	}
}

// rootlessSide is one side's published ports, and what stops the side.
type rootlessSide struct {
	name      string
	iperfPort int
	connAddr  string
	stop      func()
	runsGbps  []float64
	runsConns []float64
	retrans   int
}

func runRootless(duration, rounds int) (*rootlessResult, error) {
	dir, cleanup, err := prepare()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	version, err := exec.Command("rootlesskit", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("rootlesskit --version: %w", err)
	}
	bi, err := startBuiltinSide(filepath.Join(dir, "builtin"))
	if err != nil {
		return nil, fmt.Errorf("built-in side: %w", err)
	}
	defer bi.stop()
	rk, err := startRootlesskitSide(filepath.Join(dir, "rootlesskit"))
	if err != nil {
		return nil, fmt.Errorf("rootlesskit side: %w", err)
	}
	defer rk.stop()

	for r := range rounds {
		order := []*rootlessSide{bi, rk}
		if r%2 == 1 {
			order[0], order[1] = rk, bi
		}
		for _, s := range order {
			gbps, retrans, err := iperfClient("", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.iperfPort)), duration)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			s.runsGbps = append(s.runsGbps, gbps)
			s.retrans += retrans
		}
		for _, s := range order {
			rate, err := connRate(s.connAddr, duration)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			s.runsConns = append(s.runsConns, rate)
		}
	}
	res := &rootlessResult{
		BuiltinGbps:             median(bi.runsGbps),
		RootlesskitGbps:         median(rk.runsGbps),
		BuiltinConnPerS:         median(bi.runsConns),
		RootlesskitConnPerS:     median(rk.runsConns),
		BuiltinRunsGbps:         bi.runsGbps,
		RootlesskitRunsGbps:     rk.runsGbps,
		BuiltinRunsConnPerS:     bi.runsConns,
		RootlesskitRunsConnPerS: rk.runsConns,
		BuiltinRetransmits:      bi.retrans,
		RootlesskitRetransmits:  rk.retrans,
		DurationS:               duration,
		Rounds:                  rounds,
		RootlesskitVersion:      strings.TrimSpace(string(version)),
	}
	if res.RootlesskitGbps > 0 {
		res.BuiltinToRootlesskitGbps = res.BuiltinGbps / res.RootlesskitGbps
	}
	if res.RootlesskitConnPerS > 0 {
		res.BuiltinToRootlesskitConns = res.BuiltinConnPerS / res.RootlesskitConnPerS
	}
	return res, nil
}

// connRate dials addr, reads the byte the server writes and closes, one
// connection after the other, for seconds, and returns the completed
// connections per second.
func connRate(addr string, seconds int) (float64, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	buf := make([]byte, 1)
	start := time.Now()
	end := start.Add(time.Duration(seconds) * time.Second)
	n := 0
	for time.Now().Before(end) {
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			return 0, fmt.Errorf("connection %d to %s: %w", n+1, addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(c, buf)
		c.Close()
		if err != nil {
			return 0, fmt.Errorf("connection %d to %s: reading the server's byte: %w", n+1, addr, err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// undo collects what a side's set-up must undo, last first, if it fails
// half-way or when the side stops.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// startBuiltinSide starts a child in new user, network and mount
// namespaces running the servers and the built-in child driver, runs the
// built-in parent driver in netbench's namespace and publishes the
// child's ports through it. Its state is under dir.
func startBuiltinSide(dir string) (_ *rootlessSide, retErr error) {
	var u undo
	defer func() {
		if retErr != nil {
			u.run()
		}
	}()
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	parent, err := builtin.NewParentDriver(stateDir, nil)
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(rootlessChildConfig{Opaque: parent.OpaqueForChild()})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), rootlessChildEnv+"="+string(cfg))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the child in a user namespace: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	u.add(func() { stopProcess(cmd.Process, exited, 5*time.Second) })

	// The parent is ready once the child driver answers.
	initDone, quit := make(chan struct{}), make(chan struct{})
	parentErr := make(chan error, 1)
	go func() {
		parentErr <- parent.RunParentDriver(initDone, quit, &port.ChildContext{PID: cmd.Process.Pid})
	}()
	var stopParent sync.Once
	u.add(func() {
		stopParent.Do(func() {
			close(quit)
			<-parentErr
		})
	})
	select {
	case <-initDone:
	case err := <-parentErr:
		parentErr <- err // for the undo
		return nil, fmt.Errorf("built-in parent driver: %w", err)
	case <-exited:
		return nil, errors.New("the child exited before its driver answered")
	case <-time.After(30 * time.Second):
		return nil, errors.New("the child driver did not answer within 30 s")
	}
	if err := waitListening(cmd.Process.Pid, exited, iperfPort, connPort); err != nil {
		return nil, err
	}
	if err := publish(parent, builtinIperfPort, builtinConnPort); err != nil {
		return nil, err
	}
	return &rootlessSide{
		name:      "builtin",
		iperfPort: builtinIperfPort,
		connAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(builtinConnPort)),
		stop:      u.run,
	}, nil
}

// startRootlesskitSide runs rootlesskit with slirp4netns and its built-in
// port driver, the child as its program, and publishes the child's ports
// through rootlesskit's API. Its state is under dir.
func startRootlesskitSide(dir string) (_ *rootlessSide, retErr error) {
	var u undo
	defer func() {
		if retErr != nil {
			u.run()
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	undoSubIDs, err := useSubIDs(dir)
	if err != nil {
		return nil, err
	}
	u.add(undoSubIDs)
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(dir, "state")
	cmd := exec.Command("rootlesskit", "--net=slirp4netns", "--disable-host-loopback", "--port-driver=builtin",
		"--subid-source=static", "--state-dir="+stateDir, "--", exe)
	cmd.Env = append(os.Environ(), rootlessChildEnv+"={}")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting rootlesskit: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// rootlesskit passes SIGTERM to its child and removes its state
	// directory.
	u.add(func() { stopProcess(cmd.Process, exited, 10*time.Second) })
	withOutput := func(err error) error {
		if s := strings.TrimSpace(out.String()); s != "" {
			return fmt.Errorf("%w; rootlesskit's output:\n%s", err, s)
		}
		return err
	}

	api, err := apiclient.New(filepath.Join(stateDir, "api.sock"))
	if err != nil {
		return nil, err
	}
	// The socket answers once the child's network is up.
	var info *apiclient.Info
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err = api.Info(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, withOutput(fmt.Errorf("rootlesskit's API did not answer within 30 s: %w", err))
		}
		select {
		case <-exited:
			return nil, withOutput(errors.New("rootlesskit exited before serving its API"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	if info.ChildPID <= 0 {
		return nil, fmt.Errorf("rootlesskit reports no child PID: %+v", info)
	}
	if err := waitListening(info.ChildPID, exited, iperfPort, connPort); err != nil {
		return nil, withOutput(err)
	}
	if err := publish(api, rootlesskitIperfPort, rootlesskitConnPort); err != nil {
		return nil, withOutput(err)
	}
	return &rootlessSide{
		name:      "rootlesskit",
		iperfPort: rootlesskitIperfPort,
		connAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(rootlesskitConnPort)),
		stop:      u.run,
	}, nil
}

// publish adds the host ports iperfHost and connHost on 127.0.0.1 for the
// child's iperf3 and one-byte servers.
func publish(m port.Manager, iperfHost, connHost int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range [][2]int{{iperfHost, iperfPort}, {connHost, connPort}} {
		spec := port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: p[0], ChildIP: "127.0.0.1", ChildPort: p[1]}
		if _, err := m.AddPort(ctx, spec); err != nil {
			return fmt.Errorf("publishing %s: %w", spec, err)
		}
	}
	return nil
}

// useSubIDs gives root the sub-IDs rootlesskit needs (it refuses to start
// without a range in /etc/subuid and /etc/subgid) by bind-mounting a file
// under dir over both, in netbench's own mount namespace (made private by
// prepare): the host's files are not touched. It returns what unmounts
// them.
func useSubIDs(dir string) (func(), error) {
	f := filepath.Join(dir, "subid")
	if err := os.WriteFile(f, []byte("root:100000:65536\n"), 0o644); err != nil {
		return nil, err
	}
	var mounted []string
	undo := func() {
		for _, target := range mounted {
			_ = unix.Unmount(target, unix.MNT_DETACH)
		}
	}
	for _, target := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := unix.Mount(f, target, "", unix.MS_BIND, ""); err != nil {
			undo()
			return nil, fmt.Errorf("bind-mounting sub-IDs over %s (rootlesskit as root needs them; the file must exist): %w", target, err)
		}
		mounted = append(mounted, target)
	}
	return undo, nil
}

// waitListening waits until the process pid's network namespace has TCP
// sockets listening on ports, for up to 10 s or until exited is closed.
func waitListening(pid int, exited <-chan struct{}, ports ...uint16) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range ports {
		for !listening(pid, p) {
			if time.Now().After(deadline) {
				return fmt.Errorf("nothing listens on port %d of the child's namespace within 10 s", p)
			}
			select {
			case <-exited:
				return fmt.Errorf("the child exited before listening on port %d", p)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopProcess ends p, which exited tells has been reaped: SIGTERM, then
// SIGKILL after grace.
func stopProcess(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

// serveRootlessChildIfAsked runs a -rootless side's child process and
// exits when netbench was started as one.
func serveRootlessChildIfAsked() {
	v := os.Getenv(rootlessChildEnv)
	if v == "" {
		return
	}
	if err := runRootlessChild(v); err != nil {
		fmt.Fprintln(os.Stderr, "netbench rootless child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runRootlessChild serves, on 127.0.0.1 of its network namespace, iperf3
// (iperfPort) and the one-byte TCP server (connPort), and with a config
// from the built-in side the built-in child driver, until SIGTERM.
func runRootlessChild(v string) error {
	// Gone with netbench or rootlesskit, whichever started it.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var cfg rootlessChildConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		return fmt.Errorf("config %q: %w", v, err)
	}
	if cfg.Opaque != nil {
		// The namespaces of its own: mounts kept in, a sysfs of this netns.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making mounts private: %w", err)
		}
		if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
			return fmt.Errorf("mounting sysfs: %w", err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}

	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(connPort)))
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		one := []byte{'.'}
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(one)
			c.Close()
		}
	}()

	iperf := exec.Command("iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(iperfPort))
	iperf.Stderr = os.Stderr
	iperf.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := iperf.Start(); err != nil {
		return fmt.Errorf("starting the iperf3 server: %w", err)
	}
	iperfDone := make(chan error, 1)
	go func() { iperfDone <- iperf.Wait() }()
	defer func() {
		_ = iperf.Process.Kill()
		<-iperfDone
	}()

	quit := make(chan struct{})
	driverDone := make(chan error, 1)
	if cfg.Opaque != nil {
		go func() {
			driverDone <- builtin.NewChildDriver(slog.New(slog.DiscardHandler)).RunChildDriver(cfg.Opaque, quit)
		}()
	}
	select {
	case <-sig:
		close(quit)
		if cfg.Opaque != nil {
			return <-driverDone
		}
		return nil
	case err := <-driverDone:
		return fmt.Errorf("built-in child driver: %w", err)
	case err := <-iperfDone:
		iperfDone <- err // for the deferred kill
		return fmt.Errorf("the iperf3 server exited: %v", err)
	}
}

// lockedBuffer collects a process's output, written from exec's copying
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (r *rootlessResult) print() {
	fmt.Printf("netbench: rootless published port on 127.0.0.1, %d s per run, %d round(s); %s\n", r.DurationS, r.Rounds, r.RootlesskitVersion)
	fmt.Printf("  iperf3, one TCP stream:\n")
	fmt.Printf("    builtin     %8.2f Gbit/s  runs %v, %d retransmits\n", r.BuiltinGbps, r.BuiltinRunsGbps, r.BuiltinRetransmits)
	fmt.Printf("    rootlesskit %8.2f Gbit/s  runs %v, %d retransmits\n", r.RootlesskitGbps, r.RootlesskitRunsGbps, r.RootlesskitRetransmits)
	fmt.Printf("    builtin / rootlesskit: %.2f\n", r.BuiltinToRootlesskitGbps)
	fmt.Printf("  connections (dial, read one byte, close; one at a time):\n")
	fmt.Printf("    builtin     %8.0f /s  runs %v\n", r.BuiltinConnPerS, r.BuiltinRunsConnPerS)
	fmt.Printf("    rootlesskit %8.0f /s  runs %v\n", r.RootlesskitConnPerS, r.RootlesskitRunsConnPerS)
	fmt.Printf("    builtin / rootlesskit: %.2f\n", r.BuiltinToRootlesskitConns)
}
