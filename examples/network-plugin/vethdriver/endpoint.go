package vethdriver

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/types"
)

// MACFromID derives an endpoint's MAC from its ID: a locally administered
// unicast address ("x2:..." etc.) from the ID's SHA-256, so the same ID
// always gets the same MAC and different IDs almost never share one.
func MACFromID(eid string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(eid))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// CreateEndpoint records an endpoint and, when the library left its MAC
// to the driver, answers one derived from the endpoint ID. The addresses
// in the request are the library's and are not answered.
func (d *Driver) CreateEndpoint(req *api.CreateEndpointRequest) (*api.CreateEndpointResponse, error) {
	defer d.time.Track()()
	if req.EndpointID == "" {
		return nil, types.BadRequestErrorf("network %s: creating an endpoint: no endpoint ID", req.NetworkID)
	}
	var mac net.HardwareAddr
	var res api.CreateEndpointResponse
	if req.Interface != nil && req.Interface.MacAddress != "" {
		var err error
		if mac, err = net.ParseMAC(req.Interface.MacAddress); err != nil || len(mac) != 6 {
			return nil, types.BadRequestErrorf("endpoint %s: MAC %q is not an Ethernet address", req.EndpointID, req.Interface.MacAddress)
		}
	} else {
		mac = MACFromID(req.EndpointID)
		res.Interface = &api.EndpointInterface{MacAddress: mac.String()}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return nil, types.NotFoundErrorf("endpoint %s: network %s not found", req.EndpointID, req.NetworkID)
	}
	if _, ok := n.endpoints[req.EndpointID]; ok {
		return nil, types.ForbiddenErrorf("endpoint %s of network %s: already exists", req.EndpointID, n.id)
	}
	n.endpoints[req.EndpointID] = &endpoint{id: req.EndpointID, mac: mac}
	return &res, nil
}

// DeleteEndpoint forgets an endpoint, deleting its veth pair if Leave was
// not called.
func (d *Driver) DeleteEndpoint(req *api.DeleteEndpointRequest) error {
	defer d.time.Track()()
	d.mu.Lock()
	_, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	if err == nil && ep.state == busy {
		err = types.ForbiddenErrorf("endpoint %s of network %s: deleted while a Join or Leave is in progress", ep.id, req.NetworkID)
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	wasJoined := ep.state == joined
	delete(d.networks[req.NetworkID].endpoints, ep.id)
	d.mu.Unlock()

	if wasJoined {
		host, _ := VethNames(ep.id)
		if err := d.deleteLink(host); err != nil {
			return types.InternalErrorf("endpoint %s: deleting veth %s: %w", ep.id, host, err)
		}
	}
	return nil
}

// EndpointInfo answers the endpoint's MAC.
func (d *Driver) EndpointInfo(req *api.InfoRequest) (*api.InfoResponse, error) {
	defer d.time.Track()()
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	return &api.InfoResponse{Value: map[string]string{MACAddressKey: ep.mac.String()}}, nil
}

// Join makes the endpoint's veth pair: the host side on the network's
// bridge and up, the container side with the endpoint's MAC for the
// library to move into the sandbox. It answers the container side's name
// and the network's gateway.
func (d *Driver) Join(req *api.JoinRequest) (*api.JoinResponse, error) {
	defer d.time.Track()()
	d.mu.Lock()
	n, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	if err == nil && ep.state == busy {
		err = types.ForbiddenErrorf("endpoint %s of network %s: joining while a Join or Leave is in progress", ep.id, n.id)
	}
	if err == nil && ep.state == joined {
		err = types.ForbiddenErrorf("endpoint %s of network %s: already joined", ep.id, n.id)
	}
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	// The kernel's work is done outside the lock, so joins of different
	// endpoints run in parallel; the state keeps a second Join, a Leave
	// or a delete of this endpoint out meanwhile.
	ep.state = busy
	bridge, gateway, mac := n.bridge, n.gateway, ep.mac
	d.mu.Unlock()

	host, container := VethNames(ep.id)
	err = d.createVeth(bridge, host, container, mac)
	d.mu.Lock()
	if err != nil {
		ep.state = created
	} else {
		ep.state = joined
	}
	d.mu.Unlock()
	if err != nil {
		return nil, types.InternalErrorf("endpoint %s of network %s: %w", ep.id, n.id, err)
	}

	res := &api.JoinResponse{InterfaceName: api.InterfaceName{SrcName: container, DstPrefix: DstPrefix}}
	if gateway.IsValid() {
		res.Gateway = gateway.Addr().String()
	}
	return res, nil
}

// createVeth makes the pair: host up on bridge, container with mac. A
// pair left by an earlier run under the same name is replaced. If a step
// fails, nothing is left.
func (d *Driver) createVeth(bridge, host, container string, mac net.HardwareAddr) error {
	br, err := d.nl.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", bridge, err)
	}
	if err := d.deleteLink(host); err != nil {
		return fmt.Errorf("deleting stale veth %s: %w", host, err)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        host,
			MasterIndex: br.Attrs().Index,
			Flags:       net.FlagUp,
			TxQLen:      -1,
		},
		PeerName:         container,
		PeerHardwareAddr: mac,
		PeerTxQLen:       -1,
	}
	if err := d.nl.LinkAdd(veth); err != nil {
		if veth.Index != 0 {
			// Created, but enslaving failed: do not leave it.
			_ = d.nl.LinkDel(veth)
		}
		return fmt.Errorf("creating veth pair %s/%s: %w", host, container, err)
	}
	return nil
}

// Leave deletes the endpoint's veth pair: the library moved the container
// side into the sandbox (or back out of it), and deleting the host side
// takes the pair away wherever its peer is.
func (d *Driver) Leave(req *api.LeaveRequest) error {
	defer d.time.Track()()
	d.mu.Lock()
	n, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	if err == nil && ep.state == busy {
		err = types.ForbiddenErrorf("endpoint %s of network %s: leaving while a Join or Leave is in progress", ep.id, n.id)
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	was := ep.state
	ep.state = busy
	d.mu.Unlock()

	host, _ := VethNames(ep.id)
	err = d.deleteLink(host)
	d.mu.Lock()
	if err != nil {
		ep.state = was
	} else {
		ep.state = created
	}
	d.mu.Unlock()
	if err != nil {
		return types.InternalErrorf("endpoint %s of network %s: deleting veth %s: %w", ep.id, n.id, host, err)
	}
	return nil
}

// endpointLocked finds an endpoint. d.mu must be held.
func (d *Driver) endpointLocked(nid, eid string) (*network, *endpoint, error) {
	n, ok := d.networks[nid]
	if !ok {
		return nil, nil, types.NotFoundErrorf("endpoint %s: network %s not found", eid, nid)
	}
	ep, ok := n.endpoints[eid]
	if !ok {
		return nil, nil, types.NotFoundErrorf("endpoint %s of network %s: not found", eid, nid)
	}
	return n, ep, nil
}

// prefixIPNet is p as a *net.IPNet holding p's address (not the network's).
func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
