// Package ipamapi is the IPAM SPI: the contract every address allocator
// (built-in default and null, remote plugins) satisfies, the well-known
// names, and the errors allocators return.
package ipamapi

import (
	"net"

	"github.com/netkit/libnetwork/types"
)

// Well-known IPAM driver names and address spaces.
const (
	// DefaultIPAM is the name of the built-in allocator.
	DefaultIPAM = "default"
	// NullIPAM is the name of the allocator that hands out nothing.
	NullIPAM = "null"
	// PluginEndpointType is the plugin interface name of IPAM plugins.
	PluginEndpointType = "IpamDriver"
	// RequestAddressType is the RequestAddress option naming what the
	// address is for (netlabel.Gateway for a gateway).
	RequestAddressType = "RequestAddressType"
	// LocalDefault is the default address space of local networks.
	LocalDefault = "LocalDefault"
	// GlobalDefault is the default address space of global networks.
	GlobalDefault = "GlobalDefault"
)

// Ipam is an address allocator. Pools are identified by the opaque poolID
// RequestPool returns.
type Ipam interface {
	// GetDefaultAddressSpaces returns the local and global default spaces.
	GetDefaultAddressSpaces() (string, string, error)
	// RequestPool reserves pool (a CIDR; "" for any free default pool) in
	// addressSpace, optionally restricting allocations to subPool. It
	// returns the pool's ID, the pool, and metadata.
	RequestPool(addressSpace, pool, subPool string, options map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error)
	// ReleasePool releases a pool; its addresses go with it.
	ReleasePool(poolID string) error
	// RequestAddress reserves ip in the pool (nil for any free address) and
	// returns it with the pool's mask.
	RequestAddress(poolID string, ip net.IP, options map[string]string) (*net.IPNet, map[string]string, error)
	// ReleaseAddress releases an address.
	ReleaseAddress(poolID string, ip net.IP) error
}

// Capability is what an allocator tells the controller about itself.
type Capability struct {
	// RequiresMACAddress asks for the MAC in RequestAddress options.
	RequiresMACAddress bool
	// RequiresRequestReplay asks the controller to replay pool and address
	// requests at start.
	RequiresRequestReplay bool
}

// The errors allocators return. Wrap them with context (%w); test with
// errors.Is.
var (
	ErrIpamNotAvailable    = types.NoServiceErrorf("ipam driver not available")
	ErrInvalidAddressSpace = types.BadRequestErrorf("invalid address space")
	ErrInvalidPool         = types.BadRequestErrorf("invalid address pool")
	ErrInvalidSubPool      = types.BadRequestErrorf("invalid address sub-pool")
	ErrInvalidRequest      = types.BadRequestErrorf("invalid request")
	ErrPoolNotFound        = types.NotFoundErrorf("address pool not found")
	ErrOverlapPool         = types.ForbiddenErrorf("address pool overlaps a pool already in use")
	ErrNoAvailablePool     = types.NoServiceErrorf("no available default address pool")
	ErrNoAvailableIPs      = types.NoServiceErrorf("no available addresses in pool")
	ErrIPAlreadyAllocated  = types.ForbiddenErrorf("address already in use")
	ErrIPOutOfRange        = types.BadRequestErrorf("address out of range of pool")
	ErrBadPool             = types.BadRequestErrorf("address space does not contain the pool")
)
