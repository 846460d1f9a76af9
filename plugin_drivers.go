package libnetwork

import (
	"context"
	"errors"
	"maps"
	"net"
	"sync"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote"
	"github.com/netkit/libnetwork/ipamapi"
	remoteipam "github.com/netkit/libnetwork/ipams/remote"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// Remote plugins: a network type or IPAM name that no built-in driver has
// is the name of a plugin (package plugins finds it in the configured
// directories). A network on a plugin holds a pluginDriver or pluginIpam,
// which finds the activated plugin at each call: a plugin that is absent
// when the controller starts leaves its networks listed, their operations
// fail clearly, and they work again once the plugin is back.

// remotes holds the activated remote network drivers and allocators by
// plugin name.
type remotes struct {
	mu      sync.Mutex
	drivers map[string]*remote.Driver
	ipams   map[string]*remoteipam.Allocator
}

// networkDriver returns the driver of networkType: a built-in one, or a
// pluginDriver for the remote plugin of that name, which is activated now
// so that an unknown name is refused at once. A name with no built-in
// driver and no plugin is a NetworkTypeError, as in v0.7.
func (c *controller) networkDriver(networkType string) (driverapi.Driver, error) {
	if d, ok := c.drivers[networkType]; ok {
		return d, nil
	}
	if plugins.ValidateName(networkType) != nil {
		return nil, NetworkTypeError(networkType)
	}
	pd := &pluginDriver{c: c, name: networkType}
	if _, err := pd.get(); err != nil {
		var nf *plugins.NotFoundError
		if errors.As(err, &nf) {
			return nil, NetworkTypeError(networkType)
		}
		return nil, err
	}
	return pd, nil
}

// remoteDriver returns the remote network driver of plugin name,
// activating the plugin at its first use.
func (c *controller) remoteDriver(name string) (*remote.Driver, error) {
	c.remotes.mu.Lock()
	d := c.remotes.drivers[name]
	c.remotes.mu.Unlock()
	if d != nil {
		return d, nil
	}
	p, err := c.plugins.Get(context.Background(), name, driverapi.NetworkPluginEndpointType)
	if err != nil {
		return nil, types.Errorf("network plugin %s: %w", name, err)
	}
	d, err = remote.New(p, remote.Config{Logger: c.logger})
	if err != nil {
		return nil, err
	}
	c.remotes.mu.Lock()
	if have := c.remotes.drivers[name]; have != nil {
		c.remotes.mu.Unlock()
		return have, nil
	}
	if c.remotes.drivers == nil {
		c.remotes.drivers = map[string]*remote.Driver{}
	}
	c.remotes.drivers[name] = d
	c.remotes.mu.Unlock()
	if c.global != nil {
		// Node discovery: the plugin hears of the hosts there are.
		c.global.nodesTo(name, d)
	}
	return d, nil
}

// ipamDriver returns the allocator named name: a built-in one, or a
// pluginIpam for the remote IPAM plugin of that name, activated now so
// that an unknown name is refused at once.
func (c *controller) ipamDriver(name string) (ipamapi.Ipam, error) {
	if a, ok := c.ipams[name]; ok {
		return a, nil
	}
	if plugins.ValidateName(name) != nil {
		return nil, types.BadRequestErrorf("unknown IPAM driver %q", name)
	}
	pi := &pluginIpam{c: c, name: name}
	if _, err := pi.get(); err != nil {
		var nf *plugins.NotFoundError
		if errors.As(err, &nf) {
			return nil, types.BadRequestErrorf("unknown IPAM driver %q: no built-in allocator and no plugin of that name", name)
		}
		return nil, err
	}
	return pi, nil
}

// remoteIpam returns the remote allocator of plugin name, activating the
// plugin at its first use.
func (c *controller) remoteIpam(name string) (*remoteipam.Allocator, error) {
	c.remotes.mu.Lock()
	a := c.remotes.ipams[name]
	c.remotes.mu.Unlock()
	if a != nil {
		return a, nil
	}
	p, err := c.plugins.Get(context.Background(), name, ipamapi.PluginEndpointType)
	if err != nil {
		return nil, types.Errorf("IPAM plugin %s: %w", name, err)
	}
	a, err = remoteipam.New(p, remoteipam.Config{Logger: c.logger})
	if err != nil {
		return nil, err
	}
	c.remotes.mu.Lock()
	defer c.remotes.mu.Unlock()
	if have := c.remotes.ipams[name]; have != nil {
		return have, nil
	}
	if c.remotes.ipams == nil {
		c.remotes.ipams = map[string]*remoteipam.Allocator{}
	}
	c.remotes.ipams[name] = a
	return a, nil
}

// pluginDriver is the driver of a network on a remote plugin: every call
// finds the plugin (activating it if needed) and goes to it.
type pluginDriver struct {
	c    *controller
	name string
}

var _ driverapi.Driver = (*pluginDriver)(nil)
var _ driverapi.Capable = (*pluginDriver)(nil)

func (p *pluginDriver) get() (*remote.Driver, error) { return p.c.remoteDriver(p.name) }

// Capability is the plugin's, or, while it is absent, that of a local
// driver whose endpoints get interfaces (every remote driver's).
func (p *pluginDriver) Capability() driverapi.Capability {
	if d, err := p.get(); err == nil {
		return d.Capability()
	}
	return driverapi.Capability{DataScope: driverapi.LocalScope, Attachment: driverapi.AttachInterface}
}

// Type returns the plugin's name.
func (p *pluginDriver) Type() string { return p.name }

func (p *pluginDriver) CreateNetwork(nid string, options map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.CreateNetwork(nid, options, ipV4Data, ipV6Data)
}

func (p *pluginDriver) DeleteNetwork(nid string) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.DeleteNetwork(nid)
}

