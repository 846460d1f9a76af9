package ipvlan

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Default destinations of the routes Join reports in the l3 modes.
var (
	defaultV4 = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	defaultV6 = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
)

// endpoint is one endpoint of an ipvlan network.
type endpoint struct {
	// v6 says the endpoint has an IPv6 address (the l3 modes then route
	// IPv6 through it too).
	v6 bool
}

// CreateEndpoint records the endpoint. It sets no MAC (an ipvlan link has
// its parent's, as with docker) and does no kernel work.
func (d *Driver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo, false); err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	return nil
}

func (d *Driver) createEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, joined bool) error {
	if ifInfo == nil {
		return types.BadRequestErrorf("endpoint %s of ipvlan network %s: no interface info", eid, nid)
	}
	return d.nets.AddEndpoint(nid, eid, endpoint{v6: ifInfo.AddressIPv6() != nil}, joined)
}

// DeleteEndpoint forgets the endpoint. Its link, if still there, is in the
// sandbox's namespace, which the controller retires or destroys.
func (d *Driver) DeleteEndpoint(nid, eid string) error { return d.nets.DeleteEndpoint(nid, eid) }

// EndpointOperInfo returns nothing: the endpoint's MAC is its parent's.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	if _, _, err := d.nets.Endpoint(nid, eid); err != nil {
		return nil, err
	}
	return map[string]interface{}{}, nil
}

// Join creates the endpoint's ipvlan link on the network's parent,
// directly in the sandbox's namespace under the name it asks for, in the
// network's mode and flag, with the MTU of the network (default: the
// parent's), and reports its routing: in l2 mode the network's gateways,
// in the l3 modes no gateway but default routes through the interface
// (IPv6 too for an endpoint with an IPv6 address); nothing for an
// internal network. The controller then configures addresses and routes
// inside the sandbox. A kernel without ipvlan support makes it fail with
// a types.NotImplementedError, leaving nothing behind.
func (d *Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if jinfo == nil || jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("join endpoint %s of ipvlan network %s: no sandbox", eid, nid)
	}
	n, ep, err := d.nets.ClaimJoin(nid, eid) // undone on failure
	if err != nil {
		return fmt.Errorf("join sandbox %s: %w", sboxKey, err)
	}
	if err := d.join(n, ep, jinfo); err != nil {
		_ = d.nets.Unjoin(nid, eid)
		return fmt.Errorf("join endpoint %s of ipvlan network %s to sandbox %s: %w", eid, nid, sboxKey, err)
	}
	return nil
}

func (d *Driver) join(n *network, ep endpoint, jinfo driverapi.JoinInfo) error {
	parent, err := d.parents.Link(n.Parent)
	if err != nil {
		return err
	}
	sb := jinfo.Sandbox()
	spec := linkSpec{
		name:        sb.IfaceName(),
		parentIndex: parent.Attrs().Index,
		mode:        n.Config.mode,
		flag:        n.Config.flag,
		mtu:         n.Config.mtu,
		nsFd:        sb.NetNSFd(),
	}
	if spec.mtu == 0 {
		spec.mtu = parent.Attrs().MTU
	}
	if err := d.host.LinkAdd(spec.link()); err != nil {
		return linkAddError(spec, n.Parent, err)
	}
	if err := report(n.Config, ep.v6, jinfo); err != nil {
		d.deleteLink(spec.name, sb.NetNSFd())
		return err
	}
	return nil
}

// linkAddError classifies the kernel's refusal to create the link of spec
// on parent.
func linkAddError(spec linkSpec, parent string, err error) error {
	switch {
	case errors.Is(err, unix.EEXIST):
		return types.ForbiddenErrorf("creating ipvlan link %s on %s: an interface of that name exists in the sandbox", spec.name, parent)
	case errors.Is(err, unix.EOPNOTSUPP):
		return types.NotImplementedErrorf("creating ipvlan link %s (mode %s, flag %s) on parent %s: the kernel has no ipvlan link type: %v",
			spec.name, spec.mode, spec.flag, parent, err)
	case errors.Is(err, unix.EBUSY):
		return types.ForbiddenErrorf("creating ipvlan link %s on parent %s: the parent is busy (it may carry macvlan links, which the kernel does not mix with ipvlan): %v",
			spec.name, parent, err)
	}
	return types.InternalErrorf("creating ipvlan link %s (mode %s, flag %s) on parent %s: %w", spec.name, spec.mode, spec.flag, parent, err)
}

// deleteLink deletes a link Join made in the sandbox, after a failure.
func (d *Driver) deleteLink(name string, nsFd int) {
	ns, err := osl.OpenNamespace(fmt.Sprintf("/proc/self/fd/%d", nsFd))
	if err == nil {
		err = ns.DeleteInterface(name)
		_ = ns.Close()
	}
	if err != nil {
		d.logger.Warn("deleting an ipvlan link after a failed join", "link", name, "error", err)
	}
}

// report tells the controller what Join did.
func report(c networkConfig, v6 bool, jinfo driverapi.JoinInfo) error {
	if err := jinfo.InterfaceName().SetCreatedInSandbox(); err != nil {
		return types.InternalErrorf("reporting the interface: %w", err)
	}
	switch {
	case c.internal:
		jinfo.DisableGatewayService()
	case c.routed():
		// As docker: no gateway; the parent routes whatever goes out of
		// the interface.
		jinfo.DisableGatewayService()
		if err := jinfo.AddStaticRoute(defaultV4, types.CONNECTED, nil); err != nil {
			return types.InternalErrorf("reporting the default route %s: %w", defaultV4, err)
		}
		if v6 {
			if err := jinfo.AddStaticRoute(defaultV6, types.CONNECTED, nil); err != nil {
				return types.InternalErrorf("reporting the default route %s: %w", defaultV6, err)
			}
		}
	default:
		return lanparent.ReportGateways(jinfo, c.gw4, c.gw6)
	}
	return nil
}

// Leave does no kernel work, as the bridge driver's: the controller
// retires the interface in the sandbox (down, renamed) or destroys the
// sandbox's namespace, which deletes the link.
func (d *Driver) Leave(nid, eid string) error {
	if err := d.nets.Unjoin(nid, eid); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// RestoreEndpoint rebuilds the bookkeeping of an endpoint after a
// restart. A joined endpoint's link is in its sandbox; the controller
// checks it is there and, when it is not, has Join make it again.
func (d *Driver) RestoreEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo, jinfo != nil); err != nil {
		return fmt.Errorf("restore endpoint: %w", err)
	}
	return nil
}
