package portmapper

import (
	"context"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// routedMapper is the built-in "routed" mapper: the container's address is
// routed, so a published port is the container's own address and port,
// opened for forwarding. It holds no state.
type routedMapper struct{}

var _ Mapper = routedMapper{}

// MapPorts returns each backend as its own frontend, with AllowForwarding
// and no NAT rule. A request for a host port or host address other than
// the backend's is refused: routed cannot translate, and publishing the
// port anyway would expose it more widely than asked (a port asked on
// 127.0.0.1 only, say).
func (routedMapper) MapPorts(_ context.Context, req api.MapPortsRequest) ([]api.PortBinding, error) {
	if err := ValidateRequest(req); err != nil {
		return nil, err
	}
	out := make([]api.PortBinding, len(req.Reqs))
	for i, r := range req.Reqs {
		if pr := frontendRange(r); !pr.ephemeral() && !pr.contains(r.BackendPort) {
			return nil, types.BadRequestErrorf("port binding %d (%s): the routed port mapper cannot translate: it publishes the container's port %d itself, not %s",
				i, describeReq(r), r.BackendPort, pr)
		}
		if r.FrontendIP.IsValid() && !r.FrontendIP.IsUnspecified() && r.FrontendIP != r.BackendIP {
			return nil, types.BadRequestErrorf("port binding %d (%s): the routed port mapper cannot publish on host address %s: the container is reached at its own address %s",
				i, describeReq(r), r.FrontendIP, r.BackendIP)
		}
		out[i] = api.PortBinding{
			Proto:           r.Proto,
			BackendIP:       r.BackendIP,
			BackendPort:     r.BackendPort,
			FrontendIP:      r.BackendIP,
			FrontendPort:    r.BackendPort,
			AllowForwarding: true,
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// UnmapPorts does nothing: the routed mapper holds nothing.
func (routedMapper) UnmapPorts(context.Context, api.UnmapPortsRequest) error { return nil }
