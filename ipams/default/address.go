package defaultipam

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipamutils"
)

// pool is a reserved pool and its allocated addresses.
type pool struct {
	id PoolID
	// first and last bound the addresses that may be allocated: the pool
	// minus its network address and, for IPv4, its broadcast address.
	first, last netip.Addr
	// dynFirst and dynLast bound dynamic allocations: [first, last]
	// intersected with the sub-pool. dynFirst > dynLast when empty.
	dynFirst, dynLast netip.Addr
	used              runSet
}

// newPool returns the state of a freshly reserved pool.
//
// The network address is reserved (for IPv6 it is the subnet-router anycast
// address), and so is the broadcast address of IPv4 pools. Point-to-point
// pools (IPv4 /31 and /32, IPv6 /127 and /128, RFC 3021 and RFC 6164) have
// no reserved address.
func newPool(id PoolID) *pool {
	p := &pool{id: id}
	p.first, p.last = ipamutils.HostRange(id.Pool)
	p.dynFirst, p.dynLast = p.first, p.last
	if id.SubPool.IsValid() {
		if s := id.SubPool.Addr(); p.dynFirst.Less(s) {
			p.dynFirst = s
		}
		if e := ipamutils.LastAddr(id.SubPool); e.Less(p.dynLast) {
			p.dynLast = e
		}
	}
	return p
}

// RequestAddress reserves ip in the pool, or when ip is nil the lowest free
// address of the sub-pool (of the pool when it has none). A requested ip
// may lie outside the sub-pool but must lie inside the pool. The address is
// returned with the pool's mask. Gateway requests (option
// ipamapi.RequestAddressType) follow the same rules. The metadata is nil.
func (a *Allocator) RequestAddress(poolID string, ip net.IP, _ map[string]string) (*net.IPNet, map[string]string, error) {
	var want netip.Addr
	if ip != nil {
		var ok bool
		if want, ok = netip.AddrFromSlice(ip); !ok {
			return nil, nil, fmt.Errorf("request for address %v in pool %s: malformed address: %w", ip, poolID, ipamapi.ErrInvalidRequest)
		}
		want = want.Unmap()
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pools[poolID]
	if p == nil {
		return nil, nil, fmt.Errorf("request for address %v in pool %q: %w", ip, poolID, ipamapi.ErrPoolNotFound)
	}
	addr, err := p.allocate(want)
	if err != nil {
		return nil, nil, fmt.Errorf("request for address in pool %s: %w", poolID, err)
	}
	return &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(p.id.Pool.Bits(), addr.BitLen())}, nil, nil
}

// allocate reserves want, or the lowest free dynamic address when want is
// the zero Addr.
func (p *pool) allocate(want netip.Addr) (netip.Addr, error) {
	if !want.IsValid() {
		a, ok := p.used.firstFree(p.dynFirst, p.dynLast)
		if !ok {
			return netip.Addr{}, fmt.Errorf("all addresses of %v are in use: %w", p.allocRange(), ipamapi.ErrNoAvailableIPs)
		}
		p.used.add(a)
		return a, nil
	}
	if err := p.checkRange(want); err != nil {
		return netip.Addr{}, err
	}
	if !p.used.add(want) {
		return netip.Addr{}, fmt.Errorf("%v: %w", want, ipamapi.ErrIPAlreadyAllocated)
	}
	return want, nil
}

// checkRange reports why a cannot be allocated in p regardless of what is
// in use, or nil.
func (p *pool) checkRange(a netip.Addr) error {
	if !p.id.Pool.Contains(a) {
		return fmt.Errorf("%v is not in %v: %w", a, p.id.Pool, ipamapi.ErrIPOutOfRange)
	}
	if a.Less(p.first) {
		return fmt.Errorf("%v is the network address of %v: %w", a, p.id.Pool, ipamapi.ErrIPAlreadyAllocated)
	}
	if p.last.Less(a) {
		return fmt.Errorf("%v is the broadcast address of %v: %w", a, p.id.Pool, ipamapi.ErrIPAlreadyAllocated)
	}
	return nil
}

// allocRange names the range dynamic allocations come from, for messages.
func (p *pool) allocRange() netip.Prefix {
	if p.id.SubPool.IsValid() {
		return p.id.SubPool
	}
	return p.id.Pool
}

// ReleaseAddress releases ip in the pool. Releasing an address that is not
// allocated is an ipamapi.ErrInvalidRequest error and changes nothing.
func (a *Allocator) ReleaseAddress(poolID string, ip net.IP) error {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return fmt.Errorf("release of address %v in pool %s: malformed address: %w", ip, poolID, ipamapi.ErrInvalidRequest)
	}
	addr = addr.Unmap()

	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pools[poolID]
	if p == nil {
		return fmt.Errorf("release of address %v in pool %q: %w", addr, poolID, ipamapi.ErrPoolNotFound)
	}
	if !p.id.Pool.Contains(addr) {
		return fmt.Errorf("release of address %v in pool %s: %w", addr, poolID, ipamapi.ErrIPOutOfRange)
	}
	if !p.used.remove(addr) {
		return fmt.Errorf("release of address %v in pool %s: not allocated: %w", addr, poolID, ipamapi.ErrInvalidRequest)
	}
	return nil
}
