package remote

import (
	"fmt"
	"net"
	"strings"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/types"
)

// Join asks the plugin to attach endpoint eid to the sandbox at sboxKey
// and reports its answer through jinfo: the interface it created in the
// host's namespace (InterfaceName.SrcName, required, and DstPrefix, passed
// through), the gateways (plain addresses; a CIDR is taken for its
// address), the static routes and DisableGatewayService. The whole answer
// is checked before anything is reported; a value that does not parse is
// a types.InternalError, and then, as when jinfo refuses a value or the
// outcome of the call is unknown, the endpoint is left again in the plugin
// before Join returns.
func (d *Driver) Join(nid, eid string, sboxKey string, jinfo driverapi.JoinInfo, options map[string]interface{}) error {
	what := fmt.Sprintf("endpoint %s of network %s", eid, nid)
	if jinfo == nil {
		return types.BadRequestErrorf("network plugin %s: Join %s: no join info given", d.name, what)
	}
	req := api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sboxKey, Options: options}
	undoReq := api.LeaveRequest{NetworkID: nid, EndpointID: eid}
	var resp api.JoinResponse
	if err := d.call(api.Join, what, req, &resp); err != nil {
		return d.undoIfApplied(err, what, api.Leave, undoReq)
	}
	j, err := d.parseJoin(what, &resp)
	if err == nil {
		err = d.report(what, jinfo, j)
	}
	if err != nil {
		return d.undo(err, what, api.Leave, undoReq)
	}
	return nil
}

// joined is a Join answer, parsed.
type joined struct {
	srcName, dstPrefix string
	gw, gw6            net.IP
	routes             []types.StaticRoute
	disableGW          bool
}

// parseJoin checks a Join answer and parses its values.
func (d *Driver) parseJoin(what string, resp *api.JoinResponse) (*joined, error) {
	bad := func(format string, a ...any) error { return d.badAnswer(api.Join, what, format, a...) }
	j := &joined{
		srcName:   resp.InterfaceName.SrcName,
		dstPrefix: resp.InterfaceName.DstPrefix,
		disableGW: resp.DisableGatewayService,
	}
	if err := checkIfName(j.srcName); err != nil {
		return nil, bad("InterfaceName.SrcName %q: %v", j.srcName, err)
	}
	var err error
	if j.gw, err = parseGateway(resp.Gateway, false); err != nil {
		return nil, bad("Gateway %q: %v", resp.Gateway, err)
	}
	if j.gw6, err = parseGateway(resp.GatewayIPv6, true); err != nil {
		return nil, bad("GatewayIPv6 %q: %v", resp.GatewayIPv6, err)
	}
	for i, r := range resp.StaticRoutes {
		if r == nil {
			return nil, bad("StaticRoutes[%d] is null", i)
		}
		route, err := parseRoute(r)
		if err != nil {
			return nil, bad("StaticRoutes[%d] (%s %s type %d): %v", i, r.Destination, r.NextHop, r.RouteType, err)
		}
		j.routes = append(j.routes, route)
	}
	return j, nil
}

// report tells jinfo what the plugin answered.
func (d *Driver) report(what string, jinfo driverapi.JoinInfo, j *joined) error {
	wrap := func(field string, err error) error {
		return types.Errorf("network plugin %s: Join %s: reporting the %s the plugin answered: %w", d.name, what, field, err)
	}
	if names := jinfo.InterfaceName(); names != nil {
		if err := names.SetNames(j.srcName, j.dstPrefix); err != nil {
			return wrap("InterfaceName", err)
		}
	}
	if j.gw != nil {
		if err := jinfo.SetGateway(j.gw); err != nil {
			return wrap("Gateway", err)
		}
	}
	if j.gw6 != nil {
		if err := jinfo.SetGatewayIPv6(j.gw6); err != nil {
			return wrap("GatewayIPv6", err)
		}
	}
	for i, r := range j.routes {
		if err := jinfo.AddStaticRoute(r.Destination, r.RouteType, r.NextHop); err != nil {
			return wrap(fmt.Sprintf("StaticRoutes[%d]", i), err)
		}
	}
	if j.disableGW {
		jinfo.DisableGatewayService()
	}
	return nil
}

