package slirp4netns

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// table is a slirp4netns forwarding table for fakeSlirp: it adds, lists
// and removes as slirp4netns 1.2 does, with the answers' shapes
// configurable.
type table struct {
	mu      sync.Mutex
	nextID  int
	entries []hostfwd
	// wrapList answers list_hostfwd as slirp4netns's manual shows it,
	// inside "return", instead of as slirp4netns 1.2 does.
	wrapList bool
	// refuseAdd answers add_hostfwd with slirp_add_hostfwd's failure.
	refuseAdd bool
}

func (tb *table) answer(req map[string]any) string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	args, _ := req["arguments"].(map[string]any)
	switch req["execute"] {
	case "list_hostfwd":
		b, _ := json.Marshal(map[string]any{"entries": append([]hostfwd{}, tb.entries...)})
		if tb.wrapList {
			return `{"return":` + string(b) + `}`
		}
		return string(b)
	case "add_hostfwd":
		if tb.refuseAdd {
			return `{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}`
		}
		b, _ := json.Marshal(args)
		var f hostfwd
		_ = json.Unmarshal(b, &f)
		tb.nextID++
		f.ID = tb.nextID
		tb.entries = append(tb.entries, f)
		return `{"return":{"id":` + jsonInt(f.ID) + `}}`
	case "remove_hostfwd":
		id := int(args["id"].(float64))
		for i, e := range tb.entries {
			if e.ID == id {
				tb.entries = append(tb.entries[:i], tb.entries[i+1:]...)
				return `{"return":{}}`
			}
		}
		return `{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}`
	}
	return `{"error":{"desc":"bad request: unknown execute"}}`
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestManagerProtocol drives a Manager against a fake slirp4netns: what it
// sends, how it reads both shapes of list_hostfwd's answer, and that specs
// come back as they were asked.
func TestManagerProtocol(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		tb := &table{wrapList: wrap}
		f := newFakeSlirp(t, tb.answer)
		m := newManager(t, f.socket)
		ctx := context.Background()

		spec := port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 80}
		st, err := m.AddPort(ctx, spec)
		if err != nil {
			t.Fatalf("wrap=%v: AddPort: %v", wrap, err)
		}
		if st.ID != 1 || st.Spec != spec {
			t.Errorf("wrap=%v: status %+v", wrap, st)
		}
		want := hostfwd{ID: 1, Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 8080, GuestAddr: "10.0.2.100", GuestPort: 80}
		if tb.entries[0] != want {
			t.Errorf("wrap=%v: slirp4netns was asked for %+v, want %+v", wrap, tb.entries[0], want)
		}

		// A forward another client made is shown as slirp4netns has it.
		tb.mu.Lock()
		tb.nextID++
		other := hostfwd{ID: tb.nextID, Proto: "udp", HostAddr: "0.0.0.0", HostPort: 53, GuestAddr: "10.0.2.100", GuestPort: 53}
		tb.entries = append(tb.entries, other)
		tb.mu.Unlock()
		got, err := m.ListPorts(ctx)
		if err != nil {
			t.Fatalf("wrap=%v: ListPorts: %v", wrap, err)
		}
		wantList := []port.Status{{ID: 1, Spec: spec}, {ID: 2, Spec: port.Spec{Proto: "udp", ParentIP: "0.0.0.0", ParentPort: 53, ChildIP: "10.0.2.100", ChildPort: 53}}}
		if !reflect.DeepEqual(got, wantList) {
			t.Errorf("wrap=%v: ListPorts = %+v, want %+v", wrap, got, wantList)
		}

		if err := m.RemovePort(ctx, 2); err != nil {
			t.Fatalf("wrap=%v: RemovePort(2): %v", wrap, err)
		}
		if err := m.RemovePort(ctx, 1); err != nil {
			t.Fatalf("wrap=%v: RemovePort(1): %v", wrap, err)
		}
		wantCmds := []string{"list_hostfwd", "add_hostfwd", "list_hostfwd", "list_hostfwd", "remove_hostfwd", "list_hostfwd", "remove_hostfwd"}
		if got := f.executed(); !reflect.DeepEqual(got, wantCmds) {
			t.Errorf("wrap=%v: commands %v, want %v", wrap, got, wantCmds)
		}
		if got, err := m.ListPorts(ctx); err != nil || len(got) != 0 {
			t.Errorf("wrap=%v: ListPorts after removing all = %+v, %v", wrap, got, err)
		}
	}
}

