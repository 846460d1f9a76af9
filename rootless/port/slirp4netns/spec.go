package slirp4netns

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// protos are the values of port.Spec.Proto slirp4netns can forward: IPv4
// TCP and UDP. slirp4netns 1.2's add_hostfwd takes IPv4 addresses only (its
// manual says "IPv4 only"; 1.3 is the same), so "tcp" and "udp" listen on
// IPv4 only, and "tcp6" and "udp6" are refused.
var protos = []string{"tcp", "tcp4", "udp", "udp4"}

// toHostfwd checks spec and turns it into slirp4netns's add_hostfwd
// arguments; childIP is the guest address used when spec.ChildIP is
// empty. A spec that is invalid (port.Spec.Validate) or that slirp4netns
// cannot forward is a types.BadRequestError that names it and says why.
func toHostfwd(spec port.Spec, childIP netip.Addr) (hostfwd, error) {
	if err := spec.Validate(); err != nil {
		return hostfwd{}, err
	}
	refuse := func(format string, a ...any) (hostfwd, error) {
		return hostfwd{}, types.BadRequestErrorf("slirp4netns cannot publish %s: %s", spec, fmt.Sprintf(format, a...))
	}
	if strings.HasSuffix(spec.Proto, "6") {
		return refuse("it forwards IPv4 only, so not %s (the builtin port driver does)", spec.Proto)
	}
	hostAddr := netip.IPv4Unspecified()
	if spec.ParentIP != "" {
		// Validate parsed it.
		a := netip.MustParseAddr(spec.ParentIP).Unmap()
		if !a.Is4() {
			return refuse("parent IP %s is IPv6, and it forwards IPv4 only", spec.ParentIP)
		}
		hostAddr = a
	}
	guestAddr := childIP
	if spec.ChildIP != "" {
		a := netip.MustParseAddr(spec.ChildIP).Unmap()
		if !a.Is4() {
			return refuse("child IP %s is IPv6, and it forwards IPv4 only", spec.ChildIP)
		}
		if err := checkChildIP(a); err != nil {
			return refuse("%v", err)
		}
		guestAddr = a
	}
	return hostfwd{
		Proto:     strings.TrimSuffix(spec.Proto, "4"),
		HostAddr:  hostAddr.String(),
		HostPort:  spec.ParentPort,
		GuestAddr: guestAddr.String(),
		GuestPort: spec.ChildPort,
	}, nil
}

// checkChildIP refuses child addresses slirp4netns cannot deliver to: it
// reaches the child through its tap device, so never the child's loopback.
func checkChildIP(a netip.Addr) error {
	switch {
	case a.IsLoopback():
		return fmt.Errorf("child IP %s is a loopback address, which slirp4netns cannot reach through the tap device", a)
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("child IP %s is not a unicast address", a)
	}
	return nil
}

// sameForward reports whether slirp4netns's entry is the forward made for
// fwd, ignoring the ID.
func sameForward(entry, fwd hostfwd) bool {
	entry.ID, fwd.ID = 0, 0
	return entry == fwd
}

// toSpec is the spec of a forward this Manager did not make.
func toSpec(f hostfwd) port.Spec {
	return port.Spec{
		Proto:      f.Proto,
		ParentIP:   f.HostAddr,
		ParentPort: f.HostPort,
		ChildIP:    f.GuestAddr,
		ChildPort:  f.GuestPort,
	}
}
