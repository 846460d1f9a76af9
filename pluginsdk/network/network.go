// Package network is the plugin side of the remote network driver
// protocol (spec/remote-network-driver-api.txt): implement Driver, then
// serve it.
//
//	h := network.NewHandler(myDriver{})
//	err := h.ServeUnix("mynet", 0) // /run/docker/plugins/mynet.sock
//
// Its API is that of github.com/docker/go-plugins-helpers/network, and so
// is its wire: a plugin written for that package builds against this one
// by changing the import path, and answers its clients with the same
// status codes, headers and bytes. The request and answer types are
// aliases of those of package drivers/remote/api, which the library's
// remote driver uses too, so both ends share one definition of the wire
// format.
package network

import (
	"errors"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/pluginsdk/internal/helperswire"
)

// Scopes a driver reports in CapabilitiesResponse.
const (
	// LocalScope is the correct scope response for a local scope driver.
	LocalScope = api.LocalScope
	// GlobalScope is the correct scope response for a global scope
	// driver.
	GlobalScope = api.GlobalScope
)

// The protocol's types, shared with the library.
type (
	// CapabilitiesResponse returns whether or not this network is global
	// or local.
	CapabilitiesResponse = api.CapabilitiesResponse
	// AllocateNetworkRequest requests allocation of new network by
	// manager.
	AllocateNetworkRequest = api.AllocateNetworkRequest
	// AllocateNetworkResponse is the response to the
	// AllocateNetworkRequest.
	AllocateNetworkResponse = api.AllocateNetworkResponse
	// FreeNetworkRequest is the request to free allocated network in the
	// manager.
	FreeNetworkRequest = api.FreeNetworkRequest
	// CreateNetworkRequest is sent by the daemon when a network needs to
	// be created.
	CreateNetworkRequest = api.CreateNetworkRequest
	// IPAMData contains IPv4 or IPv6 addressing information.
	IPAMData = api.IPAMData
	// DeleteNetworkRequest is sent by the daemon when a network needs to
	// be removed.
	DeleteNetworkRequest = api.DeleteNetworkRequest
	// CreateEndpointRequest is sent by the daemon when an endpoint should
	// be created.
	CreateEndpointRequest = api.CreateEndpointRequest
	// CreateEndpointResponse is sent as a response to a
	// CreateEndpointRequest.
	CreateEndpointResponse = api.CreateEndpointResponse
	// EndpointInterface contains endpoint interface information.
	EndpointInterface = api.EndpointInterface
	// DeleteEndpointRequest is sent by the daemon when an endpoint needs
	// to be removed.
	DeleteEndpointRequest = api.DeleteEndpointRequest
	// InterfaceName consists of the name of the interface in the global
	// netns and the desired prefix to be appended to the interface inside
	// the container netns.
	InterfaceName = api.InterfaceName
	// InfoRequest is sent by the daemon when querying endpoint
	// information.
	InfoRequest = api.InfoRequest
	// InfoResponse is endpoint information sent in response to an
	// InfoRequest.
	InfoResponse = api.InfoResponse
	// JoinRequest is sent by the daemon when an endpoint needs be joined
	// to a network.
	JoinRequest = api.JoinRequest
	// StaticRoute contains static route information.
	StaticRoute = api.StaticRoute
	// JoinResponse is sent in response to a JoinRequest.
	JoinResponse = api.JoinResponse
	// LeaveRequest is sent by the daemon when an endpoint is leaving a
	// network.
	LeaveRequest = api.LeaveRequest
	// ErrorResponse is a formatted error message that libnetwork can
	// understand.
	ErrorResponse = api.ErrorResponse
	// DiscoveryNotification is sent by the daemon when a new discovery
	// event occurs.
	DiscoveryNotification = api.DiscoveryNotification
	// ProgramExternalConnectivityRequest specifies the L4 data and the
	// endpoint for which programming has to be done.
	ProgramExternalConnectivityRequest = api.ProgramExternalConnectivityRequest
	// RevokeExternalConnectivityRequest specifies the endpoint for which
	// the L4 programming has to be removed.
	RevokeExternalConnectivityRequest = api.RevokeExternalConnectivityRequest
)

