package libnetwork

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/rootless/port/apiclient"
	"github.com/netkit/libnetwork/rootless/port/apiserver"
	"github.com/netkit/libnetwork/rootless/port/builtin"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// Rootless, as a runtime runs it: the test is the host and runs the
// built-in port driver's parent with rootlesskit's API on a socket; a child
// process in a user namespace (root mapped) and a network namespace of its
// own runs the built-in driver's child and a controller whose published
// ports go through that API; a container there serves on published ports,
// and the test reaches them through the parent's ports.

// rootlessChildEnv, set to a rootlessChildConfig in JSON, makes the test
// binary the rootless child: under the test's own parent, or as
// rootlesskit's child program.
const rootlessChildEnv = "LIBNETWORK_TEST_ROOTLESS_CHILD"

func init() {
	if cfg := os.Getenv(rootlessChildEnv); cfg != "" {
		runRootlessChild(cfg)
	}
}

// rootlessChildConfig is what the child is told.
type rootlessChildConfig struct {
	// Opaque is the built-in parent's word for its child; none under
	// rootlesskit, whose own child does the port work.
	Opaque map[string]string
	// APISocket is the parent's API socket; empty under rootlesskit,
	// whose socket is $ROOTLESSKIT_STATE_DIR/api.sock.
	APISocket         string
	DataDir, ExecRoot string
	// TCPPort and UDPPort are the host ports the container publishes.
	TCPPort, UDPPort uint16
}

// runRootlessChild is the child process: it prints "READY" once the
// container serves, leaves at the first line on stdin and prints "LEFT",
// and stops when stdin closes.
func runRootlessChild(raw string) {
	fail := func(format string, args ...any) {
		fmt.Printf("ERROR "+format+"\n", args...)
		os.Exit(1)
	}
	var cfg rootlessChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fail("config: %v", err)
	}
	if cfg.APISocket == "" {
		cfg.APISocket = filepath.Join(os.Getenv("ROOTLESSKIT_STATE_DIR"), "api.sock")
	}
	// The namespaces of its own: mounts kept in, a sysfs of this netns.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail("making / private: %v", err)
	}
	// rootlesskit mounts the sysfs of its network namespace itself.
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		fail("mounting sysfs: %v", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fail("lo up: %v %s", err, out)
	}
	quit := make(chan struct{})
	if cfg.Opaque != nil {
		child := builtin.NewChildDriver(slog.New(slog.DiscardHandler))
		go func() {
			if err := child.RunChildDriver(cfg.Opaque, quit); err != nil {
				fmt.Println("ERROR child driver:", err)
			}
		}()
	}
	pm, err := apiclient.New(cfg.APISocket)
	if err != nil {
		fail("API client: %v", err)
	}
	c, err := New(config.OptionDataDir(cfg.DataDir), config.OptionExecRoot(cfg.ExecRoot), config.OptionRootlessPortManager(pm))
	if err != nil {
		fail("controller in the user namespace: %v", err)
	}
	n, err := c.NewNetwork("bridge", "rootless", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.82.0.0/24"}}, []*IpamConf{{PreferredPool: "fd00:82::/64"}}, nil))
	if err != nil {
		fail("network: %v", err)
	}
	sb, err := c.NewSandbox("web", OptionPortMapping([]types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: cfg.TCPPort},
		{Proto: types.UDP, Port: 53, HostPort: cfg.UDPPort},
	}))
	if err != nil {
		fail("sandbox: %v", err)
	}
	ep, err := n.CreateEndpoint("web")
	if err != nil {
		fail("endpoint: %v", err)
	}
	if err := ep.Join(sb); err != nil {
		fail("join: %v", err)
	}
	ns := sb.(*sandbox).namespace()
	var tl net.Listener
	var ul net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if tl, err = net.Listen("tcp", ":80"); err != nil {
			return err
		}
		ul, err = net.ListenPacket("udp", ":53")
		return err
	}); err != nil {
		fail("container servers: %v", err)
	}
	go func() {
		_ = http.Serve(tl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from the rootless container, %s", r.URL.Path)
		}))
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo(append([]byte("echo "), buf[:k]...), from)
		}
	}()
	fmt.Println("READY")
	in := bufio.NewReader(os.Stdin)
	_, _ = in.ReadString('\n')
	// Leaving takes the ports away from the parent.
	if err := ep.Leave(sb); err != nil {
		fmt.Println("ERROR leave:", err)
	}
	fmt.Println("LEFT")
	_, _ = io.Copy(io.Discard, in)
	c.Stop()
	close(quit)
	os.Exit(0)
}

