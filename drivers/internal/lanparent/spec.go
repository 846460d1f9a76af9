package lanparent

import (
	"github.com/vishvananda/netlink"
)

// VLANLink returns the 802.1q sub-interface to create: VLAN id on the
// link of index baseIndex, named name, carrying mark as its alias.
func VLANLink(name string, baseIndex, id int, mark string) *netlink.Vlan {
	return &netlink.Vlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: baseIndex, Alias: mark, TxQLen: -1},
		VlanId:    id,
	}
}

// DummyLink returns the internal parent of a network that names none, as
// docker makes it: a dummy link, which drops everything sent to it, so
// the network's endpoints reach each other and nothing else. mtu 0 is the
// kernel's default.
func DummyLink(name string, mtu int, mark string) *netlink.Dummy {
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, Alias: mark, TxQLen: -1}}
}

// PortlessBridgeLink returns the internal parent used where the kernel has
// no dummy links: a bridge that never gets a port. What its upper links
// send goes to the bridge's transmit path, which only forwards to ports,
// so it is dropped as a dummy would; it never enters the host's stack.
func PortlessBridgeLink(name string, mtu int, mark string) *netlink.Bridge {
	return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, Alias: mark, TxQLen: -1}}
}
