package osl

import (
	"errors"
	"fmt"
	"net"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IfaceConfig is the configuration of one interface inside a namespace.
type IfaceConfig struct {
	Name   string     // name inside the namespace, such as "eth0"
	Addr   *net.IPNet // IPv4 address, or nil
	AddrV6 *net.IPNet // IPv6 address, or nil; added without DAD, so usable at once
	MTU    int        // 0 leaves the MTU as it is
	Routes []Route    // extra routes via this interface
	// NoIPv6LinkLocal keeps the kernel from giving the interface an IPv6
	// link-local address (for interfaces without IPv6).
	NoIPv6LinkLocal bool
}

// Route is a route via an interface.
type Route struct {
	Dst *net.IPNet // destination network
	Gw  net.IP     // nil for a directly connected destination
}

// Iface describes an interface inside a namespace.
type Iface struct {
	Name  string
	Index int
	Type  string // netlink link type: "veth", "device", "bridge", ...
	MAC   net.HardwareAddr
	MTU   int
	Up    bool // administratively up
	Addrs []*net.IPNet
}

// ConfigureInterface gives the interface c.Name its addresses, MTU and
// routes and brings it up. It is idempotent (an address or route already
// there is fine), so it can be replayed after a restart. On failure it
// undoes what it did.
func (n *Namespace) ConfigureInterface(c IfaceConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	op := "configuring interface " + c.Name
	return n.withHandle(op, func(h *netlink.Handle) (retErr error) {
		link, err := linkByName(h, c.Name)
		if err != nil {
			return n.kernelError(op, err)
		}
		var undo []func()
		defer func() {
			if retErr != nil {
				for i := len(undo) - 1; i >= 0; i-- {
					undo[i]()
				}
			}
		}()
		steps := []func() (func(), error){
			func() (func(), error) { return noLinkLocal(h, link, c.NoIPv6LinkLocal) },
			func() (func(), error) { return setMTU(h, link, c.MTU) },
			func() (func(), error) { return addAddr(h, link, c.Addr, 0) },
			func() (func(), error) { return addAddr(h, link, c.AddrV6, unix.IFA_F_NODAD) },
			// Routes need the link up.
			func() (func(), error) { return setUp(h, link) },
		}
		for _, r := range c.Routes {
			steps = append(steps, func() (func(), error) { return addRoute(h, link, r) })
		}
		for _, step := range steps {
			u, err := step()
			if err != nil {
				return n.kernelError(op, err)
			}
			if u != nil {
				undo = append(undo, u)
			}
		}
		return nil
	})
}

func (c IfaceConfig) validate() error {
	if err := checkIfName("configuring interface", c.Name); err != nil {
		return err
	}
	if c.Addr != nil && c.Addr.IP.To4() == nil {
		return types.BadRequestErrorf("configuring interface %s: %s is not an IPv4 address", c.Name, c.Addr)
	}
	if c.AddrV6 != nil && (c.AddrV6.IP.To16() == nil || c.AddrV6.IP.To4() != nil) {
		return types.BadRequestErrorf("configuring interface %s: %s is not an IPv6 address", c.Name, c.AddrV6)
	}
	if c.MTU < 0 {
		return types.BadRequestErrorf("configuring interface %s: negative MTU %d", c.Name, c.MTU)
	}
	for _, r := range c.Routes {
		if r.Dst == nil {
			return types.BadRequestErrorf("configuring interface %s: route without destination", c.Name)
		}
		if r.Gw != nil && (r.Gw.To4() == nil) != (r.Dst.IP.To4() == nil) {
			return types.BadRequestErrorf("configuring interface %s: route to %s via %s mixes address families", c.Name, r.Dst, r.Gw)
		}
	}
	return nil
}

// noLinkLocal stops the kernel from giving the link an IPv6 link-local
// address when it comes up (addr_gen_mode none). Without that address the
// interface sends no DAD, router solicitation or MLD packets, which a
// bridge floods to every port: with hundreds of containers on one bridge
// each new one otherwise costs every other one work.
func noLinkLocal(h *netlink.Handle, link netlink.Link, on bool) (func(), error) {
	if !on {
		return nil, nil
	}
	const in6AddrGenModeNone = 1
	err := h.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone)
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP) {
		// No IPv6 in this kernel: nothing to turn off.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("turning off IPv6 link-local addressing: %w", err)
	}
	return nil, nil
}

func setMTU(h *netlink.Handle, link netlink.Link, mtu int) (func(), error) {
	old := link.Attrs().MTU
	if mtu == 0 || mtu == old {
		return nil, nil
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("setting MTU %d: %w", mtu, err)
	}
	return func() { _ = h.LinkSetMTU(link, old) }, nil
}

func addAddr(h *netlink.Handle, link netlink.Link, ipNet *net.IPNet, flags int) (func(), error) {
	if ipNet == nil {
		return nil, nil
	}
	addr := &netlink.Addr{IPNet: ipNet, Flags: flags}
	if err := h.AddrAdd(link, addr); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, nil
		}
		return nil, fmt.Errorf("adding address %s: %w", ipNet, err)
	}
	return func() { _ = h.AddrDel(link, addr) }, nil
}

func setUp(h *netlink.Handle, link netlink.Link) (func(), error) {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil, nil
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing the link up: %w", err)
	}
	return func() { _ = h.LinkSetDown(link) }, nil
}