// rootlessChildProc is a running rootless child and what it says.
type rootlessChildProc struct {
	t     *testing.T
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func (p *rootlessChildProc) expect(want string) {
	p.t.Helper()
	if !p.lines.Scan() {
		p.t.Fatalf("the child ended before %s", want)
	}
	if got := p.lines.Text(); got != want {
		p.t.Fatalf("the child said %q, want %s", got, want)
	}
}

// startRootlessChild starts cmd, a rootless child told cfg.
func startRootlessChild(t *testing.T, cmd *exec.Cmd, cfg rootlessChildConfig) *rootlessChildProc {
	t.Helper()
	b, _ := json.Marshal(cfg)
	cmd.Env = append(os.Environ(), rootlessChildEnv+"="+string(b))
	stdin, err := cmd.StdinPipe()
	mustf(t, err, "child stdin")
	stdout, err := cmd.StdoutPipe()
	mustf(t, err, "child stdout")
	cmd.Stderr = os.Stderr
	mustf(t, cmd.Start(), "starting the rootless child")
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &rootlessChildProc{t: t, stdin: stdin, lines: bufio.NewScanner(stdout)}
}

// checkRootlessPorts fetches the container's servers through the parent's
// ports, has the child leave, and checks the ports are gone from m and
// from the host.
func checkRootlessPorts(t *testing.T, child *rootlessChildProc, m port.Manager, tcpPort, udpPort int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, host := range []string{"127.0.0.1", "::1"} {
		resp, err := client.Get("http://" + net.JoinHostPort(host, fmt.Sprint(tcpPort)) + "/path")
		mustf(t, err, "fetching through the parent's port on %s", host)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from the rootless container, /path" {
			t.Errorf("answer on %s: %q", host, body)
		}
		uc, err := net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(udpPort)))
		mustf(t, err, "udp")
		_ = uc.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = uc.Write([]byte("ping"))
		mustf(t, err, "udp write")
		buf := make([]byte, 100)
		k, err := uc.Read(buf)
		mustf(t, err, "udp answer on %s", host)
		uc.Close()
		if string(buf[:k]) != "echo ping" {
			t.Errorf("udp answer on %s: %q", host, buf[:k])
		}
	}
	ports, err := m.ListPorts(t.Context())
	mustf(t, err, "parent's ports")
	if len(ports) != 4 {
		t.Errorf("the parent exposes %v, want the two published ports on both families", ports)
	}
	// Leave: the parent stops listening.
	_, _ = child.stdin.Write([]byte("leave\n"))
	child.expect("LEFT")
	if ports, _ := m.ListPorts(t.Context()); len(ports) != 0 {
		t.Errorf("after leave the parent exposes %v", ports)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), time.Second); err == nil {
		c.Close()
		t.Errorf("the parent still listens on %d after leave", tcpPort)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("[::1]:%d", tcpPort), time.Second); err == nil {
		c.Close()
		t.Errorf("the parent still listens on [::1]:%d after leave", tcpPort)
	}
}

func TestRootlessController(t *testing.T) {
	testutil.RequireRoot(t) // the test namespace is the "host"
	dir := t.TempDir()
	mustf(t, os.Chmod(dir, 0o755), "chmod")
	stateDir := filepath.Join(dir, "state")
	mustf(t, os.MkdirAll(stateDir, 0o755), "state dir")
	parent, err := builtin.NewParentDriver(stateDir, slog.New(slog.DiscardHandler))
	mustf(t, err, "built-in parent driver")
	apiSock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", apiSock)
	mustf(t, err, "API socket")
	srv := &http.Server{Handler: apiserver.NewHandler(parent)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	exe, err := os.Executable()
	mustf(t, err, "test binary")
	cmd := exec.Command(exe)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	child := startRootlessChild(t, cmd, rootlessChildConfig{Opaque: parent.OpaqueForChild(), APISocket: apiSock,
		DataDir: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"), TCPPort: 18180, UDPPort: 18153})
	// The parent is ready once the child answers on its socket.
	initDone, quit := make(chan struct{}), make(chan struct{})
	parentErr := make(chan error, 1)
	go func() { parentErr <- parent.RunParentDriver(initDone, quit, &port.ChildContext{PID: cmd.Process.Pid}) }()
	select {
	case <-initDone:
	case err := <-parentErr:
		t.Fatalf("parent driver: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the child driver never answered the parent")
	}
	t.Cleanup(func() { close(quit); <-parentErr })
	child.expect("READY")
	checkRootlessPorts(t, child, parent, 18180, 18153)
}

// TestRootlessControllerUnderRootlesskit: the same, with Debian's
// rootlesskit as the parent (its user, mount and network namespaces, its
// slirp4netns network and built-in port driver, its API socket) and the
// controller inside as dockerd runs there.
func TestRootlessControllerUnderRootlesskit(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"rootlesskit", "slirp4netns", "newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (Debian packages rootlesskit, slirp4netns, uidmap): %v", tool, err)
			}
			t.Skipf("needs %s (Debian packages rootlesskit, slirp4netns, uidmap): %v", tool, err)
		}
	}
	dir := t.TempDir()
	mustf(t, os.Chmod(dir, 0o755), "chmod")
	// rootlesskit as root wants sub-IDs: a file of the test's over
	// /etc/subuid and /etc/subgid, in the test's private mount namespace
	// only.
	subid := filepath.Join(dir, "subid")
	mustf(t, os.WriteFile(subid, []byte("root:100000:65536\n"), 0o644), "subid")
	for _, target := range []string{"/etc/subuid", "/etc/subgid"} {
		mustf(t, unix.Mount(subid, target, "", unix.MS_BIND, ""), "bind-mounting %s", target)
		t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	}
	exe, err := os.Executable()
	mustf(t, err, "test binary")
	stateDir := filepath.Join(dir, "state")
	cmd := exec.Command("rootlesskit", "--net=slirp4netns", "--disable-host-loopback",
		"--port-driver=builtin", "--subid-source=static", "--state-dir="+stateDir, "--", exe)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	child := startRootlessChild(t, cmd, rootlessChildConfig{
		DataDir: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"), TCPPort: 18280, UDPPort: 18253})
	child.expect("READY")
	m, err := apiclient.New(filepath.Join(stateDir, "api.sock"))
	mustf(t, err, "client of rootlesskit's API")
	checkRootlessPorts(t, child, m, 18280, 18253)
}
