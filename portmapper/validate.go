package portmapper

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// ValidateRequest checks every request of req, as every mapper does before
// acting: a protocol with ports (tcp, udp, sctp); a backend address that
// is a unicast address without a zone (not unspecified, multicast,
// broadcast or IPv4-mapped IPv6); a backend port; a frontend address, when
// given, of the backend's family, neither multicast nor zoned; and a
// frontend port that is 0 (ephemeral, with FrontendPortEnd 0), exact
// (FrontendPortEnd 0 or equal to it) or the start of a range ending at
// FrontendPortEnd. The error is a types.BadRequestError naming the request.
func ValidateRequest(req api.MapPortsRequest) error {
	for i, r := range req.Reqs {
		if err := validateBindingReq(r); err != nil {
			return types.BadRequestErrorf("port binding %d (%s): %w", i, describeReq(r), err)
		}
	}
	return nil
}

func validateBindingReq(r api.PortBindingReq) error {
	switch r.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return fmt.Errorf("protocol %s has no ports (want tcp, udp or sctp)", r.Proto)
	}
	if err := checkUnicast("backend", r.BackendIP); err != nil {
		return err
	}
	if r.BackendPort == 0 {
		return fmt.Errorf("backend port 0")
	}
	if r.FrontendIP.IsValid() {
		switch {
		case r.FrontendIP.Zone() != "":
			return fmt.Errorf("frontend address %s has a zone", r.FrontendIP)
		case r.FrontendIP.Is4In6():
			return fmt.Errorf("frontend address %s is IPv4-mapped; give it as %s", r.FrontendIP, r.FrontendIP.Unmap())
		case r.FrontendIP.IsMulticast():
			return fmt.Errorf("frontend address %s is multicast", r.FrontendIP)
		case r.FrontendIP.Is4() != r.BackendIP.Is4():
			return fmt.Errorf("frontend address %s and backend address %s are of different families", r.FrontendIP, r.BackendIP)
		}
	}
	switch end := r.FrontendPortEnd; {
	case r.FrontendPort == 0 && end != 0:
		return fmt.Errorf("frontend port range ends at %d but has no start", end)
	case end != 0 && end < r.FrontendPort:
		return fmt.Errorf("frontend port range %d-%d ends before it starts", r.FrontendPort, end)
	}
	return nil
}

func checkUnicast(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("no %s address", what)
	case a.Zone() != "":
		return fmt.Errorf("%s address %s has a zone", what, a)
	case a.Is4In6():
		return fmt.Errorf("%s address %s is IPv4-mapped; give it as %s", what, a, a.Unmap())
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s address %s is not a unicast address", what, a)
	}
	return nil
}

// portRange is the frontend ports a request accepts: begin == end == 0 for
// an ephemeral port, begin == end for an exact one.
type portRange struct{ begin, end uint16 }

func frontendRange(r api.PortBindingReq) portRange {
	if r.FrontendPortEnd == 0 {
		return portRange{r.FrontendPort, r.FrontendPort}
	}
	return portRange{r.FrontendPort, r.FrontendPortEnd}
}

func (pr portRange) ephemeral() bool { return pr.begin == 0 }

func (pr portRange) contains(p uint16) bool {
	if pr.ephemeral() {
		return p != 0
	}
	return pr.begin <= p && p <= pr.end
}

func (pr portRange) String() string {
	switch {
	case pr.ephemeral():
		return "an ephemeral port"
	case pr.begin == pr.end:
		return fmt.Sprintf("port %d", pr.begin)
	}
	return fmt.Sprintf("ports %d-%d", pr.begin, pr.end)
}

// frontendAddr is the host address a request asks for: its FrontendIP, or
// the unspecified address of the backend's family.
func frontendAddr(r api.PortBindingReq) netip.Addr {
	if r.FrontendIP.IsValid() {
		return r.FrontendIP
	}
	if r.BackendIP.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// describeReq returns "tcp 0.0.0.0:8080-8090 -> 10.0.0.2:80".
func describeReq(r api.PortBindingReq) string {
	front := "*"
	if r.FrontendIP.IsValid() {
		front = r.FrontendIP.String()
	}
	ports := fmt.Sprint(r.FrontendPort)
	if r.FrontendPortEnd != 0 && r.FrontendPortEnd != r.FrontendPort {
		ports = fmt.Sprintf("%d-%d", r.FrontendPort, r.FrontendPortEnd)
	}
	return fmt.Sprintf("%s %s -> %s", r.Proto, net.JoinHostPort(front, ports), net.JoinHostPort(r.BackendIP.String(), fmt.Sprint(r.BackendPort)))
}

// describeBinding returns "tcp 0.0.0.0:8080 -> 10.0.0.2:80".
func describeBinding(b api.PortBinding) string {
	front := "*"
	if b.FrontendIP.IsValid() {
		front = b.FrontendIP.String()
	}
	return fmt.Sprintf("%s %s -> %s", b.Proto, net.JoinHostPort(front, fmt.Sprint(b.FrontendPort)), net.JoinHostPort(b.BackendIP.String(), fmt.Sprint(b.BackendPort)))
}
