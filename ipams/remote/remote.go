// Package remote makes a remote IPAM plugin (an "IpamDriver" of the v1
// plugin protocol, spec remote-ipam-driver-api.txt) look like a built-in
// allocator: an Allocator is an ipamapi.Ipam whose calls go to the plugin
// through package plugins, with its timeouts and retries.
//
// The plugin's answers are checked before the controller sees them: a pool
// must be a CIDR of the family asked for, and the pool asked for when one
// was named; an address must be the one asked for, and inside its pool
// when the pool is known. An answer refused after the plugin reserved
// something is released again (ReleasePool, ReleaseAddress), so a refusal
// leaves nothing behind in the plugin. A failed call or a refused answer
// is a *PluginError, classed as package types says (see PluginError); a
// request that cannot be right (a pool that is not a CIDR, no pool ID, an
// address outside its known pool) is refused before it is sent, as a
// types.BadRequestError wrapping the ipamapi error. Every error starts
// "IPAM plugin <name>: <Method> (<what was asked>): ".
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// Config is what an Allocator needs besides its plugin.
type Config struct {
	// Logger receives failed rollbacks (warn) and the capabilities (debug).
	// Nil discards.
	Logger *slog.Logger
}

// Allocator is a remote IPAM plugin as an ipamapi.Ipam. It is safe for
// concurrent use; no lock is held across a call to the plugin.
type Allocator struct {
	plugin     *plugins.Plugin
	name       string
	capability ipamapi.Capability
	log        *slog.Logger

	mu sync.Mutex
	// pools are the pools the plugin answered to RequestPool, by pool ID,
	// until released. A pool requested through another Allocator (or
	// before a restart) is unknown, and its addresses are not checked
	// against it.
	pools map[string]netip.Prefix
}

var _ ipamapi.Ipam = (*Allocator)(nil)

