// Package driverapi is the network driver SPI: what the controller calls on a
// driver (built-in or remote) and what it hands the driver to report back
// what it did. It follows the remote network driver protocol
// (spec/remote-network-driver-api.txt) so a remote driver is a thin adapter.
package driverapi

import (
	"net"
)

// NetworkPluginEndpointType is the plugin interface name of network drivers.
const NetworkPluginEndpointType = "NetworkDriver"

// Scopes a driver may report.
const (
	LocalScope  = "local"
	GlobalScope = "global"
)

// Driver is a network driver. Every method is called without any controller
// lock held. The options maps are the ones the v0.7 API carries; a driver
// parses them once into its typed config and rejects bad values with a
// types.BadRequestError.
type Driver interface {
	// CreateNetwork creates the network nid. options holds the generic
	// network options (netlabel.GenericData, netlabel.EnableIPv6,
	// netlabel.Internal, ...). On restart the controller calls it again for
	// every stored network, so it must adopt kernel objects that already
	// exist, unless the driver is a NetworkRestorer.
	CreateNetwork(nid string, options map[string]interface{}, ipV4Data, ipV6Data []IPAMData) error

	// DeleteNetwork deletes the network nid and its kernel objects.
	DeleteNetwork(nid string) error

	// CreateEndpoint creates endpoint eid of network nid. ifInfo holds the
	// addresses IPAM gave; the driver may set a MAC (or an address, when
	// IPAM gave none) on it.
	CreateEndpoint(nid, eid string, ifInfo InterfaceInfo, options map[string]interface{}) error

	// DeleteEndpoint deletes endpoint eid.
	DeleteEndpoint(nid, eid string) error

	// EndpointOperInfo returns operational data of the endpoint (at least
	// netlabel.MacAddress for drivers that have one).
	EndpointOperInfo(nid, eid string) (map[string]interface{}, error)

	// Join attaches endpoint eid to the sandbox whose key is sboxKey and
	// reports through jinfo the interface and the gateway.
	Join(nid, eid string, sboxKey string, jinfo JoinInfo, options map[string]interface{}) error

	// Leave detaches endpoint eid from its sandbox.
	Leave(nid, eid string) error

	// ProgramExternalConnectivity sets up what the endpoint needs to reach
	// outside its network (port publishing) once it is joined.
	ProgramExternalConnectivity(nid, eid string, options map[string]interface{}) error

	// RevokeExternalConnectivity undoes ProgramExternalConnectivity.
	RevokeExternalConnectivity(nid, eid string) error

	// Type returns the driver's name ("bridge", "host", ...).
	Type() string
}

// Restorer is implemented by drivers that keep kernel state for joined
// endpoints. After a restart the controller calls RestoreEndpoint for every
// stored endpoint (after CreateNetwork for its network), with the sandbox
// key when the endpoint was joined, so the driver rebuilds its bookkeeping
// and, when its kernel objects are gone, recreates them through jinfo as a
// Join would. jinfo is nil for an endpoint that was not joined.
type Restorer interface {
	RestoreEndpoint(nid, eid string, ifInfo InterfaceInfo, sboxKey string, jinfo JoinInfo, options map[string]interface{}) error
}

// NetworkRestorer is implemented by drivers that must tell a network being
// restored from one being created. At restart the controller calls
// RestoreNetwork, instead of CreateNetwork, for every stored network: the
// driver adopts the kernel objects the network left, which CreateNetwork
// may then refuse to take over (a bridge of the host's, say).
type NetworkRestorer interface {
	RestoreNetwork(nid string, options map[string]interface{}, ipV4Data, ipV6Data []IPAMData) error
}

// OrphanCollector is implemented by drivers that can find and remove kernel
// objects of theirs that no stored network or endpoint owns (after a crash).
// keepNetworks are the live networks and keepEndpoints the live endpoints
// that are joined (an endpoint that is not joined owns no interface).
type OrphanCollector interface {
	CollectOrphans(keepNetworks, keepEndpoints map[string]bool) error
}

