package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/reexec"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/vishvananda/netlink"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	testutil.Main(m)
}

// childProcess is the test binary re-executed in a network namespace of its
// own, the "rootless" one: it runs the servers of the child namespace and
// the child driver, given the socket path, until SIGTERM.
const childProcess = "rootless-port-builtin-test-child"

// Ports of the servers in the child namespace, on 127.0.0.1 and ::1.
const (
	echoPort  = 7  // TCP and UDP echo; TCP sends eofMark after the client's EOF, then closes
	countPort = 9  // TCP: reads to EOF, then answers the byte count and closes
	deadPort  = 8  // nothing listens
	resetPort = 10 // TCP: resets each connection once it has read a byte
)

// eofMark is what the TCP echo server writes once it has read the
// client's EOF, before it closes: the client sees its half-close went
// through, and then the server's.
const eofMark = "[eof]"

func init() {
	reexec.Register(childProcess, childMain)
}

func childMain() {
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "test child: %v\n", err)
		os.Exit(1)
	}
	if len(os.Args) != 2 {
		fail(errors.New("usage: socket-path"))
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		fail(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		fail(err)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := serveTCP(net.JoinHostPort(ip, strconv.Itoa(echoPort)), echoTCP); err != nil {
			fail(err)
		}
		if err := serveTCP(net.JoinHostPort(ip, strconv.Itoa(countPort)), countTCP); err != nil {
			fail(err)
		}
		if err := serveTCP(net.JoinHostPort(ip, strconv.Itoa(resetPort)), resetTCP); err != nil {
			fail(err)
		}
		if err := serveUDPEcho(net.JoinHostPort(ip, strconv.Itoa(echoPort))); err != nil {
			fail(err)
		}
	}
	quit := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		close(quit)
	}()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := NewChildDriver(logger).RunChildDriver(map[string]string{OpaqueSocketPath: os.Args[1]}, quit); err != nil {
		fail(err)
	}
	os.Exit(0)
}

func serveTCP(addr string, handle func(*net.TCPConn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return nil
}

func echoTCP(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err == nil {
		_, _ = c.Write([]byte(eofMark))
	}
}

func countTCP(c *net.TCPConn) {
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		_, _ = fmt.Fprint(c, n)
	}
}

func resetTCP(c *net.TCPConn) {
	if _, err := c.Read(make([]byte, 1)); err == nil {
		_ = c.SetLinger(0) // close sends a RST
	}
}

func serveUDPEcho(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return nil
}

// rig is a parent driver in the test's namespace and a child process, with
// the child driver, in a namespace of its own.
type rig struct {
	t      testing.TB
	d      *parentDriver
	logs   *lockedBuffer
	child  *exec.Cmd
	exited chan struct{} // closed when the child has exited
	quit   chan struct{}
	runErr chan error
	once   sync.Once
}

func newRig(t testing.TB) *rig {
	t.Helper()
	testutil.RequireRoot(t)
	logs := &lockedBuffer{}
	pd, err := NewParentDriver(t.TempDir(), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, d: pd.(*parentDriver), logs: logs, exited: make(chan struct{}), quit: make(chan struct{}), runErr: make(chan error, 1)}
	r.child = reexec.Command(childProcess, pd.OpaqueForChild()[OpaqueSocketPath])
	r.child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	r.child.Stdout, r.child.Stderr = os.Stderr, os.Stderr
	// Under -race a process sleeps a second at exit, by default.
	r.child.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if err := r.child.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	var childErr error
	go func() {
		childErr = r.child.Wait()
		close(r.exited)
	}()
	initComplete := make(chan struct{})
	go func() { r.runErr <- pd.RunParentDriver(initComplete, r.quit, nil) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("RunParentDriver: %v", err)
		}
		select {
		case <-r.exited:
		default:
			_ = r.child.Process.Signal(syscall.SIGTERM)
			<-r.exited
			if childErr != nil {
				t.Errorf("child driver process: %v", childErr)
			}
		}
		if t.Failed() {
			t.Logf("parent driver log:\n%s", logs.String())
		}
	})
	select {
	case <-initComplete:
	case err := <-r.runErr:
		t.Fatalf("RunParentDriver returned before the child answered: %v", err)
	case <-r.exited:
		t.Fatalf("the child process exited: %v", childErr)
	}
	return r
}

// stop signals quit and returns what RunParentDriver returned.
func (r *rig) stop() error {
	var err error
	r.once.Do(func() {
		close(r.quit)
		err = <-r.runErr
	})
	return err
}

// killChild kills the child process, as a crash would.
func (r *rig) killChild() {
	if err := r.child.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	<-r.exited
}

func (r *rig) add(spec port.Spec) port.Status {
	r.t.Helper()
	st, err := r.d.AddPort(context.Background(), spec)
	if err != nil {
		r.t.Fatalf("AddPort(%s): %v", spec, err)
	}
	return *st
}

func (r *rig) list() []port.Status {
	r.t.Helper()
	ports, err := r.d.ListPorts(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return ports
}

// forwarder returns the forwarder of an exposed port.
func (r *rig) forwarder(id int) forwarder {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	if e := r.d.ports[id]; e != nil {
		return e.fwd
	}
	return nil
}

var nextPort atomic.Int32

func init() { nextPort.Store(20000) }

// freePort returns a port nothing in the test namespace uses yet.
func freePort() int { return int(nextPort.Add(1)) }

func addr(ip string, p int) string { return net.JoinHostPort(ip, strconv.Itoa(p)) }

// checkEcho talks to the TCP echo server through addr: data both ways,
// then the client's half-close, which the server sees (it answers
// eofMark), then the server's close, which the client sees.
func checkEcho(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("%s: read %q, %v; want the echo of hello", addr, buf, err)
	}
	if _, err := c.Write([]byte("world")); err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "world"+eofMark {
		t.Fatalf("%s: after the half-close read %q, %v; want %q and EOF", addr, rest, err, "world"+eofMark)
	}
}

// checkRefused checks that nothing listens on TCP addr.
func checkRefused(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing %s: %v, want connection refused", addr, err)
	}
}

// checkUDPFree checks that no socket holds UDP addr, by binding it.
func checkUDPFree(t testing.TB, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP %s is held: %v", addr, err)
	}
	pc.Close()
}

// udpEcho sends payload from c and returns the answer.
func udpEcho(t testing.TB, c net.Conn, payload string) string {
	t.Helper()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Errorf("sending %q from %s: %v", payload, c.LocalAddr(), err)
		return ""
	}
	// A safety net against a lost datagram hanging the test, not a
	// measure of speed.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Errorf("waiting for the echo of %q at %s: %v", payload, c.LocalAddr(), err)
		return ""
	}
	return string(buf[:n])
}

// eventually polls cond until it holds or 10 s have passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
