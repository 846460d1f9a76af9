package libnetwork

import (
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/bridge"
	"github.com/netkit/libnetwork/drivers/host"
	"github.com/netkit/libnetwork/drivers/ipvlan"
	"github.com/netkit/libnetwork/drivers/macvlan"
	"github.com/netkit/libnetwork/drivers/null"
	"github.com/netkit/libnetwork/ipamapi"
	defaultipam "github.com/netkit/libnetwork/ipams/default"
	nullipam "github.com/netkit/libnetwork/ipams/null"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/portallocator"
	"github.com/netkit/libnetwork/portmapper"
	"github.com/netkit/libnetwork/types"
)

// makeDrivers builds the built-in network drivers and allocators into the
// controller's own registry.
func (c *controller) makeDrivers() error {
	d := c.Config().Daemon
	generic, err := driverGeneric(d.DriverCfg, bridge.NetworkType)
	if err != nil {
		return err
	}
	// Plugins are looked up in the configured directories only, so an
	// embedder (or a test) decides where they are.
	if d.PluginCallTimeout < 0 {
		return types.BadRequestErrorf("plugin call timeout %v is negative", d.PluginCallTimeout)
	}
	if d.PluginRetryWindow < 0 {
		return types.BadRequestErrorf("plugin retry window %v is negative", d.PluginRetryWindow)
	}
	c.plugins = plugins.NewRegistry(plugins.Config{SocketDirs: d.PluginSocketDirs, SpecDirs: d.PluginSpecDirs,
		CallTimeout: d.PluginCallTimeout, RetryWindow: d.PluginRetryWindow, Logger: c.logger})
	ports, err := portallocator.New(c.hostNS)
	if err != nil {
		return types.Errorf("port allocator: %w", err)
	}
	c.closers = append(c.closers, ports.Close)
	mappers, err := portmapper.New(portmapper.Config{Allocator: ports, Plugins: c.plugins, Logger: c.logger,
		CallTimeout: d.PluginCallTimeout})
	if err != nil {
		return types.Errorf("port mappers: %w", err)
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
		PortMappers: func(name string) (bridge.PortMapper, error) {
			return mappers.Mapper(name)
		},
	})
	if err != nil {
		return types.Errorf("bridge driver: %w", err)
	}
	c.closers = append(c.closers, br.Close)
	mv, err := macvlan.New(macvlan.Config{Logger: c.logger, Host: c.hostNS.Handle()})
	if err != nil {
		return types.Errorf("macvlan driver: %w", err)
	}
	iv, err := ipvlan.New(ipvlan.Config{Logger: c.logger, Host: c.hostNS.Handle()})
	if err != nil {
		return types.Errorf("ipvlan driver: %w", err)
	}
	c.drivers = map[string]driverapi.Driver{
		bridge.NetworkType:  br,
		macvlan.NetworkType: mv,
		ipvlan.NetworkType:  iv,
		"host":              host.New(),
		"null":              null.New(),
	}
	if len(c.cluster.endpoints) > 0 {
		ov, err := c.newOverlayDriver()
		if err != nil {
			return err
		}
		c.drivers[overlayNetworkType] = ov
	}

	routes, err := newRouteLister(c.hostNS)
	if err != nil {
		return types.Errorf("default IPAM: %w", err)
	}
	c.closers = append(c.closers, routes.close)
	def, err := defaultipam.New(defaultipam.Config{
		LocalPools:  d.DefaultAddressPools,
		GlobalPools: d.DefaultAddressPools,
		// The routes stay indexed in the lister's cache (HostRoutes,
		// a list to index per request, is for IPAMs without one).
		HostRouteIndex: routes.withIndex,
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
