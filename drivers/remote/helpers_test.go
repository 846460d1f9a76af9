package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/types"
)

// allMethods are the methods of the protocol, each served by the fake
// plugin unless left out.
var allMethods = []string{
	api.GetCapabilities, api.CreateNetwork, api.AllocateNetwork, api.DeleteNetwork,
	api.FreeNetwork, api.CreateEndpoint, api.DeleteEndpoint, api.EndpointInfo,
	api.Join, api.Leave, api.DiscoverNew, api.DiscoverDelete,
	api.ProgramExternalConnectivity, api.RevokeExternalConnectivity,
}

// call is a request the fake plugin got.
type call struct {
	Method string
	Body   json.RawMessage
}

// answer is how the fake plugin answers a method.
type answer struct {
	status int
	body   string
	hang   bool // never answer (until the client gives up)
}

// fakePlugin is a network driver plugin served in-process on a unix socket
// with pluginsdk: it records every request and answers as told (200 "{}"
// by default, {"Scope":"local"} to GetCapabilities).
type fakePlugin struct {
	name string
	stop chan struct{}
	// shutdown stops serving (once) and removes the socket.
	shutdown func()

	mu      sync.Mutex
	calls   []call
	answers map[string]answer
}

// pluginOpts are the options of a fake plugin.
type pluginOpts struct {
	// missing are the methods the plugin does not serve (404).
	missing []string
	// callTimeout is the registry's call timeout (default 5 s).
	callTimeout time.Duration
	// retryWindow is the registry's retry window (default 5 s).
	retryWindow time.Duration
	// logger is the driver's logger.
	logger *slog.Logger
	// answers are set before the plugin is activated.
	answers map[string]answer
}

// startPlugin serves a fake plugin named name and returns it with the
// *plugins.Plugin a registry found for it.
func startPlugin(t *testing.T, name string, o pluginOpts) (*fakePlugin, *plugins.Plugin) {
	t.Helper()
	f := &fakePlugin{name: name, stop: make(chan struct{}), answers: map[string]answer{
		api.GetCapabilities: {status: 200, body: `{"Scope":"local"}`},
	}}
	for m, a := range o.answers {
		f.answers[m] = a
	}
	h := pluginsdk.NewHandler(driverapi.NetworkPluginEndpointType)
	for _, m := range allMethods {
		if !slices.Contains(o.missing, m) {
			h.HandleFunc("/"+m, f.serve(m))
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, name+".sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(l) }()
	f.shutdown = sync.OnceFunc(func() {
		close(f.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("plugin shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("plugin Serve: %v", err)
		}
		os.Remove(sock)
	})
	t.Cleanup(f.shutdown)

	timeout := o.callTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	reg := plugins.NewRegistry(plugins.Config{SocketDirs: []string{dir}, CallTimeout: timeout, RetryWindow: o.retryWindow})
	t.Cleanup(reg.Close)
	p, err := reg.Get(t.Context(), name, driverapi.NetworkPluginEndpointType)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return f, p
}

// newDriver serves a fake plugin and returns the driver of it, with the
// GetCapabilities call forgotten.
func newDriver(t *testing.T, name string, o pluginOpts) (*Driver, *fakePlugin) {
	t.Helper()
	f, p := startPlugin(t, name, o)
	d, err := New(p, Config{Logger: o.logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.reset()
	return d, f
}

func (f *fakePlugin) serve(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			pluginsdk.EncodeResponse(w, http.StatusBadRequest, pluginsdk.ErrorResponse{Err: err.Error()})
			return
		}
		f.mu.Lock()
		f.calls = append(f.calls, call{Method: method, Body: body})
		a, ok := f.answers[method]
		f.mu.Unlock()
		if !ok {
			a = answer{status: 200, body: "{}"}
		}
		if a.hang {
			select {
			case <-r.Context().Done():
			case <-f.stop:
			}
			return
		}
		w.Header().Set("Content-Type", pluginsdk.ContentType)
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}
}

// answer sets how the plugin answers method from now on.
func (f *fakePlugin) answer(method string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method] = answer{status: status, body: body}
}

// hang makes the plugin never answer method.
func (f *fakePlugin) hang(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method] = answer{hang: true}
}

// reset forgets the calls so far.
func (f *fakePlugin) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// takeCalls returns the calls so far and forgets them.
func (f *fakePlugin) takeCalls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// methods returns the methods of calls, in order.
func methods(calls []call) []string {
	var ms []string
	for _, c := range calls {
		ms = append(ms, c.Method)
	}
	return ms
}

// checkCalls checks that the plugin got exactly the calls want: methods
// in order, each with the JSON body given (compared as decoded JSON).
func checkCalls(t *testing.T, f *fakePlugin, want ...call) {
	t.Helper()
	got := f.takeCalls()
	if !slices.Equal(methods(got), methods(want)) {
		t.Fatalf("the plugin got %q, want %q", methods(got), methods(want))
	}
	for i := range want {
		checkJSON(t, want[i].Method, got[i].Body, string(want[i].Body))
	}
}

func checkJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: body %s: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: expected body %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s sent\n  %s\nwant\n  %s", what, got, want)
	}
}