func addRoute(h *netlink.Handle, link netlink.Link, r Route) (func(), error) {
	dst := &net.IPNet{IP: r.Dst.IP.Mask(r.Dst.Mask), Mask: r.Dst.Mask}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: r.Gw}
	if r.Gw == nil {
		route.Scope = netlink.SCOPE_LINK
	}
	if err := h.RouteAdd(route); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, nil
		}
		if r.Gw != nil {
			return nil, fmt.Errorf("adding route to %s via %s: %w", dst, r.Gw, err)
		}
		return nil, fmt.Errorf("adding route to %s: %w", dst, err)
	}
	return func() { _ = h.RouteDel(route) }, nil
}

// MoveInterface moves the link srcName from the namespace of the host
// handle into n and names it dstName there: the slow path for interfaces
// that remote drivers create. The link is set down first. If the rename
// inside n fails, the link stays in n under srcName (Destroy of n frees it)
// and the error says so.
func (n *Namespace) MoveInterface(host *netlink.Handle, srcName, dstName string) error {
	if err := checkIfName("moving interface", srcName); err != nil {
		return err
	}
	if err := checkIfName("moving interface", dstName); err != nil {
		return err
	}
	op := fmt.Sprintf("moving interface %s in as %s", srcName, dstName)
	return n.withHandle(op, func(h *netlink.Handle) error {
		// Refuse before the move what would make the rename fail after it.
		for _, name := range []string{srcName, dstName} {
			if _, err := h.LinkByName(name); err == nil {
				return types.ForbiddenErrorf("%s in %s: an interface %s already exists", op, n, name)
			}
		}
		link, err := linkByName(host, srcName)
		if err != nil {
			return n.kernelError(op, err)
		}
		if err := host.LinkSetDown(link); err != nil {
			return n.kernelError(op, fmt.Errorf("setting the link down: %w", err))
		}
		if err := host.LinkSetNsFd(link, n.fd); err != nil {
			return n.kernelError(op, fmt.Errorf("moving the link: %w", err))
		}
		if srcName == dstName {
			return nil
		}
		moved, err := linkByName(h, srcName)
		if err == nil {
			err = h.LinkSetName(moved, dstName)
		}
		if err != nil {
			return n.kernelError(op, fmt.Errorf("renaming the link after moving it (it stays as %s): %w", srcName, err))
		}
		return nil
	})
}

// RetireInterface detaches the interface name quickly, at Leave: it sets
// the link down, removes its addresses and renames it to tombstone, so that
// name is free again at once. Deleting a veth costs about 20 ms; a retired
// link goes with its namespace or through DeleteInterface later. It is
// idempotent: if name is gone and tombstone exists, it returns nil.
func (n *Namespace) RetireInterface(name, tombstone string) error {
	if err := checkIfName("retiring interface", name); err != nil {
		return err
	}
	if err := checkIfName("retiring interface", tombstone); err != nil {
		return err
	}
	op := fmt.Sprintf("retiring interface %s as %s", name, tombstone)
	return n.withHandle(op, func(h *netlink.Handle) error {
		link, err := linkByName(h, name)
		if err != nil {
			var notFound netlink.LinkNotFoundError
			if errors.As(err, &notFound) {
				if _, terr := h.LinkByName(tombstone); terr == nil {
					return nil
				}
			}
			return n.kernelError(op, err)
		}
		if link.Attrs().Flags&net.FlagUp != 0 {
			if err := h.LinkSetDown(link); err != nil {
				return n.kernelError(op, fmt.Errorf("setting the link down: %w", err))
			}
		}
		// Listed after the link went down, which already dropped the IPv6
		// addresses (unless keep_addr_on_down).
		addrs, err := Dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
		if err != nil {
			return n.kernelError(op, fmt.Errorf("listing addresses: %w", err))
		}
		for i := range addrs {
			if err := h.AddrDel(link, &addrs[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return n.kernelError(op, fmt.Errorf("removing address %s: %w", addrs[i].IPNet, err))
			}
		}
		if err := h.LinkSetName(link, tombstone); err != nil {
			return n.kernelError(op, fmt.Errorf("renaming: %w", err))
		}
		return nil
	})
}

// DeleteInterface deletes the link name inside the namespace. A link that
// does not exist is not an error.
func (n *Namespace) DeleteInterface(name string) error {
	if err := checkIfName("deleting interface", name); err != nil {
		return err
	}
	op := "deleting interface " + name
	return n.withHandle(op, func(h *netlink.Handle) error {
		link, err := linkByName(h, name)
		if err == nil {
			err = h.LinkDel(link)
		}
		var notFound netlink.LinkNotFoundError
		if err == nil || errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return n.kernelError(op, err)
	})
}

// Interfaces lists every link inside the namespace with its addresses.
func (n *Namespace) Interfaces() ([]Iface, error) {
	const op = "listing interfaces"
	var ifaces []Iface
	err := n.withHandle(op, func(h *netlink.Handle) error {
		links, err := Dump(h.LinkList)
		if err != nil {
			return n.kernelError(op, err)
		}
		addrs, err := Dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
		if err != nil {
			return n.kernelError(op, fmt.Errorf("listing addresses: %w", err))
		}
		byIndex := make(map[int][]*net.IPNet)
		for _, a := range addrs {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], a.IPNet)
		}
		ifaces = make([]Iface, 0, len(links))
		for _, l := range links {
			attrs := l.Attrs()
			ifaces = append(ifaces, Iface{
				Name:  attrs.Name,
				Index: attrs.Index,
				Type:  l.Type(),
				MAC:   attrs.HardwareAddr,
				MTU:   attrs.MTU,
				Up:    attrs.Flags&net.FlagUp != 0,
				Addrs: byIndex[attrs.Index],
			})
		}
		return nil
	})
	return ifaces, err
}
