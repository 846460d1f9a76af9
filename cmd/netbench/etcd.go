package main

// The etcd server of an -overlay run: Debian's etcd-server binary as a
// child process of netbench, on free loopback ports of netbench's own
// namespace, with its data dir in a directory of the run's. As the tests'
// harness (internal/testutil/etcdtest) does, but without a testing.TB.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
)

// etcdBinary is the etcd server netbench runs (Debian package etcd-server).
const etcdBinary = "/usr/bin/etcd"

// etcdServer is a running etcd of netbench's.
type etcdServer struct {
	cmd    *exec.Cmd
	exited chan struct{}
	client string // host:port
	log    string // its log file
}

// startEtcd starts etcd with its data dir and log under dir, on free
// loopback ports, and waits until it is healthy. The caller stops it.
func startEtcd(dir string) (*etcdServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	// A free port found by binding :0 may be taken again before etcd binds
	// it: try again on other ports.
	for attempt := range 3 {
		s, err := startEtcdOnce(dir, attempt)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startEtcdOnce(dir string, attempt int) (*etcdServer, error) {
	ports, err := freeLoopbackPorts(2)
	if err != nil {
		return nil, err
	}
	client := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	dataDir := filepath.Join(dir, fmt.Sprintf("data%d", attempt))
	logPath := filepath.Join(dir, fmt.Sprintf("etcd%d.log", attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(etcdBinary,
		"--name", "netbench",
		"--data-dir", dataDir,
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "netbench="+peer,
		"--initial-cluster-state", "new",
		// One member on loopback: short raft ticks make it leader at once.
		"--heartbeat-interval", "10",
		"--election-timeout", "100",
		"--logger", "zap",
		"--log-outputs", "stderr",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If netbench dies, so does etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", etcdBinary, err)
	}
	s := &etcdServer{cmd: cmd, exited: make(chan struct{}), client: client, log: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	if err := s.waitHealthy(20 * time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("etcd on %s: %w (log %s:\n%s)", client, err, logPath, tail(logPath, 20))
	}
	return s, nil
}

// waitHealthy polls etcd's /health until it is healthy, exits, or timeout
// passes.
func (s *etcdServer) waitHealthy(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited before answering (last health check: %v)", last)
		default:
		}
		if last = etcdtest.CheckHealth(client, "http://"+s.client+"/health"); last == nil {
			return nil
		}
	}
	return fmt.Errorf("not healthy within %v: %v", timeout, last)
}

// stop ends etcd by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *etcdServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// freeLoopbackPorts returns n distinct free TCP ports on 127.0.0.1.
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last lines of the file at path.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

var errNoEtcd = errors.New("-overlay needs the etcd server " + etcdBinary + " (Debian package etcd-server)")
