package plugins

import (
	"bufio"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// buildExample builds examples/portmapper-plugin, the port mapper written
// with pluginsdk/portmapper, so tests run it as a process of its own.
func buildExample(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build the example plugin: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "portmapper-plugin")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/netkit/libnetwork/examples/portmapper-plugin").CombinedOutput()
	if err != nil {
		t.Fatalf("building the example plugin: %v\n%s", err, out)
	}
	return bin
}

// startPlugin runs the example plugin on socket with args; its standard
// error is read line by line into the returned channel. The process is
// killed when the test ends if it still runs.
func startPlugin(t *testing.T, bin, socket string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-socket", socket}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, lines
}

func mapReq() api.MapPortsRequest {
	return api.MapPortsRequest{
		Reqs: []api.PortBindingReq{
			{Proto: types.TCP, BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80},
			{Proto: types.TCP, BackendIP: netip.MustParseAddr("fd00::2"), BackendPort: 80, FrontendIP: netip.IPv6Unspecified()},
		},
		Labels: map[string]string{"com.example.mapper": "offset"},
	}
}

// TestExamplePluginProcess: the example plugin, a separate process,
// activated through a spec file and called over its unix socket.
func TestExamplePluginProcess(t *testing.T) {
	bin := buildExample(t)
	d := newDirs(t)
	socket := filepath.Join(d.sock, "offset.sock")
	// A spec file names the socket before the plugin listens: activation
	// retries until it does.
	writeFile(t, filepath.Join(d.spec, "offsetspec.spec"), "unix://"+socket)
	cmd, _ := startPlugin(t, bin, socket, "-offset", "10000")
	r := d.registry(t, func(c *Config) { c.RetryWindow = 30 * time.Second; c.ActivateTimeout = 30 * time.Second })

	pl, err := r.Get(t.Context(), "offsetspec", api.Interface)
	if err != nil {
		t.Fatal(err)
	}
	var resp api.MapPortsResponse
	if err := pl.Call(t.Context(), api.MapPortsMethod, mapReq(), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.PortBindings) != 2 {
		t.Fatalf("MapPorts answered %+v", resp)
	}
	for i, pb := range resp.PortBindings {
		req := mapReq().Reqs[i]
		want := api.NATRule{Proto: types.TCP, FrontendIP: req.FrontendIP, FrontendPort: 10080, BackendIP: req.BackendIP, BackendPort: 80}
		if pb.FrontendPort != 10080 || pb.BackendIP != req.BackendIP || !pb.AllowForwarding || pb.NAT == nil || *pb.NAT != want {
			t.Errorf("binding %d: %+v (NAT %+v), want frontend 10080 and NAT %+v", i, pb, pb.NAT, want)
		}
		if err := pb.NAT.Validate(); err != nil {
			t.Errorf("binding %d: %v", i, err)
		}
	}

	// The same host port again is refused by the plugin, with its message.
	err = pl.Call(t.Context(), api.MapPortsMethod, mapReq(), &api.MapPortsResponse{})
	re := asError[*RemoteError](t, err)
	if re.Status != 500 || !strings.Contains(re.Msg, "tcp/10080") || !strings.Contains(re.Msg, "already mapped") {
		t.Fatalf("second MapPorts: %v", err)
	}

	if err := pl.Call(t.Context(), api.UnmapPortsMethod, api.UnmapPortsRequest{PortBindings: resp.PortBindings}, nil); err != nil {
		t.Fatal(err)
	}
	if err := pl.Call(t.Context(), api.MapPortsMethod, mapReq(), &api.MapPortsResponse{}); err != nil {
		t.Fatalf("MapPorts after UnmapPorts: %v", err)
	}

	// Stopped, the plugin removes its socket.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("plugin exit: %v", err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
}

// TestPluginDiesMidCall: the plugin process is killed while it holds a
// MapPorts call; the call fails at once with an error saying the plugin
// may have got the request, and the next call, to a socket nobody
// accepts on, fails after the retry window without being sent.
func TestPluginDiesMidCall(t *testing.T) {
	bin := buildExample(t)
	d := newDirs(t)
	socket := filepath.Join(d.sock, "dying.sock")
	writeFile(t, filepath.Join(d.spec, "dying.spec"), "unix://"+socket)
	cmd, lines := startPlugin(t, bin, socket, "-delay", "1h")
	r := d.registry(t, func(c *Config) {
		c.RetryWindow = 500 * time.Millisecond
		c.ActivateTimeout = 30 * time.Second
		c.CallTimeout = 10 * time.Minute // the death, not a timeout, ends the call
	})
	// Wait for the plugin's socket (activation alone retries only 0.5 s).
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not create its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pl, err := r.Get(t.Context(), "dying", api.Interface)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pl.Call(t.Context(), api.MapPortsMethod, mapReq(), &api.MapPortsResponse{}) }()
	for line := range lines {
		if strings.Contains(line, "MapPorts:") {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	err = <-done
	ue := asError[*UnavailableError](t, err)
	if !ue.Sent || ue.Method != api.MapPortsMethod || !strings.Contains(err.Error(), `"dying"`) {
		t.Fatalf("call to a plugin killed mid-call: %+v: %v", ue, err)
	}
	if _, ok := err.(types.NoServiceError); !ok {
		t.Fatalf("%v is not a types.NoServiceError", err)
	}

	err = pl.Call(t.Context(), api.UnmapPortsMethod, api.UnmapPortsRequest{}, nil)
	ue = asError[*UnavailableError](t, err)
	if ue.Sent || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("call to a dead plugin: %+v: %v", ue, err)
	}
}
