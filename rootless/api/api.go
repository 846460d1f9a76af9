// Package api holds the types a rootless port driver reports about itself,
// with the JSON encoding of rootlesskit's pkg/api, so that a client written
// for rootlesskit's API reads them unchanged.
package api

// PortDriverInfo describes a port driver: its name, the protocols its
// AddPort accepts, and whether it refuses loopback child IPs. It is the
// "portDriver" member of rootlesskit's Info answer.
type PortDriverInfo struct {
	// Driver is the driver's name, such as "builtin" or "slirp4netns".
	Driver string `json:"driver"`
	// Protos lists the values the driver accepts in Spec.Proto, such as
	// "tcp", "tcp4", "tcp6", "udp", "udp4" and "udp6".
	Protos []string `json:"protos"`
	// DisallowLoopbackChildIP is true when the driver cannot forward to a
	// loopback address of the child namespace (as with slirp4netns, whose
	// traffic enters the child through its tap device): callers must then
	// give a ChildIP the child's network reaches from outside.
	DisallowLoopbackChildIP bool `json:"disallowLoopbackChildIP,omitempty"`
}
