// Package null is the "null" network driver: networks and endpoints of this
// type exist only as bookkeeping in the controller. Every operation succeeds
// and touches nothing; a sandbox joined to a null endpoint gets no
// interface.
package null

import (
	"github.com/netkit/libnetwork/driverapi"
)

// NetworkType is the name of the driver.
const NetworkType = "null"

// Driver is the null network driver. It has no state.
type Driver struct{}

var _ driverapi.Driver = (*Driver)(nil)

// New returns the null driver.
func New() *Driver { return &Driver{} }

// Type returns "null".
func (*Driver) Type() string { return NetworkType }

// Capability reports that null networks are local and give their endpoints no interface.
func (*Driver) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, Attachment: driverapi.AttachNone}
}

// CreateNetwork does nothing.
func (*Driver) CreateNetwork(string, map[string]interface{}, []driverapi.IPAMData, []driverapi.IPAMData) error {
	return nil
}

// DeleteNetwork does nothing.
func (*Driver) DeleteNetwork(string) error { return nil }

// CreateEndpoint does nothing.
func (*Driver) CreateEndpoint(string, string, driverapi.InterfaceInfo, map[string]interface{}) error {
	return nil
}

// DeleteEndpoint does nothing.
func (*Driver) DeleteEndpoint(string, string) error { return nil }

// EndpointOperInfo returns an empty map.
func (*Driver) EndpointOperInfo(string, string) (map[string]interface{}, error) {
	return map[string]interface{}{}, nil
}

// Join reports no interface: the sandbox keeps only its loopback.
func (*Driver) Join(string, string, string, driverapi.JoinInfo, map[string]interface{}) error {
	return nil
}

// Leave does nothing.
func (*Driver) Leave(string, string) error { return nil }

// ProgramExternalConnectivity does nothing.
func (*Driver) ProgramExternalConnectivity(string, string, map[string]interface{}) error {
	return nil
}

// RevokeExternalConnectivity does nothing.
func (*Driver) RevokeExternalConnectivity(string, string) error { return nil }
