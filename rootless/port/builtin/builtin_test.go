package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// TestTCP exposes the child's TCP echo server on IPv4, IPv6 and both, and
// talks to it through each: data both ways, and half-closes both ways.
// Removed, the ports stop listening.
func TestTCP(t *testing.T) {
	r := newRig(t)
	p4, p6, pBoth := freePort(), freePort(), freePort()
	st4 := r.add(port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: p4, ChildPort: echoPort})
	st6 := r.add(port.Spec{Proto: "tcp6", ParentIP: "::1", ParentPort: p6, ChildIP: "::1", ChildPort: echoPort})
	stBoth := r.add(port.Spec{Proto: "tcp", ParentPort: pBoth, ChildPort: echoPort})

	checkEcho(t, addr("127.0.0.1", p4))
	checkEcho(t, addr("::1", p6))
	checkEcho(t, addr("127.0.0.1", pBoth))
	checkEcho(t, addr("::1", pBoth))
	checkRefused(t, addr("::1", p4))
	checkRefused(t, addr("127.0.0.1", p6))

	// Several connections at once, each with its own child connection.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { checkEcho(t, addr("127.0.0.1", p4)) })
	}
	wg.Wait()

	if got, want := r.list(), []port.Status{st4, st6, stBoth}; !slices.Equal(got, want) {
		t.Fatalf("ListPorts = %v, want %v", got, want)
	}
	if st4.ID != 1 || st6.ID != 2 || stBoth.ID != 3 {
		t.Errorf("IDs %d, %d, %d; want 1, 2, 3", st4.ID, st6.ID, stBoth.ID)
	}
	for _, st := range []port.Status{st4, st6, stBoth} {
		if err := r.d.RemovePort(context.Background(), st.ID); err != nil {
			t.Fatalf("RemovePort(%d): %v", st.ID, err)
		}
	}
	checkRefused(t, addr("127.0.0.1", p4))
	checkRefused(t, addr("::1", p6))
	checkRefused(t, addr("127.0.0.1", pBoth))
	checkRefused(t, addr("::1", pBoth))
	if got := r.list(); len(got) != 0 {
		t.Errorf("ListPorts after removing all = %v", got)
	}
}

