package portallocator

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netkit/libnetwork/types"
)

// PortInUseError is returned when a requested host port is taken, either by
// another program on the host (its bind failed with EADDRINUSE) or by
// another allocation of the same Allocator.
//
// It is a types.ForbiddenError: the request itself is valid, but the host's
// current state does not allow it (types has no conflict class, and
// Forbidden is the class v0.7 callers already test for a port that is
// "already allocated"). Retrying after the other user lets go of the port
// would succeed.
type PortInUseError struct {
	Proto  types.Protocol
	HostIP netip.Addr
	Port   uint16
	// Allocated reports that the port is held by another allocation of the
	// same Allocator (another published port), not by another program.
	Allocated bool
	// Err is the kernel's error (EADDRINUSE), or nil when Allocated.
	Err error
}

// Error says which host port on which address and protocol is taken.
func (e *PortInUseError) Error() string {
	msg := fmt.Sprintf("host port %d/%s on %s is already in use", e.Port, e.Proto, e.HostIP)
	if e.Allocated {
		msg += " by another published port"
	}
	return msg
}

// Unwrap returns the kernel's error, if any.
func (e *PortInUseError) Unwrap() error { return e.Err }

// Forbidden marks the error as a types.ForbiddenError.
func (e *PortInUseError) Forbidden() {}

// NoFreePortError is returned when no port of the requested range (or of
// the ephemeral range) is free for every binding of a group.
//
// It is a types.ForbiddenError for the same reason as PortInUseError: the
// range is valid, but every port of it is taken now.
type NoFreePortError struct {
	// Begin and End bound the range searched.
	Begin, End uint16
	// Ephemeral reports that the range is the namespace's
	// ip_local_port_range, searched without ip_local_reserved_ports.
	Ephemeral bool
	// Bindings are the protocol and host address of every member of the
	// group, as "tcp on 0.0.0.0".
	Bindings []string
}

// Error names the range and the bindings that found no common free port.
func (e *NoFreePortError) Error() string {
	what := fmt.Sprintf("range %d-%d", e.Begin, e.End)
	if e.Ephemeral {
		what = fmt.Sprintf("the ephemeral range %d-%d (ip_local_port_range, less ip_local_reserved_ports)", e.Begin, e.End)
	}
	return fmt.Sprintf("no host port in %s is free for %s", what, strings.Join(e.Bindings, " and "))
}

// Forbidden marks the error as a types.ForbiddenError.
func (e *NoFreePortError) Forbidden() {}

var (
	_ types.ForbiddenError = (*PortInUseError)(nil)
	_ types.ForbiddenError = (*NoFreePortError)(nil)
)