// checkErr checks that err is of class (tested by plain type assertion,
// as v0.7 callers do) and says all of parts.
func checkErr[C error](t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want a %s", reflect.TypeFor[C]())
	}
	if _, ok := err.(C); !ok {
		t.Errorf("error %q is a %T, want a %s", err, err, reflect.TypeFor[C]())
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

func asError[T error](t *testing.T, err error) T {
	t.Helper()
	var e T
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) does not wrap a %T", err, err, e)
	}
	return e
}

func mustCIDR(s string) *net.IPNet {
	n, err := types.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// fakeIface is a driverapi.InterfaceInfo that records what is set on it
// and refuses, as the controller does, to set a field twice.
type fakeIface struct {
	addr, addr6 *net.IPNet
	mac         net.HardwareAddr
	sets        []string
}

func (i *fakeIface) SetMacAddress(mac net.HardwareAddr) error {
	if i.mac != nil {
		return types.ForbiddenErrorf("MAC address present (%s)", i.mac)
	}
	i.mac = mac
	i.sets = append(i.sets, "mac "+mac.String())
	return nil
}

func (i *fakeIface) SetIPAddress(ip *net.IPNet) error {
	p := &i.addr
	if ip.IP.To4() == nil {
		p = &i.addr6
	}
	if *p != nil {
		return types.ForbiddenErrorf("address present (%s)", *p)
	}
	*p = ip
	i.sets = append(i.sets, "ip "+ip.String())
	return nil
}

func (i *fakeIface) MacAddress() net.HardwareAddr { return i.mac }
func (i *fakeIface) Address() *net.IPNet          { return i.addr }
func (i *fakeIface) AddressIPv6() *net.IPNet      { return i.addr6 }

// fakeJoin is a driverapi.JoinInfo that records what is reported, in
// order; refuse makes the setter of that name fail.
type fakeJoin struct {
	refuse   string
	reported []string
}

func (j *fakeJoin) InterfaceName() driverapi.InterfaceNameInfo { return j }
func (j *fakeJoin) Sandbox() driverapi.SandboxInfo             { return nil }

func (j *fakeJoin) record(what string, format string, a ...any) error {
	if j.refuse == what {
		return types.ForbiddenErrorf("%s refused", what)
	}
	j.reported = append(j.reported, what+" "+fmt.Sprintf(format, a...))
	return nil
}

func (j *fakeJoin) SetNames(src, dstPrefix string) error {
	return j.record("names", "%s %s", src, dstPrefix)
}
func (j *fakeJoin) SetCreatedInSandbox() error { return j.record("insandbox", "") }
func (j *fakeJoin) SetGateway(ip net.IP) error { return j.record("gw", "%s %d", ip, len(ip)) }
func (j *fakeJoin) SetGatewayIPv6(ip net.IP) error {
	return j.record("gw6", "%s", ip)
}
func (j *fakeJoin) AddStaticRoute(dst *net.IPNet, routeType int, nextHop net.IP) error {
	return j.record("route", "%s %d %v", dst, routeType, nextHop)
}
func (j *fakeJoin) DisableGatewayService() { _ = j.record("disablegw", "") }

var (
	_ driverapi.InterfaceInfo = (*fakeIface)(nil)
	_ driverapi.JoinInfo      = (*fakeJoin)(nil)
)