func (p *pluginDriver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, options map[string]interface{}) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.CreateEndpoint(nid, eid, ifInfo, options)
}

func (p *pluginDriver) DeleteEndpoint(nid, eid string) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.DeleteEndpoint(nid, eid)
}

func (p *pluginDriver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	d, err := p.get()
	if err != nil {
		return nil, err
	}
	return d.EndpointOperInfo(nid, eid)
}

func (p *pluginDriver) Join(nid, eid string, sboxKey string, jinfo driverapi.JoinInfo, options map[string]interface{}) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.Join(nid, eid, sboxKey, jinfo, options)
}

func (p *pluginDriver) Leave(nid, eid string) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.Leave(nid, eid)
}

func (p *pluginDriver) ProgramExternalConnectivity(nid, eid string, options map[string]interface{}) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.ProgramExternalConnectivity(nid, eid, options)
}

func (p *pluginDriver) RevokeExternalConnectivity(nid, eid string) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	return d.RevokeExternalConnectivity(nid, eid)
}

// allocateNetwork asks a global-scope plugin to allocate network n's
// resources (AllocateNetwork, as docker's swarm manager does; this
// controller is its own manager) and returns the driver options with the
// plugin's answer added, for CreateNetwork and the record. A plugin that
// does not implement AllocateNetwork (404) allocates nothing.
func (p *pluginDriver) allocateNetwork(nid string, driverOpts map[string]string, v4, v6 []driverapi.IPAMData) (map[string]string, error) {
	d, err := p.get()
	if err != nil {
		return nil, err
	}
	got, err := d.AllocateNetwork(nid, driverOpts, v4, v6)
	var ni types.NotImplementedError
	switch {
	case errors.As(err, &ni):
		return driverOpts, nil
	case err != nil:
		return nil, err
	}
	out := maps.Clone(driverOpts)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, got)
	return out, nil
}

// freeNetwork undoes allocateNetwork; a 404 is tolerated as there.
func (p *pluginDriver) freeNetwork(nid string) error {
	d, err := p.get()
	if err != nil {
		return err
	}
	var ni types.NotImplementedError
	if err := d.FreeNetwork(nid); err != nil && !errors.As(err, &ni) {
		return err
	}
	return nil
}

// pluginIpam is the allocator of a network on a remote IPAM plugin: every
// call finds the plugin (activating it if needed) and goes to it.
type pluginIpam struct {
	c    *controller
	name string
}

var _ ipamapi.Ipam = (*pluginIpam)(nil)

func (p *pluginIpam) get() (*remoteipam.Allocator, error) { return p.c.remoteIpam(p.name) }

// capability is the plugin's, or the zero one while it is absent.
func (p *pluginIpam) capability() ipamapi.Capability {
	if a, err := p.get(); err == nil {
		return a.Capability()
	}
	return ipamapi.Capability{}
}

func (p *pluginIpam) GetDefaultAddressSpaces() (string, string, error) {
	a, err := p.get()
	if err != nil {
		return "", "", err
	}
	return a.GetDefaultAddressSpaces()
}

func (p *pluginIpam) RequestPool(addressSpace, pool, subPool string, options map[string]string, v6 bool) (string, *net.IPNet, map[string]string, error) {
	a, err := p.get()
	if err != nil {
		return "", nil, nil, err
	}
	return a.RequestPool(addressSpace, pool, subPool, options, v6)
}

func (p *pluginIpam) ReleasePool(poolID string) error {
	a, err := p.get()
	if err != nil {
		return err
	}
	return a.ReleasePool(poolID)
}

func (p *pluginIpam) RequestAddress(poolID string, ip net.IP, options map[string]string) (*net.IPNet, map[string]string, error) {
	a, err := p.get()
	if err != nil {
		return nil, nil, err
	}
	return a.RequestAddress(poolID, ip, options)
}

func (p *pluginIpam) ReleaseAddress(poolID string, ip net.IP) error {
	a, err := p.get()
	if err != nil {
		return err
	}
	return a.ReleaseAddress(poolID, ip)
}
