package exampleipam

import (
	"net/netip"

	"github.com/netkit/libnetwork/types"
)

// pool is a pool in use and the addresses handed out of it. Its methods
// run under the IPAM's mu.
type pool struct {
	id    string
	space string
	// prefix is the pool; sub the part endpoint addresses are taken
	// from (prefix itself without a sub-pool).
	prefix, sub netip.Prefix
	// gateway is the pool's first host address, kept for gateway
	// requests; gatewayGiven says whether one holds it.
	gateway      netip.Addr
	gatewayGiven bool
	// taken are the addresses handed out other than gateway.
	taken map[netip.Addr]bool
}

func newPool(space string, prefix, sub netip.Prefix) *pool {
	id := space + "/" + prefix.String()
	if sub != prefix {
		id += "/" + sub.String()
	}
	return &pool{
		id:      id,
		space:   space,
		prefix:  prefix,
		sub:     sub,
		gateway: prefix.Addr().Next(),
		taken:   map[netip.Addr]bool{},
	}
}

// usable reports whether a can be handed out: in the pool, and neither
// its network address nor (IPv4) its broadcast address.
func (p *pool) usable(a netip.Addr) bool {
	if !p.prefix.Contains(a) || a == p.prefix.Addr() {
		return false
	}
	return !a.Is4() || a != lastAddr(p.prefix)
}

// take hands out a, as the gateway when gateway is set.
func (p *pool) take(a netip.Addr, gateway bool) (netip.Addr, error) {
	if !p.usable(a) {
		return netip.Addr{}, types.BadRequestErrorf("address %s: not a host address of pool %s", a, p.prefix)
	}
	if a == p.gateway {
		if !gateway {
			return netip.Addr{}, types.ForbiddenErrorf("address %s: kept for the gateway of pool %s", a, p.prefix)
		}
		if p.gatewayGiven {
			return netip.Addr{}, types.ForbiddenErrorf("gateway %s of pool %s: already allocated", a, p.prefix)
		}
		p.gatewayGiven = true
		return a, nil
	}
	if p.taken[a] {
		return netip.Addr{}, types.ForbiddenErrorf("address %s of pool %s: already allocated", a, p.prefix)
	}
	p.taken[a] = true
	return a, nil
}

// next hands out the lowest free address of the sub-pool after the
// gateway.
func (p *pool) next() (netip.Addr, error) {
	// A sub-pool above the gateway starts at its own first address.
	a := p.sub.Addr()
	if a.Less(p.gateway.Next()) {
		a = p.gateway.Next()
	}
	for ; p.sub.Contains(a); a = a.Next() {
		if p.usable(a) && a != p.gateway && !p.taken[a] {
			p.taken[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, types.ForbiddenErrorf("pool %s: no free address in %s", p.prefix, p.sub)
}

// release frees a. The gateway is always released: it stays kept for
// gateway requests.
func (p *pool) release(a netip.Addr) error {
	if a == p.gateway {
		p.gatewayGiven = false
		return nil
	}
	if !p.taken[a] {
		return types.NotFoundErrorf("releasing address %s of pool %s: not allocated", a, p.prefix)
	}
	delete(p.taken, a)
	return nil
}

// lastAddr is the last address of p (IPv4's broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := p.Addr().BitLen() - p.Bits()
	for i := len(b) - 1; host > 0; i-- {
		if host >= 8 {
			b[i] = 0xff
			host -= 8
		} else {
			b[i] |= byte(1<<host - 1)
			host = 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
