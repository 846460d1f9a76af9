package osl

import (
	"errors"
	"fmt"
	"net"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetDefaultGateway makes gw on the interface ifName the default route of
// gw's address family, replacing any default route of that family.
func (n *Namespace) SetDefaultGateway(gw net.IP, ifName string) error {
	if gw == nil || gw.To16() == nil {
		return types.BadRequestErrorf("setting the default gateway via %s: invalid gateway address", ifName)
	}
	if err := checkIfName("setting the default gateway", ifName); err != nil {
		return err
	}
	op := fmt.Sprintf("setting the default gateway %s on %s", gw, ifName)
	return n.withHandle(op, func(h *netlink.Handle) error {
		link, err := linkByName(h, ifName)
		if err != nil {
			return n.kernelError(op, err)
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: defaultDst(gw.To4() == nil), Gw: gw}
		if err := h.RouteReplace(route); err != nil {
			return n.kernelError(op, err)
		}
		return nil
	})
}

// UnsetDefaultGateway removes the default routes of the IPv6 (v6) or IPv4
// family from the main table. No default route is not an error.
func (n *Namespace) UnsetDefaultGateway(v6 bool) error {
	op := "removing the IPv4 default gateway"
	family := netlink.FAMILY_V4
	if v6 {
		op, family = "removing the IPv6 default gateway", netlink.FAMILY_V6
	}
	return n.withHandle(op, func(h *netlink.Handle) error {
		filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: defaultDst(v6)}
		routes, err := Dump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		})
		if err != nil {
			return n.kernelError(op, fmt.Errorf("listing routes: %w", err))
		}
		for i := range routes {
			if err := h.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
				return n.kernelError(op, err)
			}
		}
		return nil
	})
}

// defaultDst returns 0.0.0.0/0 or ::/0.
func defaultDst(v6 bool) *net.IPNet {
	if v6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}
