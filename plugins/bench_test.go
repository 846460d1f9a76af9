package plugins

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/netkit/libnetwork/pluginsdk/portmapper"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// fixedMapper answers every binding with its asked-for port.
type fixedMapper struct{}

func (fixedMapper) MapPorts(req portmapper.MapPortsRequest) (portmapper.MapPortsResponse, error) {
	var res portmapper.MapPortsResponse
	for _, r := range req.Reqs {
		res.PortBindings = append(res.PortBindings, portmapper.PortBinding{
			Proto: r.Proto, BackendIP: r.BackendIP, BackendPort: r.BackendPort,
			FrontendIP: r.FrontendIP, FrontendPort: r.FrontendPort,
			NAT: &portmapper.NATRule{Proto: r.Proto, FrontendIP: r.FrontendIP, FrontendPort: r.FrontendPort, BackendIP: r.BackendIP, BackendPort: r.BackendPort},
		})
	}
	return res, nil
}

func (fixedMapper) UnmapPorts(portmapper.UnmapPortsRequest) error { return nil }

// BenchmarkMapPorts is one MapPorts call of two bindings to an SDK plugin
// on a unix socket: the cost a remote port mapper adds to an attach.
func BenchmarkMapPorts(b *testing.B) {
	dir := b.TempDir()
	h := portmapper.NewHandler(fixedMapper{})
	served := make(chan error, 1)
	go func() { served <- h.ServeUnix(filepath.Join(dir, "bench.sock"), -1) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		<-served
	}()
	writeFile(b, filepath.Join(dir, "specs", "bench.spec"), "unix://"+filepath.Join(dir, "bench.sock"))
	r := NewRegistry(Config{SpecDirs: []string{filepath.Join(dir, "specs")}})
	defer r.Close()
	pl, err := r.Get(b.Context(), "bench", api.Interface)
	if err != nil {
		b.Fatal(err)
	}
	req := api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80, FrontendPort: 8080, FrontendPortEnd: 8080},
		{Proto: types.TCP, BackendIP: netip.MustParseAddr("fd00::2"), BackendPort: 80, FrontendPort: 8080, FrontendPortEnd: 8080},
	}}
	b.ReportAllocs()
	for b.Loop() {
		var resp api.MapPortsResponse
		if err := pl.Call(b.Context(), api.MapPortsMethod, req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}
