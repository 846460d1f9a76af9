package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// fakeKit serves rootlesskit's API routes as rootlesskit 1.1's router
// does, over a builtin-like port table, and records the requests.
type fakeKit struct {
	socket string

	mu       sync.Mutex
	requests []string // "METHOD /path"
	nextID   int
	ports    []port.Status
	// override answers every request when set.
	override http.HandlerFunc
}

func newFakeKit(t *testing.T) *fakeKit {
	t.Helper()
	f := &fakeKit{socket: filepath.Join(t.TempDir(), "api.sock")}
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

// onError writes an error as rootlesskit's router does: the status, then
// {"message": ...} (its Content-Type header comes too late to be sent).
func onError(w http.ResponseWriter, msg string, code int) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (f *fakeKit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if f.override != nil {
		f.override(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/info":
		_ = json.NewEncoder(w).Encode(Info{APIVersion: "1.1.1", Version: "1.1.0", StateDir: "/state", ChildPID: 42,
			PortDriver: &api.PortDriverInfo{Driver: "builtin", Protos: []string{"tcp", "udp"}}})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/ports":
		// rootlesskit marshals a nil slice: null when there are none.
		var out []port.Status
		out = append(out, f.ports...)
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/ports":
		var spec port.Spec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			onError(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.nextID++
		st := port.Status{ID: f.nextID, Spec: spec}
		f.ports = append(f.ports, st)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(st)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/ports/"):
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/v1/ports/"))
		for i, p := range f.ports {
			if p.ID == id {
				f.ports = append(f.ports[:i], f.ports[i+1:]...)
				return
			}
		}
		onError(w, fmt.Sprintf("unknown id: %d", id), http.StatusBadRequest)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeKit) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeKit) setOverride(h http.HandlerFunc) {
	f.mu.Lock()
	f.override = h
	f.mu.Unlock()
}

func newClient(t *testing.T, socket string) *Client {
	t.Helper()
	c, err := New(socket)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientProtocol checks the requests the Client makes and how it reads
// rootlesskit's answers.
func TestClientProtocol(t *testing.T) {
	f := newFakeKit(t)
	c := newClient(t, f.socket)
	ctx := context.Background()

	if got, err := c.ListPorts(ctx); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ListPorts of none = %#v, %v; want an empty list", got, err)
	}
	spec := port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 80}
	st, err := c.AddPort(ctx, spec)
	if err != nil || st.ID != 1 || st.Spec != spec {
		t.Fatalf("AddPort = %+v, %v", st, err)
	}
	if got, err := c.ListPorts(ctx); err != nil || !reflect.DeepEqual(got, []port.Status{*st}) {
		t.Errorf("ListPorts = %+v, %v", got, err)
	}
	if err := c.RemovePort(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.ChildPID != 42 || info.PortDriver == nil || info.PortDriver.Driver != "builtin" {
		t.Errorf("Info = %+v, %v", info, err)
	}
	want := []string{"GET /v1/ports", "GET /v1/ports", "POST /v1/ports", "GET /v1/ports", "GET /v1/ports", "DELETE /v1/ports/1", "GET /v1/info"}
	if got := f.sent(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

// TestClientRefusals checks the class and words of each refusal, and what
// was sent for it.
func TestClientRefusals(t *testing.T) {
	f := newFakeKit(t)
	c := newClient(t, f.socket)
	ctx := context.Background()
	held, err := c.AddPort(ctx, port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80})
	if err != nil {
		t.Fatal(err)
	}

	// Invalid: refused before anything is sent.
	n := len(f.sent())
	_, err = c.AddPort(ctx, port.Spec{Proto: "tcp", ParentPort: 0, ChildPort: 80})
	if _, ok := err.(types.BadRequestError); !ok || !strings.Contains(err.Error(), "parentPort 0") {
		t.Errorf("AddPort of port 0 = %v (%T), want a BadRequestError naming parentPort", err, err)
	}
	// Conflicting: found in the list, not posted.
	_, err = c.AddPort(ctx, port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 81})
	if _, ok := err.(types.ForbiddenError); !ok || !strings.Contains(err.Error(), fmt.Sprintf("conflicts with port %d ", held.ID)) {
		t.Errorf("AddPort over port %d = %v (%T), want a ForbiddenError naming it", held.ID, err, err)
	}
	// Unknown ID: found missing in the list, not deleted.
	err = c.RemovePort(ctx, 77)
	if _, ok := err.(types.NotFoundError); !ok || !strings.Contains(err.Error(), "port 77") {
		t.Errorf("RemovePort(77) = %v (%T), want a NotFoundError", err, err)
	}
	if got, want := f.sent()[n:], []string{"GET /v1/ports", "GET /v1/ports"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refusals sent %v, want only %v", got, want)
	}

	// rootlesskit refuses: its driver could not listen.
	f.setOverride(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("null"))
			return
		}
		onError(w, "listen tcp 127.0.0.1:9090: bind: address already in use", http.StatusBadRequest)
	})
	_, err = c.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 9090, ChildPort: 80})
	var apiErr *APIError
	if _, ok := err.(types.BadRequestError); !ok || !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "address already in use") {
		t.Errorf("AddPort refused by rootlesskit = %v (%T), want a BadRequestError wrapping its *APIError", err, err)
	}
	if !strings.Contains(err.Error(), "publishing tcp 127.0.0.1:9090 -> :80") || !strings.Contains(err.Error(), "POST /v1/ports") {
		t.Errorf("%q should name the spec and the request", err)
	}
}

