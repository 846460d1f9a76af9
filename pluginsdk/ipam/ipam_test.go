package ipam_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/pluginsdk/ipam"
)

// requests has a request of every method, every field set, and the
// answer the fake gives it.
var requests = []struct {
	method string
	req    any
	answer any // nil for a method that answers only an error
}{
	{api.GetCapabilities, nil, &capsAnswer},
	{api.GetDefaultAddressSpaces, nil, &spacesAnswer},
	{api.RequestPool, &ipam.RequestPoolRequest{AddressSpace: "local<1>", Pool: "10.0.0.0/16", SubPool: "10.0.1.0/24",
		Options: map[string]string{"opt": "<v&>"}, V6: true}, &poolAnswer},
	{api.ReleasePool, &ipam.ReleasePoolRequest{PoolID: "pool-1"}, nil},
	{api.RequestAddress, &ipam.RequestAddressRequest{PoolID: "pool-1", Address: "10.0.1.7",
		Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}}, &addressAnswer},
	{api.ReleaseAddress, &ipam.ReleaseAddressRequest{PoolID: "pool-1", Address: "10.0.1.7"}, nil},
}

// serveUnix runs h.ServeUnix on a socket in a temporary plugin directory
// until the test ends, and returns the plugin, found and activated by
// the library's registry.
func serveUnix(t *testing.T, h *ipam.Handler, name string) *plugins.Plugin {
	t.Helper()
	dir := t.TempDir()
	served := make(chan error, 1)
	go func() { served <- h.ServeUnix(filepath.Join(dir, name+".sock"), -1) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Errorf("ServeUnix: %v", err)
		}
	})
	r := plugins.NewRegistry(plugins.Config{SocketDirs: []string{dir}, RetryWindow: 10 * time.Second})
	t.Cleanup(r.Close)
	// Discovery finds only a socket that exists: wait for it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pl, err := r.Get(t.Context(), name, "IpamDriver")
		if err == nil {
			return pl
		}
		if !errors.As(err, new(*plugins.NotFoundError)) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// TestLibraryClient: the library's plugin client calls every method of an
// Ipam served by Handler; the driver gets the requests and the client its
// answers unchanged, and a driver error comes back as the plugin's
// message.
func TestLibraryClient(t *testing.T) {
	drv := &fakeIpam{}
	pl := serveUnix(t, ipam.NewHandler(drv), "fake")
	if !reflect.DeepEqual(pl.Manifest(), []string{"IpamDriver"}) {
		t.Fatalf("manifest %v", pl.Manifest())
	}
	for _, tc := range requests {
		var resp any
		if tc.answer != nil {
			resp = reflect.New(reflect.TypeOf(tc.answer).Elem()).Interface()
		}
		req := tc.req
		if req == nil {
			req = struct{}{}
		}
		if err := pl.Call(t.Context(), tc.method, req, resp); err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if !reflect.DeepEqual(resp, tc.answer) {
			t.Errorf("%s answered %+v, want %+v", tc.method, resp, tc.answer)
		}
	}
	got := drv.calls()
	if len(got) != len(requests) {
		t.Fatalf("driver got %d calls, want %d", len(got), len(requests))
	}
	for i, tc := range requests {
		want := call{tc.method[len("IpamDriver."):], tc.req}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("driver got %#v, want %#v", got[i], want)
		}
	}

	drv.set("RequestPool", false)
	err := pl.Call(t.Context(), api.RequestPool, &ipam.RequestPoolRequest{Pool: "10.0.0.0/16"}, new(ipam.RequestPoolResponse))
	var re *plugins.RemoteError
	if !errors.As(err, &re) || re.Status != 500 || re.Msg != `RequestPool refused: pool "p1" <exhausted> & locked` {
		t.Fatalf("driver error came back as %v", err)
	}
	drv.set("", false)
	err = pl.Call(t.Context(), api.RequestPool, map[string]any{"V6": "yes"}, new(ipam.RequestPoolResponse))
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("undecodable request came back as %v", err)
	}
}

func TestNewErrorResponse(t *testing.T) {
	if e := ipam.NewErrorResponse("boom"); e.Err != "boom" {
		t.Fatalf("NewErrorResponse: %+v", e)
	}
}