// New returns the allocator of plugin p, which must implement
// ipamapi.PluginEndpointType. It asks the plugin's capabilities once; a
// plugin without GetCapabilities (it answers 404, as older plugins do) has
// the zero ipamapi.Capability.
func New(p *plugins.Plugin, cfg Config) (*Allocator, error) {
	if p == nil {
		return nil, types.BadRequestErrorf("remote IPAM: no plugin given")
	}
	if !p.Implements(ipamapi.PluginEndpointType) {
		return nil, types.Errorf("IPAM %w", &plugins.InterfaceError{
			Name: p.Name(), Interface: ipamapi.PluginEndpointType, Implements: p.Manifest(),
		})
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Allocator{
		plugin: p,
		name:   p.Name(),
		log:    log,
		pools:  make(map[string]netip.Prefix),
	}
	var resp api.CapabilitiesResponse
	if err := a.call(api.GetCapabilities, "", nil, &resp); err != nil {
		var re *plugins.RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusNotFound {
			return nil, err
		}
		log.Debug("IPAM plugin has no GetCapabilities, assuming none", "plugin", a.name)
		resp = api.CapabilitiesResponse{}
	}
	a.capability = ipamapi.Capability{
		RequiresMACAddress:    resp.RequiresMACAddress,
		RequiresRequestReplay: resp.RequiresRequestReplay,
	}
	log.Debug("IPAM plugin capabilities", "plugin", a.name,
		"requires_mac_address", resp.RequiresMACAddress, "requires_request_replay", resp.RequiresRequestReplay)
	return a, nil
}

// Name returns the plugin's name.
func (a *Allocator) Name() string { return a.name }

// Capability returns what the plugin answered to GetCapabilities.
func (a *Allocator) Capability() ipamapi.Capability { return a.capability }

// Capabilities is Capability under the name the built-in allocators
// (ipams/default, ipams/null) use.
func (a *Allocator) Capabilities() ipamapi.Capability { return a.capability }

// GetDefaultAddressSpaces asks the plugin for its local and global default
// address spaces; both must be named.
func (a *Allocator) GetDefaultAddressSpaces() (string, string, error) {
	var resp api.AddressSpacesResponse
	if err := a.call(api.GetDefaultAddressSpaces, "", nil, &resp); err != nil {
		return "", "", err
	}
	if resp.LocalDefaultAddressSpace == "" || resp.GlobalDefaultAddressSpace == "" {
		pe := &PluginError{Plugin: a.name, Method: api.GetDefaultAddressSpaces, Err: badAnswer(ipamapi.ErrInvalidAddressSpace,
			"an address space is unnamed (local %q, global %q)", resp.LocalDefaultAddressSpace, resp.GlobalDefaultAddressSpace)}
		return "", "", pe.classify()
	}
	return resp.LocalDefaultAddressSpace, resp.GlobalDefaultAddressSpace, nil
}

// RequestPool asks the plugin for pool (a CIDR, "" for any) of the family
// v6 says in addressSpace, with allocations restricted to subPool when
// given. The answer's pool must be a CIDR of that family, and pool itself
// when one was named, and a gateway in its data (netlabel.Gateway, in
// CIDR form) must be inside it; otherwise the pool is released again and
// the error wraps ipamapi.ErrInvalidPool (ipamapi.ErrIPOutOfRange for the
// gateway).
func (a *Allocator) RequestPool(addressSpace, pool, subPool string, options map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	what := describePool(addressSpace, pool, subPool, v6)
	want, err := checkPoolRequest(pool, subPool, v6)
	if err != nil {
		return "", nil, nil, a.badRequest(api.RequestPool, what, err)
	}
	req := api.RequestPoolRequest{AddressSpace: addressSpace, Pool: pool, SubPool: subPool, Options: options, V6: v6}
	var resp api.RequestPoolResponse
	if err := a.call(api.RequestPool, what, req, &resp); err != nil {
		return "", nil, nil, err
	}
	got, rerr := checkPoolAnswer(resp, want, v6)
	if rerr != nil {
		pe := &PluginError{Plugin: a.name, Method: api.RequestPool, Request: what, Err: rerr}
		if resp.PoolID != "" {
			a.rollback(pe, api.ReleasePool, api.ReleasePoolRequest{PoolID: resp.PoolID}, "pool_id", resp.PoolID, "pool", resp.Pool)
		}
		return "", nil, nil, pe.classify()
	}
	a.mu.Lock()
	a.pools[resp.PoolID] = got
	a.mu.Unlock()
	return resp.PoolID, ipamutils.IPNet(got), resp.Data, nil
}

// ReleasePool releases the pool poolID in the plugin.
func (a *Allocator) ReleasePool(poolID string) error {
	what := fmt.Sprintf("pool %q", poolID)
	if poolID == "" {
		return a.badRequest(api.ReleasePool, what, fmt.Errorf("no pool ID: %w", ipamapi.ErrInvalidRequest))
	}
	if err := a.call(api.ReleasePool, what, api.ReleasePoolRequest{PoolID: poolID}, nil); err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.pools, poolID)
	a.mu.Unlock()
	return nil
}

// RequestAddress asks the plugin for ip (nil for any) in pool poolID,
// passing options on (ipamapi.RequestAddressType, the endpoint's MAC). The
// answer must be a CIDR, ip itself when ip was given, and inside the pool
// when the pool is known; otherwise the address is released again. The
// address is returned with the pool's mask (the answer's when the pool is
// unknown).
func (a *Allocator) RequestAddress(poolID string, ip net.IP, options map[string]string) (*net.IPNet, map[string]string, error) {
	what := describeAddress(poolID, ip)
	if poolID == "" {
		return nil, nil, a.badRequest(api.RequestAddress, what, fmt.Errorf("no pool ID: %w", ipamapi.ErrInvalidRequest))
	}
	pool, known := a.pool(poolID)
	var preferred netip.Addr
	address := ""
	if ip != nil {
		p, ok := netip.AddrFromSlice(ip)
		if !ok {
			return nil, nil, a.badRequest(api.RequestAddress, what, fmt.Errorf("malformed address: %w", ipamapi.ErrInvalidRequest))
		}
		preferred = p.Unmap()
		if known && !pool.Contains(preferred) {
			return nil, nil, a.badRequest(api.RequestAddress, what, fmt.Errorf("%v is not in %v: %w", preferred, pool, ipamapi.ErrIPOutOfRange))
		}
		address = ip.String()
	}
	req := api.RequestAddressRequest{PoolID: poolID, Address: address, Options: options}
	var resp api.RequestAddressResponse
	if err := a.call(api.RequestAddress, what, req, &resp); err != nil {
		return nil, nil, err
	}
	got, rerr := checkAddressAnswer(resp.Address, pool, known, preferred)
	if rerr != nil {
		pe := &PluginError{Plugin: a.name, Method: api.RequestAddress, Request: what, Err: rerr}
		if release := releaseText(resp.Address, got); release != "" {
			a.rollback(pe, api.ReleaseAddress, api.ReleaseAddressRequest{PoolID: poolID, Address: release}, "pool_id", poolID, "address", resp.Address)
		}
		return nil, nil, pe.classify()
	}
	bits := got.Bits()
	if known {
		bits = pool.Bits()
	}
	return ipamutils.IPNet(netip.PrefixFrom(got.Addr(), bits)), resp.Data, nil
}

