// Package exampleipam is the driver logic of the example IPAM plugin
// (examples/ipam-plugin): an in-memory allocator of pools and addresses
// behind the remote IPAM protocol's methods, with the request and answer
// types of ipams/remote/api. It is served by pluginsdk/ipam in the
// example and by github.com/docker/go-plugins-helpers/ipam in the tests,
// so both helpers run the same rules:
//
//   - Address spaces are ExampleLocal and ExampleGlobal, each with pools of
//     its own.
//   - A pool asked for by CIDR is granted unless it overlaps a pool in use
//     in the space; a request without one gets the first default pool of
//     its family that is free. Its ID is "<space>/<cidr>" ("/<sub-pool>"
//     appended when one is asked for), and its data names the gateway, the
//     first host address, under "com.docker.network.gateway".
//   - The gateway is kept for a gateway request (option RequestAddressType
//     "com.docker.network.gateway"); a preferred address is granted when
//     in the pool and free; otherwise the lowest free address after the
//     gateway (within the sub-pool when there is one). Addresses are
//     answered in CIDR form with the pool's mask.
//   - GetCapabilities asks for the endpoint's MAC, and every request for
//     an address other than the gateway must carry it (option
//     "com.docker.network.endpoint.macaddress"): the plugin shows that the
//     library passes it.
package exampleipam

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/types"
)

// The address spaces of the plugin.
const (
	LocalSpace  = "ExampleLocal"
	GlobalSpace = "ExampleGlobal"
)

// The option keys and values of the protocol the plugin reads.
const (
	// GatewayKey names the gateway in RequestPoolResponse.Data.
	GatewayKey = "com.docker.network.gateway"
	// RequestAddressTypeKey is the RequestAddress option saying what the
	// address is for; GatewayKey as its value asks for the gateway.
	RequestAddressTypeKey = "RequestAddressType"
	// MACAddressKey is the RequestAddress option holding the endpoint's
	// MAC, sent because the plugin requires it.
	MACAddressKey = "com.docker.network.endpoint.macaddress"
)

// DefaultPools are the pools handed out for requests without one when
// New is given none.
var DefaultPools = []netip.Prefix{
	netip.MustParsePrefix("10.123.0.0/24"),
	netip.MustParsePrefix("10.124.0.0/24"),
}

// IPAM is the allocator. Its methods are those of the IPAM interface of
// pluginsdk/ipam and go-plugins-helpers/ipam; they are safe for
// concurrent use.
type IPAM struct {
	defaultPools []netip.Prefix
	time         pluginutil.HandlerTime

	mu sync.Mutex
	// pools are the pools in use, by ID.
	pools map[string]*pool
}

// New returns an IPAM handing out defaultPools (DefaultPools when empty),
// in order, for requests without a pool.
func New(defaultPools []netip.Prefix) (*IPAM, error) {
	if len(defaultPools) == 0 {
		defaultPools = DefaultPools
	}
	for _, p := range defaultPools {
		if err := checkPool(p); err != nil {
			return nil, types.InvalidParameterErrorf("default pool: %w", err)
		}
	}
	return &IPAM{defaultPools: slices.Clone(defaultPools), pools: map[string]*pool{}}, nil
}

// ParsePools parses a comma-separated list of CIDRs ("10.1.0.0/24,
// fd00::/64"), the plugin's -pools flag.
func ParsePools(s string) ([]netip.Prefix, error) {
	var pools []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, types.InvalidParameterErrorf("pool %q: %w", f, err)
		}
		if p != p.Masked() {
			return nil, types.InvalidParameterErrorf("pool %q: not a network address (%s)", f, p.Masked())
		}
		pools = append(pools, p)
	}
	return pools, nil
}

// HandlerTime is the time spent in the methods of d so far.
func (d *IPAM) HandlerTime() *pluginutil.HandlerTime { return &d.time }

// GetCapabilities asks for the endpoint's MAC in RequestAddress.
func (d *IPAM) GetCapabilities() (*api.CapabilitiesResponse, error) {
	defer d.time.Track()()
	return &api.CapabilitiesResponse{RequiresMACAddress: true}, nil
}

// GetDefaultAddressSpaces returns LocalSpace and GlobalSpace.
func (d *IPAM) GetDefaultAddressSpaces() (*api.AddressSpacesResponse, error) {
	defer d.time.Track()()
	return &api.AddressSpacesResponse{LocalDefaultAddressSpace: LocalSpace, GlobalDefaultAddressSpace: GlobalSpace}, nil
}