// checkIfName checks a Linux interface name as the kernel does
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or white
// space.
func checkIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty: the plugin must name the interface it created")
	case len(name) > 15:
		return fmt.Errorf("longer than 15 bytes")
	case name == "." || name == "..":
		return fmt.Errorf("not an interface name")
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("contains '/', ':' or white space")
	}
	return nil
}

// parseGateway parses a gateway of the family asked for: a plain address,
// or an address in CIDR form whose address is taken; "" is none.
func parseGateway(s string, v6 bool) (net.IP, error) {
	if s == "" {
		return nil, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		var err error
		if ip, _, err = net.ParseCIDR(s); err != nil {
			return nil, fmt.Errorf("not an IP address")
		}
	}
	return checkFamily(ip, v6)
}

// checkFamily returns ip in its short form if it is of the family asked
// for.
func checkFamily(ip net.IP, v6 bool) (net.IP, error) {
	v4 := ip.To4()
	switch {
	case v4 != nil && v6:
		return nil, fmt.Errorf("not an IPv6 address")
	case v4 != nil:
		return v4, nil
	case !v6:
		return nil, fmt.Errorf("not an IPv4 address")
	}
	return ip, nil
}

// parseRoute parses a static route: Destination a network in CIDR form
// (no host bits, as the kernel wants it); a types.NEXTHOP route needs a
// NextHop of the same family, a types.CONNECTED route ignores NextHop.
func parseRoute(r *api.StaticRoute) (types.StaticRoute, error) {
	ip, dst, err := net.ParseCIDR(r.Destination)
	if err != nil {
		return types.StaticRoute{}, fmt.Errorf("destination is not in CIDR form")
	}
	if !ip.Equal(dst.IP) {
		return types.StaticRoute{}, fmt.Errorf("destination has host bits set (the network is %s)", dst)
	}
	v6 := dst.IP.To4() == nil
	switch r.RouteType {
	case types.NEXTHOP:
		if r.NextHop == "" {
			return types.StaticRoute{}, fmt.Errorf("next-hop route without NextHop")
		}
		hop := net.ParseIP(r.NextHop)
		if hop == nil {
			return types.StaticRoute{}, fmt.Errorf("NextHop is not an IP address")
		}
		if hop, err = checkFamily(hop, v6); err != nil {
			return types.StaticRoute{}, fmt.Errorf("NextHop: %v, as the destination", err)
		}
		return types.StaticRoute{Destination: dst, RouteType: types.NEXTHOP, NextHop: hop}, nil
	case types.CONNECTED:
		return types.StaticRoute{Destination: dst, RouteType: types.CONNECTED}, nil
	}
	return types.StaticRoute{}, fmt.Errorf("RouteType %d: want %d (next hop) or %d (connected)", r.RouteType, types.NEXTHOP, types.CONNECTED)
}

// Leave asks the plugin to detach endpoint eid from its sandbox.
func (d *Driver) Leave(nid, eid string) error {
	return d.call(api.Leave, fmt.Sprintf("endpoint %s of network %s", eid, nid),
		api.LeaveRequest{NetworkID: nid, EndpointID: eid}, nil)
}

// ProgramExternalConnectivity asks the plugin to program what joined
// endpoint eid needs to reach outside its network; options (exposed ports,
// port bindings) are sent as they are. A plugin that does not implement
// the method (404) is not an error, as in docker: it is optional. When the
// outcome is unknown it is revoked again.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, options map[string]interface{}) error {
	what := fmt.Sprintf("endpoint %s of network %s", eid, nid)
	req := api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid, Options: options}
	err := d.call(api.ProgramExternalConnectivity, what, req, nil)
	if err = d.tolerateNotImplemented(api.ProgramExternalConnectivity, what, err); err != nil {
		return d.undoIfApplied(err, what, api.RevokeExternalConnectivity,
			api.RevokeExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
	}
	return nil
}

// RevokeExternalConnectivity undoes ProgramExternalConnectivity; a 404 is
// not an error.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error {
	what := fmt.Sprintf("endpoint %s of network %s", eid, nid)
	err := d.call(api.RevokeExternalConnectivity, what, api.RevokeExternalConnectivityRequest{NetworkID: nid, EndpointID: eid}, nil)
	return d.tolerateNotImplemented(api.RevokeExternalConnectivity, what, err)
}
