package overlay

import (
	"errors"
	"fmt"
)

// ErrNoVTEP is wrapped by the error of CreateNetwork (a
// types.ForbiddenError) when the driver has no VTEP address: the
// controller was given no discovery address (no global store), so this
// host cannot tell peers where to send its network's traffic.
var ErrNoVTEP = errors.New("no VTEP address configured (the controller needs a discovery address, the address this host advertises to its peers)")

// OptionError is the error of CreateNetwork for a network option or IPAM
// datum it refuses: a missing or malformed VNI list, a VNI out of range, a
// VNI count that does not match the subnets, an MTU the underlay cannot
// carry. It is a types.BadRequestError.
type OptionError struct {
	// Network is the ID of the network being created.
	Network string
	// Option names the option (VXLANIDListOption, MTUOption, ...).
	Option string
	// Value is the value given ("" when missing).
	Value string
	// Reason says why it is refused.
	Reason string
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("overlay network %s: option %s: %s", e.Network, e.Option, e.Reason)
	}
	return fmt.Sprintf("overlay network %s: option %s=%q: %s", e.Network, e.Option, e.Value, e.Reason)
}

// BadRequest denotes the type of this error.
func (e *OptionError) BadRequest() {}

// PeerError is the error of AddPeer and DeletePeer for a peer they
// refuse: no MAC, no VTEP, or an address in none of the network's
// subnets. It is a types.BadRequestError.
type PeerError struct {
	// Network is the ID of the network.
	Network string
	// Peer is the peer as given.
	Peer Peer
	// Reason says why it is refused.
	Reason string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("overlay network %s: peer %s: %s", e.Network, e.Peer, e.Reason)
}

// BadRequest denotes the type of this error.
func (e *PeerError) BadRequest() {}
