package slirp4netns

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
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// childNamespace is a network namespace behind a real slirp4netns, with an
// HTTP server on port 8080 and a UDP echo server on port 5353 of every
// address.
type childNamespace struct {
	ns     *osl.Namespace
	socket string // slirp4netns's API socket
}

// startSlirp4netns makes a network namespace, starts slirp4netns on it
// (tap0 configured as 10.0.2.100/24, API socket in a temporary directory)
// and servers inside it. Everything is gone at the end of the test.
func startSlirp4netns(t *testing.T) *childNamespace {
	t.Helper()
	testutil.RequireRoot(t)
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("slirp4netns is not installed (Debian package slirp4netns): %v", err)
		}
		t.Skipf("needs slirp4netns (Debian package slirp4netns): %v", err)
	}
	dir := t.TempDir()
	ns, err := osl.NewNamespace(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Destroy() })

	// Servers first: they listen on every address, so tap0 need not exist
	// yet.
	var (
		httpL net.Listener
		udpC  net.PacketConn
	)
	err = ns.Do(func() error {
		var err error
		if httpL, err = net.Listen("tcp4", "0.0.0.0:8080"); err != nil {
			return err
		}
		udpC, err = net.ListenPacket("udp4", "0.0.0.0:5353")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "child %s", r.URL.Path)
	})}
	go func() { _ = srv.Serve(httpL) }()
	t.Cleanup(func() { _ = srv.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udpC.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = udpC.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { _ = udpC.Close() })

	socket := filepath.Join(dir, "slirp.sock")
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	cmd := exec.Command(bin, "--configure", "--mtu=65520", "--api-socket", socket,
		"--ready-fd=3", "--netns-type=path", ns.Path(), "tap0")
	cmd.ExtraFiles = []*os.File{readyW}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		t.Fatal(err)
	}
	readyW.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("slirp4netns output:\n%s", out.String())
		}
	})
	// slirp4netns writes "1" once tap0 is configured and the API socket
	// listens; EOF means it died.
	b := make([]byte, 1)
	if n, err := ready.Read(b); n != 1 || b[0] != '1' {
		t.Fatalf("slirp4netns did not get ready (%v):\n%s", err, out.String())
	}
	return &childNamespace{ns: ns, socket: socket}
}

// TestRealSlirp4netns publishes ports of a namespace through a real
// slirp4netns and uses them from the test's namespace.
func TestRealSlirp4netns(t *testing.T) {
	c := startSlirp4netns(t)
	m := newManager(t, c.socket)
	ctx := context.Background()

	web := port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 18080, ChildPort: 8080}
	webSt, err := m.AddPort(ctx, web)
	if err != nil {
		t.Fatalf("AddPort %+v: %v", web, err)
	}
	if got := httpGet(t, "127.0.0.1:18080", "/hello"); got != "child /hello" {
		t.Errorf("GET through the forward: %q", got)
	}

	echo := port.Spec{Proto: "udp4", ParentIP: "127.0.0.1", ParentPort: 15353, ChildPort: 5353, ChildIP: "10.0.2.100"}
	echoSt, err := m.AddPort(ctx, echo)
	if err != nil {
		t.Fatalf("AddPort %+v: %v", echo, err)
	}
	if got := udpEcho(t, "127.0.0.1:15353", "ping"); got != "ping" {
		t.Errorf("UDP echo through the forward: %q", got)
	}

	want := []port.Status{*webSt, *echoSt}
	if got, err := m.ListPorts(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ListPorts = %+v, %v; want %+v", got, err, want)
	}
	// Another Manager on the socket sees the same IDs, with the forwards
	// as slirp4netns has them.
	m2 := newManager(t, c.socket)
	got, err := m2.ListPorts(ctx)
	want2 := []port.Status{
		{ID: webSt.ID, Spec: port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 18080, ChildIP: "10.0.2.100", ChildPort: 8080}},
		{ID: echoSt.ID, Spec: port.Spec{Proto: "udp", ParentIP: "127.0.0.1", ParentPort: 15353, ChildIP: "10.0.2.100", ChildPort: 5353}},
	}
	if err != nil || !reflect.DeepEqual(got, want2) {
		t.Errorf("second Manager's ListPorts = %+v, %v; want %+v", got, err, want2)
	}

	// Refusals change nothing.
	if _, err := m.AddPort(ctx, port.Spec{Proto: "tcp", ParentPort: 18080, ChildPort: 80}); !isConflict(err, webSt.ID) {
		t.Errorf("AddPort on the wildcard of a forwarded port = %v, want a ForbiddenError naming ID %d", err, webSt.ID)
	}
	if _, err := m.AddPort(ctx, port.Spec{Proto: "tcp6", ParentIP: "::1", ParentPort: 18082, ChildPort: 8080}); !types.IsBadRequest(err) {
		t.Errorf("AddPort tcp6 = %v, want a BadRequestError", err)
	}
	taken, err := net.Listen("tcp4", "127.0.0.1:18081")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = m.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 18081, ChildPort: 8080})
	if _, ok := err.(types.ForbiddenError); !ok || asRefused(err) == nil {
		t.Errorf("AddPort on a port another program holds = %v (%T), want a ForbiddenError wrapping slirp4netns's refusal", err, err)
	}
	if err := m.RemovePort(ctx, 999); !types.IsNotFound(err) {
		t.Errorf("RemovePort(999) = %v, want a NotFoundError", err)
	}
	if got, _ := m.ListPorts(ctx); !reflect.DeepEqual(got, want) {
		t.Errorf("ports after the refusals: %+v, want %+v", got, want)
	}

	// Removed, the parent port no longer answers.
	if err := m.RemovePort(ctx, webSt.ID); err != nil {
		t.Fatalf("RemovePort(%d): %v", webSt.ID, err)
	}
	if _, err := net.Dial("tcp4", "127.0.0.1:18080"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialling the removed forward: %v, want connection refused", err)
	}
	// The second Manager removes the first one's forward: the IDs are
	// slirp4netns's.
	if err := m2.RemovePort(ctx, echoSt.ID); err != nil {
		t.Fatalf("second Manager's RemovePort(%d): %v", echoSt.ID, err)
	}
	if got, err := m.ListPorts(ctx); err != nil || len(got) != 0 {
		t.Errorf("ListPorts after removing everything = %+v, %v", got, err)
	}
	// The port is free again for a new forward, under a new ID.
	again, err := m.AddPort(ctx, web)
	if err != nil || again.ID == webSt.ID {
		t.Fatalf("AddPort again = %+v, %v; want a new ID", again, err)
	}
	if got := httpGet(t, "127.0.0.1:18080", "/again"); got != "child /again" {
		t.Errorf("GET through the new forward: %q", got)
	}
}

