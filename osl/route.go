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

// SetDefaultInterface makes the interface ifName itself the default route
// of the IPv6 (v6) or IPv4 family, without a gateway (scope link: every
// destination is on the link, as an ipvlan l3 parent routes it), replacing
// any default route of that family.
func (n *Namespace) SetDefaultInterface(ifName string, v6 bool) error {
	if err := checkIfName("setting the default route", ifName); err != nil {
		return err
	}
	op := fmt.Sprintf("setting the default route on %s", ifName)
	return n.withHandle(op, func(h *netlink.Handle) error {
		link, err := linkByName(h, ifName)
		if err != nil {
			return n.kernelError(op, err)
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: defaultDst(v6), Scope: netlink.SCOPE_LINK}
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
	if v6 {
		op = "removing the IPv6 default gateway"
	}
	return n.withHandle(op, func(h *netlink.Handle) error {
		// A delete that names only the destination removes the first
		// matching route, whatever its gateway and device: deleting until
		// none is left takes one round trip more than there are routes,
		// and spares a dump of the table (as much again, at a Leave).
		route := &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: defaultDst(v6)}
		for range maxDefaultRoutes {
			err := h.RouteDel(route)
			if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
				return nil // none left (ENOENT from IPv6)
			}
			if err != nil {
				return n.kernelError(op, err)
			}
		}
		return n.kernelError(op, fmt.Errorf("more than %d default routes", maxDefaultRoutes))
	})
}

// maxDefaultRoutes bounds UnsetDefaultGateway's loop.
const maxDefaultRoutes = 64

// defaultDst returns 0.0.0.0/0 or ::/0.
func defaultDst(v6 bool) *net.IPNet {
	if v6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}
