// Package ipam is the plugin side of the remote IPAM protocol
// (spec/remote-ipam-driver-api.txt): implement Ipam, then serve it.
//
//	h := ipam.NewHandler(myIpam{})
//	err := h.ServeUnix("myipam", 0) // /run/docker/plugins/myipam.sock
//
// Its API is that of github.com/docker/go-plugins-helpers/ipam, and so is
// its wire: a plugin written for that package builds against this one by
// changing the import path, and answers its clients with the same status
// codes, headers and bytes. The request and answer types are aliases of
// those of package ipams/remote/api, which the library's remote IPAM
// uses too, so both ends share one definition of the wire format.
package ipam

import (
	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/pluginsdk/internal/helperswire"
)

// The protocol's types, shared with the library.
type (
	// CapabilitiesResponse returns whether or not this IPAM requires
	// pre-made MAC addresses (RequiresMACAddress), and whether it wants
	// its pools and addresses requested again when the library starts
	// (RequiresRequestReplay, a docker extension that go-plugins-helpers'
	// struct does not have; false is not sent).
	CapabilitiesResponse = api.CapabilitiesResponse
	// AddressSpacesResponse returns the default local and global address
	// space names for this IPAM.
	AddressSpacesResponse = api.AddressSpacesResponse
	// RequestPoolRequest is sent by the daemon when a pool needs to be
	// created.
	RequestPoolRequest = api.RequestPoolRequest
	// RequestPoolResponse returns a registered address pool with the IPAM
	// driver.
	RequestPoolResponse = api.RequestPoolResponse
	// ReleasePoolRequest is sent when releasing a previously registered
	// address pool.
	ReleasePoolRequest = api.ReleasePoolRequest
	// RequestAddressRequest is sent when requesting an address from IPAM.
	RequestAddressRequest = api.RequestAddressRequest
	// RequestAddressResponse is formed with allocated address by IPAM.
	RequestAddressResponse = api.RequestAddressResponse
	// ReleaseAddressRequest is sent in order to release an address from
	// the pool.
	ReleaseAddressRequest = api.ReleaseAddressRequest
	// ErrorResponse is a formatted error message that libnetwork can
	// understand.
	ErrorResponse = api.ErrorResponse
)

// Ipam represents the interface a driver must fulfill. A returned error
// is sent to the library as an ErrorResponse (status 500); a nil answer
// is sent as JSON null.
type Ipam interface {
	GetCapabilities() (*CapabilitiesResponse, error)
	GetDefaultAddressSpaces() (*AddressSpacesResponse, error)
	RequestPool(*RequestPoolRequest) (*RequestPoolResponse, error)
	ReleasePool(*ReleasePoolRequest) error
	RequestAddress(*RequestAddressRequest) (*RequestAddressResponse, error)
	ReleaseAddress(*ReleaseAddressRequest) error
}

// pkgName is the name of the go-plugins-helpers package whose wire this
// one reproduces.
const pkgName = "ipam"

// NewErrorResponse creates an ErrorResponse with the provided message.
func NewErrorResponse(msg string) *ErrorResponse {
	return &ErrorResponse{Err: msg}
}

// Handler forwards requests and responses between the library (or
// docker) and the plugin's Ipam. Serve it with ServeUnix, ServeTCP or
// Serve, stop it with Shutdown (promoted from pluginsdk.Handler); it is
// also an http.Handler.
type Handler struct {
	*pluginsdk.Handler
}

// NewHandler initializes the request handler with a driver
// implementation.
func NewHandler(ipam Ipam) *Handler {
	h := &Handler{Handler: helperswire.NewHandler("IpamDriver")}
	h.HandleFunc("/"+api.GetCapabilities, helperswire.Query(ipam.GetCapabilities))
	h.HandleFunc("/"+api.GetDefaultAddressSpaces, helperswire.Query(ipam.GetDefaultAddressSpaces))
	h.HandleFunc("/"+api.RequestPool, helperswire.Call(pkgName, ipam.RequestPool))
	h.HandleFunc("/"+api.ReleasePool, helperswire.Do(pkgName, ipam.ReleasePool))
	h.HandleFunc("/"+api.RequestAddress, helperswire.Call(pkgName, ipam.RequestAddress))
	h.HandleFunc("/"+api.ReleaseAddress, helperswire.Do(pkgName, ipam.ReleaseAddress))
	return h
}