// Capability is what a driver tells the controller about itself.
type Capability struct {
	// DataScope is LocalScope or GlobalScope: where the driver's network
	// records live.
	DataScope string
	// ConnectivityScope is LocalScope or GlobalScope: how far the
	// driver's networks reach; empty means DataScope.
	ConnectivityScope string
	// Attachment is what a joined endpoint gives its sandbox.
	Attachment Attachment
}

// Attachment is what the endpoints of a driver give their sandbox.
type Attachment int

const (
	// AttachInterface: an interface of the endpoint's own in the
	// sandbox's namespace, with addresses, names and embedded DNS (bridge,
	// remote drivers).
	AttachInterface Attachment = iota
	// AttachHost: the sandbox is the host's namespace; the endpoint has
	// no interface or address of its own (host).
	AttachHost
	// AttachNone: no interface at all; the sandbox stays isolated (null).
	AttachNone
)

// Capable is implemented by every driver: the controller asks it once,
// when it first uses the driver.
type Capable interface {
	Capability() Capability
}

// IPAMData is the address data of one pool of a network: the pool, the
// gateway and the auxiliary addresses IPAM reserved in it.
type IPAMData struct {
	AddressSpace string
	Pool         *net.IPNet
	Gateway      *net.IPNet
	AuxAddresses map[string]*net.IPNet
}

// InterfaceInfo is the endpoint's interface as the controller and the
// driver build it together at CreateEndpoint.
type InterfaceInfo interface {
	// SetMacAddress sets the MAC; it fails if one is already set.
	SetMacAddress(mac net.HardwareAddr) error
	// SetIPAddress sets the IPv4 or IPv6 address; it fails if that family
	// already has one.
	SetIPAddress(ip *net.IPNet) error
	// MacAddress returns the MAC, or nil.
	MacAddress() net.HardwareAddr
	// Address returns the IPv4 address, or nil.
	Address() *net.IPNet
	// AddressIPv6 returns the IPv6 address, or nil.
	AddressIPv6() *net.IPNet
}

// InterfaceNameInfo lets a driver tell the controller the name of the
// interface it created for the sandbox.
type InterfaceNameInfo interface {
	// SetNames reports an interface srcName the driver created in the
	// host's namespace; the controller moves it into the sandbox and names
	// it dstPrefix plus an index. This is the slow path (moving a link
	// between namespaces costs about 20 ms); drivers that can should use
	// SetCreatedInSandbox.
	SetNames(srcName, dstPrefix string) error
	// SetCreatedInSandbox reports that the driver created the interface
	// directly inside the sandbox's namespace (see JoinInfo.Sandbox) under
	// the name the sandbox asked for.
	SetCreatedInSandbox() error
}

// SandboxInfo describes the sandbox an endpoint is joining, so a driver can
// create the container side of its link in place.
type SandboxInfo interface {
	// NetNSFd returns an open descriptor of the sandbox's network
	// namespace, valid for the duration of Join.
	NetNSFd() int
	// IfaceName returns the name the interface must have inside the
	// sandbox ("eth0", "eth1", ...).
	IfaceName() string
}

// JoinInfo is what a driver reports at Join.
type JoinInfo interface {
	// InterfaceName returns where the driver reports its interface.
	InterfaceName() InterfaceNameInfo
	// Sandbox returns the sandbox being joined.
	Sandbox() SandboxInfo
	// SetGateway sets the IPv4 default gateway of the endpoint.
	SetGateway(net.IP) error
	// SetGatewayIPv6 sets the IPv6 default gateway of the endpoint.
	SetGatewayIPv6(net.IP) error
	// AddStaticRoute adds a route to install in the sandbox.
	AddStaticRoute(destination *net.IPNet, routeType int, nextHop net.IP) error
	// DisableGatewayService tells the controller that this endpoint gives
	// the sandbox no way out (internal networks).
	DisableGatewayService()
}