// TestManagerRefusals checks the class and words of each refusal, and that
// a refused AddPort or RemovePort changes nothing.
func TestManagerRefusals(t *testing.T) {
	tb := &table{}
	f := newFakeSlirp(t, tb.answer)
	m := newManager(t, f.socket)
	ctx := context.Background()

	first := port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80}
	st, err := m.AddPort(ctx, first)
	if err != nil {
		t.Fatal(err)
	}

	// The same port on one address while the other holds the wildcard.
	_, err = m.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 81})
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Fatalf("AddPort over a forwarded port = %v (%T), want a ForbiddenError", err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "tcp 127.0.0.1:8080 -> :81") || !strings.Contains(msg, "port 1 (tcp 0.0.0.0:8080 -> 10.0.2.100:80)") {
		t.Errorf("conflict message %q should name both forwards", msg)
	}

	// A spec refused before slirp4netns is asked anything.
	before := len(f.executed())
	if _, err := m.AddPort(ctx, port.Spec{Proto: "tcp6", ParentPort: 9000, ChildPort: 80}); !types.IsBadRequest(err) {
		t.Errorf("AddPort tcp6 = %v, want a BadRequestError", err)
	}
	if got := len(f.executed()); got != before {
		t.Errorf("a refused spec sent %d commands", got-before)
	}

	// slirp4netns itself refuses: its port is taken by another program.
	tb.mu.Lock()
	tb.refuseAdd = true
	tb.mu.Unlock()
	_, err = m.AddPort(ctx, port.Spec{Proto: "udp", ParentPort: 9000, ChildPort: 53})
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Errorf("AddPort refused by slirp4netns = %v (%T), want a ForbiddenError", err, err)
	}
	if r := asRefused(err); r == nil || r.Execute != "add_hostfwd" || !strings.Contains(r.Desc, "slirp_add_hostfwd failed") {
		t.Errorf("AddPort refused by slirp4netns = %v, want it to wrap slirp4netns's answer", err)
	}
	if !strings.Contains(err.Error(), "publishing udp :9000 -> :53") {
		t.Errorf("%q does not name the spec", err)
	}

	// An unknown ID is not found, and nothing is sent to remove it.
	before = len(f.executed())
	err = m.RemovePort(ctx, 77)
	if _, ok := err.(types.NotFoundError); !ok || !strings.Contains(err.Error(), "port 77") {
		t.Errorf("RemovePort(77) = %v (%T), want a NotFoundError naming 77", err, err)
	}
	if got := f.executed()[before:]; !reflect.DeepEqual(got, []string{"list_hostfwd"}) {
		t.Errorf("RemovePort(77) sent %v", got)
	}
	if got, _ := m.ListPorts(ctx); len(got) != 1 || got[0].ID != st.ID {
		t.Errorf("ports after the refusals: %+v", got)
	}
}

// TestManagerRestartedSlirp: after slirp4netns is restarted on the same
// socket its IDs start again at 1, so an ID this Manager gave out may name
// another forward; ListPorts then shows slirp4netns's forward, not the old
// spec.
func TestManagerRestartedSlirp(t *testing.T) {
	tb := &table{}
	f := newFakeSlirp(t, tb.answer)
	m := newManager(t, f.socket)
	ctx := context.Background()
	if _, err := m.AddPort(ctx, port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80}); err != nil {
		t.Fatal(err)
	}
	tb.mu.Lock()
	tb.entries = []hostfwd{{ID: 1, Proto: "tcp", HostAddr: "0.0.0.0", HostPort: 9090, GuestAddr: "10.0.2.100", GuestPort: 90}}
	tb.mu.Unlock()
	got, err := m.ListPorts(ctx)
	want := []port.Status{{ID: 1, Spec: port.Spec{Proto: "tcp", ParentIP: "0.0.0.0", ParentPort: 9090, ChildIP: "10.0.2.100", ChildPort: 90}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ListPorts = %+v, %v; want %+v", got, err, want)
	}
}

