package port

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/types"
)

// Protos are the values Spec.Proto may take.
var Protos = []string{"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"}

// Validate checks a spec as AddPort receives it and returns a
// BadRequestError naming the field at fault and why: Proto must be one of
// Protos; ParentPort and ChildPort in 1..65535; ParentIP and ChildIP empty
// or an IP address without a zone. ParentIP must belong to the family a
// "4" or "6" proto names, since the parent listens there in that family
// only. ChildIP may be of either family: the child dials it with the
// proto's transport, whatever the parent listens on (as rootlesskit's
// builtin driver does, whose default ChildIP is 127.0.0.1 for every proto).
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return types.BadRequestErrorf("invalid port spec %s: "+format, append([]any{s.String()}, a...)...)
	}
	if !validProto(s.Proto) {
		return bad("proto %q: not one of %s", s.Proto, strings.Join(Protos, ", "))
	}
	if s.ParentPort < 1 || s.ParentPort > 65535 {
		return bad("parentPort %d: not in 1..65535", s.ParentPort)
	}
	if s.ChildPort < 1 || s.ChildPort > 65535 {
		return bad("childPort %d: not in 1..65535", s.ChildPort)
	}
	if s.ParentIP != "" {
		ip, err := parseIP(s.ParentIP)
		if err != nil {
			return bad("parentIP %q: %v", s.ParentIP, err)
		}
		if fam := family(s.Proto); fam == "4" && !ip.Is4() {
			return bad("parentIP %q is not an IPv4 address, but proto %s listens on IPv4 only", s.ParentIP, s.Proto)
		} else if fam == "6" && ip.Is4() {
			return bad("parentIP %q is an IPv4 address, but proto %s listens on IPv6 only", s.ParentIP, s.Proto)
		}
	}
	if s.ChildIP != "" {
		if _, err := parseIP(s.ChildIP); err != nil {
			return bad("childIP %q: %v", s.ChildIP, err)
		}
	}
	return nil
}

// ListenAddrs returns the parent addresses a valid spec listens on. An
// unspecified address (0.0.0.0 or ::) stands for every address of its
// family. A "tcp" or "udp" spec whose ParentIP is empty or "::" listens on
// both families (one dual-stack socket); with "0.0.0.0" it listens on IPv4
// only. An IPv4-mapped IPv6 ParentIP is its IPv4 address. A "4" or "6"
// proto with an empty ParentIP listens on its family's wildcard.
func (s Spec) ListenAddrs() []netip.Addr {
	var ip netip.Addr
	if s.ParentIP != "" {
		var err error
		if ip, err = parseIP(s.ParentIP); err != nil {
			return nil
		}
	}
	switch family(s.Proto) {
	case "4":
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		return []netip.Addr{ip}
	case "6":
		if !ip.IsValid() {
			ip = netip.IPv6Unspecified()
		}
		return []netip.Addr{ip}
	}
	if !ip.IsValid() || ip == netip.IPv6Unspecified() {
		return []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	return []netip.Addr{ip}
}

// Overlaps reports whether two valid specs would listen on a common parent
// address: the same transport (TCP or UDP) and parent port, and addresses
// of one family that are equal or of which one is the family's wildcard.
// The kernel would refuse the second bind; a driver says why first.
func (s Spec) Overlaps(o Spec) bool {
	if transport(s.Proto) != transport(o.Proto) || s.ParentPort != o.ParentPort {
		return false
	}
	for _, a := range s.ListenAddrs() {
		for _, b := range o.ListenAddrs() {
			if a.Is4() == b.Is4() && (a == b || a.IsUnspecified() || b.IsUnspecified()) {
				return true
			}
		}
	}
	return false
}

// CheckConflict returns a ForbiddenError naming the first of existing whose
// spec overlaps spec (see Spec.Overlaps), or nil. Drivers call it in
// AddPort, under the lock that guards their ports, before binding.
func CheckConflict(spec Spec, existing []Status) error {
	for _, st := range existing {
		if spec.Overlaps(st.Spec) {
			return types.ForbiddenErrorf("port spec %s conflicts with port %d (%s): both listen on %s port %d",
				spec.String(), st.ID, st.Spec.String(), transport(spec.Proto), spec.ParentPort)
		}
	}
	return nil
}

func validProto(p string) bool {
	for _, v := range Protos {
		if p == v {
			return true
		}
	}
	return false
}

// transport is "tcp" or "udp".
func transport(proto string) string { return strings.TrimRight(proto, "46") }

// family is "4", "6", or "" for a proto that takes both.
func family(proto string) string { return strings.TrimPrefix(proto, transport(proto)) }

// parseIP parses an address without a zone and unmaps IPv4-mapped IPv6
// addresses.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errNotAnIP
	}
	if ip.Zone() != "" {
		return netip.Addr{}, errZone
	}
	return ip.Unmap(), nil
}

type specError string

func (e specError) Error() string { return string(e) }

const (
	errNotAnIP = specError("not an IP address")
	errZone    = specError("IPv6 zones are not supported")
)

// String formats a spec for errors and logs, as
// "proto parentIP:parentPort -> childIP:childPort" (such as
// "tcp4 127.0.0.1:8080 -> 127.0.0.1:80"; an empty IP stays empty).
func (s Spec) String() string {
	return s.Proto + " " + net.JoinHostPort(s.ParentIP, strconv.Itoa(s.ParentPort)) +
		" -> " + net.JoinHostPort(s.ChildIP, strconv.Itoa(s.ChildPort))
}
