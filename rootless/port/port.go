// Package port is the rootless port driver API (spec/rootless-port-driver-api.txt,
// rootlesskit's pkg/port): a ParentDriver, running in the host's network
// namespace, exposes ports of a ChildDriver's network namespace (the
// rootless network namespace) on the host.
//
// The types have rootlesskit's names and JSON encoding. Spec.Validate and
// CheckConflict are the checks every driver makes before it binds anything;
// package builtin is a driver.
package port

import (
	"context"
	"net"

	"github.com/netkit/libnetwork/rootless/api"
)

// Spec is a port to expose: connections or datagrams to ParentIP:ParentPort
// in the parent namespace are forwarded to ChildIP:ChildPort in the child
// namespace.
type Spec struct {
	// Proto is one of ["tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"].
	// "tcp" may cause listening on both IPv4 and IPv6. (Corresponds to Go's net.Listen .)
	Proto      string `json:"proto,omitempty"`
	ParentIP   string `json:"parentIP,omitempty"` // IPv4 or IPv6 address. can be empty (0.0.0.0).
	ParentPort int    `json:"parentPort,omitempty"`
	ChildPort  int    `json:"childPort,omitempty"`
	// ChildIP is an IPv4 or IPv6 address.
	// Default values:
	// - builtin     driver: 127.0.0.1
	// - slirp4netns driver: slirp4netns's child IP, e.g., 10.0.2.100
	ChildIP string `json:"childIP,omitempty"`
}

// Status is a port a driver exposes, with the ID RemovePort takes.
type Status struct {
	ID   int  `json:"id"`
	Spec Spec `json:"spec"`
}

// Manager adds, lists and removes exposed ports.
//
// Manager MUST be thread-safe.
type Manager interface {
	AddPort(ctx context.Context, spec Spec) (*Status, error)
	ListPorts(ctx context.Context) ([]Status, error)
	RemovePort(ctx context.Context, id int) error
}

// ParentDriver is a driver for the parent process.
type ParentDriver interface {
	Manager
	Info(ctx context.Context) (*api.PortDriverInfo, error)
	// OpaqueForChild typically consists of socket path
	// for controlling child from parent
	OpaqueForChild() map[string]string
	// RunParentDriver signals initComplete when ParentDriver is ready to
	// serve as Manager.
	// RunParentDriver blocks until quit is signaled.
	//
	// ChildContext is optional.
	RunParentDriver(initComplete chan struct{}, quit <-chan struct{}, cctx *ChildContext) error
}

// ChildDriver is the driver's part in the child (rootless) network
// namespace. It is given the parent's OpaqueForChild and serves the
// parent until quit is signaled.
type ChildDriver interface {
	RunChildDriver(opaque map[string]string, quit <-chan struct{}) error
}

// ChildContext is used for RunParentDriver
type ChildContext struct {
	// PID of the child, can be used for ns-entering to the child namespaces.
	PID int
	// IP of the tap device
	IP net.IP
}
