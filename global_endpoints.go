package libnetwork

import (
	"net"
	"sort"

	"github.com/netkit/libnetwork/types"
)

// remoteEndpoint is an endpoint another host joined to a global network,
// as Network.Endpoints lists it (v0.7 lists the endpoints of every host on
// a global network). It is read-only here: its host alone may join, leave
// or delete it.
type remoteEndpoint struct {
	id string
	n  *network
	ge *globalEndpoint
}

var (
	_ Endpoint      = (*remoteEndpoint)(nil)
	_ EndpointInfo  = (*remoteEndpoint)(nil)
	_ InterfaceInfo = (*remoteEndpoint)(nil)
)

func (r *remoteEndpoint) ID() string      { return r.id }
func (r *remoteEndpoint) Name() string    { return r.ge.Name }
func (r *remoteEndpoint) Network() string { return r.n.name }

func (r *remoteEndpoint) refuse(op string) error {
	return types.ForbiddenErrorf("endpoint %s of network %s is on another host (%s, VTEP %s); %s it there", r.ge.Name, r.n.name, r.ge.Host, r.ge.VTEP, op)
}

// Join is refused: the endpoint is another host's.
func (r *remoteEndpoint) Join(Sandbox, ...EndpointOption) error { return r.refuse("join") }

// Leave is refused: the endpoint is another host's.
func (r *remoteEndpoint) Leave(Sandbox, ...EndpointOption) error { return r.refuse("leave") }

// Delete is refused: the endpoint is another host's.
func (r *remoteEndpoint) Delete(bool) error { return r.refuse("delete") }

func (r *remoteEndpoint) Info() EndpointInfo { return r }

// DriverInfo is empty: the driver's data is on the endpoint's host.
func (r *remoteEndpoint) DriverInfo() (map[string]interface{}, error) {
	return map[string]interface{}{}, nil
}

func (r *remoteEndpoint) Iface() InterfaceInfo               { return r }
func (r *remoteEndpoint) Gateway() net.IP                    { return nil }
func (r *remoteEndpoint) GatewayIPv6() net.IP                { return nil }
func (r *remoteEndpoint) StaticRoutes() []*types.StaticRoute { return nil }

// Sandbox is nil: the endpoint's sandbox is on its host.
func (r *remoteEndpoint) Sandbox() Sandbox { return nil }

func (r *remoteEndpoint) MacAddress() net.HardwareAddr {
	mac, _ := net.ParseMAC(r.ge.MAC)
	return mac
}

// Address returns the endpoint's IPv4 address, nil if it has none.
func (r *remoteEndpoint) Address() *net.IPNet {
	a, _ := types.ParseCIDR(r.ge.Addr)
	return a
}

// AddressIPv6 returns the endpoint's IPv6 address, nil if it has none.
func (r *remoteEndpoint) AddressIPv6() *net.IPNet {
	a, _ := types.ParseCIDR(r.ge.AddrV6)
	return a
}

// remoteEndpointList returns the remote endpoints of n, sorted by name.
func (n *network) remoteEndpointList() []Endpoint {
	if !n.isGlobal() {
		return nil
	}
	g := n.ctrl.global
	g.mu.Lock()
	out := make([]*remoteEndpoint, 0, len(g.peers[n.id]))
	for id, ge := range g.peers[n.id] {
		out = append(out, &remoteEndpoint{id: id, n: n, ge: ge})
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ge.Name < out[j].ge.Name })
	eps := make([]Endpoint, len(out))
	for i, r := range out {
		eps[i] = r
	}
	return eps
}
