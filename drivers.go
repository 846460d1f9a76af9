package libnetwork

import (
	"fmt"
	"net/netip"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/bridge"
	"github.com/netkit/libnetwork/drivers/host"
	"github.com/netkit/libnetwork/drivers/null"
	"github.com/netkit/libnetwork/ipamapi"
	defaultipam "github.com/netkit/libnetwork/ipams/default"
	nullipam "github.com/netkit/libnetwork/ipams/null"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// makeDrivers builds the built-in network drivers and allocators into the
// controller's own registry.
func (c *controller) makeDrivers() error {
	d := c.Config().Daemon
	generic, err := driverGeneric(d.DriverCfg, bridge.NetworkType)
	if err != nil {
		return err
	}
	br, err := bridge.New(bridge.Config{
		Logger:      c.logger,
		Firewall:    c.fw,
		Host:        c.hostNS.Handle(),
		AddVeth:     c.hostNS.AddVeth,
		DeleteLinks: c.hostNS.DeleteLinks,
		SetSysctl:   c.hostNS.SetSysctl,
		Sysctl:      c.hostNS.Sysctl,
		// The sysctls the library writes are listed in package bridge's doc.
		ForwardingNoDrop: d.ForwardingNoDrop,
		Generic:          generic,
	})
	if err != nil {
		return types.Errorf("bridge driver: %w", err)
	}
	c.closers = append(c.closers, br.Close)
	c.drivers = map[string]driverapi.Driver{
		bridge.NetworkType: br,
		"host":             host.New(),
		"null":             null.New(),
	}

	routes, err := newRouteLister(c.hostNS)
	if err != nil {
		return types.Errorf("default IPAM: %w", err)
	}
	c.closers = append(c.closers, routes.close)
	def, err := defaultipam.New(defaultipam.Config{
		LocalPools:  d.DefaultAddressPools,
		GlobalPools: d.DefaultAddressPools,
		HostRoutes:  routes.list,
	})
	if err != nil {
		return types.Errorf("default IPAM: %w", err)
	}
	c.ipams = map[string]ipamapi.Ipam{
		ipamapi.DefaultIPAM: def,
		ipamapi.NullIPAM:    nullipam.New(),
	}
	return nil
}

// driverGeneric returns the generic options given to a driver through
// config.OptionDriverConfig.
func driverGeneric(cfg map[string]interface{}, driver string) (map[string]interface{}, error) {
	raw, ok := cfg[driver]
	if !ok || raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]interface{})
	if !ok {
		if g, isG := raw.(options.Generic); isG {
			m = g
		} else {
			return nil, types.BadRequestErrorf("driver %s configuration: want map[string]interface{}, got %T", driver, raw)
		}
	}
	if g, ok, err := options.GetGeneric(m, netlabel.GenericData); err != nil {
		return nil, types.Errorf("driver %s configuration: %w", driver, err)
	} else if ok {
		return g, nil
	}
	return m, nil
}

// routeLister lists the routed prefixes of the controller's namespace, so
// default pools skip subnets already in use there. It has a netlink socket
// of its own, with strict checking of dump requests on: the kernel then
// dumps the main table of the one family asked for, instead of every table
// of both families (local and broadcast routes of every bridge included) for
// the library to drop. That is what a default pool cost grew with, about
// 6 µs per network.
type routeLister struct {
	h *netlink.Handle
}

func newRouteLister(ns *osl.Namespace) (*routeLister, error) {
	var h *netlink.Handle
	err := ns.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket to list routes in %s: %w", ns, err)
	}
	if err := h.SetStrictCheck(true); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink strict checking: %w", err)
	}
	return &routeLister{h: h}, nil
}

func (l *routeLister) close() error {
	l.h.Close()
	return nil
}

// list returns the destinations of the routes of the main table of the
// family (the default route, which covers nothing in particular, left out).
func (l *routeLister) list(v6 bool) ([]netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	return osl.Dump(func() ([]netip.Prefix, error) {
		var out []netip.Prefix
		err := l.h.RouteListFilteredIter(family, filter, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			if r.Dst == nil {
				return true
			}
			if addr, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				if ones > 0 {
					out = append(out, netip.PrefixFrom(addr.Unmap(), ones))
				}
			}
			return true
		})
		return out, err
	})
}
