package portmapper

import (
	"testing"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// BenchmarkNATMapUnmap: MapPorts then UnmapPorts of one group of two
// bindings (the IPv4 and IPv6 bindings of a container port) on an
// ephemeral host port: one allocation with two sockets, then their
// release.
func BenchmarkNATMapUnmap(b *testing.B) {
	ns := newNamespace(b)
	m := mustMapper(b, newRegistry(b, ns, nil), NAT)
	req := api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80},
		{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80},
	}}
	b.ReportAllocs()
	for b.Loop() {
		bs, err := m.MapPorts(b.Context(), req)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.UnmapPorts(b.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
			b.Fatal(err)
		}
	}
}
