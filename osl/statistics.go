package osl

import (
	"net"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Statistics returns the counters of every interface in the namespace
// except loopback, by interface name.
func (n *Namespace) Statistics() (map[string]*types.InterfaceStatistics, error) {
	const op = "reading interface statistics"
	stats := make(map[string]*types.InterfaceStatistics)
	err := n.withHandle(op, func(h *netlink.Handle) error {
		links, err := Dump(h.LinkList)
		if err != nil {
			return n.kernelError(op, err)
		}
		for _, l := range links {
			attrs := l.Attrs()
			if attrs.Flags&net.FlagLoopback != 0 {
				continue
			}
			s := &types.InterfaceStatistics{}
			if c := attrs.Statistics; c != nil {
				*s = types.InterfaceStatistics{
					RxBytes:   c.RxBytes,
					RxPackets: c.RxPackets,
					RxErrors:  c.RxErrors,
					RxDropped: c.RxDropped,
					TxBytes:   c.TxBytes,
					TxPackets: c.TxPackets,
					TxErrors:  c.TxErrors,
					TxDropped: c.TxDropped,
				}
			}
			stats[attrs.Name] = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stats, nil
}
