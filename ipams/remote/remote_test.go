package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/types"
)

// pluginName is the name the fake plugins are served under.
const pluginName = "fakeipam"

// answer is how the fake plugin answers one method: the HTTP status and
// the body. It gets the request's JSON body and the request's context.
type answer func(ctx context.Context, req map[string]any) (int, any)

// ok answers 200 with body.
func ok(body any) answer {
	return func(context.Context, map[string]any) (int, any) { return http.StatusOK, body }
}

// refuse answers status with an Err of msg.
func refuse(status int, msg string) answer {
	return func(context.Context, map[string]any) (int, any) {
		return status, api.ErrorResponse{Err: msg}
	}
}

// hang never answers: it waits until the client gives up.
func hang(ctx context.Context, _ map[string]any) (int, any) {
	<-ctx.Done()
	return http.StatusOK, struct{}{}
}

// call is a request the fake plugin got.
type call struct {
	Method string
	Body   map[string]any
}

// fakePlugin is an IPAM plugin served in-process with pluginsdk on a unix
// socket; it records every request it gets.
type fakePlugin struct {
	// stop stops serving and removes the socket; it may be called more
	// than once.
	stop func()

	mu    sync.Mutex
	calls []call
}

// defaultAnswers are the answers of a well-behaved plugin.
func defaultAnswers() map[string]answer {
	return map[string]answer{
		api.GetCapabilities:         ok(api.CapabilitiesResponse{}),
		api.GetDefaultAddressSpaces: ok(api.AddressSpacesResponse{LocalDefaultAddressSpace: "local", GlobalDefaultAddressSpace: "global"}),
		api.RequestPool:             ok(api.RequestPoolResponse{PoolID: "pool-1", Pool: "10.0.0.0/24"}),
		api.ReleasePool:             ok(struct{}{}),
		api.RequestAddress:          ok(api.RequestAddressResponse{Address: "10.0.0.5/24"}),
		api.ReleaseAddress:          ok(struct{}{}),
	}
}

// options configure a fake plugin and its registry.
type options struct {
	// answers replace the default answers by method; a nil answer leaves
	// the method unserved (404).
	answers     map[string]answer
	implements  []string
	callTimeout time.Duration
	retryWindow time.Duration
}

// serve starts a fake plugin and returns it and a registry that finds it.
func serve(t *testing.T, o options) (*fakePlugin, *plugins.Registry) {
	t.Helper()
	answers := defaultAnswers()
	for m, a := range o.answers {
		answers[m] = a
	}
	if o.implements == nil {
		o.implements = []string{ipamapi.PluginEndpointType}
	}
	f := &fakePlugin{}
	h := pluginsdk.NewHandler(o.implements...)
	for method, a := range answers {
		if a == nil {
			continue
		}
		h.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				pluginsdk.EncodeResponse(w, http.StatusBadRequest, api.ErrorResponse{Err: err.Error()})
				return
			}
			var req map[string]any
			if err := json.Unmarshal(body, &req); err != nil {
				pluginsdk.EncodeResponse(w, http.StatusBadRequest, api.ErrorResponse{Err: err.Error()})
				return
			}
			f.mu.Lock()
			f.calls = append(f.calls, call{Method: method, Body: req})
			f.mu.Unlock()
			status, resp := a(r.Context(), req)
			if raw, isRaw := resp.(rawBody); isRaw {
				w.WriteHeader(status)
				_, _ = w.Write([]byte(raw))
				return
			}
			pluginsdk.EncodeResponse(w, status, resp)
		})
	}
	// Listen before returning, so that discovery finds the socket.
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, pluginName+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(l) }()
	f.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(f.stop)
	if o.retryWindow == 0 {
		o.retryWindow = 10 * time.Second
	}
	r := plugins.NewRegistry(plugins.Config{SocketDirs: []string{dir}, CallTimeout: o.callTimeout, RetryWindow: o.retryWindow})
	t.Cleanup(r.Close)
	return f, r
}

// rawBody is an answer body sent as it is, not as JSON.
type rawBody string

