// Package portmapper is the plugin side of the port-mapper protocol
// (spec/portmapper-plugin-api.txt): implement Driver, then serve it.
//
//	h := portmapper.NewHandler(myMapper{})
//	err := h.ServeUnix("mymapper", 0) // /run/docker/plugins/mymapper.sock
//
// The request and answer types are aliases of those of package
// portmapper/api, which the library's client uses too, so both ends share
// one definition of the wire format.
package portmapper

import (
	"net/http"

	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/portmapper/api"
)

// The protocol's types, shared with the library.
type (
	// MapPortsRequest is the API request sent to the PortMapper plugin to
	// map a port.
	MapPortsRequest = api.MapPortsRequest
	// PortBindingReq is one binding asked for in a MapPortsRequest.
	PortBindingReq = api.PortBindingReq
	// MapPortsResponse is the answer to a MapPortsRequest.
	MapPortsResponse = api.MapPortsResponse
	// PortBinding is returned by the PortMapper when a request has been
	// processed.
	PortBinding = api.PortBinding
	// NATRule is the destination NAT the library programs for a binding.
	NATRule = api.NATRule
	// UnmapPortsRequest is the API request to release bindings.
	UnmapPortsRequest = api.UnmapPortsRequest
	// Protocol is a binding's transport protocol, encoded as its number.
	Protocol = api.Protocol
)

// Driver is a port mapper. A returned error is sent to the library as an
// ErrorResponse; MapPorts must then have mapped nothing of the request.
type Driver interface {
	MapPorts(MapPortsRequest) (MapPortsResponse, error)
	UnmapPorts(UnmapPortsRequest) error
}

// ErrorResponse is a formatted error message that libnetwork can
// understand.
type ErrorResponse = pluginsdk.ErrorResponse

// NewErrorResponse creates an ErrorResponse with the provided message.
func NewErrorResponse(msg string) *ErrorResponse {
	return &ErrorResponse{Err: msg}
}

// Handler forwards requests and responses between the library and the
// plugin's Driver. Serve it with ServeUnix, ServeTCP or Serve (promoted
// from pluginsdk.Handler); it is also an http.Handler.
type Handler struct {
	*pluginsdk.Handler
	driver Driver
}

// NewHandler initializes the request handler with a driver
// implementation.
func NewHandler(driver Driver) *Handler {
	h := &Handler{Handler: pluginsdk.NewHandler(api.Interface), driver: driver}
	h.HandleFunc(api.MapPortsPath, h.mapPorts)
	h.HandleFunc(api.UnmapPortsPath, h.unmapPorts)
	return h
}

func (h *Handler) mapPorts(w http.ResponseWriter, r *http.Request) {
	var req MapPortsRequest
	if pluginsdk.DecodeRequest(w, r, &req) != nil {
		return
	}
	res, err := h.driver.MapPorts(req)
	if err != nil {
		pluginsdk.EncodeResponse(w, http.StatusInternalServerError, NewErrorResponse(err.Error()))
		return
	}
	pluginsdk.EncodeResponse(w, http.StatusOK, res)
}

func (h *Handler) unmapPorts(w http.ResponseWriter, r *http.Request) {
	var req UnmapPortsRequest
	if pluginsdk.DecodeRequest(w, r, &req) != nil {
		return
	}
	if err := h.driver.UnmapPorts(req); err != nil {
		pluginsdk.EncodeResponse(w, http.StatusInternalServerError, NewErrorResponse(err.Error()))
		return
	}
	pluginsdk.EncodeResponse(w, http.StatusOK, struct{}{})
}
