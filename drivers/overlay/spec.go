package overlay

import (
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vxlanSpec is a segment's VXLAN device.
type vxlanSpec struct {
	name  string
	vni   int
	port  int    // UDP destination port
	local net.IP // this host's VTEP
	mtu   int
	mark  string
	// nsFd is the namespace the device is born in (the network's); the
	// request is sent from the controller's namespace, which makes that
	// the device's underlay: its UDP socket and routes are there.
	nsFd int
}

// link returns the netlink request of s. Learning is off (peers are
// programmed, never learnt from traffic) and so are the miss
// notifications (nobody listens to them); proxy is on, so the device
// answers ARP requests and IPv6 neighbour solicitations for remote
// endpoints from its neighbour table itself, and broadcasts and unknown
// destinations, which have no FDB entry, go nowhere: no multicast, no
// flooding over the underlay.
func (s vxlanSpec) link() *netlink.Vxlan {
	return &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:      s.name,
			MTU:       s.mtu,
			Alias:     s.mark,
			TxQLen:    -1,
			Namespace: netlink.NsFd(s.nsFd),
		},
		VxlanId:  s.vni,
		SrcAddr:  s.local,
		Port:     s.port,
		Learning: false,
		Proxy:    true,
		L2miss:   false,
		L3miss:   false,
	}
}

// matches reports whether l is the device s describes (its MTU aside,
// which adoption sets), so that a restart may adopt it.
func (s vxlanSpec) matches(l netlink.Link) bool {
	v, ok := l.(*netlink.Vxlan)
	return ok && v.Attrs().Alias == s.mark && v.VxlanId == s.vni && v.Port == s.port &&
		v.SrcAddr.Equal(s.local) && !v.Learning && v.Proxy && v.Group == nil && !v.FlowBased
}

// bridgeSpec is a segment's bridge.
type bridgeSpec struct {
	name string
	mtu  int
	// mac is fixed, so that it does not change as ports come and go; the
	// host side of every endpoint's veth takes it too (see Join).
	mac  net.HardwareAddr
	mark string
}

// link returns the netlink request of s. Multicast snooping is off: the
// segment's multicast (IPv6 neighbour solicitations included) is flooded
// to its ports, the VXLAN device among them, which answers what it can
// and sends nothing over the underlay that has no FDB entry.
func (s bridgeSpec) link() *netlink.Bridge {
	off := false
	return &netlink.Bridge{
		LinkAttrs: netlink.LinkAttrs{
			Name:         s.name,
			MTU:          s.mtu,
			HardwareAddr: s.mac,
			Alias:        s.mark,
			TxQLen:       -1,
		},
		MulticastSnooping: &off,
	}
}

// fdbEntry is the static forwarding entry of a remote endpoint on a
// segment's VXLAN device: frames to mac go to the VTEP vtep. It is the
// device's own (NTF_SELF, as `bridge fdb add ... self`), permanent: it
// neither ages nor is replaced by learning.
func fdbEntry(vxlanIndex int, mac net.HardwareAddr, vtep net.IP) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    vxlanIndex,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		HardwareAddr: mac,
		IP:           vtep,
	}
}

// neighEntry is the permanent neighbour entry of a remote endpoint on a
// segment's VXLAN device (ip has mac), from which the device answers the
// ARP requests and neighbour solicitations of local endpoints (proxy).
func neighEntry(vxlanIndex int, ip net.IP, mac net.HardwareAddr) *netlink.Neigh {
	family := unix.AF_INET6
	if ip4 := ip.To4(); ip4 != nil {
		family, ip = unix.AF_INET, ip4
	}
	return &netlink.Neigh{
		LinkIndex:    vxlanIndex,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: mac,
		IP:           ip,
	}
}
