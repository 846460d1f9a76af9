// Package host is the "host" network driver: a sandbox on a host network
// shares the host's network namespace, so the driver creates no interface
// and Join does nothing (the controller gives such sandboxes the host
// namespace). Only one network of this type may exist.
package host

import (
	"sync"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/null"
	"github.com/netkit/libnetwork/types"
)

// NetworkType is the name of the driver.
const NetworkType = "host"

// Driver is the host network driver. Its endpoints have no interface, so
// the endpoint operations are the null driver's: they do nothing.
type Driver struct {
	null.Driver

	mu sync.Mutex
	// networkID is the ID of the one host network, or "".
	networkID string
}

var _ driverapi.Driver = (*Driver)(nil)

// New returns the host driver.
func New() *Driver { return &Driver{} }

// Type returns "host".
func (*Driver) Type() string { return NetworkType }

// Capability reports that host networks are local and put their sandboxes in the host's namespace.
func (*Driver) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, Attachment: driverapi.AttachHost}
}

// CreateNetwork records the host network; a second one is refused.
func (d *Driver) CreateNetwork(nid string, _ map[string]interface{}, _, _ []driverapi.IPAMData) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networkID != "" {
		return types.ForbiddenErrorf("create host network %s: only one network of type host may exist, and %s does", nid, d.networkID)
	}
	d.networkID = nid
	return nil
}

// DeleteNetwork forgets the host network.
func (d *Driver) DeleteNetwork(nid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networkID != nid {
		return types.NotFoundErrorf("delete host network %s: no such network", nid)
	}
	d.networkID = ""
	return nil
}