// newAllocator serves a fake plugin and returns its Allocator, logging to
// the returned buffer.
func newAllocator(t *testing.T, o options) (*Allocator, *fakePlugin, *logBuffer) {
	t.Helper()
	f, r := serve(t, o)
	p, err := r.Get(t.Context(), pluginName, ipamapi.PluginEndpointType)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	a, err := New(p, Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	f.reset()
	return a, f, logs
}

// reset forgets the calls so far.
func (f *fakePlugin) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// received returns the calls of method.
func (f *fakePlugin) received(method string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var bodies []map[string]any
	for _, c := range f.calls {
		if c.Method == method {
			bodies = append(bodies, c.Body)
		}
	}
	return bodies
}

// methods returns the methods called, in order.
func (f *fakePlugin) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ms []string
	for _, c := range f.calls {
		ms = append(ms, c.Method)
	}
	return ms
}

// logBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkErr checks that err is a *PluginError of method naming the plugin
// and the method, and that its text has each of want.
func checkErr(t *testing.T, err error, method string, want ...string) *PluginError {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error", method)
	}
	var pe *PluginError
	if !errors.As(err, &pe) || pe.Plugin != pluginName || pe.Method != method {
		t.Fatalf("%s: error %v (%T), want a *PluginError of plugin %q and %s", method, err, err, pluginName, method)
	}
	prefix := fmt.Sprintf("IPAM plugin %q: %s", pluginName, strings.TrimPrefix(method, "IpamDriver."))
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q does not start with %q", err, prefix)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	return pe
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer answer
		want   ipamapi.Capability
	}{
		{"both", ok(api.CapabilitiesResponse{RequiresMACAddress: true, RequiresRequestReplay: true}), ipamapi.Capability{RequiresMACAddress: true, RequiresRequestReplay: true}},
		{"mac only", ok(map[string]bool{"RequiresMACAddress": true}), ipamapi.Capability{RequiresMACAddress: true}},
		{"none", ok(struct{}{}), ipamapi.Capability{}},
		// Older plugins have no GetCapabilities: the mux answers 404.
		{"404", nil, ipamapi.Capability{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := serve(t, options{answers: map[string]answer{api.GetCapabilities: tc.answer}})
			p, err := r.Get(t.Context(), pluginName, ipamapi.PluginEndpointType)
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(p, Config{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := a.Capability(); got != tc.want {
				t.Errorf("Capability() = %+v, want %+v", got, tc.want)
			}
			if got := a.Capabilities(); got != tc.want {
				t.Errorf("Capabilities() = %+v, want %+v", got, tc.want)
			}
			if a.Name() != pluginName {
				t.Errorf("Name() = %q", a.Name())
			}
			if tc.answer != nil {
				bodies := f.received(api.GetCapabilities)
				if len(bodies) != 1 || len(bodies[0]) != 0 {
					t.Errorf("GetCapabilities bodies = %v, want one {}", bodies)
				}
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		_, r := serve(t, options{answers: map[string]answer{api.GetCapabilities: refuse(500, "broken")}})
		p, err := r.Get(t.Context(), pluginName, ipamapi.PluginEndpointType)
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(p, Config{})
		if a != nil {
			t.Error("New returned an allocator with its error")
		}
		checkErr(t, err, api.GetCapabilities, "broken", "HTTP 500")
		if _, ok := err.(types.ForbiddenError); !ok {
			t.Errorf("error %v (%T) is not a types.ForbiddenError", err, err)
		}
	})

	t.Run("malformed answer", func(t *testing.T) {
		_, r := serve(t, options{answers: map[string]answer{api.GetCapabilities: ok(rawBody(`{"RequiresMACAddress": "yes"`))}})
		p, err := r.Get(t.Context(), pluginName, ipamapi.PluginEndpointType)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(p, Config{})
		checkErr(t, err, api.GetCapabilities, "bad answer")
		var pe *plugins.ProtocolError
		if _, ok := err.(types.InternalError); !ok || !errors.As(err, &pe) {
			t.Errorf("error %v (%T) is not an InternalError wrapping a *plugins.ProtocolError", err, err)
		}
	})

	t.Run("not an IPAM plugin", func(t *testing.T) {
		f, r := serve(t, options{implements: []string{"NetworkDriver"}})
		p, err := r.Activate(t.Context(), pluginName)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(p, Config{})
		var ie *plugins.InterfaceError
		if _, ok := err.(types.NotImplementedError); !ok || !errors.As(err, &ie) || !strings.Contains(err.Error(), pluginName) {
			t.Errorf("New: %v (%T), want a NotImplementedError wrapping a *plugins.InterfaceError", err, err)
		}
		if ms := f.methods(); len(ms) != 0 {
			t.Errorf("the plugin got %v, want nothing", ms)
		}
	})
}

// TestRequests checks the JSON each method sends and what it returns from
// a well-behaved plugin's answers.
func TestRequests(t *testing.T) {
	a, f, _ := newAllocator(t, options{answers: map[string]answer{
		api.RequestPool: ok(api.RequestPoolResponse{PoolID: "pool-1", Pool: "10.0.0.0/24",
			Data: map[string]string{netlabel.Gateway: "10.0.0.1/24", "com.example.k": "v"}}),
		// The answer's mask is the address's; the pool's is returned.
		api.RequestAddress: ok(api.RequestAddressResponse{Address: "10.0.0.7/32", Data: map[string]string{"com.example.a": "b"}}),
	}})

	local, global, err := a.GetDefaultAddressSpaces()
	if err != nil || local != "local" || global != "global" {
		t.Fatalf("GetDefaultAddressSpaces = %q, %q, %v", local, global, err)
	}
	if bodies := f.received(api.GetDefaultAddressSpaces); len(bodies) != 1 || len(bodies[0]) != 0 {
		t.Errorf("GetDefaultAddressSpaces bodies = %v, want one {}", bodies)
	}

	opts := map[string]string{"com.example.opt": "1"}
	id, pool, data, err := a.RequestPool("local", "10.0.0.0/24", "10.0.0.128/25", opts, false)
	if err != nil {
		t.Fatal(err)
	}
	if id != "pool-1" || pool.String() != "10.0.0.0/24" || data[netlabel.Gateway] != "10.0.0.1/24" || data["com.example.k"] != "v" {
		t.Errorf("RequestPool = %q, %v, %v", id, pool, data)
	}
	wantBody(t, f, api.RequestPool, map[string]any{
		"AddressSpace": "local", "Pool": "10.0.0.0/24", "SubPool": "10.0.0.128/25",
		"Options": map[string]any{"com.example.opt": "1"}, "V6": false,
	})

	t.Run("any address", func(t *testing.T) {
		addr, data, err := a.RequestAddress(id, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if addr.String() != "10.0.0.7/24" || data["com.example.a"] != "b" {
			t.Errorf("RequestAddress = %v, %v, want 10.0.0.7/24 (the pool's mask) and the data", addr, data)
		}
		wantBody(t, f, api.RequestAddress, map[string]any{"PoolID": "pool-1", "Address": "", "Options": nil})
	})

	t.Run("preferred address with MAC", func(t *testing.T) {
		opts := map[string]string{netlabel.MacAddress: "02:42:0a:00:00:07"}
		addr, _, err := a.RequestAddress(id, net.ParseIP("10.0.0.7"), opts)
		if err != nil || addr.String() != "10.0.0.7/24" {
			t.Fatalf("RequestAddress = %v, %v", addr, err)
		}
		wantBody(t, f, api.RequestAddress, map[string]any{"PoolID": "pool-1", "Address": "10.0.0.7",
			"Options": map[string]any{netlabel.MacAddress: "02:42:0a:00:00:07"}})
	})

	t.Run("gateway", func(t *testing.T) {
		opts := map[string]string{ipamapi.RequestAddressType: netlabel.Gateway}
		if _, _, err := a.RequestAddress(id, net.ParseIP("10.0.0.7").To4(), opts); err != nil {
			t.Fatal(err)
		}
		wantBody(t, f, api.RequestAddress, map[string]any{"PoolID": "pool-1", "Address": "10.0.0.7",
			"Options": map[string]any{"RequestAddressType": "com.docker.network.gateway"}})
	})

	t.Run("release address", func(t *testing.T) {
		if err := a.ReleaseAddress(id, net.ParseIP("10.0.0.7")); err != nil {
			t.Fatal(err)
		}
		wantBody(t, f, api.ReleaseAddress, map[string]any{"PoolID": "pool-1", "Address": "10.0.0.7"})
	})

	t.Run("release pool", func(t *testing.T) {
		if err := a.ReleasePool(id); err != nil {
			t.Fatal(err)
		}
		wantBody(t, f, api.ReleasePool, map[string]any{"PoolID": "pool-1"})
		// The pool is forgotten: an address of another pool under the
		// same (reused) ID is no longer refused.
		f.reset()
		if err := a.ReleaseAddress(id, net.ParseIP("192.0.2.1")); err != nil {
			t.Fatalf("ReleaseAddress after ReleasePool: %v", err)
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		a, f, _ := newAllocator(t, options{answers: map[string]answer{
			api.RequestPool:    ok(api.RequestPoolResponse{PoolID: "v6", Pool: "fd00:1::/64"}),
			api.RequestAddress: ok(api.RequestAddressResponse{Address: "fd00:1::5/64"}),
		}})
		id, pool, _, err := a.RequestPool("global", "", "", nil, true)
		if err != nil || id != "v6" || pool.String() != "fd00:1::/64" {
			t.Fatalf("RequestPool = %q, %v, %v", id, pool, err)
		}
		wantBody(t, f, api.RequestPool, map[string]any{"AddressSpace": "global", "Pool": "", "SubPool": "", "Options": nil, "V6": true})
		addr, _, err := a.RequestAddress(id, net.ParseIP("fd00:1::5"), nil)
		if err != nil || addr.String() != "fd00:1::5/64" {
			t.Fatalf("RequestAddress = %v, %v", addr, err)
		}
		wantBody(t, f, api.RequestAddress, map[string]any{"PoolID": "v6", "Address": "fd00:1::5", "Options": nil})
	})

	t.Run("unknown pool", func(t *testing.T) {
		// A pool this allocator did not request (another allocator's,
		// or before a restart): the answer's mask is kept, nothing is
		// checked against the pool.
		addr, _, err := a.RequestAddress("elsewhere", nil, nil)
		if err != nil || addr.String() != "10.0.0.7/32" {
			t.Fatalf("RequestAddress = %v, %v, want the answer 10.0.0.7/32", addr, err)
		}
	})
}

// wantBody checks the last body the plugin got for method.
func wantBody(t *testing.T, f *fakePlugin, method string, want map[string]any) {
	t.Helper()
	bodies := f.received(method)
	if len(bodies) == 0 {
		t.Fatalf("the plugin got no %s", method)
	}
	if got := bodies[len(bodies)-1]; !reflect.DeepEqual(got, want) {
		t.Errorf("%s body = %v, want %v", method, got, want)
	}
}

// TestPoolAnswers: a pool answer the adapter refuses is an error, and the
// pool is released again when the answer has an ID.
func TestPoolAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pool   string // the pool asked for
		v6     bool
		answer api.RequestPoolResponse
		is     error  // the ipamapi error it wraps
		says   string // in the error
	}{
		{"not a CIDR", "", false, api.RequestPoolResponse{PoolID: "p", Pool: "10.0.0.0"}, ipamapi.ErrInvalidPool, `pool "10.0.0.0" is not a CIDR`},
		{"garbage", "", false, api.RequestPoolResponse{PoolID: "p", Pool: "ten/8"}, ipamapi.ErrInvalidPool, "not a CIDR"},
		{"IPv6 for IPv4", "", false, api.RequestPoolResponse{PoolID: "p", Pool: "fd00::/64"}, ipamapi.ErrInvalidPool, "not an IPv4 pool"},
		{"IPv4 for IPv6", "", true, api.RequestPoolResponse{PoolID: "p", Pool: "10.0.0.0/24"}, ipamapi.ErrInvalidPool, "not an IPv6 pool"},
		{"mapped IPv4 for IPv6", "", true, api.RequestPoolResponse{PoolID: "p", Pool: "::ffff:10.0.0.0/120"}, ipamapi.ErrInvalidPool, "not an IPv6 pool"},
		{"other pool", "10.1.0.0/16", false, api.RequestPoolResponse{PoolID: "p", Pool: "10.2.0.0/16"}, ipamapi.ErrInvalidPool, "not the 10.1.0.0/16 asked for"},
		{"narrower pool", "10.1.0.0/16", false, api.RequestPoolResponse{PoolID: "p", Pool: "10.1.0.0/24"}, ipamapi.ErrInvalidPool, "asked for"},
		{"gateway not CIDR", "", false, api.RequestPoolResponse{PoolID: "p", Pool: "10.0.0.0/24", Data: map[string]string{netlabel.Gateway: "10.0.0.1"}}, ipamapi.ErrInvalidPool, "not in CIDR form"},
		{"gateway outside", "", false, api.RequestPoolResponse{PoolID: "p", Pool: "10.0.0.0/24", Data: map[string]string{netlabel.Gateway: "10.9.0.1/24"}}, ipamapi.ErrIPOutOfRange, "gateway 10.9.0.1 is not in pool 10.0.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, f, _ := newAllocator(t, options{answers: map[string]answer{api.RequestPool: ok(tc.answer)}})
			_, _, _, err := a.RequestPool("local", tc.pool, "", nil, tc.v6)
			pe := checkErr(t, err, api.RequestPool, "invalid answer", tc.says, "released again with ReleasePool")
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if _, ok := err.(types.InternalError); !ok {
				t.Errorf("error %v (%T) is not a types.InternalError", err, err)
			}
			var re *ResponseError
			if !errors.As(err, &re) || pe.Rollback != api.ReleasePool || pe.RollbackErr != nil {
				t.Errorf("error %+v, want a *ResponseError rolled back with ReleasePool", pe)
			}
			if got := f.received(api.ReleasePool); !reflect.DeepEqual(got, []map[string]any{{"PoolID": "p"}}) {
				t.Errorf("ReleasePool bodies = %v, want one of pool p", got)
			}
		})
	}

	t.Run("no pool ID", func(t *testing.T) {
		a, f, _ := newAllocator(t, options{answers: map[string]answer{api.RequestPool: ok(api.RequestPoolResponse{Pool: "10.0.0.0/24"})}})
		_, _, _, err := a.RequestPool("local", "", "", nil, false)
		pe := checkErr(t, err, api.RequestPool, "no pool ID")
		if !errors.Is(err, ipamapi.ErrInvalidPool) || pe.Rollback != "" {
			t.Errorf("error %v (rollback %q), want ErrInvalidPool and no rollback", err, pe.Rollback)
		}
		if ms := f.methods(); !reflect.DeepEqual(ms, []string{api.RequestPool}) {
			t.Errorf("the plugin got %v, want only the RequestPool", ms)
		}
	})

	t.Run("rollback fails", func(t *testing.T) {
		a, f, logs := newAllocator(t, options{answers: map[string]answer{
			api.RequestPool: ok(api.RequestPoolResponse{PoolID: "p", Pool: "10.2.0.0/16"}),
			api.ReleasePool: refuse(500, "pool is busy"),
		}})
		_, _, _, err := a.RequestPool("local", "10.1.0.0/16", "", nil, false)
		pe := checkErr(t, err, api.RequestPool, "asked for", "releasing it again with ReleasePool failed too", "pool is busy")
		var re *plugins.RemoteError
		if !errors.As(pe.RollbackErr, &re) || re.Msg != "pool is busy" {
			t.Errorf("RollbackErr = %v, want the plugin's refusal", pe.RollbackErr)
		}
		// The answer was refused: the class is the refusal's, not the
		// rollback's.
		if _, ok := err.(types.InternalError); !ok {
			t.Errorf("error %v (%T) is not a types.InternalError", err, err)
		}
		if len(f.received(api.ReleasePool)) != 1 {
			t.Errorf("the plugin got %v, want one ReleasePool", f.methods())
		}
		if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "pool is busy") || !strings.Contains(l, pluginName) {
			t.Errorf("log %q has no warning of the failed rollback", l)
		}
	})

	t.Run("refused pool not kept", func(t *testing.T) {
		a, _, _ := newAllocator(t, options{answers: map[string]answer{
			api.RequestPool:    ok(api.RequestPoolResponse{PoolID: "p", Pool: "10.0.0.0/24", Data: map[string]string{netlabel.Gateway: "bad"}}),
			api.RequestAddress: ok(api.RequestAddressResponse{Address: "192.0.2.1/24"}),
		}})
		if _, _, _, err := a.RequestPool("local", "", "", nil, false); err == nil {
			t.Fatal("RequestPool succeeded")
		}
		// An unknown pool: the address is not checked against it.
		if _, _, err := a.RequestAddress("p", nil, nil); err != nil {
			t.Errorf("RequestAddress in the refused pool's ID: %v", err)
		}
	})
}

// TestAddressAnswers: an address answer the adapter refuses is an error,
// and the address is released again when there is one.
func TestAddressAnswers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		preferred string
		answer    string
		is        error  // the ipamapi error it wraps, or nil
		says      string // in the error
		release   string // the Address of the ReleaseAddress, "" for none
	}{
		{"outside pool", "", "10.9.0.5/24", ipamapi.ErrIPOutOfRange, "address 10.9.0.5 is not in pool 10.0.0.0/24", "10.9.0.5"},
		{"other family", "", "fd00::5/64", ipamapi.ErrIPOutOfRange, "not in pool", "fd00::5"},
		{"not the preferred", "10.0.0.5", "10.0.0.6/24", nil, "address 10.0.0.6 is not the 10.0.0.5 asked for", "10.0.0.6"},
		{"preferred outside", "10.0.0.5", "10.9.0.5/24", ipamapi.ErrIPOutOfRange, "not in pool", "10.9.0.5"},
		{"bare address", "", "10.0.0.5", nil, `address "10.0.0.5" is not in CIDR form`, "10.0.0.5"},
		{"garbage", "", "ten", nil, "not in CIDR form", "ten"},
		{"empty", "", "", nil, "no address", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, f, _ := newAllocator(t, options{answers: map[string]answer{
				api.RequestAddress: ok(api.RequestAddressResponse{Address: tc.answer}),
			}})
			id, _, _, err := a.RequestPool("local", "", "", nil, false)
			if err != nil {
				t.Fatal(err)
			}
			var ip net.IP
			if tc.preferred != "" {
				ip = net.ParseIP(tc.preferred)
			}
			addr, _, err := a.RequestAddress(id, ip, nil)
			if addr != nil {
				t.Errorf("RequestAddress returned %v with its error", addr)
			}
			pe := checkErr(t, err, api.RequestAddress, "invalid answer", tc.says)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if _, ok := err.(types.InternalError); !ok {
				t.Errorf("error %v (%T) is not a types.InternalError", err, err)
			}
			got := f.received(api.ReleaseAddress)
			if tc.release == "" {
				if len(got) != 0 || pe.Rollback != "" {
					t.Errorf("ReleaseAddress bodies = %v (rollback %q), want none", got, pe.Rollback)
				}
				return
			}
			if want := []map[string]any{{"PoolID": id, "Address": tc.release}}; !reflect.DeepEqual(got, want) {
				t.Errorf("ReleaseAddress bodies = %v, want %v", got, want)
			}
			if pe.Rollback != api.ReleaseAddress || pe.RollbackErr != nil || !strings.Contains(err.Error(), "released again with ReleaseAddress") {
				t.Errorf("error %v (%+v), want it rolled back with ReleaseAddress", err, pe)
			}
		})
	}
}

