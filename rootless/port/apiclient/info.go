package apiclient

import (
	"net"

	"github.com/netkit/libnetwork/rootless/api"
)

// Info is rootlesskit's answer to GET /v1/info, with its JSON names.
type Info struct {
	// APIVersion is the version of the REST API, "1.1.1" for rootlesskit
	// 0.14.1 to 1.x.
	APIVersion string `json:"apiVersion"`
	// Version is rootlesskit's version, such as "1.1.0".
	Version string `json:"version"`
	// StateDir is rootlesskit's state directory, which holds the API
	// socket.
	StateDir string `json:"stateDir"`
	// ChildPID is the PID of rootlesskit's child, whose namespaces hold
	// the published ports.
	ChildPID int `json:"childPID"`
	// NetworkDriver is nil when rootlesskit runs with --net=host.
	NetworkDriver *NetworkDriverInfo `json:"networkDriver,omitempty"`
	// PortDriver is nil when rootlesskit runs with --port-driver=none.
	PortDriver *api.PortDriverInfo `json:"portDriver,omitempty"`
}

// NetworkDriverInfo describes rootlesskit's network driver.
type NetworkDriverInfo struct {
	// Driver is "slirp4netns", "vpnkit" or "lxc-user-nic".
	Driver string `json:"driver"`
	// DNS are the resolvers the child uses, such as 10.0.2.3.
	DNS []net.IP `json:"dns,omitempty"`
	// ChildIP is the child's address on the driver's interface, such as
	// 10.0.2.100 (API 1.1.1 and later).
	ChildIP net.IP `json:"childIP,omitempty"`
	// DynamicChildIP reports that ChildIP may change (API 1.1.1 and
	// later).
	DynamicChildIP bool `json:"dynamicChildIP,omitempty"`
}
