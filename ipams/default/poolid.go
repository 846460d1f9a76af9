package defaultipam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netkit/libnetwork/ipamapi"
)

// PoolID identifies a pool of the allocator. Its string form, the poolID of
// the ipamapi.Ipam methods, is "space/pool" or "space/pool/subpool", for
// example "LocalDefault/10.0.0.0/16/10.0.1.0/24", as in docker.
type PoolID struct {
	// AddressSpace is ipamapi.LocalDefault or ipamapi.GlobalDefault.
	AddressSpace string
	// Pool is the pool's network (masked).
	Pool netip.Prefix
	// SubPool restricts dynamic allocations; the zero Prefix when unset.
	SubPool netip.Prefix
}

// String returns the poolID form of id.
func (id PoolID) String() string {
	if !id.SubPool.IsValid() {
		return id.AddressSpace + "/" + id.Pool.String()
	}
	return id.AddressSpace + "/" + id.Pool.String() + "/" + id.SubPool.String()
}

// ParsePoolID parses the string form of a PoolID. A malformed ID is an
// ipamapi.ErrPoolNotFound error: no pool can have it.
func ParsePoolID(s string) (PoolID, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 && len(parts) != 5 {
		return PoolID{}, fmt.Errorf("pool ID %q is malformed: %w", s, ipamapi.ErrPoolNotFound)
	}
	id := PoolID{AddressSpace: parts[0]}
	var err error
	if id.Pool, err = netip.ParsePrefix(parts[1] + "/" + parts[2]); err != nil {
		return PoolID{}, fmt.Errorf("pool ID %q is malformed (%v): %w", s, err, ipamapi.ErrPoolNotFound)
	}
	if len(parts) == 5 {
		if id.SubPool, err = netip.ParsePrefix(parts[3] + "/" + parts[4]); err != nil {
			return PoolID{}, fmt.Errorf("pool ID %q is malformed (%v): %w", s, err, ipamapi.ErrPoolNotFound)
		}
	}
	return id, nil
}
