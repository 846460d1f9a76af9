package portmapper

import (
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// TestRouted: the routed mapper publishes the container's own address and
// port, with forwarding and no NAT, and refuses what it cannot do.
func TestRouted(t *testing.T) {
	ns := newNamespace(t)
	r := newRegistry(t, ns, nil)
	m := mustMapper(t, r, Routed)

	bs, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80},
		{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendIP: any6, FrontendPort: 80},
		{Proto: types.UDP, BackendIP: ctr4, BackendPort: 53, FrontendIP: ctr4, FrontendPort: 50, FrontendPortEnd: 60},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []api.PortBinding{
		{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendIP: ctr4, FrontendPort: 80, AllowForwarding: true},
		{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendIP: ctr6, FrontendPort: 80, AllowForwarding: true},
		{Proto: types.UDP, BackendIP: ctr4, BackendPort: 53, FrontendIP: ctr4, FrontendPort: 53, AllowForwarding: true},
	}
	if len(bs) != len(want) {
		t.Fatalf("MapPorts = %+v", bs)
	}
	for i := range want {
		if bs[i] != want[i] {
			t.Errorf("binding %d = %+v, want %+v", i, bs[i], want[i])
		}
	}
	// No host port was reserved.
	assertFree(t, ns, types.TCP, any4, 80)
	if err := m.UnmapPorts(t.Context(), api.UnmapPortsRequest{PortBindings: bs}); err != nil {
		t.Fatal(err)
	}

	for name, req := range map[string]api.PortBindingReq{
		"other port":    {Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8080},
		"range without": {Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8000, FrontendPortEnd: 8010},
		"host address":  {Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendIP: netip.MustParseAddr("127.0.0.1")},
		"invalid":       {Proto: types.TCP, BackendIP: ctr4},
	} {
		if _, err := m.MapPorts(t.Context(), api.MapPortsRequest{Reqs: []api.PortBindingReq{req}}); !types.IsBadRequest(err) {
			t.Errorf("%s: MapPorts: %v, want a types.BadRequestError", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
