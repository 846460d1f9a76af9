// Package builtin is a rootless port driver in the manner of rootlesskit's
// --port-driver=builtin. The parent driver runs in the host's network
// namespace and listens on the exposed ports; the child driver runs in the
// rootless network namespace. For every TCP connection, and every UDP
// client, the parent asks the child over a unix socket in the parent's
// state directory to connect to ChildIP:ChildPort; the child passes the
// connected socket back (SCM_RIGHTS), and the parent relays between the
// client's socket and that one. No packet crosses a tap device or a NAT:
// the child's socket lives in the child's namespace, the relay in the
// parent.
//
//	// parent, in the host's namespace
//	pd, _ := builtin.NewParentDriver(stateDir, logger)
//	go pd.RunParentDriver(initComplete, quit, nil)
//	// child, in the rootless namespace, given pd.OpaqueForChild()
//	go builtin.NewChildDriver(logger).RunChildDriver(opaque, quit)
//	<-initComplete
//	st, err := pd.AddPort(ctx, port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80})
package builtin

import (
	"context"
	"slices"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/rootless/port"
)

const (
	// DriverName is the name Info reports.
	DriverName = "builtin"
	// OpaqueSocketPath is the key, in OpaqueForChild's map, of the path of
	// the unix socket the child driver listens on.
	OpaqueSocketPath = "builtin.socketpath"
	// socketName is the child's socket in the parent's state directory.
	socketName = "builtin-port.sock"
	// defaultChildIP is where the child connects when a spec gives no
	// ChildIP.
	defaultChildIP = "127.0.0.1"
)

// Info describes the driver: every proto of port.Protos, loopback child
// IPs allowed.
func (d *parentDriver) Info(context.Context) (*api.PortDriverInfo, error) {
	return &api.PortDriverInfo{Driver: DriverName, Protos: slices.Clone(port.Protos)}, nil
}

// OpaqueForChild gives the child the path of the socket to listen on.
func (d *parentDriver) OpaqueForChild() map[string]string {
	return map[string]string{OpaqueSocketPath: d.socketPath}
}

var (
	_ port.ParentDriver = (*parentDriver)(nil)
	_ port.ChildDriver  = (*childDriver)(nil)
)