// ReleaseAddress releases ip of pool poolID in the plugin.
func (a *Allocator) ReleaseAddress(poolID string, ip net.IP) error {
	what := describeAddress(poolID, ip)
	addr, ok := netip.AddrFromSlice(ip)
	switch {
	case poolID == "":
		return a.badRequest(api.ReleaseAddress, what, fmt.Errorf("no pool ID: %w", ipamapi.ErrInvalidRequest))
	case !ok:
		return a.badRequest(api.ReleaseAddress, what, fmt.Errorf("no valid address: %w", ipamapi.ErrInvalidRequest))
	}
	if pool, known := a.pool(poolID); known && !pool.Contains(addr.Unmap()) {
		return a.badRequest(api.ReleaseAddress, what, fmt.Errorf("%v is not in %v: %w", addr.Unmap(), pool, ipamapi.ErrIPOutOfRange))
	}
	return a.call(api.ReleaseAddress, what, api.ReleaseAddressRequest{PoolID: poolID, Address: ip.String()}, nil)
}

// pool returns the pool of poolID, if the plugin answered it.
func (a *Allocator) pool(poolID string) (netip.Prefix, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pools[poolID]
	return p, ok
}

// call calls method with req and decodes the answer into resp. Its error
// is a classified *PluginError; what says what was asked.
func (a *Allocator) call(method, what string, req, resp any) error {
	// Plugin.Call bounds the call by the registry's call timeout.
	if err := a.plugin.Call(context.Background(), method, req, resp); err != nil {
		return (&PluginError{Plugin: a.name, Method: method, Request: what, Err: err}).classify()
	}
	return nil
}

// rollback releases what a refused answer reserved, recording the outcome
// in pe. A failure is logged too: the plugin may keep the pool or address
// reserved with nobody to release it.
func (a *Allocator) rollback(pe *PluginError, method string, req any, attrs ...any) {
	pe.Rollback = method
	pe.RollbackErr = a.plugin.Call(context.Background(), method, req, nil)
	if pe.RollbackErr != nil {
		a.log.Warn("IPAM plugin: releasing a refused answer failed; the plugin may still hold it",
			append([]any{"plugin", a.name, "method", method, "refused", pe.Err, "error", pe.RollbackErr}, attrs...)...)
	}
}

// badRequest is the error for a request refused before it was sent.
func (a *Allocator) badRequest(method, what string, err error) error {
	return types.BadRequestErrorf("IPAM plugin %q: %s (%s): %w", a.name, shortMethod(method), what, err)
}

// checkPoolRequest parses the pool and sub-pool asked for, and returns the
// pool ("" gives the zero Prefix).
func checkPoolRequest(pool, subPool string, v6 bool) (netip.Prefix, error) {
	var want netip.Prefix
	if pool != "" {
		p, err := netip.ParsePrefix(pool)
		if err != nil {
			return want, fmt.Errorf("%v: %w", err, ipamapi.ErrInvalidPool)
		}
		if !isFamily(p.Addr(), v6) {
			return want, fmt.Errorf("%s is not an %s pool: %w", pool, family(v6), ipamapi.ErrInvalidPool)
		}
		want = p.Masked()
	}
	if subPool != "" {
		s, err := netip.ParsePrefix(subPool)
		if err != nil {
			return want, fmt.Errorf("sub-pool: %v: %w", err, ipamapi.ErrInvalidSubPool)
		}
		if want.IsValid() && (s.Bits() < want.Bits() || !want.Contains(s.Addr())) {
			return want, fmt.Errorf("sub-pool %s is not inside %s: %w", subPool, pool, ipamapi.ErrInvalidSubPool)
		}
	}
	return want, nil
}

