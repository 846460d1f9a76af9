// Package slirp4netns publishes ports of a rootless network namespace
// through the API socket of slirp4netns (slirp4netns --api-socket): a
// port.Manager, and a port.ParentDriver for a parent that runs
// slirp4netns itself.
//
// slirp4netns listens on the parent's port in the namespace it runs in and
// forwards each connection or datagram to the child's address on its tap
// device (10.0.2.100 with --configure). It forwards IPv4 TCP and UDP only,
// and cannot reach the child's loopback.
//
//	m, err := slirp4netns.New("/run/user/1000/slirp.sock", nil, logger)
//	st, err := m.AddPort(ctx, port.Spec{Proto: "tcp", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 80})
//	...
//	err = m.RemovePort(ctx, st.ID)
//
// IDs are slirp4netns's own, so they stay valid across Managers on the same
// socket and ListPorts shows forwards other clients made.
package slirp4netns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

// DefaultChildIP is the child's address on slirp4netns's tap device when
// slirp4netns configures it (--configure with the default --cidr
// 10.0.2.0/24).
const DefaultChildIP = "10.0.2.100"

// maxSocketPath is the room in a unix socket address (sun_path) less its
// terminating NUL.
const maxSocketPath = 107

// Manager is a port.Manager over slirp4netns's API socket. It is safe for
// concurrent use.
//
// Lock order: callMu, then mu.
type Manager struct {
	socket string
	logger *slog.Logger

	// callMu serializes this Manager's calls to slirp4netns, so that
	// AddPort's conflict check and its add, and RemovePort's lookup and
	// its remove, see the same table. It is held across calls; slirp4netns
	// serves one request at a time anyway.
	callMu sync.Mutex

	mu sync.Mutex
	// childIP is the child address a Spec without ChildIP goes to.
	childIP netip.Addr
	// specs holds the spec each forward this Manager made was asked with,
	// by slirp4netns's ID, with the forward it became, so that ListPorts
	// gives callers back their own specs.
	specs map[int]added
}

// added is a forward this Manager made.
type added struct {
	spec port.Spec
	fwd  hostfwd
}

var (
	_ port.Manager      = (*Manager)(nil)
	_ port.ParentDriver = (*Manager)(nil)
)

// New returns a Manager for the slirp4netns whose API socket is apiSocket.
// childIP is the child's address on slirp4netns's tap device, where specs
// without a ChildIP go; nil means DefaultChildIP. It must be an IPv4
// unicast address other than loopback. logger may be nil.
//
// New does not contact slirp4netns, which may start later; a Manager whose
// socket answers nothing returns types.NoServiceError from its calls.
func New(apiSocket string, childIP net.IP, logger *slog.Logger) (*Manager, error) {
	if apiSocket == "" {
		return nil, types.BadRequestErrorf("slirp4netns port manager: no API socket path")
	}
	if len(apiSocket) > maxSocketPath {
		return nil, types.BadRequestErrorf("slirp4netns port manager: API socket path %s is %d bytes, over the %d a unix socket address holds", apiSocket, len(apiSocket), maxSocketPath)
	}
	if childIP == nil {
		childIP = net.ParseIP(DefaultChildIP)
	}
	ip, ok := netip.AddrFromSlice(childIP)
	if ip = ip.Unmap(); !ok || !ip.Is4() {
		return nil, types.BadRequestErrorf("slirp4netns port manager: child IP %s is not IPv4; slirp4netns forwards IPv4 only", childIP)
	}
	if err := checkChildIP(ip); err != nil {
		return nil, types.BadRequestErrorf("slirp4netns port manager: %v", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		socket:  apiSocket,
		logger:  logger,
		childIP: ip,
		specs:   make(map[int]added),
	}, nil
}

// AddPort asks slirp4netns to forward spec.ParentIP:spec.ParentPort (all
// IPv4 addresses when ParentIP is empty) to spec.ChildIP:spec.ChildPort
// (the Manager's child IP when empty). The Status has slirp4netns's ID and
// spec as given.
//
// A spec slirp4netns cannot forward (IPv6, SCTP, a port out of range, a
// loopback child IP) is a types.BadRequestError; a parent port already
// forwarded is a types.ForbiddenError naming the forward's ID (from
// port.CheckConflict); a port slirp4netns could not listen on
// (in use by another program, or an address not on the parent) is a
// types.ForbiddenError wrapping the *RefusedError.
func (m *Manager) AddPort(ctx context.Context, spec port.Spec) (*port.Status, error) {
	m.mu.Lock()
	childIP := m.childIP
	m.mu.Unlock()
	fwd, err := toHostfwd(spec, childIP)
	if err != nil {
		return nil, err
	}

	m.callMu.Lock()
	defer m.callMu.Unlock()
	entries, err := m.list(ctx)
	if err != nil {
		return nil, types.Errorf("slirp4netns: publishing %s: %w", spec, err)
	}
	// slirp4netns refuses a second listener too, but only as
	// "slirp_add_hostfwd failed"; this names the forward in the way. The
	// forwards are compared as slirp4netns has them: IPv4 only.
	existing := make([]port.Status, len(entries))
	for i, e := range entries {
		existing[i] = port.Status{ID: e.ID, Spec: toSpec(e)}
	}
	if err := port.CheckConflict(spec, existing); err != nil {
		return nil, types.Errorf("slirp4netns: %w", err)
	}
	id, err := m.add(ctx, fwd)
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			return nil, types.ForbiddenErrorf("slirp4netns: publishing %s: slirp4netns could not listen on the parent port (in use by another program, or the parent IP is not on this host): %w", spec, err)
		}
		return nil, types.Errorf("slirp4netns: publishing %s: %w", spec, err)
	}
	m.mu.Lock()
	m.specs[id] = added{spec: spec, fwd: fwd}
	m.mu.Unlock()
	m.logger.Debug("slirp4netns: port published", "id", id, "forward", fwd.String())
	return &port.Status{ID: id, Spec: spec}, nil
}

