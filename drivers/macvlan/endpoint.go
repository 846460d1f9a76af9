package macvlan

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// endpoint is one endpoint of a macvlan network.
type endpoint struct {
	id  string
	mac net.HardwareAddr
}

// CreateEndpoint records the endpoint and gives it a MAC when it has none
// (02:42 and its IPv4 address, as docker, else random; locally
// administered unicast either way). It does no kernel work.
func (d *Driver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo, false); err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	return nil
}

func (d *Driver) createEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, joined bool) error {
	if ifInfo == nil {
		return types.BadRequestErrorf("endpoint %s of macvlan network %s: no interface info", eid, nid)
	}
	ep := endpoint{id: eid, mac: types.GetMacCopy(ifInfo.MacAddress())}
	if err := d.nets.CheckNewEndpoint(nid, eid); err != nil {
		return err
	}
	if ep.mac == nil {
		ep.mac = endpointMAC(ifInfo.Address())
		if err := ifInfo.SetMacAddress(ep.mac); err != nil {
			return types.InternalErrorf("endpoint %s of macvlan network %s: setting MAC %s: %w", eid, nid, ep.mac, err)
		}
	}
	return d.nets.AddEndpoint(nid, eid, ep, joined)
}

// endpointMAC derives a MAC from the IPv4 address (02:42 and its four
// bytes), or picks a random locally administered unicast one.
func endpointMAC(addr *net.IPNet) net.HardwareAddr {
	if addr != nil {
		if ip4 := addr.IP.To4(); ip4 != nil {
			return net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
		}
	}
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// DeleteEndpoint forgets the endpoint. Its link, if still there, is in the
// sandbox's namespace, which the controller retires or destroys.
func (d *Driver) DeleteEndpoint(nid, eid string) error { return d.nets.DeleteEndpoint(nid, eid) }

// EndpointOperInfo returns the endpoint's MAC under netlabel.MacAddress.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	_, ep, err := d.nets.Endpoint(nid, eid)
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{netlabel.MacAddress: types.GetMacCopy(ep.mac)}, nil
}

// Join creates the endpoint's macvlan link on the network's parent,
// directly in the sandbox's namespace under the name it asks for, with
// the endpoint's MAC and the MTU of the network (default: the parent's),
// and reports the network's gateways (none for an internal network). The
// controller then configures addresses and routes inside the sandbox.
func (d *Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if jinfo == nil || jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("join endpoint %s of macvlan network %s: no sandbox", eid, nid)
	}
	n, ep, err := d.nets.ClaimJoin(nid, eid) // undone on failure
	if err != nil {
		return fmt.Errorf("join sandbox %s: %w", sboxKey, err)
	}
	if err := d.join(n, ep, jinfo); err != nil {
		_ = d.nets.Unjoin(nid, eid)
		return fmt.Errorf("join endpoint %s of macvlan network %s to sandbox %s: %w", eid, nid, sboxKey, err)
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
		mac:         ep.mac,
		mtu:         n.Config.mtu,
		nsFd:        sb.NetNSFd(),
	}
	if spec.mtu == 0 {
		spec.mtu = parent.Attrs().MTU
	}
	if d.joinByMove {
		spec.name, spec.nsFd = "mv"+shortID(ep.id, 11), -1
	}
	if err := d.host.LinkAdd(spec.link()); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return types.ForbiddenErrorf("creating macvlan link %s on %s: an interface of that name exists in the sandbox", spec.name, n.Parent)
		}
		return types.InternalErrorf("creating macvlan link %s (mode %s) on parent %s: %w", spec.name, n.Config.mode, n.Parent, err)
	}
	if err := report(n.Config, jinfo, spec.name, d.joinByMove); err != nil {
		d.deleteLink(spec, sb.NetNSFd())
		return err
	}
	return nil
}

// deleteLink deletes a link Join made, after a failure.
func (d *Driver) deleteLink(spec linkSpec, nsFd int) {
	if spec.nsFd < 0 {
		if err := d.host.LinkDel(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: spec.name}}); err != nil {
			d.logger.Warn("deleting a macvlan link after a failed join", "link", spec.name, "error", err)
		}
		return
	}
	ns, err := osl.OpenNamespace(fmt.Sprintf("/proc/self/fd/%d", nsFd))
	if err == nil {
		err = ns.DeleteInterface(spec.name)
		_ = ns.Close()
	}
	if err != nil {
		d.logger.Warn("deleting a macvlan link after a failed join", "link", spec.name, "error", err)
	}
}

// report tells the controller what Join did.
func report(c networkConfig, jinfo driverapi.JoinInfo, name string, moved bool) error {
	var err error
	if moved {
		err = jinfo.InterfaceName().SetNames(name, "eth")
	} else {
		err = jinfo.InterfaceName().SetCreatedInSandbox()
	}
	if err != nil {
		return types.InternalErrorf("reporting the interface: %w", err)
	}
	if c.internal {
		jinfo.DisableGatewayService()
		return nil
	}
	return lanparent.ReportGateways(jinfo, c.gw4, c.gw6)
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

// shortID returns the first n characters of id.
func shortID(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}