// TestManagerBrokenSlirp checks the class of each way slirp4netns can fail
// to answer.
func TestManagerBrokenSlirp(t *testing.T) {
	spec := port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80}
	t.Run("no socket", func(t *testing.T) {
		m := newManager(t, filepath.Join(t.TempDir(), "missing.sock"))
		_, err := m.AddPort(context.Background(), spec)
		if _, ok := err.(types.NoServiceError); !ok || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("AddPort = %v (%T), want a NoServiceError", err, err)
		}
		if !strings.Contains(err.Error(), "missing.sock") || !strings.Contains(err.Error(), "publishing tcp :8080") {
			t.Errorf("%q should name the socket and the spec", err)
		}
	})
	for _, tc := range []struct {
		name   string
		answer string
		check  func(error) bool
	}{
		{"no answer", "", func(err error) bool { _, ok := err.(types.NoServiceError); return ok }},
		{"not JSON", "{\"return\":", func(err error) bool { _, ok := err.(types.InternalError); return ok }},
		{"neither return nor error", `{"hello":1}`, func(err error) bool { _, ok := err.(types.InternalError); return ok }},
		{"list refused", `{"error":{"desc":"bad request: unknown execute"}}`, func(err error) bool {
			_, ok := err.(types.InternalError)
			return ok && asRefused(err) != nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSlirp(t, func(map[string]any) string { return tc.answer })
			m := newManager(t, f.socket)
			_, err := m.ListPorts(context.Background())
			if !tc.check(err) {
				t.Errorf("ListPorts = %v (%T)", err, err)
			}
		})
	}
	t.Run("hung", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeSlirp(t, func(map[string]any) string { <-release; return `{"entries":[]}` })
		t.Cleanup(func() { close(release) })
		m := newManager(t, f.socket)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := m.ListPorts(ctx); errc <- err }()
		// Cancel once the request is in: the call must end with it.
		for len(f.executed()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		err := <-errc
		if _, ok := err.(types.TimeoutError); !ok {
			t.Errorf("ListPorts with a cancelled context = %v (%T), want a TimeoutError", err, err)
		}
	})
}

// TestRunParentDriver checks that the child's tap address from the
// ChildContext becomes the address of specs without a ChildIP, and the
// driver's Info.
func TestRunParentDriver(t *testing.T) {
	tb := &table{}
	f := newFakeSlirp(t, tb.answer)
	m := newManager(t, f.socket)
	initComplete, quit := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- m.RunParentDriver(initComplete, quit, &port.ChildContext{PID: 1, IP: net.IPv4(10, 0, 3, 100)})
	}()
	<-initComplete
	if _, err := m.AddPort(context.Background(), port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80}); err != nil {
		t.Fatal(err)
	}
	if got := tb.entries[0].GuestAddr; got != "10.0.3.100" {
		t.Errorf("guest address %s, want the ChildContext's 10.0.3.100", got)
	}
	close(quit)
	if err := <-errc; err != nil {
		t.Errorf("RunParentDriver = %v", err)
	}
	info, err := m.Info(context.Background())
	if err != nil || info.Driver != "slirp4netns" || !info.DisallowLoopbackChildIP || !reflect.DeepEqual(info.Protos, []string{"tcp", "tcp4", "udp", "udp4"}) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if m.OpaqueForChild() != nil {
		t.Errorf("OpaqueForChild = %v, want nil", m.OpaqueForChild())
	}
}