// TestRefusedBeforeSending: requests that cannot be right are refused as
// the caller's error, without a call.
func TestRefusedBeforeSending(t *testing.T) {
	a, f, _ := newAllocator(t, options{})
	id, _, _, err := a.RequestPool("local", "", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.reset()
	for _, tc := range []struct {
		name string
		do   func() error
		is   error
	}{
		{"pool not a CIDR", func() error { _, _, _, err := a.RequestPool("local", "10.0.0.0", "", nil, false); return err }, ipamapi.ErrInvalidPool},
		{"pool of the other family", func() error { _, _, _, err := a.RequestPool("local", "10.0.0.0/8", "", nil, true); return err }, ipamapi.ErrInvalidPool},
		{"sub-pool not a CIDR", func() error { _, _, _, err := a.RequestPool("local", "10.0.0.0/8", "x", nil, false); return err }, ipamapi.ErrInvalidSubPool},
		{"sub-pool outside", func() error {
			_, _, _, err := a.RequestPool("local", "10.0.0.0/8", "11.0.0.0/24", nil, false)
			return err
		}, ipamapi.ErrInvalidSubPool},
		{"sub-pool wider", func() error {
			_, _, _, err := a.RequestPool("local", "10.0.0.0/16", "10.0.0.0/8", nil, false)
			return err
		}, ipamapi.ErrInvalidSubPool},
		{"address without pool ID", func() error { _, _, err := a.RequestAddress("", nil, nil); return err }, ipamapi.ErrInvalidRequest},
		{"malformed address", func() error { _, _, err := a.RequestAddress(id, net.IP{1, 2, 3}, nil); return err }, ipamapi.ErrInvalidRequest},
		{"preferred outside pool", func() error { _, _, err := a.RequestAddress(id, net.ParseIP("10.9.0.1"), nil); return err }, ipamapi.ErrIPOutOfRange},
		{"release without pool ID", func() error { return a.ReleasePool("") }, ipamapi.ErrInvalidRequest},
		{"release address without pool ID", func() error { return a.ReleaseAddress("", net.ParseIP("10.0.0.1")) }, ipamapi.ErrInvalidRequest},
		{"release nil address", func() error { return a.ReleaseAddress(id, nil) }, ipamapi.ErrInvalidRequest},
		{"release address outside pool", func() error { return a.ReleaseAddress(id, net.ParseIP("10.9.0.1")) }, ipamapi.ErrIPOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if _, ok := err.(types.BadRequestError); !ok || !errors.Is(err, tc.is) {
				t.Errorf("error %v (%T), want a types.BadRequestError wrapping %v", err, err, tc.is)
			}
			if err != nil && !strings.HasPrefix(err.Error(), fmt.Sprintf("IPAM plugin %q: ", pluginName)) {
				t.Errorf("error %q does not name the plugin", err)
			}
			if ms := f.methods(); len(ms) != 0 {
				t.Errorf("the plugin got %v, want nothing", ms)
			}
		})
	}
}

