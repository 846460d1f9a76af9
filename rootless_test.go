package libnetwork

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/reexec"
	"github.com/netkit/libnetwork/config"
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

const rootlessChild = "libnetwork-rootless-child"

func init() { reexec.Register(rootlessChild, runRootlessChild) }

// rootlessChildConfig is what the child is told, as JSON in argv[1].
type rootlessChildConfig struct {
	Opaque    map[string]string
	APISocket string
	DataDir   string
	ExecRoot  string
}

// runRootlessChild is the child process: it prints "READY" once the
// container serves, and stops when its stdin closes.
func runRootlessChild() {
	fail := func(format string, args ...any) {
		fmt.Printf("ERROR "+format+"\n", args...)
		os.Exit(1)
	}
	var cfg rootlessChildConfig
	if err := json.Unmarshal([]byte(os.Args[1]), &cfg); err != nil {
		fail("config: %v", err)
	}
	// The namespaces of its own: mounts kept in, a sysfs of this netns.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fail("making / private: %v", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		fail("mounting sysfs: %v", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fail("lo up: %v %s", err, out)
	}
	quit := make(chan struct{})
	child := builtin.NewChildDriver(slog.New(slog.DiscardHandler))
	go func() {
		if err := child.RunChildDriver(cfg.Opaque, quit); err != nil {
			fmt.Println("ERROR child driver:", err)
		}
	}()
	pm, err := apiclient.New(cfg.APISocket)
	if err != nil {
		fail("API client: %v", err)
	}
	c, err := New(config.OptionDataDir(cfg.DataDir), config.OptionExecRoot(cfg.ExecRoot), config.OptionRootlessPortManager(pm))
	if err != nil {
		fail("controller in the user namespace: %v", err)
	}
	n, err := c.NewNetwork("bridge", "rootless", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.82.0.0/24"}}, nil, nil))
	if err != nil {
		fail("network: %v", err)
	}
	sb, err := c.NewSandbox("web", OptionPortMapping([]types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: 18180},
		{Proto: types.UDP, Port: 53, HostPort: 18153},
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

func TestRootlessController(t *testing.T) {
	e := newEnv(t) // root in the test namespace, which is the "host"
	_ = e
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

	cfg, _ := json.Marshal(rootlessChildConfig{Opaque: parent.OpaqueForChild(), APISocket: apiSock,
		DataDir: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec")})
	cmd := reexec.Command(rootlessChild, string(cfg))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	mustf(t, err, "child stdin")
	stdout, err := cmd.StdoutPipe()
	mustf(t, err, "child stdout")
	cmd.Stderr = os.Stderr
	mustf(t, cmd.Start(), "starting the child in a user namespace")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
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
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("child ended before %s", want)
		}
		if got := lines.Text(); got != want {
			t.Fatalf("child said %q, want %s", got, want)
		}
	}
	expect("READY")

	// TCP through the parent's port.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://127.0.0.1:18180/path")
	mustf(t, err, "fetching through the parent's port")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from the rootless container, /path" {
		t.Errorf("answer %q", body)
	}
	// UDP through the parent's port.
	uc, err := net.Dial("udp", "127.0.0.1:18153")
	mustf(t, err, "udp")
	_ = uc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = uc.Write([]byte("ping"))
	mustf(t, err, "udp write")
	buf := make([]byte, 100)
	k, err := uc.Read(buf)
	mustf(t, err, "udp answer")
	uc.Close()
	if string(buf[:k]) != "echo ping" {
		t.Errorf("udp answer %q", buf[:k])
	}
	ports, err := parent.ListPorts(t.Context())
	mustf(t, err, "parent's ports")
	if len(ports) != 2 {
		t.Errorf("the parent exposes %v, want the two published ports", ports)
	}

	// Leave: the parent stops listening.
	_, _ = stdin.Write([]byte("leave\n"))
	expect("LEFT")
	if ports, _ := parent.ListPorts(t.Context()); len(ports) != 0 {
		t.Errorf("after leave the parent exposes %v", ports)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:18180", time.Second); err == nil {
		c.Close()
		t.Error("the parent still listens on 18180 after leave")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Logf("dial after leave: %v", err)
	}
	stdin.Close()
}