// TestTCPRemoveClosesConnections: a relayed connection ends with its port.
func TestTCPRemoveClosesConnections(t *testing.T) {
	r := newRig(t)
	p := freePort()
	st := r.add(port.Spec{Proto: "tcp4", ParentPort: p, ChildPort: echoPort})
	c, err := net.Dial("tcp", addr("127.0.0.1", p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.d.RemovePort(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Errorf("after RemovePort the connection gave %q, %v; want it closed", b, err)
	}
}

// TestTCPResetInChild: a reset from the child's service reaches the
// client as a close.
func TestTCPResetInChild(t *testing.T) {
	r := newRig(t)
	p := freePort()
	r.add(port.Spec{Proto: "tcp4", ParentPort: p, ChildPort: resetPort})
	c, err := net.Dial("tcp", addr("127.0.0.1", p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Errorf("after the service's reset the client read %q, %v; want a plain close (EOF)", b, err)
	}
}

// TestTCPNoServiceInChild: a port may be exposed before its service
// listens in the child; meanwhile clients are closed at once.
func TestTCPNoServiceInChild(t *testing.T) {
	r := newRig(t)
	p := freePort()
	r.add(port.Spec{Proto: "tcp4", ParentPort: p, ChildPort: deadPort})
	c, err := net.Dial("tcp", addr("127.0.0.1", p))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Errorf("read %q, %v; want the connection closed", b, err)
	}
	if !strings.Contains(r.logs.String(), "connection refused") {
		t.Errorf("the log does not say the child's connect was refused:\n%s", r.logs)
	}
}

// TestUDP relays two clients' datagrams at once, over IPv4 and IPv6, each
// answer to the client that asked; an idle flow is dropped and a new
// datagram makes a new one.
func TestUDP(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct{ proto, parentIP, childIP string }{
		{"udp4", "127.0.0.1", ""},
		{"udp6", "::1", "::1"},
	} {
		t.Run(c.proto, func(t *testing.T) {
			p := freePort()
			st := r.add(port.Spec{Proto: c.proto, ParentIP: c.parentIP, ParentPort: p, ChildIP: c.childIP, ChildPort: echoPort})
			var wg sync.WaitGroup
			for client := range 2 {
				wg.Go(func() {
					conn, err := net.Dial("udp", addr(c.parentIP, p))
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close()
					for i := range 20 {
						payload := fmt.Sprintf("client %d datagram %d", client, i)
						if got := udpEcho(t, conn, payload); got != payload {
							t.Errorf("client %d got %q, want %q", client, got, payload)
							return
						}
					}
				})
			}
			wg.Wait()
			if n := r.forwarder(st.ID).(*udpForwarder).flowCount(); n != 2 {
				t.Errorf("%d flows, want one per client", n)
			}
			if err := r.d.RemovePort(context.Background(), st.ID); err != nil {
				t.Fatal(err)
			}
			checkUDPFree(t, addr(c.parentIP, p))
		})
	}

	t.Run("idle", func(t *testing.T) {
		r.d.udpIdleTimeout = 50 * time.Millisecond // for the ports added from now on
		p := freePort()
		st := r.add(port.Spec{Proto: "udp", ParentPort: p, ChildPort: echoPort})
		fwd := r.forwarder(st.ID).(*udpForwarder)
		conn, err := net.Dial("udp", addr("127.0.0.1", p))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := udpEcho(t, conn, "first"); got != "first" {
			t.Fatalf("got %q", got)
		}
		eventually(t, "the idle flow is dropped", func() bool { return fwd.flowCount() == 0 })
		if got := udpEcho(t, conn, "again"); got != "again" {
			t.Fatalf("after the flow was dropped, got %q", got)
		}
		if n := fwd.flowCount(); n != 1 {
			t.Errorf("%d flows, want a new one", n)
		}
	})
}

// TestAddPortRefusals: bad specs, addresses taken by other ports or other
// sockets, and a child IP the child cannot reach are refused with typed
// errors that say why, and leave nothing listening.
func TestAddPortRefusals(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	taken := freePort()
	held := r.add(port.Spec{Proto: "tcp", ParentPort: taken, ChildPort: echoPort})

	for _, c := range []struct {
		name  string
		spec  port.Spec
		is    func(error) bool
		want  string
		check func(t *testing.T, p int)
	}{
		{"bad proto", port.Spec{Proto: "sctp", ParentPort: freePort(), ChildPort: 1}, types.IsBadRequest, `proto "sctp"`, nil},
		{"bad parent port", port.Spec{Proto: "tcp", ParentPort: 70000, ChildPort: 1}, types.IsBadRequest, "parentPort 70000", nil},
		{"bad child IP", port.Spec{Proto: "udp", ParentPort: freePort(), ChildPort: 1, ChildIP: "10.0.0"}, types.IsBadRequest, `childIP "10.0.0"`, nil},
		{"family", port.Spec{Proto: "tcp6", ParentIP: "127.0.0.1", ParentPort: freePort(), ChildPort: 1}, types.IsBadRequest, "listens on IPv6 only", nil},
		{"exposed already", port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: taken, ChildPort: 1}, types.IsForbidden,
			fmt.Sprintf("conflicts with port %d", held.ID), nil},
		{"unreachable child IP", port.Spec{Proto: "tcp4", ParentPort: freePort(), ChildIP: "192.0.2.1", ChildPort: 80}, types.IsBadRequest,
			"the child namespace cannot reach 192.0.2.1:80",
			func(t *testing.T, p int) { checkRefused(t, addr("127.0.0.1", p)) }},
		{"unreachable child IP, UDP", port.Spec{Proto: "udp6", ParentPort: freePort(), ChildIP: "2001:db8::1", ChildPort: 53}, types.IsBadRequest,
			"the child namespace cannot reach [2001:db8::1]:53",
			func(t *testing.T, p int) { checkUDPFree(t, addr("::", p)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.d.AddPort(ctx, c.spec)
			if err == nil || !c.is(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("AddPort(%s) = %v; want a typed error saying %q", c.spec, err, c.want)
			}
			if c.check != nil {
				c.check(t, c.spec.ParentPort)
			}
		})
	}

	// Addresses other sockets of the parent namespace hold.
	tcpHolder, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := tcpHolder.Addr().(*net.TCPAddr).Port
	udpHolder, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	udpPort := udpHolder.LocalAddr().(*net.UDPAddr).Port
	for _, c := range []struct {
		spec port.Spec
		addr string
	}{
		{port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: tcpPort, ChildPort: echoPort}, addr("127.0.0.1", tcpPort)},
		{port.Spec{Proto: "tcp4", ParentPort: tcpPort, ChildPort: echoPort}, addr("0.0.0.0", tcpPort)},
		{port.Spec{Proto: "tcp", ParentPort: tcpPort, ChildPort: echoPort}, addr("::", tcpPort)},
		{port.Spec{Proto: "udp6", ParentIP: "::1", ParentPort: udpPort, ChildPort: echoPort}, addr("::1", udpPort)},
		{port.Spec{Proto: "udp", ParentPort: udpPort, ChildPort: echoPort}, addr("::", udpPort)},
	} {
		_, err := r.d.AddPort(ctx, c.spec)
		want := fmt.Sprintf("parent address %s/%s is in use", c.addr, c.spec.Proto)
		if !types.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("AddPort(%s) beside another socket = %v; want a ForbiddenError saying %q", c.spec, err, want)
		}
	}
	tcpHolder.Close()
	udpHolder.Close()
	checkRefused(t, addr("127.0.0.1", tcpPort))
	checkUDPFree(t, addr("::", udpPort))

	if got := r.list(); !slices.Equal(got, []port.Status{held}) {
		t.Errorf("ListPorts after the refusals = %v, want only %v", got, held)
	}

	err = r.d.RemovePort(ctx, 42)
	if !types.IsNotFound(err) || !strings.Contains(err.Error(), "no port 42") {
		t.Errorf("RemovePort(42) = %v, want a NotFoundError naming 42", err)
	}
	if err := r.d.RemovePort(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	err = r.d.RemovePort(ctx, held.ID)
	if !types.IsNotFound(err) {
		t.Errorf("removing port %d twice = %v, want a NotFoundError", held.ID, err)
	}
}

// TestAddPortConcurrent: of two AddPort calls for one address at once,
// exactly one wins.
func TestAddPortConcurrent(t *testing.T) {
	r := newRig(t)
	for range 10 {
		p := freePort()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = r.d.AddPort(context.Background(), port.Spec{Proto: "tcp", ParentPort: p, ChildPort: echoPort})
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("two AddPort for port %d: %v and %v; want one success and one refusal", p, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !types.IsForbidden(err) {
				t.Errorf("the refusal is %v, want a ForbiddenError", err)
			}
		}
	}
	if n := len(r.list()); n != 10 {
		t.Errorf("%d ports, want 10", n)
	}
}

// TestChildDead: with the child gone, AddPort says the child does not
// answer and leaves nothing listening; ports exposed before close their
// clients, and can be removed.
func TestChildDead(t *testing.T) {
	r := newRig(t)
	before := r.add(port.Spec{Proto: "tcp4", ParentPort: freePort(), ChildPort: echoPort})
	checkEcho(t, addr("127.0.0.1", before.Spec.ParentPort))
	r.killChild()

	for _, spec := range []port.Spec{
		{Proto: "tcp4", ParentPort: freePort(), ChildPort: echoPort},
		{Proto: "udp", ParentPort: freePort(), ChildPort: echoPort},
	} {
		_, err := r.d.AddPort(context.Background(), spec)
		if !isNoService(err) || !strings.Contains(err.Error(), "the child driver does not answer on "+r.d.socketPath) {
			t.Errorf("AddPort(%s) with the child dead = %v; want a NoServiceError saying the child does not answer", spec, err)
		}
		if spec.Proto == "udp" {
			checkUDPFree(t, addr("::", spec.ParentPort))
		} else {
			checkRefused(t, addr("127.0.0.1", spec.ParentPort))
		}
	}
	if got := r.list(); !slices.Equal(got, []port.Status{before}) {
		t.Errorf("ListPorts = %v, want %v", got, []port.Status{before})
	}

	c, err := net.Dial("tcp", addr("127.0.0.1", before.Spec.ParentPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Errorf("through a port of the dead child: read %q, %v; want the connection closed", b, err)
	}
	if err := r.d.RemovePort(context.Background(), before.ID); err != nil {
		t.Errorf("RemovePort: %v", err)
	}
}

// TestQuit: quit closes the ports and their connections, RunParentDriver
// returns nil, and AddPort is refused afterwards.
func TestQuit(t *testing.T) {
	r := newRig(t)
	tcp := r.add(port.Spec{Proto: "tcp", ParentPort: freePort(), ChildPort: echoPort})
	udp := r.add(port.Spec{Proto: "udp4", ParentPort: freePort(), ChildPort: echoPort})
	c, err := net.Dial("tcp", addr("::1", tcp.Spec.ParentPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("RunParentDriver returned %v after quit", err)
	}
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Errorf("after quit the connection gave %q, %v; want it closed", b, err)
	}
	checkRefused(t, addr("::1", tcp.Spec.ParentPort))
	checkUDPFree(t, addr("0.0.0.0", udp.Spec.ParentPort))
	if got := r.list(); len(got) != 0 {
		t.Errorf("ListPorts after quit = %v", got)
	}
	_, err = r.d.AddPort(context.Background(), port.Spec{Proto: "tcp", ParentPort: freePort(), ChildPort: echoPort})
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("AddPort after quit = %v, want a ForbiddenError saying the driver stopped", err)
	}
}

// TestQuitBeforeChild: RunParentDriver waits for the child, and quit ends
// the wait without error.
func TestQuitBeforeChild(t *testing.T) {
	pd, err := NewParentDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	quit, initComplete, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() { done <- pd.RunParentDriver(initComplete, quit, nil) }()
	close(quit)
	if err := <-done; err != nil {
		t.Errorf("RunParentDriver = %v", err)
	}
	select {
	case <-initComplete:
		t.Error("initComplete was signaled with no child")
	default:
	}
}

func TestNewParentDriver(t *testing.T) {
	dir := t.TempDir()
	pd, err := NewParentDriver(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := pd.Info(context.Background())
	if err != nil || info.Driver != "builtin" || !slices.Equal(info.Protos, port.Protos) || info.DisallowLoopbackChildIP {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if got := pd.OpaqueForChild()[OpaqueSocketPath]; got != filepath.Join(dir, socketName) {
		t.Errorf("the child's socket is %q, want it in the state directory", got)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 100))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{"", "empty state directory"},
		{filepath.Join(dir, "missing"), "no such file"},
		{file, "is not a directory"},
		{long, "is longer than the 107 bytes"},
	} {
		if _, err := NewParentDriver(c.dir, nil); !types.IsBadRequest(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewParentDriver(%q) = %v, want a BadRequestError saying %q", c.dir, err, c.want)
		}
	}
}

func TestChildDriverNoSocket(t *testing.T) {
	err := NewChildDriver(nil).RunChildDriver(map[string]string{}, make(chan struct{}))
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), OpaqueSocketPath) {
		t.Errorf("RunChildDriver without a socket path = %v", err)
	}
}

func isNoService(err error) bool {
	var e types.NoServiceError
	return errors.As(err, &e)
}
