// Package types holds the value types shared across the library (transport
// ports, port bindings, static routes, interface statistics, IP helpers) and
// the error classes that callers test with errors.As.
package types

import (
	"bytes"
	"fmt"
	"net"
	"strings"
)

// Protocol is an IP protocol number as used in port bindings.
type Protocol uint8

// The transport protocols a port binding may name.
const (
	ICMP Protocol = 1
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns the lower-case protocol name ("tcp", "udp", ...).
func (p Protocol) String() string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	default:
		return fmt.Sprintf("%d", p)
	}
}

// ParseProtocol returns the protocol named by s ("tcp", "udp", "sctp",
// "icmp"); it returns 0 for a name it does not know.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "icmp":
		return ICMP
	case "tcp":
		return TCP
	case "udp":
		return UDP
	case "sctp":
		return SCTP
	default:
		return 0
	}
}

// TransportPort is a protocol and a port number.
type TransportPort struct {
	Proto Protocol
	Port  uint16
}

// Equal reports whether t and o name the same protocol and port.
func (t *TransportPort) Equal(o *TransportPort) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil {
		return false
	}
	return t.Proto == o.Proto && t.Port == o.Port
}

// GetCopy returns a copy of t.
func (t *TransportPort) GetCopy() TransportPort {
	return TransportPort{Proto: t.Proto, Port: t.Port}
}

// String returns "port/proto".
func (t *TransportPort) String() string {
	return fmt.Sprintf("%d/%s", t.Port, t.Proto)
}

// PortBinding maps a container port to a host address and port range.
type PortBinding struct {
	Proto       Protocol
	IP          net.IP
	Port        uint16
	HostIP      net.IP
	HostPort    uint16
	HostPortEnd uint16
}

// GetCopy returns a deep copy of p.
func (p *PortBinding) GetCopy() PortBinding {
	return PortBinding{
		Proto:       p.Proto,
		IP:          GetIPCopy(p.IP),
		Port:        p.Port,
		HostIP:      GetIPCopy(p.HostIP),
		HostPort:    p.HostPort,
		HostPortEnd: p.HostPortEnd,
	}
}

// Equal reports whether p and o describe the same binding.
func (p *PortBinding) Equal(o *PortBinding) bool {
	if p == o {
		return true
	}
	if p == nil || o == nil {
		return false
	}
	return p.Proto == o.Proto && p.Port == o.Port && p.HostPort == o.HostPort &&
		p.HostPortEnd == o.HostPortEnd && p.IP.Equal(o.IP) && p.HostIP.Equal(o.HostIP)
}

// String returns "hostip:hostport:ip:port/proto".
func (p *PortBinding) String() string {
	return fmt.Sprintf("%s:%d:%s:%d/%s", p.HostIP, p.HostPort, p.IP, p.Port, p.Proto)
}

// Route types of a StaticRoute.
const (
	// NEXTHOP is a route through a gateway.
	NEXTHOP = iota
	// CONNECTED is a route to a directly connected destination.
	CONNECTED
)

// StaticRoute is a route a driver asks to be installed in the sandbox.
type StaticRoute struct {
	Destination *net.IPNet
	RouteType   int
	// NextHop is nil for CONNECTED routes.
	NextHop net.IP
}

// GetCopy returns a deep copy of r.
func (r *StaticRoute) GetCopy() *StaticRoute {
	return &StaticRoute{
		Destination: GetIPNetCopy(r.Destination),
		RouteType:   r.RouteType,
		NextHop:     GetIPCopy(r.NextHop),
	}
}

// InterfaceStatistics are the counters of one interface of a sandbox.
type InterfaceStatistics struct {
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

// String returns a one-line summary of the counters.
func (is *InterfaceStatistics) String() string {
	return fmt.Sprintf("\nRxBytes: %d, RxPackets: %d, RxErrors: %d, RxDropped: %d, TxBytes: %d, TxPackets: %d, TxErrors: %d, TxDropped: %d",
		is.RxBytes, is.RxPackets, is.RxErrors, is.RxDropped, is.TxBytes, is.TxPackets, is.TxErrors, is.TxDropped)
}

// GetIPCopy returns a copy of ip, or nil for nil.
func GetIPCopy(ip net.IP) net.IP {
	if ip == nil {
		return nil
	}
	c := make(net.IP, len(ip))
	copy(c, ip)
	return c
}

// GetIPNetCopy returns a deep copy of n, or nil for nil.
func GetIPNetCopy(n *net.IPNet) *net.IPNet {
	if n == nil {
		return nil
	}
	m := make(net.IPMask, len(n.Mask))
	copy(m, n.Mask)
	return &net.IPNet{IP: GetIPCopy(n.IP), Mask: m}
}

// GetMacCopy returns a copy of mac, or nil for nil.
func GetMacCopy(mac net.HardwareAddr) net.HardwareAddr {
	if mac == nil {
		return nil
	}
	c := make(net.HardwareAddr, len(mac))
	copy(c, mac)
	return c
}

// CompareIPNet reports whether a and b are the same address and mask.
func CompareIPNet(a, b *net.IPNet) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.IP.Equal(b.IP) && bytes.Equal(a.Mask, b.Mask)
}

// ParseCIDR parses s like net.ParseCIDR but keeps the host part of the
// address (10.0.0.5/24 stays 10.0.0.5/24), which is how interface addresses
// are written.
func ParseCIDR(s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, BadRequestErrorf("invalid CIDR %q: %v", s, err)
	}
	if v4 := ip.To4(); v4 != nil && len(n.Mask) == net.IPv4len {
		ip = v4
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}, nil
}
