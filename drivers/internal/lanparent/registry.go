package lanparent

import (
	"errors"
	"log/slog"
	"net"
	"reflect"
	"sync"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Registry is a driver's networks on parents and their endpoints, with the
// parent claims the networks hold: the bookkeeping the macvlan and ipvlan
// drivers share. C is a network's configuration, E an endpoint's data.
// Its methods are safe for concurrent use; errors name the driver.
type Registry[C, E any] struct {
	driver  string
	parents *Manager
	logger  *slog.Logger

	mu   sync.Mutex
	nets map[string]*Network[C, E]
}

// Network is a network of a Registry. Its exported fields never change.
type Network[C, E any] struct {
	ID     string
	Config C
	// Parent is the parent's name in the controller's namespace.
	Parent string

	// endpoints by ID; guarded by Registry.mu.
	endpoints map[string]*registered[E]
}

// registered is an endpoint of a Network.
type registered[E any] struct {
	data   E
	joined bool
}

// NewRegistry returns an empty registry of the networks of driver, whose
// parents parents manages.
func NewRegistry[C, E any](driver string, parents *Manager, logger *slog.Logger) *Registry[C, E] {
	return &Registry[C, E]{driver: driver, parents: parents, logger: logger, nets: map[string]*Network[C, E]{}}
}

// AddNetwork takes the parent claim asks for (restore as in
// Manager.Acquire) and records network nid with cfg. compatible, if not
// nil, is asked about each other network on the same parent and may refuse
// the new one. A refusal releases the claim: nothing is left behind.
func (r *Registry[C, E]) AddNetwork(nid string, cfg C, claim Claim, restore bool, compatible func(other *Network[C, E]) error) error {
	r.mu.Lock()
	_, exists := r.nets[nid]
	r.mu.Unlock()
	if exists {
		return types.ForbiddenErrorf("create %s network %s: it exists", r.driver, nid)
	}
	p, err := r.parents.Acquire(claim, restore)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, exists := r.nets[nid]; exists {
		err = types.ForbiddenErrorf("create %s network %s: it exists", r.driver, nid)
	}
	for _, o := range r.nets {
		if err == nil && compatible != nil && o.Parent == p.Name {
			err = compatible(o)
		}
	}
	if err != nil {
		if rerr := r.parents.Release(nid); rerr != nil {
			r.logger.Warn("releasing a parent", "network", nid, "error", rerr)
		}
		return err
	}
	r.nets[nid] = &Network[C, E]{ID: nid, Config: cfg, Parent: p.Name, endpoints: map[string]*registered[E]{}}
	return nil
}

// RemoveNetwork forgets network nid and releases its parent.
func (r *Registry[C, E]) RemoveNetwork(nid string) error {
	r.mu.Lock()
	_, ok := r.nets[nid]
	delete(r.nets, nid)
	r.mu.Unlock()
	if !ok {
		return types.NotFoundErrorf("delete %s network %s: no such network", r.driver, nid)
	}
	return r.parents.Release(nid)
}

// CheckNewEndpoint refuses an endpoint eid of network nid that cannot be
// added: no such network, or the endpoint exists. For a driver that does
// work (such as setting a MAC) before AddEndpoint, which checks again.
func (r *Registry[C, E]) CheckNewEndpoint(nid, eid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkNewLocked(nid, eid)
}

func (r *Registry[C, E]) checkNewLocked(nid, eid string) error {
	n, ok := r.nets[nid]
	switch {
	case !ok:
		return types.NotFoundErrorf("endpoint %s: no %s network %s", eid, r.driver, nid)
	case n.endpoints[eid] != nil:
		return types.ForbiddenErrorf("endpoint %s of %s network %s exists", eid, r.driver, nid)
	}
	return nil
}

// AddEndpoint records endpoint eid of network nid with data, joined or
// not (a restored endpoint may be).
func (r *Registry[C, E]) AddEndpoint(nid, eid string, data E, joined bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkNewLocked(nid, eid); err != nil {
		return err
	}
	r.nets[nid].endpoints[eid] = &registered[E]{data: data, joined: joined}
	return nil
}

// DeleteEndpoint forgets endpoint eid of network nid.
func (r *Registry[C, E]) DeleteEndpoint(nid, eid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, _, err := r.endpointLocked(nid, eid)
	if err != nil {
		return err
	}
	delete(n.endpoints, eid)
	return nil
}

// Endpoint returns endpoint eid of network nid, with its network.
func (r *Registry[C, E]) Endpoint(nid, eid string) (*Network[C, E], E, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ep, err := r.endpointLocked(nid, eid)
	if err != nil {
		var zero E
		return nil, zero, err
	}
	return n, ep.data, nil
}

// ClaimJoin marks endpoint eid of network nid joined, refusing one that
// is: the caller does the join's work, and Unjoin undoes the claim if it
// fails.
func (r *Registry[C, E]) ClaimJoin(nid, eid string) (*Network[C, E], E, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero E
	n, ep, err := r.endpointLocked(nid, eid)
	if err != nil {
		return nil, zero, err
	}
	if ep.joined {
		return nil, zero, types.ForbiddenErrorf("endpoint %s of %s network %s is joined", eid, r.driver, nid)
	}
	ep.joined = true
	return n, ep.data, nil
}

// Unjoin marks endpoint eid of network nid not joined (Leave, or a failed
// join).
func (r *Registry[C, E]) Unjoin(nid, eid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ep, err := r.endpointLocked(nid, eid)
	if err != nil {
		return err
	}
	ep.joined = false
	return nil
}

func (r *Registry[C, E]) endpointLocked(nid, eid string) (*Network[C, E], *registered[E], error) {
	n, ok := r.nets[nid]
	if !ok {
		return nil, nil, types.NotFoundErrorf("%s network %s not found", r.driver, nid)
	}
	ep, ok := n.endpoints[eid]
	if !ok {
		return n, nil, types.NotFoundErrorf("endpoint %s not found on %s network %s", eid, r.driver, nid)
	}
	return n, ep, nil
}

// RefusePorts refuses the port bindings of an endpoint (under
// netlabel.PortMap of ProgramExternalConnectivity's options): an endpoint
// on a parent's network has an address of its own there, reachable as it
// is, and docker's macvlan and ipvlan drivers publish nothing either.
func RefusePorts(driver, nid, eid string, opts map[string]interface{}) error {
	if raw, ok := opts[netlabel.PortMap]; ok && raw != nil {
		if v := reflect.ValueOf(raw); v.Kind() == reflect.Slice && v.Len() > 0 {
			return types.ForbiddenErrorf("endpoint %s of %s network %s asks to publish ports %v: %s networks do not publish ports (docker does not either); the endpoint's own address is reachable on the parent's network",
				eid, driver, nid, raw, driver)
		}
	}
	return nil
}

// Link returns the parent link named name, for a join: a missing one is a
// types.NotFoundError (the joins fail until it is back).
func (m *Manager) Link(name string) (netlink.Link, error) {
	l, err := m.host.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, types.NotFoundErrorf("parent interface %s does not exist in the controller's namespace", name)
		}
		return nil, types.InternalErrorf("looking up parent %s: %w", name, err)
	}
	return l, nil
}

// ReportGateways reports a network's gateways (nil: none of that family)
// at a join.
func ReportGateways(jinfo driverapi.JoinInfo, gw4, gw6 net.IP) error {
	if gw4 != nil {
		if err := jinfo.SetGateway(gw4); err != nil {
			return types.InternalErrorf("reporting gateway %s: %w", gw4, err)
		}
	}
	if gw6 != nil {
		if err := jinfo.SetGatewayIPv6(gw6); err != nil {
			return types.InternalErrorf("reporting gateway %s: %w", gw6, err)
		}
	}
	return nil
}