// TestErrAnswers: a plugin's refusal, in the body of a 200 or with an
// error status, is a ForbiddenError naming the plugin and the method and
// carrying the plugin's message; a method the plugin lacks is a
// NotImplementedError.
func TestErrAnswers(t *testing.T) {
	calls := map[string]func(a *Allocator) error{
		api.GetDefaultAddressSpaces: func(a *Allocator) error { _, _, err := a.GetDefaultAddressSpaces(); return err },
		api.RequestPool:             func(a *Allocator) error { _, _, _, err := a.RequestPool("local", "", "", nil, false); return err },
		api.ReleasePool:             func(a *Allocator) error { return a.ReleasePool("pool-1") },
		api.RequestAddress:          func(a *Allocator) error { _, _, err := a.RequestAddress("pool-1", nil, nil); return err },
		api.ReleaseAddress:          func(a *Allocator) error { return a.ReleaseAddress("pool-1", net.ParseIP("10.0.0.5")) },
	}
	for method, do := range calls {
		for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
			t.Run(fmt.Sprintf("%s/%d", method, status), func(t *testing.T) {
				msg := "no luck with " + method
				a, f, _ := newAllocator(t, options{answers: map[string]answer{method: refuse(status, msg)}})
				err := do(a)
				checkErr(t, err, method, msg)
				if _, ok := err.(types.ForbiddenError); !ok {
					t.Errorf("error %v (%T) is not a types.ForbiddenError", err, err)
				}
				var re *plugins.RemoteError
				if !errors.As(err, &re) || re.Status != status || re.Msg != msg {
					t.Errorf("error %v does not carry the plugin's *plugins.RemoteError", err)
				}
				if status != http.StatusOK && !strings.Contains(err.Error(), "HTTP 500") {
					t.Errorf("error %q does not say the status", err)
				}
				// A refusal reserved nothing: no rollback.
				if ms := f.methods(); !reflect.DeepEqual(ms, []string{method}) {
					t.Errorf("the plugin got %v, want only %s", ms, method)
				}
			})
		}
		t.Run(method+"/404", func(t *testing.T) {
			a, _, _ := newAllocator(t, options{answers: map[string]answer{method: nil}})
			err := do(a)
			checkErr(t, err, method, "HTTP 404")
			if _, ok := err.(types.NotImplementedError); !ok {
				t.Errorf("error %v (%T) is not a types.NotImplementedError", err, err)
			}
		})
	}

	t.Run("unnamed address space", func(t *testing.T) {
		a, _, _ := newAllocator(t, options{answers: map[string]answer{
			api.GetDefaultAddressSpaces: ok(api.AddressSpacesResponse{LocalDefaultAddressSpace: "local"}),
		}})
		_, _, err := a.GetDefaultAddressSpaces()
		checkErr(t, err, api.GetDefaultAddressSpaces, "address space is unnamed")
		if !errors.Is(err, ipamapi.ErrInvalidAddressSpace) {
			t.Errorf("error %v does not wrap ErrInvalidAddressSpace", err)
		}
	})
}