// ListPorts returns slirp4netns's forwards by ID: those this Manager made
// with the spec they were asked with, the others as slirp4netns shows
// them (proto "tcp" or "udp", both IPs filled in).
func (m *Manager) ListPorts(ctx context.Context) ([]port.Status, error) {
	m.callMu.Lock()
	entries, err := m.list(ctx)
	m.callMu.Unlock()
	if err != nil {
		return nil, types.Errorf("slirp4netns: listing ports: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	listed := make(map[int]bool, len(entries))
	out := make([]port.Status, 0, len(entries))
	for _, e := range entries {
		listed[e.ID] = true
		spec := toSpec(e)
		// An ID this Manager gave out names another forward once
		// slirp4netns was restarted on the same socket.
		if a, ok := m.specs[e.ID]; ok && sameForward(e, a.fwd) {
			spec = a.spec
		}
		out = append(out, port.Status{ID: e.ID, Spec: spec})
	}
	for id := range m.specs {
		if !listed[id] {
			delete(m.specs, id)
		}
	}
	return out, nil
}

// RemovePort asks slirp4netns to drop the forward with ID id. An ID
// slirp4netns does not have is a types.NotFoundError.
func (m *Manager) RemovePort(ctx context.Context, id int) error {
	m.callMu.Lock()
	defer m.callMu.Unlock()
	entries, err := m.list(ctx)
	if err != nil {
		return types.Errorf("slirp4netns: removing port %d: %w", id, err)
	}
	var fwd *hostfwd
	for i := range entries {
		if entries[i].ID == id {
			fwd = &entries[i]
		}
	}
	if fwd == nil {
		m.mu.Lock()
		delete(m.specs, id)
		m.mu.Unlock()
		return types.NotFoundErrorf("slirp4netns: removing port %d: slirp4netns has no forward with that ID", id)
	}
	if err := m.remove(ctx, id); err != nil {
		// The forward was listed a moment ago; a refusal now is
		// slirp4netns failing to close it.
		var refused *RefusedError
		if errors.As(err, &refused) {
			return types.InternalErrorf("slirp4netns: removing port %d (%s): %w", id, fwd, err)
		}
		return types.Errorf("slirp4netns: removing port %d (%s): %w", id, fwd, err)
	}
	m.mu.Lock()
	delete(m.specs, id)
	m.mu.Unlock()
	m.logger.Debug("slirp4netns: port removed", "id", id, "forward", fwd.String())
	return nil
}

// Info describes the driver as rootlesskit's API shows it: IPv4 TCP and
// UDP, and no loopback child IP.
func (m *Manager) Info(context.Context) (*api.PortDriverInfo, error) {
	return &api.PortDriverInfo{
		Driver:                  "slirp4netns",
		Protos:                  append([]string(nil), protos...),
		DisallowLoopbackChildIP: true,
	}, nil
}

// OpaqueForChild returns nil: the driver has no child side, slirp4netns
// reaches the child through its tap device.
func (m *Manager) OpaqueForChild() map[string]string { return nil }

// RunParentDriver takes the child's tap address from cctx, when it has an
// IPv4 one, as the address for specs without a ChildIP, signals
// initComplete and blocks until quit is closed. The forwards live in
// slirp4netns, so there is nothing to run.
func (m *Manager) RunParentDriver(initComplete chan struct{}, quit <-chan struct{}, cctx *port.ChildContext) error {
	if cctx != nil && cctx.IP != nil {
		if ip, ok := netip.AddrFromSlice(cctx.IP); ok && ip.Unmap().Is4() && checkChildIP(ip.Unmap()) == nil {
			m.mu.Lock()
			m.childIP = ip.Unmap()
			m.mu.Unlock()
		}
	}
	initComplete <- struct{}{}
	<-quit
	return nil
}
