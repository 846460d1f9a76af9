// Package api holds the wire structs of the remote network driver protocol
// (spec/remote-network-driver-api.txt): the JSON bodies the controller
// POSTs to a plugin's /NetworkDriver.<Method> and what the plugin answers.
// The names, fields and JSON encoding are those of
// github.com/docker/go-plugins-helpers/network, so a plugin written with
// either side's helpers talks to the other; pluginsdk/network aliases
// these types for plugin authors.
//
// An error is a non-200 answer or a body with a non-empty Err (see
// ErrorResponse); the plugins client turns both into an error.
package api

// The plugin methods of the protocol, the path after "/".
const (
	GetCapabilities             = "NetworkDriver.GetCapabilities"
	CreateNetwork               = "NetworkDriver.CreateNetwork"
	AllocateNetwork             = "NetworkDriver.AllocateNetwork"
	DeleteNetwork               = "NetworkDriver.DeleteNetwork"
	FreeNetwork                 = "NetworkDriver.FreeNetwork"
	CreateEndpoint              = "NetworkDriver.CreateEndpoint"
	DeleteEndpoint              = "NetworkDriver.DeleteEndpoint"
	EndpointInfo                = "NetworkDriver.EndpointOperInfo"
	Join                        = "NetworkDriver.Join"
	Leave                       = "NetworkDriver.Leave"
	DiscoverNew                 = "NetworkDriver.DiscoverNew"
	DiscoverDelete              = "NetworkDriver.DiscoverDelete"
	ProgramExternalConnectivity = "NetworkDriver.ProgramExternalConnectivity"
	RevokeExternalConnectivity  = "NetworkDriver.RevokeExternalConnectivity"
)

// Scopes a driver reports in CapabilitiesResponse.
const (
	// LocalScope is the scope of a driver whose networks exist on one host.
	LocalScope = "local"
	// GlobalScope is the scope of a driver whose networks span hosts.
	GlobalScope = "global"
)

// ErrorResponse is the body of a failed call.
type ErrorResponse struct {
	Err string
}

// CapabilitiesResponse answers GetCapabilities: the driver's data scope
// and connectivity scope (LocalScope or GlobalScope; empty means the data
// scope).
type CapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// IPAMData is the address data of one pool of a network, addresses in CIDR
// form ("10.0.0.1/24").
type IPAMData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]interface{}
}

// CreateNetworkRequest asks the driver to create network NetworkID.
// Options holds the generic network options (the driver options under
// "com.docker.network.generic").
type CreateNetworkRequest struct {
	NetworkID string
	Options   map[string]interface{}
	IPv4Data  []*IPAMData
	IPv6Data  []*IPAMData
}

// AllocateNetworkRequest asks a global driver's manager to allocate the
// resources of network NetworkID.
type AllocateNetworkRequest struct {
	// NetworkID is the network's ID, for the plugin to keep.
	NetworkID string
	// Options is free-form, for the plugin.
	Options map[string]string
	// IPv4Data and IPv6Data are the network's pools.
	IPv4Data, IPv6Data []IPAMData
}

// AllocateNetworkResponse answers AllocateNetwork.
type AllocateNetworkResponse struct {
	// Options are passed back in CreateNetworkRequest on every host.
	Options map[string]string
}

// DeleteNetworkRequest asks the driver to delete network NetworkID.
type DeleteNetworkRequest struct {
	NetworkID string
}

// FreeNetworkRequest asks a global driver's manager to free what
// AllocateNetwork allocated.
type FreeNetworkRequest struct {
	// NetworkID is the network to free.
	NetworkID string
}

// EndpointInterface is an endpoint's interface: addresses in CIDR form,
// the MAC as "aa:bb:cc:dd:ee:ff". In CreateEndpointRequest it holds what
// the controller allocated; in CreateEndpointResponse, what the driver
// filled in where the controller left a field empty.
type EndpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

// CreateEndpointRequest asks the driver to create endpoint EndpointID of
// network NetworkID.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *EndpointInterface
	Options    map[string]interface{}
}

// CreateEndpointResponse answers CreateEndpoint; Interface is nil when the
// driver fills in nothing.
type CreateEndpointResponse struct {
	Interface *EndpointInterface
}

// DeleteEndpointRequest asks the driver to delete an endpoint.
type DeleteEndpointRequest struct {
	NetworkID  string
	EndpointID string
}

// InfoRequest asks for an endpoint's operational data.
type InfoRequest struct {
	NetworkID  string
	EndpointID string
}

// InfoResponse answers EndpointOperInfo.
type InfoResponse struct {
	Value map[string]string
}

// JoinRequest asks the driver to attach an endpoint to the sandbox whose
// network namespace is at SandboxKey.
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]interface{}
}

// InterfaceName names the interface the driver created in the host's
// namespace (SrcName) and the prefix of its name in the sandbox
// (DstPrefix; "eth" gives eth0, eth1, ...).
type InterfaceName struct {
	SrcName   string
	DstPrefix string
}

// StaticRoute is a route to install in the sandbox: RouteType 0 is a
// route through NextHop, 1 a route straight out of the interface.
type StaticRoute struct {
	Destination string
	RouteType   int
	NextHop     string
}

// JoinResponse answers Join.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string
	GatewayIPv6           string
	StaticRoutes          []*StaticRoute
	DisableGatewayService bool
}

// LeaveRequest asks the driver to detach an endpoint from its sandbox.
type LeaveRequest struct {
	NetworkID  string
	EndpointID string
}

// DiscoveryNotification tells the driver of a node or datastore that
// appeared (DiscoverNew) or went (DiscoverDelete).
type DiscoveryNotification struct {
	DiscoveryType int
	DiscoveryData interface{}
}

// ProgramExternalConnectivityRequest asks the driver to program what a
// joined endpoint needs to reach outside its network; Options carries the
// exposed ports and port bindings.
type ProgramExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]interface{}
}

// RevokeExternalConnectivityRequest undoes ProgramExternalConnectivity.
type RevokeExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
}