// TestTimeout: a plugin that never answers yields a TimeoutError naming
// the plugin and the method.
func TestTimeout(t *testing.T) {
	a, _, _ := newAllocator(t, options{
		answers:     map[string]answer{api.RequestPool: hang, api.RequestAddress: hang},
		callTimeout: 100 * time.Millisecond,
	})
	_, _, _, err := a.RequestPool("local", "", "", nil, false)
	checkErr(t, err, api.RequestPool, "no answer in time", "any IPv4 pool")
	var te *plugins.TimeoutError
	if _, ok := err.(types.TimeoutError); !ok || !errors.As(err, &te) {
		t.Errorf("error %v (%T) is not a types.TimeoutError wrapping a *plugins.TimeoutError", err, err)
	}
	_, _, err = a.RequestAddress("pool-1", net.ParseIP("10.0.0.5"), nil)
	checkErr(t, err, api.RequestAddress, "no answer in time", `address 10.0.0.5 of pool "pool-1"`)
	if _, ok := err.(types.TimeoutError); !ok {
		t.Errorf("error %v (%T) is not a types.TimeoutError", err, err)
	}
}

// TestUnavailable: a plugin that went away is a NoServiceError naming the
// plugin and the method.
func TestUnavailable(t *testing.T) {
	a, f, _ := newAllocator(t, options{retryWindow: 100 * time.Millisecond})
	f.stop()
	_, _, _, err := a.RequestPool("local", "", "", nil, false)
	checkErr(t, err, api.RequestPool, "cannot reach the plugin")
	var ue *plugins.UnavailableError
	if _, ok := err.(types.NoServiceError); !ok || !errors.As(err, &ue) {
		t.Errorf("error %v (%T) is not a types.NoServiceError wrapping a *plugins.UnavailableError", err, err)
	}
}

// TestConcurrent runs the methods from many goroutines, for the race
// detector.
func TestConcurrent(t *testing.T) {
	a, _, _ := newAllocator(t, options{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 20 {
		wg.Go(func() {
			id, _, _, err := a.RequestPool("local", "", "", nil, false)
			if err != nil {
				errs <- err
				return
			}
			if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if err := a.ReleasePool("pool-1"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
