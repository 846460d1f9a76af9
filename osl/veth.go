package osl

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Veth is a veth pair for AddVeth: one end in the namespace, its peer born
// in another one.
type Veth struct {
	Name   string           // the end in the namespace
	MAC    net.HardwareAddr // nil: chosen by the kernel
	MTU    int              // of both ends; 0: the kernel's default
	Master int              // ifindex of a bridge to put the end on; 0: none
	Up     bool             // bring the end up (the peer stays down)

	PeerName string
	PeerMAC  net.HardwareAddr // nil: chosen by the kernel
	PeerNS   int              // fd of the peer's namespace
}

// AddVeth creates the pair in one netlink request (the end up and on its
// bridge, the peer directly in its namespace) and returns the index of the
// end in n, which the kernel echoes back. netlink.Handle's LinkAdd takes
// three round trips for the same (create, look the index up, enslave),
// and each one makes the kernel describe the link again, which for a veth
// whose peer is in another namespace walks every namespace the host knows
// (peernet2id): with a thousand containers that walk is the larger part
// of a round trip. If any part fails, the kernel creates nothing.
func (n *Namespace) AddVeth(v Veth) (int, error) {
	op := fmt.Sprintf("creating veth %s (peer %s)", v.Name, v.PeerName)
	if err := checkIfName(op, v.Name); err != nil {
		return 0, err
	}
	if err := checkIfName(op, v.PeerName); err != nil {
		return 0, err
	}
	raw, err := n.rawSocket()
	if err != nil {
		return 0, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK|unix.NLM_F_ECHO)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	if v.Up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.Name)))
	if v.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU))))
	}
	if v.MAC != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, v.MAC))
	}
	if v.Master > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.Master))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.PeerName))
	if v.MTU > 0 {
		peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU)))
	}
	if v.PeerMAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, v.PeerMAC)
	}
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(v.PeerNS)))
	req.AddData(info)

	var index int
	err = n.withHandle(op, func(h *netlink.Handle) error {
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: raw}
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if len(m) >= unix.SizeofIfInfomsg {
				index = int(nl.DeserializeIfInfomsg(m).Index)
			}
		}
		if index == 0 {
			// No echo (it is best effort): look the link up.
			l, err := linkByName(h, v.Name)
			if err != nil {
				return err
			}
			index = l.Attrs().Index
		}
		return nil
	})
	if err != nil {
		return 0, n.kernelError(op, err)
	}
	return index, nil
}