func isConflict(err error, id int) bool {
	_, ok := err.(types.ForbiddenError)
	return ok && strings.Contains(err.Error(), fmt.Sprintf("conflicts with port %d ", id))
}

// httpGet fetches path from addr. slirp4netns may still be resolving the
// child's MAC address on the first connection, so a failed attempt is
// retried a few times.
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var lastErr error
	for range 5 {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			lastErr = err
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

// udpEcho sends msg to addr and returns the answer. A datagram may be lost
// while slirp4netns resolves the child's MAC address, so it is sent again
// after a while without an answer.
func udpEcho(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 10 {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no UDP answer from %s", addr)
	return ""
}

// TestRealSlirp4netnsConcurrent adds and removes ports from two Managers at
// once on one slirp4netns, which serves one connection at a time from a
// listen backlog of 0: every call must still get through, and the IDs
// stay distinct.
func TestRealSlirp4netnsConcurrent(t *testing.T) {
	c := startSlirp4netns(t)
	managers := []*Manager{newManager(t, c.socket), newManager(t, c.socket)}
	ctx := context.Background()
	const perManager = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = map[int]*Manager{}
		errs []error
	)
	for i, m := range managers {
		for j := range perManager {
			wg.Go(func() {
				spec := port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 20000 + i*perManager + j, ChildPort: 8080}
				st, err := m.AddPort(ctx, spec)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				if _, dup := ids[st.ID]; dup {
					errs = append(errs, fmt.Errorf("ID %d given twice", st.ID))
				}
				ids[st.ID] = m
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent AddPort: %v", errs)
	}
	if got, err := managers[0].ListPorts(ctx); err != nil || len(got) != 2*perManager {
		t.Fatalf("ListPorts = %d ports, %v; want %d", len(got), err, 2*perManager)
	}
	if got := httpGet(t, fmt.Sprintf("127.0.0.1:%d", 20000+2*perManager-1), "/last"); got != "child /last" {
		t.Errorf("GET through the last forward: %q", got)
	}
	for id, m := range ids {
		wg.Go(func() {
			if err := m.RemovePort(ctx, id); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent RemovePort: %v", errs)
	}
	if got, err := managers[1].ListPorts(ctx); err != nil || len(got) != 0 {
		t.Errorf("ListPorts after removing everything = %+v, %v", got, err)
	}
}
