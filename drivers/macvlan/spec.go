package macvlan

import (
	"net"

	"github.com/vishvananda/netlink"
)

// linkSpec is an endpoint's macvlan link to create.
type linkSpec struct {
	name        string
	parentIndex int // in the controller's namespace
	mode        string
	mac         net.HardwareAddr
	mtu         int
	// nsFd is the namespace to create it in (the sandbox's); -1 creates
	// it in the controller's.
	nsFd int
}

// link returns the netlink request of s: the link is created by the
// controller's netlink handle, whose namespace the parent index refers
// to, and born in s.nsFd's namespace when one is given.
func (s linkSpec) link() *netlink.Macvlan {
	l := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:         s.name,
			ParentIndex:  s.parentIndex,
			HardwareAddr: s.mac,
			MTU:          s.mtu,
			TxQLen:       -1,
		},
		Mode: linkModes[s.mode],
	}
	if s.nsFd >= 0 {
		l.Namespace = netlink.NsFd(s.nsFd)
	}
	return l
}