// TestClientBrokenKit checks the class of each way rootlesskit can fail to
// answer.
func TestClientBrokenKit(t *testing.T) {
	t.Run("no socket", func(t *testing.T) {
		c := newClient(t, filepath.Join(t.TempDir(), "api.sock"))
		_, err := c.Info(context.Background())
		if _, ok := err.(types.NoServiceError); !ok || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "api.sock") {
			t.Errorf("Info = %v (%T), want a NoServiceError naming the socket", err, err)
		}
	})
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		check   func(error) bool
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { onError(w, "driver broke", 500) }, func(err error) bool {
			var apiErr *APIError
			_, ok := err.(types.InternalError)
			return ok && errors.As(err, &apiErr) && apiErr.Message == "driver broke"
		}},
		{"404 text", http.NotFound, func(err error) bool {
			var apiErr *APIError
			_, ok := err.(types.BadRequestError)
			return ok && errors.As(err, &apiErr) && apiErr.Message == "404 page not found"
		}},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("[{")) }, func(err error) bool {
			_, ok := err.(types.InternalError)
			return ok
		}},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}, func(err error) bool {
			_, ok := err.(types.NoServiceError)
			return ok
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeKit(t)
			f.setOverride(tc.handler)
			_, err := newClient(t, f.socket).ListPorts(context.Background())
			if !tc.check(err) {
				t.Errorf("ListPorts = %v (%T)", err, err)
			}
		})
	}
	t.Run("hung", func(t *testing.T) {
		f := newFakeKit(t)
		arrived, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		f.setOverride(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-release
		})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := newClient(t, f.socket).ListPorts(ctx); errc <- err }()
		<-arrived
		cancel()
		if err := <-errc; !isTimeout(err) {
			t.Errorf("ListPorts with a cancelled context = %v (%T), want a TimeoutError", err, err)
		}
	})
}

func TestNewRefuses(t *testing.T) {
	for _, p := range []string{"", "/" + strings.Repeat("s", maxSocketPath)} {
		if c, err := New(p); !types.IsBadRequest(err) {
			t.Errorf("New(%.20q...) = %v, %v; want a BadRequestError", p, c, err)
		}
	}
}

func isTimeout(err error) bool { _, ok := err.(types.TimeoutError); return ok }