// checkPoolAnswer checks the plugin's answer to a request for want (the
// zero Prefix for any pool) of the family v6 says, and returns the pool.
func checkPoolAnswer(resp api.RequestPoolResponse, want netip.Prefix, v6 bool) (netip.Prefix, *ResponseError) {
	if resp.PoolID == "" {
		return netip.Prefix{}, badAnswer(ipamapi.ErrInvalidPool, "no pool ID for pool %q", resp.Pool)
	}
	p, err := netip.ParsePrefix(resp.Pool)
	if err != nil {
		return netip.Prefix{}, badAnswer(ipamapi.ErrInvalidPool, "pool %q is not a CIDR", resp.Pool)
	}
	p = p.Masked()
	if !isFamily(p.Addr(), v6) {
		return p, badAnswer(ipamapi.ErrInvalidPool, "pool %v is not an %s pool", p, family(v6))
	}
	if want.IsValid() && p != want {
		return p, badAnswer(ipamapi.ErrInvalidPool, "pool %v is not the %v asked for", p, want)
	}
	if gw, ok := resp.Data[netlabel.Gateway]; ok {
		g, err := netip.ParsePrefix(gw)
		if err != nil {
			return p, badAnswer(ipamapi.ErrInvalidPool, "gateway %q (%s) is not in CIDR form", gw, netlabel.Gateway)
		}
		if !p.Contains(g.Addr()) {
			return p, badAnswer(ipamapi.ErrIPOutOfRange, "gateway %v is not in pool %v", g.Addr(), p)
		}
	}
	return p, nil
}

// checkAddressAnswer checks the plugin's answer to a request for preferred
// (the zero Addr for any address) in pool (when known) and returns it
// parsed; when it parsed but is refused, the parsed answer is returned
// too, for the rollback.
func checkAddressAnswer(answer string, pool netip.Prefix, known bool, preferred netip.Addr) (netip.Prefix, *ResponseError) {
	if answer == "" {
		return netip.Prefix{}, badAnswer(nil, "no address")
	}
	got, err := netip.ParsePrefix(answer)
	if err != nil {
		return netip.Prefix{}, badAnswer(nil, "address %q is not in CIDR form", answer)
	}
	if known && !pool.Contains(got.Addr()) {
		return got, badAnswer(ipamapi.ErrIPOutOfRange, "address %v is not in pool %v", got.Addr(), pool)
	}
	if preferred.IsValid() && got.Addr() != preferred {
		return got, badAnswer(nil, "address %v is not the %v asked for", got.Addr(), preferred)
	}
	return got, nil
}

// releaseText is the Address of the ReleaseAddress that undoes a refused
// answer: the address as ReleaseAddress sends it when the answer parsed,
// else the answer as the plugin gave it.
func releaseText(answer string, parsed netip.Prefix) string {
	if parsed.IsValid() {
		return parsed.Addr().String()
	}
	return answer
}

// isFamily reports whether a is of the family v6 says. An IPv4-mapped
// IPv6 address is neither.
func isFamily(a netip.Addr, v6 bool) bool {
	if v6 {
		return a.Is6() && !a.Is4In6()
	}
	return a.Is4()
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

func describePool(space, pool, subPool string, v6 bool) string {
	if pool == "" {
		return fmt.Sprintf("any %s pool in space %q", family(v6), space)
	}
	s := fmt.Sprintf("pool %s in space %q", pool, space)
	if subPool != "" {
		s += ", sub-pool " + subPool
	}
	return s
}

func describeAddress(poolID string, ip net.IP) string {
	if ip == nil {
		return fmt.Sprintf("any address of pool %q", poolID)
	}
	return fmt.Sprintf("address %v of pool %q", ip, poolID)
}
