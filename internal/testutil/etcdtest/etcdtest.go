// Package etcdtest runs a real etcd server for tests: Debian's etcd-server
// binary (/usr/bin/etcd) as a child process on loopback ports, with its
// data dir and log in the test's temporary directory. A test can stop,
// restart (same ports, same data) and kill it to exercise outages, serve it
// over TLS with client certificates, and cut a client off it with a Proxy.
//
// A real server rather than go.etcd.io/etcd/server/v3/embed: the server
// module would pull etcd's server dependencies into this library's go.mod,
// an embedded server cannot be killed or restarted like a real one, and
// Debian's binary is what operators run.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the etcd server the harness runs (Debian package etcd-server).
const Binary = "/usr/bin/etcd"

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = 20 * time.Second

// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Server is one etcd member started by a test. Its methods are safe for
// concurrent use, but a test normally drives it from one goroutine.
type Server struct {
	t          testing.TB // nil for a server made by Launch
	dir        string     // data dir and log live here
	dataDir    string
	logPath    string
	clientPort int
	peerPort   int
	tls        *TLSFiles // nil: plain http

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed when cmd has been waited for
	starts int           // how many times the process was started
}

// Start starts an etcd server for t on free loopback ports, waits until it
// answers, and stops it (by its PID) when t ends. Without /usr/bin/etcd it
// skips t, or fails it under CI=true, where etcd must be installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

// StartTLS is Start with TLS on the client port: it makes a throwaway CA, a
// server certificate for 127.0.0.1 and a client certificate (see
// NewCertificates), and etcd requires a client certificate signed by that
// CA (--client-cert-auth). The files are in s.TLS().
func StartTLS(t testing.TB) *Server {
	t.Helper()
	requireBinary(t)
	return start(t, NewCertificates(t))
}

func requireBinary(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		msg := fmt.Sprintf("needs the etcd server %s (Debian package etcd-server): %v", Binary, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func start(t testing.TB, files *TLSFiles) *Server {
	t.Helper()
	requireBinary(t)
	s := newServer(t.TempDir(), files)
	s.t = t
	t.Cleanup(s.cleanup)
	if err := s.launch(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Launch starts an etcd server outside a test (netbench's), with its data
// dir and log under dir, on free loopback ports, and waits until it
// answers. The caller ends it with Stop; Start, Kill and ClientTLS are for
// tests.
func Launch(dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := newServer(dir, nil)
	if err := s.launch(); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(dir string, files *TLSFiles) *Server {
	return &Server{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "etcd.log"),
		tls:     files,
	}
}

// launch starts the process the first time. A free port found by binding
// :0 may be taken again before etcd binds it; it tries a few times when
// etcd fails to start.
func (s *Server) launch() error {
	var err error
	for range 3 {
		s.clientPort, s.peerPort, err = freePorts()
		if err != nil {
			return fmt.Errorf("etcdtest: finding free ports: %w", err)
		}
		if err = s.startProcess(); err == nil {
			return nil
		}
		os.RemoveAll(s.dataDir)
	}
	return fmt.Errorf("etcdtest: starting etcd: %w\n%s", err, s.logTail())
}

// Endpoints returns the client endpoints as host:port, without a scheme.
func (s *Server) Endpoints() []string {
	return []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(s.clientPort))}
}

// URLs returns the client endpoints with their scheme (http or https).
func (s *Server) URLs() []string {
	return []string{s.clientURL()}
}

// TLS returns the certificate files of a server made by StartTLS, nil for
// one made by Start.
func (s *Server) TLS() *TLSFiles { return s.tls }

// LogPath is the file etcd logs to.
func (s *Server) LogPath() string { return s.logPath }

// PID returns the process ID of the running etcd, 0 while stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts a stopped server again on the same ports with the same data
// dir, so etcd comes back with its data, and waits until it answers. It
// fails the test when the server is running or does not come up.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.startProcess(); err != nil {
		s.t.Fatalf("etcdtest: restarting etcd: %v\n%s", err, s.logTail())
	}
}

// Stop stops the server with SIGTERM and waits for it to exit (SIGKILL
// after 10 s). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.t != nil {
		s.t.Helper()
	}
	s.signal(syscall.SIGTERM)
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
}

func (s *Server) clientURL() string {
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + s.Endpoints()[0]
}

func (s *Server) peerURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.peerPort))
}

func (s *Server) args() []string {
	args := []string{
		"--name", "etcdtest",
		"--data-dir", s.dataDir,
		"--listen-client-urls", s.clientURL(),
		"--advertise-client-urls", s.clientURL(),
		"--listen-peer-urls", s.peerURL(),
		"--initial-advertise-peer-urls", s.peerURL(),
		"--initial-cluster", "etcdtest=" + s.peerURL(),
		"--initial-cluster-state", "new",
		// One member on loopback: short raft ticks make it leader at
		// once; they also lower etcd's minimum lease TTL (1.5 election
		// timeouts) well below the TTLs tests use.
		"--heartbeat-interval", "10",
		"--election-timeout", "100",
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	if s.tls != nil {
		args = append(args,
			"--cert-file", s.tls.ServerCertFile,
			"--key-file", s.tls.ServerKeyFile,
			"--trusted-ca-file", s.tls.CAFile,
			"--client-cert-auth",
		)
	}
	return args
}

func (s *Server) startProcess() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("etcd is already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.starts++
	fmt.Fprintf(logf, "=== etcdtest: start %d: %s %v\n", s.starts, Binary, s.args())
	cmd := exec.Command(Binary, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, so does etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()

	if err := s.waitHealthy(exited); err != nil {
		s.signal(syscall.SIGKILL)
		return err
	}
	return nil
}

// waitHealthy polls /health until etcd says it is healthy, the process
// exits, or startTimeout passes.
func (s *Server) waitHealthy(exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	if s.tls != nil {
		cfg, err := s.tls.ClientConfig()
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: cfg}
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("etcd exited before answering (last health check: %v)", last)
		default:
		}
		last = CheckHealth(client, s.clientURL()+"/health")
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("etcd did not answer within %v: %v", startTimeout, last)
}

// CheckHealth asks etcd's /health at url (http or https, through
// client) and returns nil if it says it is healthy. For netbench, which
// starts its own etcd, as well as for tests.
func CheckHealth(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body.Bytes(), []byte(`"health":"true"`)) {
		return fmt.Errorf("health: %s %s", resp.Status, bytes.TrimSpace(body.Bytes()))
	}
	return nil
}

// signal sends sig to the running etcd by its PID and waits for it to exit,
// killing it if it outlives stopTimeout.
func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

func (s *Server) cleanup() {
	s.signal(syscall.SIGKILL)
	if s.t.Failed() {
		s.t.Logf("etcdtest: end of the etcd log %s:\n%s", s.logPath, s.logTail())
	}
}

// logTail returns the last lines of etcd's log.
func (s *Server) logTail() string {
	const lines = 40
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no etcd log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n == lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// freePorts returns two distinct free TCP ports on 127.0.0.1.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// ClientTLS returns a TLS config for a client of a server made by StartTLS
// (nil for a plain server), for tests that talk to etcd directly.
func (s *Server) ClientTLS() *tls.Config {
	if s.tls == nil {
		return nil
	}
	cfg, err := s.tls.ClientConfig()
	if err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
	return cfg
}
