// Package api holds the wire structs of the port-mapper plugin protocol
// (spec/portmapper-plugin-api.txt): what the library sends to a remote port
// mapper and what the mapper answers. The library's plugin client
// (package plugins) and the plugin-side helpers (package
// pluginsdk/portmapper) share these definitions, so both ends encode the
// same JSON.
//
// Encoding. Structs carry no JSON tags: field names are the Go names, as in
// every docker plugin protocol. A Protocol is its IP protocol number (tcp 6,
// udp 17, sctp 132), as the protocol types of docker's libnetwork and of the
// upstream port-mapper draft encode it. An address is its text form
// ("10.0.0.2", "fd00::2"), and the zero netip.Addr is "" (any address where
// the field allows it).
package api

import (
	"net/netip"

	"github.com/netkit/libnetwork/types"
)

// Interface is the name a port-mapper plugin lists in its /Plugin.Activate
// answer ({"Implements": ["PortMapper"]}).
const Interface = "PortMapper"

// The methods of the protocol, as "<Interface>.<Method>" and as the HTTP
// paths they are POSTed to.
const (
	MapPortsMethod   = Interface + ".MapPorts"
	UnmapPortsMethod = Interface + ".UnmapPorts"

	MapPortsPath   = "/" + MapPortsMethod
	UnmapPortsPath = "/" + UnmapPortsMethod
)

// Protocol is the transport protocol of a binding: the library's own
// types.Protocol, encoded as its IP protocol number.
type Protocol = types.Protocol

// MapPortsRequest is the API request sent to the PortMapper plugin to map a
// port.
type MapPortsRequest struct {
	// Reqs is a group of port bindings that should get the same port
	// assigned when an ephemeral port, or a port range is requested. Each
	// Reqs should yield an independent PortBinding.
	Reqs []PortBindingReq
	// Labels is a set of opaque, user-specified freeform labels that can be
	// used to tweak how the port-mapper behaves.
	Labels map[string]string
}

// PortBindingReq is one binding of a MapPortsRequest: a container
// (backend) address and port, and the host (frontend) address and port or
// port range asked for.
type PortBindingReq struct {
	Proto Protocol

	BackendIP   netip.Addr
	BackendPort uint16

	FrontendIP netip.Addr
	// FrontendPort is either an exact port, an ephemeral port (= 0), or
	// the start of a port range.
	FrontendPort uint16
	// FrontendPortEnd should be the same as HostPort when an exact or
	// ephemeral port is requested. Otherwise, it should be the end of the
	// port range.
	FrontendPortEnd uint16
}

// MapPortsResponse is the answer to a MapPortsRequest: one PortBinding per
// request, in the order of MapPortsRequest.Reqs, or Err.
type MapPortsResponse struct {
	PortBindings []PortBinding
	// Err, when not empty, says why the whole request failed; nothing of
	// it was mapped.
	Err string
}

// PortBinding is returned by the PortMapper when a request has been
// processed.
type PortBinding struct {
	Proto Protocol

	BackendIP   netip.Addr
	BackendPort uint16

	FrontendIP netip.Addr
	// FrontendPort is the frontend port picked by the PortMapper when an
	// ephemeral port, or a port range was specified in the request.
	FrontendPort uint16

	// DiscardReq is returned when the PortBindingReq can't be fulfilled,
	// but the driver deems it's not a fatal error.
	DiscardReq bool
	// AllowForwarding indicates whether forwarding to
	// BackendIP:BackendPort should be configured by the Engine.
	AllowForwarding bool
	// NAT is returned by the portmapper when it needs the Engine to
	// configure the host firewall to NAT a port to BackendIP:BackendPort.
	NAT *NATRule
	// Error indicates the reason why this port binding was discarded. This
	// error is logged.
	Error *string
}

// UnmapPortsRequest is the API request sent to the PortMapper plugin to
// release bindings it returned from MapPorts.
type UnmapPortsRequest struct {
	PortBindings []PortBinding
	Labels       map[string]string
}

// NATRule is the destination NAT a port mapper asks the library to
// program for a binding: packets of Proto sent to FrontendIP:FrontendPort
// get their destination rewritten to BackendIP:BackendPort.
//
// The spec names the type without defining it; this is the smallest rule
// the library can program without guessing: the match (protocol, host
// address, host port) and the target (container address and port). It is
// explicit rather than implied by the PortBinding around it so that a
// mapper may NAT to a target other than the binding's backend (a proxy
// listening on the host, say). An invalid (zero) FrontendIP matches every
// local address of the family of BackendIP. How the library makes the
// port reachable (prerouting and output hooks, loopback, hairpin, source
// NAT for them) is the library's business, not the mapper's.
type NATRule struct {
	Proto Protocol

	FrontendIP   netip.Addr
	FrontendPort uint16

	BackendIP   netip.Addr
	BackendPort uint16
}

// Validate reports whether the library can program r: a protocol that
// has ports (tcp, udp, sctp), non-zero ports, a valid backend address and,
// when FrontendIP is set, one of the backend's family. The error is a
// types.BadRequestError naming the field.
func (r NATRule) Validate() error {
	switch r.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return types.InvalidParameterErrorf("NAT rule: protocol %s has no ports", r.Proto)
	}
	if r.FrontendPort == 0 {
		return types.InvalidParameterErrorf("NAT rule %s: frontend port 0", r.Proto)
	}
	if r.BackendPort == 0 {
		return types.InvalidParameterErrorf("NAT rule %s/%d: backend port 0", r.Proto, r.FrontendPort)
	}
	if !r.BackendIP.IsValid() || r.BackendIP.IsUnspecified() {
		return types.InvalidParameterErrorf("NAT rule %s/%d: backend address %q is not a unicast address", r.Proto, r.FrontendPort, r.BackendIP)
	}
	if r.FrontendIP.IsValid() && r.FrontendIP.Unmap().Is4() != r.BackendIP.Unmap().Is4() {
		return types.InvalidParameterErrorf("NAT rule %s/%d: frontend %s and backend %s are of different families", r.Proto, r.FrontendPort, r.FrontendIP, r.BackendIP)
	}
	return nil
}
