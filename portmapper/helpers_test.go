package portmapper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/portallocator"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// TestMain runs the tests in a throwaway network namespace when root, as
// every test of the repository does.
func TestMain(m *testing.M) { testutil.Main(m) }

var (
	any4  = netip.IPv4Unspecified()
	any6  = netip.IPv6Unspecified()
	ctr4  = netip.MustParseAddr("10.0.0.2")
	ctr6  = netip.MustParseAddr("fd00::2")
	ctr4b = netip.MustParseAddr("10.0.0.3")
)

// newNamespace creates a throwaway namespace (loopback up) and destroys it
// at cleanup.
func newNamespace(t testing.TB) *osl.Namespace {
	t.Helper()
	testutil.RequireRoot(t)
	ns, err := osl.NewNamespace(filepath.Join(t.TempDir(), "netns"))
	if err != nil {
		t.Fatalf("NewNamespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return ns
}

// newRegistry returns a Registry whose allocator works in ns, and checks
// at cleanup that the nat mapper holds nothing any more.
func newRegistry(t testing.TB, ns *osl.Namespace, mod func(*Config)) *Registry {
	t.Helper()
	a, err := portallocator.New(ns)
	if err != nil {
		t.Fatalf("portallocator.New: %v", err)
	}
	cfg := Config{Allocator: a}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if n := r.nat.held(); n != 0 {
			t.Errorf("the nat mapper still holds %d bindings", n)
		}
		a.Close()
	})
	return r
}

func mustMapper(t testing.TB, r *Registry, name string) Mapper {
	t.Helper()
	m, err := r.Mapper(name)
	if err != nil {
		t.Fatalf("Mapper(%q): %v", name, err)
	}
	return m
}

// otherBind binds a socket in ns as another program would (TCP also
// listens) and returns it.
func otherBind(ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		family, typ := unix.AF_INET, unix.SOCK_STREAM
		if addr.Is6() {
			family = unix.AF_INET6
		}
		if proto == types.UDP {
			typ = unix.SOCK_DGRAM
		}
		s, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		var sa unix.Sockaddr
		if addr.Is6() {
			unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			sa = &unix.SockaddrInet6{Addr: addr.As16(), Port: int(port)}
		} else {
			sa = &unix.SockaddrInet4{Addr: addr.As4(), Port: int(port)}
		}
		if err := unix.Bind(s, sa); err != nil {
			unix.Close(s)
			return err
		}
		if typ == unix.SOCK_STREAM {
			if err := unix.Listen(s, 4); err != nil {
				unix.Close(s)
				return err
			}
		}
		fd = s
		return nil
	})
	return fd, err
}

// occupy holds a port in ns for another program until cleanup.
func occupy(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	fd, err := otherBind(ns, proto, addr, port)
	if err != nil {
		t.Fatalf("binding %s %s as another program: %v", proto, netip.AddrPortFrom(addr, port), err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

// assertHeld fails unless another program's bind of the port fails with
// EADDRINUSE.
func assertHeld(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	fd, err := otherBind(ns, proto, addr, port)
	if err == nil {
		unix.Close(fd)
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("another program binding %s %s: %v, want EADDRINUSE", proto, netip.AddrPortFrom(addr, port), err)
	}
}

// assertFree fails unless another program can bind the port.
func assertFree(t testing.TB, ns *osl.Namespace, proto types.Protocol, addr netip.Addr, port uint16) {
	t.Helper()
	fd, err := otherBind(ns, proto, addr, port)
	if err != nil {
		t.Errorf("another program binding %s %s: %v, want the port free", proto, netip.AddrPortFrom(addr, port), err)
		return
	}
	unix.Close(fd)
}

func asError[T error](t testing.TB, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T) is not a %T", err, err, target)
	}
	return target
}

// logRecorder is a slog handler that keeps the records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// buildPlugin builds the plugin command pkg (a directory relative to this
// package) into dir.
func buildPlugin(t *testing.T, dir, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build the plugin: %v", err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command(goBin, "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// pluginProc is a plugin process started by a test.
type pluginProc struct {
	cmd    *exec.Cmd
	socket string
	log    string // calls, for the test helper plugin
	stderr chan string
}

// startPlugin runs bin serving socket with args; it is killed, by its PID,
// when the test ends. It returns once the socket exists.
func startPlugin(t *testing.T, bin, socket string, args ...string) *pluginProc {
	t.Helper()
	p := &pluginProc{socket: socket, stderr: make(chan string, 100)}
	p.cmd = exec.Command(bin, append([]string{"-socket", socket}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.stderr)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.stderr <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	for {
		if _, err := os.Stat(socket); err == nil {
			return p
		}
		if p.cmd.ProcessState != nil {
			t.Fatalf("plugin exited before listening")
		}
		select {
		case line, ok := <-p.stderr:
			if !ok {
				t.Fatalf("plugin exited before listening")
			}
			t.Logf("plugin: %s", line)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitLine waits for a line of the plugin's standard error that contains
// s, until the plugin exits or the test's deadline.
func (p *pluginProc) waitLine(t *testing.T, s string) string {
	t.Helper()
	for line := range p.stderr {
		if strings.Contains(line, s) {
			return line
		}
	}
	t.Fatalf("the plugin's standard error ended without a line containing %q", s)
	return ""
}

// call is one call the test helper plugin received.
type call struct {
	Method string
	Body   json.RawMessage
}

// calls returns the calls the test helper plugin logged so far.
func (p *pluginProc) calls(t *testing.T) []call {
	t.Helper()
	data, err := os.ReadFile(p.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []call
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var c call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("plugin log line %q: %v", line, err)
		}
		out = append(out, c)
	}
	return out
}

// unmaps returns the UnmapPorts requests the helper plugin received.
func (p *pluginProc) unmaps(t *testing.T) []api.UnmapPortsRequest {
	t.Helper()
	var out []api.UnmapPortsRequest
	for _, c := range p.calls(t) {
		if c.Method != api.UnmapPortsMethod {
			continue
		}
		var req api.UnmapPortsRequest
		if err := json.Unmarshal(c.Body, &req); err != nil {
			t.Fatal(err)
		}
		out = append(out, req)
	}
	return out
}

// newPluginRegistry returns a plugin registry that finds the plugins of a
// test in sockDir, retrying a plugin that does not listen for retry.
func newPluginRegistry(t *testing.T, sockDir string, retry time.Duration) *plugins.Registry {
	t.Helper()
	r := plugins.NewRegistry(plugins.Config{
		SocketDirs:      []string{sockDir},
		SpecDirs:        []string{filepath.Join(sockDir, "no-specs")},
		CallTimeout:     time.Minute,
		ActivateTimeout: 30 * time.Second,
		RetryWindow:     retry,
	})
	t.Cleanup(r.Close)
	return r
}
