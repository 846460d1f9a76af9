package libnetwork

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/moby/sys/reexec"
	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
	"github.com/vishvananda/netlink"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	if runKilledChild() {
		return
	}
	testutil.Main(m)
}

// testEnv is one controller's world: a host namespace of its own and its
// directories.
type testEnv struct {
	t        testing.TB
	host     *osl.Namespace
	dataDir  string
	execRoot string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	host, err := osl.NewNamespace(filepath.Join(dir, "hostns"))
	if err != nil {
		t.Fatalf("host namespace: %v", err)
	}
	e := &testEnv{t: t, host: host, dataDir: filepath.Join(dir, "data"), execRoot: filepath.Join(dir, "exec")}
	t.Cleanup(func() {
		// Sandboxes outlive a stopped controller by design; unmount what
		// the test left so its directories can go.
		// The overlay driver's network namespaces too.
		for _, dir := range []string{"netns", "overlay"} {
			entries, _ := os.ReadDir(filepath.Join(e.execRoot, dir))
			for _, en := range entries {
				_ = osl.RemoveNamespaceFile(filepath.Join(e.execRoot, dir, en.Name()))
			}
		}
		_ = host.Destroy()
	})
	return e
}

func (e *testEnv) options(extra ...config.Option) []config.Option {
	return append([]config.Option{
		config.OptionDataDir(e.dataDir),
		config.OptionExecRoot(e.execRoot),
		config.OptionNetworkNamespace(e.host.Path()),
	}, extra...)
}

// start makes a controller that is stopped at the end of the test.
func (e *testEnv) start(extra ...config.Option) *controller {
	e.t.Helper()
	nc, err := New(e.options(extra...)...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(nc.Stop)
	return nc.(*controller)
}

// kernelState is what a failed operation must leave unchanged.
type kernelState struct {
	links   []string
	addrs   []string
	rules   string
	netns   []string
	records map[string]int
}

func (e *testEnv) snapshot(c *controller) kernelState {
	e.t.Helper()
	h := e.host.Handle()
	links, err := osl.Dump(h.LinkList)
	if err != nil {
		e.t.Fatal(err)
	}
	var s kernelState
	for _, l := range links {
		s.links = append(s.links, l.Attrs().Name)
		addrs, _ := osl.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				continue
			}
			s.addrs = append(s.addrs, l.Attrs().Name+" "+a.IPNet.String())
		}
	}
	sort.Strings(s.links)
	sort.Strings(s.addrs)
	// The forwarding drop outlives the network that turned forwarding on,
	// as the sysctl does (see forwarding_test.go).
	s.rules = withoutForwardDrop(e.nft())
	entries, _ := os.ReadDir(filepath.Join(e.execRoot, "netns"))
	for _, en := range entries {
		s.netns = append(s.netns, en.Name())
	}
	s.records = map[string]int{}
	for _, kind := range []string{kindNetwork} {
		m, _ := datastore.List[map[string]any](c.store, kind)
		s.records[kind] = len(m)
	}
	for _, kind := range []string{kindEndpoint, kindSandbox} {
		m, _ := datastore.List[map[string]any](c.state, kind)
		s.records[kind] = len(m)
	}
	return s
}

// nft lists the library's table in the host namespace.
func (e *testEnv) nft() string {
	e.t.Helper()
	out, err := exec.Command("nsenter", "--net="+e.host.Path(), "nft", "list", "table", "inet", "libnetwork").CombinedOutput()
	if err != nil {
		e.t.Fatalf("nft list: %v: %s", err, out)
	}
	return string(out)
}

func (e *testEnv) requireSame(before, after kernelState, what string) {
	e.t.Helper()
	if !slices.Equal(before.links, after.links) {
		e.t.Errorf("%s left links behind: before %v, after %v", what, before.links, after.links)
	}
	if !slices.Equal(before.addrs, after.addrs) {
		e.t.Errorf("%s left addresses behind: before %v, after %v", what, before.addrs, after.addrs)
	}
	if before.rules != after.rules {
		e.t.Errorf("%s changed the nftables table:\nbefore:\n%s\nafter:\n%s", what, before.rules, after.rules)
	}
	if !slices.Equal(before.netns, after.netns) {
		e.t.Errorf("%s left netns mounts behind: before %v, after %v", what, before.netns, after.netns)
	}
	for k, v := range before.records {
		if after.records[k] != v {
			e.t.Errorf("%s left %s records: before %d, after %d", what, k, v, after.records[k])
		}
	}
}

// nsOf opens the namespace of a sandbox for the test's own use.
func nsOf(t testing.TB, sb Sandbox) *osl.Namespace {
	t.Helper()
	ns, err := osl.OpenNamespace(sb.Key())
	if err != nil {
		t.Fatalf("opening sandbox namespace %s: %v", sb.Key(), err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// listen starts a TCP echo-once server inside ns on addr and returns its
// address.
func listen(t testing.TB, ns *osl.Namespace, ip net.IP) string {
	t.Helper()
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns.Path(), err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, 64)
				n, _ := conn.Read(b)
				_, _ = conn.Write([]byte("echo:" + string(b[:n])))
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects from inside ns to addr, sends a message and returns the
// reply.
func dial(ns *osl.Namespace, addr string, timeout time.Duration) (string, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		d := net.Dialer{Timeout: timeout}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

func mustReach(t testing.TB, from *osl.Namespace, addr string) {
	t.Helper()
	got, err := dial(from, addr, 3*time.Second)
	if err != nil || got != "echo:ping" {
		t.Fatalf("TCP to %s: got %q, %v; want echo:ping", addr, got, err)
	}
}

func mustNotReach(t testing.TB, from *osl.Namespace, addr string) {
	t.Helper()
	if got, err := dial(from, addr, 700*time.Millisecond); err == nil {
		t.Fatalf("TCP to %s succeeded (%q); want it blocked", addr, got)
	}
}

func ifaceNames(t testing.TB, ns *osl.Namespace) []string {
	t.Helper()
	ifs, err := ns.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	sort.Strings(out)
	return out
}

func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}