// RequestPool grants the pool asked for, or the first free default pool
// of the family.
func (d *IPAM) RequestPool(req *api.RequestPoolRequest) (*api.RequestPoolResponse, error) {
	defer d.time.Track()()
	if req.AddressSpace != LocalSpace && req.AddressSpace != GlobalSpace {
		return nil, types.BadRequestErrorf("address space %q: unknown (want %s or %s)", req.AddressSpace, LocalSpace, GlobalSpace)
	}
	if req.Pool == "" && req.SubPool != "" {
		return nil, types.BadRequestErrorf("sub-pool %s asked for without its pool", req.SubPool)
	}
	var want, sub netip.Prefix
	if req.Pool != "" {
		var err error
		if want, err = parsePool(req.Pool, req.V6); err != nil {
			return nil, err
		}
		sub = want
		if req.SubPool != "" {
			if sub, err = parseSubPool(req.SubPool, want); err != nil {
				return nil, err
			}
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if want.IsValid() {
		if other := d.overlapLocked(req.AddressSpace, want); other != nil {
			return nil, types.ForbiddenErrorf("pool %s in %s: overlaps pool %s in use", want, req.AddressSpace, other.prefix)
		}
	} else {
		for _, p := range d.defaultPools {
			if p.Addr().Is6() == req.V6 && d.overlapLocked(req.AddressSpace, p) == nil {
				want, sub = p, p
				break
			}
		}
		if !want.IsValid() {
			return nil, types.ForbiddenErrorf("no free default %s pool in %s (default pools %v)", family(req.V6), req.AddressSpace, d.defaultPools)
		}
	}
	p := newPool(req.AddressSpace, want, sub)
	d.pools[p.id] = p
	return &api.RequestPoolResponse{
		PoolID: p.id,
		Pool:   want.String(),
		Data:   map[string]string{GatewayKey: netip.PrefixFrom(p.gateway, want.Bits()).String()},
	}, nil
}

// overlapLocked returns the pool in use in space that overlaps p, or nil.
// d.mu must be held.
func (d *IPAM) overlapLocked(space string, p netip.Prefix) *pool {
	for _, q := range d.pools {
		if q.space == space && q.prefix.Overlaps(p) {
			return q
		}
	}
	return nil
}

// ReleasePool frees a pool and its addresses.
func (d *IPAM) ReleasePool(req *api.ReleasePoolRequest) error {
	defer d.time.Track()()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pools[req.PoolID]; !ok {
		return types.NotFoundErrorf("releasing pool %q: no such pool", req.PoolID)
	}
	delete(d.pools, req.PoolID)
	return nil
}

// RequestAddress gives an address of a pool: the gateway to a gateway
// request, the preferred address when free, else the lowest free one.
func (d *IPAM) RequestAddress(req *api.RequestAddressRequest) (*api.RequestAddressResponse, error) {
	defer d.time.Track()()
	gateway := req.Options[RequestAddressTypeKey] == GatewayKey
	var preferred netip.Addr
	if req.Address != "" {
		var err error
		if preferred, err = parseAddr(req.Address); err != nil {
			return nil, types.BadRequestErrorf("requesting address %q in pool %s: %w", req.Address, req.PoolID, err)
		}
	}
	if !gateway {
		mac, ok := req.Options[MACAddressKey]
		if !ok || mac == "" {
			return nil, types.BadRequestErrorf("requesting an address in pool %s: option %s missing: this IPAM requires the endpoint's MAC address", req.PoolID, MACAddressKey)
		}
		if _, err := net.ParseMAC(mac); err != nil {
			return nil, types.BadRequestErrorf("requesting an address in pool %s: option %s: %w", req.PoolID, MACAddressKey, err)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pools[req.PoolID]
	if !ok {
		return nil, types.NotFoundErrorf("requesting an address in pool %q: no such pool", req.PoolID)
	}
	var a netip.Addr
	var err error
	switch {
	case preferred.IsValid():
		a, err = p.take(preferred, gateway)
	case gateway:
		a, err = p.take(p.gateway, true)
	default:
		a, err = p.next()
	}
	if err != nil {
		return nil, err
	}
	return &api.RequestAddressResponse{Address: netip.PrefixFrom(a, p.prefix.Bits()).String()}, nil
}

// ReleaseAddress frees an address of a pool. Releasing the gateway always
// succeeds: it stays kept for the next gateway request.
func (d *IPAM) ReleaseAddress(req *api.ReleaseAddressRequest) error {
	defer d.time.Track()()
	a, err := parseAddr(req.Address)
	if err != nil {
		return types.BadRequestErrorf("releasing address %q in pool %s: %w", req.Address, req.PoolID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pools[req.PoolID]
	if !ok {
		return types.NotFoundErrorf("releasing address %s: no pool %q", a, req.PoolID)
	}
	return p.release(a)
}

// parsePool parses the pool of a request, of the family v6 says.
func parsePool(s string, v6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, types.BadRequestErrorf("pool %q: %w", s, err)
	}
	p = p.Masked()
	if p.Addr().Is6() != v6 {
		return netip.Prefix{}, types.BadRequestErrorf("pool %s: not an %s pool", p, family(v6))
	}
	if err := checkPool(p); err != nil {
		return netip.Prefix{}, types.BadRequestErrorf("%w", err)
	}
	return p, nil
}

// parseSubPool parses a sub-pool, which must lie in pool.
func parseSubPool(s string, pool netip.Prefix) (netip.Prefix, error) {
	sub, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, types.BadRequestErrorf("sub-pool %q: %w", s, err)
	}
	sub = sub.Masked()
	if sub.Bits() < pool.Bits() || !pool.Contains(sub.Addr()) {
		return netip.Prefix{}, types.BadRequestErrorf("sub-pool %s: not within pool %s", sub, pool)
	}
	return sub, nil
}

// checkPool refuses a prefix too small for a gateway and one more host.
func checkPool(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Zone() != "" {
		return fmt.Errorf("pool %v: not a valid prefix", p)
	}
	if p.Addr().BitLen()-p.Bits() < 2 {
		return fmt.Errorf("pool %s: too small for a gateway and an endpoint", p)
	}
	return nil
}

// parseAddr parses an address given plain or in CIDR form.
func parseAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address")
	}
	return p.Addr().Unmap(), nil
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
