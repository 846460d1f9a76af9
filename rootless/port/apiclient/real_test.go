package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// envChild makes the test binary, run by rootlesskit as its child, serve
// HTTP on the address it names instead of running tests.
const envChild = "NETKIT_APICLIENT_TEST_CHILD_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(envChild); addr != "" {
		os.Exit(runChild(addr))
	}
	testutil.Main(m)
}

// runChild serves "rootless child <path>" on addr in rootlesskit's child
// namespaces until its parent dies.
func runChild(addr string) int {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "rootless child %s", r.URL.Path)
	}))
	fmt.Fprintln(os.Stderr, "child:", err)
	return 1
}

// startRootlesskit runs the real rootlesskit in the test's namespace, with
// slirp4netns as its network and the builtin port driver, and this test
// binary as its child serving HTTP on 127.0.0.1:8080 of the child's
// namespace. It returns a Client of its API socket once rootlesskit
// answers.
func startRootlesskit(t *testing.T) *Client {
	t.Helper()
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
	useSubIDs(t, dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	cmd := exec.Command("rootlesskit", "--net=slirp4netns", "--disable-host-loopback",
		"--port-driver=builtin", "--subid-source=static", "--state-dir="+stateDir, "--", exe)
	cmd.Env = append(os.Environ(), envChild+"=127.0.0.1:8080")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// rootlesskit passes SIGTERM to its child and removes its state
		// directory; SIGKILL if it does not end.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("rootlesskit output:\n%s", out.String())
		}
	})

	c := newClient(t, filepath.Join(stateDir, "api.sock"))
	// The socket appears once the child's network is up.
	for {
		if _, err := c.Info(context.Background()); err == nil {
			return c
		}
		select {
		case <-exited:
			t.Fatalf("rootlesskit exited before serving its API:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// useSubIDs gives root the sub-IDs rootlesskit needs for its user
// namespace (it refuses to start without a range in /etc/subuid and
// /etc/subgid), by bind-mounting a file over both in the test's private
// mount namespace: the host's files are not touched.
func useSubIDs(t *testing.T, dir string) {
	t.Helper()
	f := filepath.Join(dir, "subid")
	if err := os.WriteFile(f, []byte("root:100000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := unix.Mount(f, target, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mounting %s: %v", target, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	}
}

// TestRealRootlesskit publishes a port of rootlesskit's child through its
// API and uses it from the test's namespace.
func TestRealRootlesskit(t *testing.T) {
	c := startRootlesskit(t)
	ctx := context.Background()

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.APIVersion == "" || info.ChildPID <= 0 || info.NetworkDriver == nil || info.NetworkDriver.Driver != "slirp4netns" ||
		info.PortDriver == nil || info.PortDriver.Driver != "builtin" {
		t.Errorf("Info = %+v (network %+v, port %+v)", info, info.NetworkDriver, info.PortDriver)
	}

	web := port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 19080, ChildPort: 8080}
	st, err := c.AddPort(ctx, web)
	if err != nil {
		t.Fatalf("AddPort %s: %v", web, err)
	}
	if st.Spec != web {
		t.Errorf("status %+v, want the spec %+v", st, web)
	}
	if got := httpGet(t, "127.0.0.1:19080", "/hello"); got != "rootless child /hello" {
		t.Errorf("GET through the published port: %q", got)
	}
	if got, err := c.ListPorts(ctx); err != nil || !reflect.DeepEqual(got, []port.Status{*st}) {
		t.Errorf("ListPorts = %+v, %v; want %+v", got, err, []port.Status{*st})
	}

	// Refusals change nothing.
	if _, err := c.AddPort(ctx, port.Spec{Proto: "tcp4", ParentPort: 19080, ChildPort: 8080}); !types.IsForbidden(err) ||
		!strings.Contains(err.Error(), fmt.Sprintf("conflicts with port %d ", st.ID)) {
		t.Errorf("AddPort over port %d = %v, want a ForbiddenError naming it", st.ID, err)
	}
	taken, err := net.Listen("tcp4", "127.0.0.1:19081")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = c.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 19081, ChildPort: 8080})
	var apiErr *APIError
	if _, ok := err.(types.BadRequestError); !ok || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("AddPort on a port another program holds = %v (%T), want a BadRequestError wrapping rootlesskit's 400", err, err)
	}
	if err := c.RemovePort(ctx, 999); !types.IsNotFound(err) {
		t.Errorf("RemovePort(999) = %v, want a NotFoundError", err)
	}
	if got, _ := c.ListPorts(ctx); !reflect.DeepEqual(got, []port.Status{*st}) {
		t.Errorf("ports after the refusals: %+v", got)
	}

	if err := c.RemovePort(ctx, st.ID); err != nil {
		t.Fatalf("RemovePort(%d): %v", st.ID, err)
	}
	if _, err := net.Dial("tcp4", "127.0.0.1:19080"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialling the removed port: %v, want connection refused", err)
	}
	if got, err := c.ListPorts(ctx); err != nil || len(got) != 0 {
		t.Errorf("ListPorts after RemovePort = %+v, %v", got, err)
	}
}

// httpGet fetches path from addr. The child may not listen yet when the
// port is published (rootlesskit does not wait for it), so failed attempts
// are retried for a while.
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var lastErr error
	for range 200 {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			lastErr = err
			time.Sleep(25 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("GET http://%s%s: %v", addr, path, lastErr)
	return ""
}

// lockedBuffer collects a process's output, written from exec's copying
// goroutines and read by the test.
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
