package ipvlan

import (
	"github.com/vishvananda/netlink"
)

// linkSpec is an endpoint's ipvlan link to create. It has no MAC: an
// ipvlan link has its parent's.
type linkSpec struct {
	name        string
	parentIndex int // in the controller's namespace
	mode        string
	flag        string
	mtu         int
	// nsFd is the namespace to create it in (the sandbox's); -1 creates
	// it in the controller's.
	nsFd int
}

// link returns the netlink request of s: the link is created by the
// controller's netlink handle, whose namespace the parent index refers
// to, and born in s.nsFd's namespace when one is given.
func (s linkSpec) link() *netlink.IPVlan {
	l := &netlink.IPVlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:        s.name,
			ParentIndex: s.parentIndex,
			MTU:         s.mtu,
			TxQLen:      -1,
		},
		Mode: linkModes[s.mode],
		Flag: linkFlags[s.flag],
	}
	if s.nsFd >= 0 {
		l.Namespace = netlink.NsFd(s.nsFd)
	}
	return l
}
