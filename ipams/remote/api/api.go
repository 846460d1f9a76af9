// Package api holds the wire structs of the remote IPAM protocol
// (spec/remote-ipam-driver-api.txt): the JSON bodies the controller POSTs
// to a plugin's /IpamDriver.<Method> and what the plugin answers. The
// names, fields and JSON encoding are those of
// github.com/docker/go-plugins-helpers/ipam, so a plugin written with
// either side's helpers talks to the other; pluginsdk/ipam aliases these
// types for plugin authors.
package api

// The plugin methods of the protocol, the path after "/".
const (
	GetCapabilities         = "IpamDriver.GetCapabilities"
	GetDefaultAddressSpaces = "IpamDriver.GetDefaultAddressSpaces"
	RequestPool             = "IpamDriver.RequestPool"
	ReleasePool             = "IpamDriver.ReleasePool"
	RequestAddress          = "IpamDriver.RequestAddress"
	ReleaseAddress          = "IpamDriver.ReleaseAddress"
)

// ErrorResponse is the body of a failed call.
type ErrorResponse struct {
	Err string
}

// CapabilitiesResponse answers GetCapabilities. RequiresMACAddress asks the
// controller for the endpoint's MAC in RequestAddress's options
// ("com.docker.network.endpoint.macaddress"); RequiresRequestReplay (docker
// extension) asks it to request every pool and address again at start.
type CapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool `json:",omitempty"`
}

// AddressSpacesResponse answers GetDefaultAddressSpaces.
type AddressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// RequestPoolRequest asks for a pool: Pool a CIDR, or empty for any; SubPool
// a CIDR within Pool that addresses are taken from, or empty.
type RequestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

// RequestPoolResponse answers RequestPool: the pool's ID for later calls,
// the pool as a CIDR, and data (a gateway under
// "com.docker.network.gateway", in CIDR form, is used as the network's).
type RequestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

// ReleasePoolRequest releases a pool.
type ReleasePoolRequest struct {
	PoolID string
}

// RequestAddressRequest asks for an address of a pool: Address the
// preferred one, or empty for any. Options may carry the request type
// ("RequestAddressType": "com.docker.network.gateway" for the gateway) and
// the endpoint's MAC.
type RequestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

// RequestAddressResponse answers RequestAddress: the address in CIDR form.
type RequestAddressResponse struct {
	Address string
	Data    map[string]string
}

// ReleaseAddressRequest releases an address of a pool.
type ReleaseAddressRequest struct {
	PoolID  string
	Address string
}
