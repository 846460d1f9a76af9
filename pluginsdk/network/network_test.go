package network_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/pluginsdk/network"
)

// options is a free-form option map whose values come back from JSON as
// they are (float64 numbers, []any, map[string]any).
var options = map[string]any{
	"com.docker.network.generic": map[string]any{"mtu": "1400", "vlan": 7.0},
	"list":                       []any{"a", 1.5, true, nil},
	"html":                       "<a&b>",
}

// requests has a request of every method, every field set, and the
// answer the fake driver gives it.
var requests = []struct {
	method string
	req    any
	answer any // nil for a method that answers only an error
}{
	{api.GetCapabilities, nil, &capsAnswer},
	{api.CreateNetwork, &network.CreateNetworkRequest{
		NetworkID: "n1", Options: options,
		IPv4Data: []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24",
			AuxAddresses: map[string]any{"router": "10.0.0.254/24"}}},
		IPv6Data: []*network.IPAMData{{AddressSpace: "LocalDefault", Pool: "fd00::/64", Gateway: "fd00::1/64",
			AuxAddresses: map[string]any{"dns": "fd00::53/64"}}},
	}, nil},
	{api.AllocateNetwork, &network.AllocateNetworkRequest{
		NetworkID: "n1", Options: map[string]string{"a": "b"},
		IPv4Data: []network.IPAMData{{AddressSpace: "GlobalDefault", Pool: "10.1.0.0/16", Gateway: "10.1.0.1/16",
			AuxAddresses: map[string]any{"x": "10.1.0.2/16"}}},
		IPv6Data: []network.IPAMData{{AddressSpace: "GlobalDefault", Pool: "fd01::/64", Gateway: "fd01::1/64",
			AuxAddresses: map[string]any{"y": "fd01::2/64"}}},
	}, &allocateAnswer},
	{api.DeleteNetwork, &network.DeleteNetworkRequest{NetworkID: "n1"}, nil},
	{api.FreeNetwork, &network.FreeNetworkRequest{NetworkID: "n1"}, nil},
	{api.CreateEndpoint, &network.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1",
		Interface: &network.EndpointInterface{Address: "10.0.0.2/24", AddressIPv6: "fd00::2/64", MacAddress: "02:42:0a:00:00:02"},
		Options:   options}, &endpointAnswer},
	{api.DeleteEndpoint, &network.DeleteEndpointRequest{NetworkID: "n1", EndpointID: "e1"}, nil},
	{api.EndpointInfo, &network.InfoRequest{NetworkID: "n1", EndpointID: "e1"}, &infoAnswer},
	{api.Join, &network.JoinRequest{NetworkID: "n1", EndpointID: "e1", SandboxKey: "/var/run/docker/netns/abc",
		Options: options}, &joinAnswer},
	{api.Leave, &network.LeaveRequest{NetworkID: "n1", EndpointID: "e1"}, nil},
	{api.DiscoverNew, &network.DiscoveryNotification{DiscoveryType: 1,
		DiscoveryData: map[string]any{"Address": "192.0.2.7", "self": true}}, nil},
	{api.DiscoverDelete, &network.DiscoveryNotification{DiscoveryType: 2, DiscoveryData: "datastore"}, nil},
	{api.ProgramExternalConnectivity, &network.ProgramExternalConnectivityRequest{NetworkID: "n1", EndpointID: "e1",
		Options: options}, nil},
	{api.RevokeExternalConnectivity, &network.RevokeExternalConnectivityRequest{NetworkID: "n1", EndpointID: "e1"}, nil},
}

// driverMethod is the Driver method serving a protocol method.
func driverMethod(method string) string {
	if method == api.EndpointInfo {
		return "EndpointInfo"
	}
	return method[len("NetworkDriver."):]
}

// serveUnix runs h.ServeUnix on a socket in a temporary plugin directory
// until the test ends, and returns the plugin, found and activated by
// the library's registry.
func serveUnix(t *testing.T, h *network.Handler, name string) *plugins.Plugin {
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
		pl, err := r.Get(t.Context(), name, "NetworkDriver")
		if err == nil {
			return pl
		}
		if !errors.As(err, new(*plugins.NotFoundError)) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// TestLibraryClient: the library's plugin client calls every method of a
// Driver served by Handler; the driver gets the requests and the client
// its answers unchanged, and a driver error comes back as the
// plugin's message.
func TestLibraryClient(t *testing.T) {
	drv := &fakeDriver{}
	pl := serveUnix(t, network.NewHandler(drv), "fake")
	if !reflect.DeepEqual(pl.Manifest(), []string{"NetworkDriver"}) {
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
		want := call{driverMethod(tc.method), tc.req}
		if tc.req == nil {
			want.Req = nil
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("driver got %#v, want %#v", got[i], want)
		}
	}

	drv.set("Join", false)
	err := pl.Call(t.Context(), api.Join, &network.JoinRequest{NetworkID: "n1"}, new(network.JoinResponse))
	var re *plugins.RemoteError
	if !errors.As(err, &re) || re.Status != 500 || re.Msg != `Join refused: network "n1" <busy> & locked` {
		t.Fatalf("driver error came back as %v", err)
	}
	drv.set("", false)
	err = pl.Call(t.Context(), api.Join, map[string]any{"Options": "not a map"}, new(network.JoinResponse))
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("undecodable request came back as %v", err)
	}
}

func TestNewErrorResponse(t *testing.T) {
	if e := network.NewErrorResponse("boom"); e.Err != "boom" {
		t.Fatalf("NewErrorResponse: %+v", e)
	}
}
