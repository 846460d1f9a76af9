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

// linkSpec is an endpoint's link to create: a macvlan device in bridge
// mode on its segment's VXLAN device. Bridge mode forwards between the
// macvlan devices of one VXLAN device (the endpoints of a segment on this
// host) inside the kernel, and hands everything else to the VXLAN device:
// a frame crosses no veth and no bridge on its way to the tunnel.
type linkSpec struct {
	name string
	// parentIndex is the VXLAN device's index in the network's
	// namespace, where the request is made.
	parentIndex int
	mac         net.HardwareAddr
	mtu         int
	// nsFd is the namespace the link is born in (the sandbox's).
	nsFd int
}

// link returns the netlink request of s.
func (s linkSpec) link() *netlink.Macvlan {
	return &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:         s.name,
			ParentIndex:  s.parentIndex,
			HardwareAddr: s.mac,
			MTU:          s.mtu,
			TxQLen:       -1,
			Namespace:    netlink.NsFd(s.nsFd),
		},
		Mode: netlink.MACVLAN_MODE_BRIDGE,
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
