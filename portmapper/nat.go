package portmapper

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/netkit/libnetwork/portallocator"
	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// natMapper is the built-in "nat" mapper: host ports reserved by the
// allocator, NATed to the container by the rules the library programs
// from the bindings.
type natMapper struct {
	alloc *portallocator.Allocator
	log   *slog.Logger

	mu sync.Mutex
	// mapped holds every binding handed out and not yet unmapped, keyed
	// as UnmapPorts will give it back.
	mapped map[bindingKey]*natGroup
}

var _ Mapper = (*natMapper)(nil)

// natGroup is the allocation of one MapPorts call; it is released when
// its last binding is unmapped.
type natGroup struct {
	al   *portallocator.Allocation
	live int // bindings of the group still in mapped; mu guards it
}

// bindingKey identifies a binding of the nat mapper.
type bindingKey struct {
	proto        types.Protocol
	backendIP    netip.Addr
	backendPort  uint16
	frontendIP   netip.Addr
	frontendPort uint16
}

func keyOf(b api.PortBinding) bindingKey {
	return bindingKey{b.Proto, b.BackendIP, b.BackendPort, b.FrontendIP, b.FrontendPort}
}

func newNATMapper(alloc *portallocator.Allocator, log *slog.Logger) *natMapper {
	return &natMapper{alloc: alloc, log: log, mapped: make(map[bindingKey]*natGroup)}
}

// MapPorts reserves one host port for the group with one Allocate (all or
// nothing) and returns, per request, the reserved address and port with
// the NAT rule to the backend.
func (m *natMapper) MapPorts(ctx context.Context, req api.MapPortsRequest) ([]api.PortBinding, error) {
	out, err := m.MapPortGroups(ctx, []api.MapPortsRequest{req})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// MapPortGroups is MapPorts for several groups at once, all or nothing:
// their host ports are reserved in one switch into the controller's
// namespace, which costs as much as the rest of an allocation (an
// endpoint publishing 100 ports paid it 100 times).
func (m *natMapper) MapPortGroups(ctx context.Context, reqs []api.MapPortsRequest) ([][]api.PortBinding, error) {
	groups := make([][]portallocator.Request, 0, len(reqs))
	for _, req := range reqs {
		if err := ValidateRequest(req); err != nil {
			return nil, err
		}
		if len(req.Reqs) == 0 {
			continue
		}
		group := make([]portallocator.Request, len(req.Reqs))
		first := frontendRange(req.Reqs[0])
		for i, r := range req.Reqs {
			pr := frontendRange(r)
			if pr != first {
				return nil, types.BadRequestErrorf("port binding %d (%s): asks for %s but binding 0 of its group asks for %s; a group shares one host port",
					i, describeReq(r), pr, first)
			}
			group[i] = portallocator.Request{Proto: r.Proto, HostIP: frontendAddr(r), HostPort: pr.begin}
			if pr.end != pr.begin {
				group[i].HostPortEnd = pr.end
			}
		}
		groups = append(groups, group)
	}
	if err := ctx.Err(); err != nil {
		return nil, types.Errorf("nat port mapper: %w", err)
	}
	out := make([][]api.PortBinding, len(reqs))
	if len(groups) == 0 {
		return out, nil
	}
	als, err := m.alloc.AllocateGroups(groups...)
	if err != nil {
		return nil, err
	}
	next := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for gi, req := range reqs {
		if len(req.Reqs) == 0 {
			continue
		}
		al := als[next]
		next++
		bs := make([]api.PortBinding, len(req.Reqs))
		for i, r := range req.Reqs {
			hb := al.Bindings[i]
			bs[i] = api.PortBinding{
				Proto:           r.Proto,
				BackendIP:       r.BackendIP,
				BackendPort:     r.BackendPort,
				FrontendIP:      hb.HostIP,
				FrontendPort:    hb.Port,
				AllowForwarding: true,
				NAT: &api.NATRule{
					Proto:        r.Proto,
					FrontendIP:   hb.HostIP,
					FrontendPort: hb.Port,
					BackendIP:    r.BackendIP,
					BackendPort:  r.BackendPort,
				},
			}
			if hb.NoSocket {
				m.log.Warn("host port reserved without a socket: the kernel has no SCTP, so another program could take the port if SCTP is loaded later",
					"binding", describeBinding(bs[i]))
			}
		}
		g := &natGroup{al: al, live: len(bs)}
		for _, b := range bs {
			// The allocator never hands out one host port twice, so no
			// key of another live group can collide.
			m.mapped[keyOf(b)] = g
		}
		out[gi] = bs
	}
	return out, nil
}

// UnmapPorts forgets the bindings it knows and releases the host port of
// each group none of whose bindings is mapped any more. Unknown bindings,
// and bindings already unmapped, are ignored.
func (m *natMapper) UnmapPorts(_ context.Context, req api.UnmapPortsRequest) error {
	var release []*portallocator.Allocation
	m.mu.Lock()
	for _, b := range req.PortBindings {
		k := keyOf(b)
		g, ok := m.mapped[k]
		if !ok {
			continue
		}
		delete(m.mapped, k)
		if g.live--; g.live == 0 {
			release = append(release, g.al)
		}
	}
	m.mu.Unlock()
	for _, al := range release {
		m.alloc.Release(al)
	}
	return nil
}

// held reports how many bindings the mapper holds (tests).
func (m *natMapper) held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mapped)
}
