package portmapper_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/pluginsdk/portmapper"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// recorder is a Driver that keeps what it was asked and answers what the
// test set.
type recorder struct {
	mu      sync.Mutex
	mapped  []portmapper.MapPortsRequest
	unmaped []portmapper.UnmapPortsRequest
	answer  portmapper.MapPortsResponse
	err     error
}

func (d *recorder) MapPorts(req portmapper.MapPortsRequest) (portmapper.MapPortsResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mapped = append(d.mapped, req)
	return d.answer, d.err
}

func (d *recorder) UnmapPorts(req portmapper.UnmapPortsRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unmaped = append(d.unmaped, req)
	return d.err
}

// serve runs h.ServeUnix on a socket in a temporary plugin directory and
// returns a registry over that directory.
func serve(t *testing.T, h *portmapper.Handler, name string) (*plugins.Registry, string) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, name+".sock")
	served := make(chan error, 1)
	go func() { served <- h.ServeUnix(socket, -1) }()
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
	return r, socket
}

// TestRoundTrip: requests and answers cross a real unix socket between
// the library's client and the SDK's handler unchanged.
func TestRoundTrip(t *testing.T) {
	why := "no SCTP here"
	drv := &recorder{answer: portmapper.MapPortsResponse{PortBindings: []portmapper.PortBinding{{
		Proto: types.TCP, BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80,
		FrontendIP: netip.MustParseAddr("192.0.2.1"), FrontendPort: 8080, AllowForwarding: true,
		NAT: &portmapper.NATRule{Proto: types.TCP, FrontendIP: netip.MustParseAddr("192.0.2.1"), FrontendPort: 8080,
			BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80},
	}, {
		Proto: types.SCTP, BackendIP: netip.MustParseAddr("fd00::2"), BackendPort: 80, DiscardReq: true, Error: &why,
	}}}}
	h := portmapper.NewHandler(drv)
	r, socket := serve(t, h, "rec")

	// Wait for the socket: discovery finds only a socket that exists.
	var pl *plugins.Plugin
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if pl, err = r.Get(t.Context(), "rec", api.Interface); err == nil {
			break
		} else if !errors.As(err, new(*plugins.NotFoundError)) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if pl.Endpoint().Address != socket || !reflect.DeepEqual(pl.Manifest(), []string{"PortMapper"}) {
		t.Fatalf("plugin at %s implements %v", pl.Endpoint(), pl.Manifest())
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}

	req := portmapper.MapPortsRequest{
		Reqs: []portmapper.PortBindingReq{
			{Proto: types.TCP, BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80,
				FrontendIP: netip.MustParseAddr("192.0.2.1"), FrontendPort: 8080, FrontendPortEnd: 8090},
			{Proto: types.SCTP, BackendIP: netip.MustParseAddr("fd00::2"), BackendPort: 80},
		},
		Labels: map[string]string{"a": "b"},
	}
	var resp portmapper.MapPortsResponse
	if err := pl.Call(t.Context(), api.MapPortsMethod, req, &resp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp, drv.answer) {
		t.Fatalf("answer %+v, want %+v", resp, drv.answer)
	}
	unmap := portmapper.UnmapPortsRequest{PortBindings: resp.PortBindings[:1], Labels: req.Labels}
	if err := pl.Call(t.Context(), api.UnmapPortsMethod, unmap, nil); err != nil {
		t.Fatal(err)
	}
	drv.mu.Lock()
	if len(drv.mapped) != 1 || !reflect.DeepEqual(drv.mapped[0], req) {
		t.Errorf("driver got %+v, want %+v", drv.mapped, req)
	}
	if len(drv.unmaped) != 1 || !reflect.DeepEqual(drv.unmaped[0], unmap) {
		t.Errorf("driver got %+v, want %+v", drv.unmaped, unmap)
	}
	drv.err = errors.New("host port 8080 is taken")
	drv.mu.Unlock()

	// A driver error reaches the library as the plugin's message.
	err := pl.Call(t.Context(), api.MapPortsMethod, req, &resp)
	var re *plugins.RemoteError
	if !errors.As(err, &re) || re.Msg != "host port 8080 is taken" || re.Status != 500 || re.Method != api.MapPortsMethod {
		t.Fatalf("driver error came back as %v", err)
	}
	// So does a request the handler cannot decode.
	err = pl.Call(t.Context(), api.MapPortsMethod, map[string]any{"Reqs": "not a list"}, &resp)
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("undecodable request came back as %v", err)
	}
}

func TestNewErrorResponse(t *testing.T) {
	if e := portmapper.NewErrorResponse("boom"); e.Err != "boom" {
		t.Fatalf("NewErrorResponse: %+v", e)
	}
}