// Driver represents the interface a driver must fulfill. A returned
// error is sent to the library as an ErrorResponse (status 500).
// GetCapabilities must not answer nil; a nil answer of another method is
// sent as JSON null.
type Driver interface {
	GetCapabilities() (*CapabilitiesResponse, error)
	CreateNetwork(*CreateNetworkRequest) error
	AllocateNetwork(*AllocateNetworkRequest) (*AllocateNetworkResponse, error)
	DeleteNetwork(*DeleteNetworkRequest) error
	FreeNetwork(*FreeNetworkRequest) error
	CreateEndpoint(*CreateEndpointRequest) (*CreateEndpointResponse, error)
	DeleteEndpoint(*DeleteEndpointRequest) error
	EndpointInfo(*InfoRequest) (*InfoResponse, error)
	Join(*JoinRequest) (*JoinResponse, error)
	Leave(*LeaveRequest) error
	DiscoverNew(*DiscoveryNotification) error
	DiscoverDelete(*DiscoveryNotification) error
	ProgramExternalConnectivity(*ProgramExternalConnectivityRequest) error
	RevokeExternalConnectivity(*RevokeExternalConnectivityRequest) error
}

// pkgName is the name of the go-plugins-helpers package whose wire this
// one reproduces.
const pkgName = "network"

// NewErrorResponse creates an ErrorResponse with the provided message.
func NewErrorResponse(msg string) *ErrorResponse {
	return &ErrorResponse{Err: msg}
}

// Handler forwards requests and responses between the library (or
// docker) and the plugin's Driver. Serve it with ServeUnix, ServeTCP or
// Serve, stop it with Shutdown (promoted from pluginsdk.Handler); it is
// also an http.Handler.
type Handler struct {
	*pluginsdk.Handler
	driver Driver
}

// errNoCapabilities is go-plugins-helpers' answer to a nil
// GetCapabilities.
//
//lint:ignore ST1005 the text is go-plugins-helpers', sent on the wire
var errNoCapabilities = errors.New("Network driver must implement GetCapabilities")

// NewHandler initializes the request handler with a driver
// implementation.
func NewHandler(driver Driver) *Handler {
	h := &Handler{Handler: helperswire.NewHandler("NetworkDriver"), driver: driver}
	h.HandleFunc("/"+api.GetCapabilities, helperswire.Query(h.getCapabilities))
	h.HandleFunc("/"+api.CreateNetwork, helperswire.Do(pkgName, driver.CreateNetwork))
	h.HandleFunc("/"+api.AllocateNetwork, helperswire.Call(pkgName, driver.AllocateNetwork))
	h.HandleFunc("/"+api.DeleteNetwork, helperswire.Do(pkgName, driver.DeleteNetwork))
	h.HandleFunc("/"+api.FreeNetwork, helperswire.Do(pkgName, driver.FreeNetwork))
	h.HandleFunc("/"+api.CreateEndpoint, helperswire.Call(pkgName, driver.CreateEndpoint))
	h.HandleFunc("/"+api.DeleteEndpoint, helperswire.Do(pkgName, driver.DeleteEndpoint))
	h.HandleFunc("/"+api.EndpointInfo, helperswire.Call(pkgName, driver.EndpointInfo))
	h.HandleFunc("/"+api.Join, helperswire.Call(pkgName, driver.Join))
	h.HandleFunc("/"+api.Leave, helperswire.Do(pkgName, driver.Leave))
	h.HandleFunc("/"+api.DiscoverNew, helperswire.Do(pkgName, driver.DiscoverNew))
	h.HandleFunc("/"+api.DiscoverDelete, helperswire.Do(pkgName, driver.DiscoverDelete))
	h.HandleFunc("/"+api.ProgramExternalConnectivity, helperswire.Do(pkgName, driver.ProgramExternalConnectivity))
	h.HandleFunc("/"+api.RevokeExternalConnectivity, helperswire.Do(pkgName, driver.RevokeExternalConnectivity))
	return h
}

func (h *Handler) getCapabilities() (*CapabilitiesResponse, error) {
	res, err := h.driver.GetCapabilities()
	if err == nil && res == nil {
		return nil, errNoCapabilities
	}
	return res, err
}
