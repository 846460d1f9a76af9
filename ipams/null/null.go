// Package null is the allocator named ipamapi.NullIPAM: it reserves the
// whole address range as its only pool and hands out no addresses, for
// networks whose driver does not need any (host, null).
package null

import (
	"fmt"
	"net"

	"github.com/netkit/libnetwork/ipamapi"
)

const (
	// AddressSpace is the null allocator's address space. The default
	// spaces and "" are accepted too.
	AddressSpace = "null"
	// PoolID is the ID of the only pool.
	PoolID = "null"
)

// Allocator is the null allocator. It has no state and is safe for
// concurrent use.
type Allocator struct{}

var _ ipamapi.Ipam = (*Allocator)(nil)

// New returns the null allocator.
func New() *Allocator { return &Allocator{} }

// Capabilities returns the zero Capability.
func (*Allocator) Capabilities() ipamapi.Capability { return ipamapi.Capability{} }

// GetDefaultAddressSpaces returns the null space as both the local and the
// global default.
func (*Allocator) GetDefaultAddressSpaces() (string, string, error) {
	return AddressSpace, AddressSpace, nil
}

// RequestPool returns PoolID and 0.0.0.0/0 (::/0 when v6). Pool may be "" or
// that prefix; a sub-pool is refused.
func (*Allocator) RequestPool(addressSpace, pool, subPool string, _ map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	switch addressSpace {
	case AddressSpace, "", ipamapi.LocalDefault, ipamapi.GlobalDefault:
	default:
		return "", nil, nil, fmt.Errorf("null IPAM: request for pool in address space %q: %w", addressSpace, ipamapi.ErrInvalidAddressSpace)
	}
	all := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if v6 {
		all = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	if pool != "" && pool != all.String() {
		return "", nil, nil, fmt.Errorf("null IPAM: request for pool %q: only %v is served: %w", pool, all, ipamapi.ErrInvalidPool)
	}
	if subPool != "" {
		return "", nil, nil, fmt.Errorf("null IPAM: request for sub-pool %q: sub-pools are not served: %w", subPool, ipamapi.ErrInvalidSubPool)
	}
	return PoolID, all, nil, nil
}

// ReleasePool does nothing.
func (*Allocator) ReleasePool(string) error { return nil }

// RequestAddress returns no address. poolID must be PoolID.
func (*Allocator) RequestAddress(poolID string, _ net.IP, _ map[string]string) (*net.IPNet, map[string]string, error) {
	if poolID != PoolID {
		return nil, nil, fmt.Errorf("null IPAM: request for address in pool %q: %w", poolID, ipamapi.ErrPoolNotFound)
	}
	return nil, nil, nil
}

// ReleaseAddress does nothing.
func (*Allocator) ReleaseAddress(string, net.IP) error { return nil }
