package remote

import (
	"bytes"
	"fmt"
	"net"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// CreateEndpoint asks the plugin to create endpoint eid of network nid,
// sending the addresses and MAC the controller put in ifInfo (CIDR
// strings, "aa:bb:cc:dd:ee:ff"; empty where none).
//
// The plugin may fill in a field the controller left empty: it is set on
// ifInfo. A field the controller gave that the plugin answers with a
// different value, or a value that does not parse, is a
// types.InternalError naming the field and both values; then, as when the
// outcome of the call is unknown, the endpoint is deleted in the plugin
// again before CreateEndpoint returns.
func (d *Driver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, options map[string]interface{}) error {
	what := fmt.Sprintf("endpoint %s of network %s", eid, nid)
	if ifInfo == nil {
		return types.BadRequestErrorf("network plugin %s: CreateEndpoint %s: no interface info given", d.name, what)
	}
	have := endpointAddrs{
		addr:  ifInfo.Address(),
		addr6: ifInfo.AddressIPv6(),
		mac:   ifInfo.MacAddress(),
	}
	req := api.CreateEndpointRequest{
		NetworkID:  nid,
		EndpointID: eid,
		Interface: &api.EndpointInterface{
			Address:     cidrString(have.addr),
			AddressIPv6: cidrString(have.addr6),
			MacAddress:  macString(have.mac),
		},
		Options: options,
	}
	undoReq := api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}
	var resp api.CreateEndpointResponse
	if err := d.call(api.CreateEndpoint, what, req, &resp); err != nil {
		return d.undoIfApplied(err, what, api.DeleteEndpoint, undoReq)
	}
	if resp.Interface == nil {
		return nil
	}
	fill, err := d.parseInterface(what, resp.Interface, have)
	if err == nil {
		err = d.fillInterface(what, ifInfo, fill)
	}
	if err != nil {
		return d.undo(err, what, api.DeleteEndpoint, undoReq)
	}
	return nil
}

// endpointAddrs are the addresses of an endpoint's interface; nil for
// none.
type endpointAddrs struct {
	addr, addr6 *net.IPNet
	mac         net.HardwareAddr
}

// parseInterface checks the interface the plugin answered against what
// the controller gave (have) and returns the fields to fill in: those the
// controller left empty and the plugin gave.
func (d *Driver) parseInterface(what string, in *api.EndpointInterface, have endpointAddrs) (endpointAddrs, error) {
	var fill endpointAddrs
	if in.Address != "" {
		ip, err := parseInterfaceAddr(in.Address, false)
		if err != nil {
			return fill, d.badAnswer(api.CreateEndpoint, what, "Address %q: %v", in.Address, err)
		}
		switch {
		case have.addr == nil:
			fill.addr = ip
		case !sameIPNet(ip, have.addr):
			return fill, d.badAnswer(api.CreateEndpoint, what, "Address %s differs from the address %s the endpoint was given", ip, have.addr)
		}
	}
	if in.AddressIPv6 != "" {
		ip, err := parseInterfaceAddr(in.AddressIPv6, true)
		if err != nil {
			return fill, d.badAnswer(api.CreateEndpoint, what, "AddressIPv6 %q: %v", in.AddressIPv6, err)
		}
		switch {
		case have.addr6 == nil:
			fill.addr6 = ip
		case !sameIPNet(ip, have.addr6):
			return fill, d.badAnswer(api.CreateEndpoint, what, "AddressIPv6 %s differs from the address %s the endpoint was given", ip, have.addr6)
		}
	}
	if in.MacAddress != "" {
		mac, err := parseMAC(in.MacAddress)
		if err != nil {
			return fill, d.badAnswer(api.CreateEndpoint, what, "MacAddress %q: %v", in.MacAddress, err)
		}
		switch {
		case have.mac == nil:
			fill.mac = mac
		case !bytes.Equal(mac, have.mac):
			return fill, d.badAnswer(api.CreateEndpoint, what, "MacAddress %s differs from the MAC %s the endpoint was given", mac, have.mac)
		}
	}
	return fill, nil
}

// fillInterface sets on ifInfo the fields of fill.
func (d *Driver) fillInterface(what string, ifInfo driverapi.InterfaceInfo, fill endpointAddrs) error {
	wrap := func(field string, err error) error {
		return types.Errorf("network plugin %s: CreateEndpoint %s: setting the %s the plugin answered: %w", d.name, what, field, err)
	}
	if fill.addr != nil {
		if err := ifInfo.SetIPAddress(fill.addr); err != nil {
			return wrap("Address", err)
		}
	}
	if fill.addr6 != nil {
		if err := ifInfo.SetIPAddress(fill.addr6); err != nil {
			return wrap("AddressIPv6", err)
		}
	}
	if fill.mac != nil {
		if err := ifInfo.SetMacAddress(fill.mac); err != nil {
			return wrap("MacAddress", err)
		}
	}
	return nil
}

// parseInterfaceAddr parses an interface address in CIDR form, host part
// kept, of the family asked for.
func parseInterfaceAddr(s string, v6 bool) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("not an address in CIDR form")
	}
	if v4 := ip.To4(); v4 != nil {
		if v6 {
			return nil, fmt.Errorf("not an IPv6 address")
		}
		return &net.IPNet{IP: v4, Mask: n.Mask}, nil
	}
	if !v6 {
		return nil, fmt.Errorf("not an IPv4 address")
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}, nil
}

// sameIPNet reports whether a and b are the same address with the same
// prefix length, whatever the length of their representations (an IPv4
// address or mask may be held in 16 bytes).
func sameIPNet(a, b *net.IPNet) bool {
	if !a.IP.Equal(b.IP) {
		return false
	}
	ma, mb := a.Mask, b.Mask
	if a.IP.To4() != nil {
		ma, mb = v4Mask(ma), v4Mask(mb)
	}
	return bytes.Equal(ma, mb)
}

// v4Mask returns the 4-byte form of an IPv4 mask held in 16 bytes.
func v4Mask(m net.IPMask) net.IPMask {
	if len(m) == net.IPv6len {
		return m[12:]
	}
	return m
}

// parseMAC parses an Ethernet MAC (six bytes).
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("not a MAC address")
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("not an Ethernet MAC address (%d bytes, want 6)", len(mac))
	}
	return mac, nil
}

func macString(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return mac.String()
}

// DeleteEndpoint asks the plugin to delete endpoint eid.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	return d.call(api.DeleteEndpoint, fmt.Sprintf("endpoint %s of network %s", eid, nid),
		api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}, nil)
}

// EndpointOperInfo returns the plugin's operational data of endpoint eid.
// The values stay strings, except netlabel.MacAddress, which is parsed
// into a net.HardwareAddr as the built-in drivers give it (a value that
// does not parse is a types.InternalError), and netlabel.PortMap, which is
// dropped: in the v0.7 API it is a []types.PortBinding, and the
// controller fills it in itself from what it published.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	what := fmt.Sprintf("endpoint %s of network %s", eid, nid)
	var resp api.InfoResponse
	if err := d.call(api.EndpointInfo, what, api.InfoRequest{NetworkID: nid, EndpointID: eid}, &resp); err != nil {
		return nil, err
	}
	info := make(map[string]interface{}, len(resp.Value))
	for k, v := range resp.Value {
		switch k {
		case netlabel.PortMap:
			continue
		case netlabel.MacAddress:
			mac, err := parseMAC(v)
			if err != nil {
				return nil, d.badAnswer(api.EndpointInfo, what, "%s %q: %v", k, v, err)
			}
			info[k] = mac
		default:
			info[k] = v
		}
	}
	return info, nil
}
