package libnetwork

import (
	"maps"
	"net"
	"slices"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// EndpointOption is an option setter function type used to pass various
// options to Network and Endpoint interfaces methods. The various setter
// functions of type EndpointOption are provided by libnetwork, they look
// like <Create|Join|Leave>Option[...](...)
type EndpointOption func(ep *endpoint)

// CreateOptionIpam function returns an option setter for the ipam
// configuration for this endpoint.
func CreateOptionIpam(ipV4, ipV6 net.IP, ipamOptions map[string]string) EndpointOption {
	return func(ep *endpoint) {
		ep.prefAddress = types.GetIPCopy(ipV4)
		ep.prefAddressV6 = types.GetIPCopy(ipV6)
		ep.ipamOptions = maps.Clone(ipamOptions)
	}
}

// CreateOptionExposedPorts function returns an option setter for the
// container exposed ports option to be passed to network.CreateEndpoint()
// method.
func CreateOptionExposedPorts(exposedPorts []types.TransportPort) EndpointOption {
	return func(ep *endpoint) {
		ep.exposedPorts = slices.Clone(exposedPorts)
	}
}

// CreateOptionPortMapping function returns an option setter for the
// mapping ports option to be passed to network.CreateEndpoint() method.
func CreateOptionPortMapping(portBindings []types.PortBinding) EndpointOption {
	return func(ep *endpoint) {
		ep.portMapping = make([]types.PortBinding, 0, len(portBindings))
		for i := range portBindings {
			ep.portMapping = append(ep.portMapping, portBindings[i].GetCopy())
		}
	}
}

// CreateOptionAnonymous function returns an option setter for setting this
// endpoint as anonymous: its name is not resolvable.
func CreateOptionAnonymous() EndpointOption {
	return func(ep *endpoint) { ep.anonymous = true }
}

// CreateOptionDisableResolution function returns an option setter to
// indicate this endpoint doesn't want embedded DNS server functionality.
func CreateOptionDisableResolution() EndpointOption {
	return func(ep *endpoint) { ep.disableResolution = true }
}

// CreateOptionAlias function returns an option setter for setting endpoint
// alias: alias resolves to the endpoint called name (a link alias). Names
// and aliases longer than 255 bytes or with control characters are refused
// with an InvalidParameter error.
func CreateOptionAlias(name string, alias string) EndpointOption {
	return func(ep *endpoint) {
		if err := checkEndpointName("alias target", name); err != nil {
			ep.optErr = err
			return
		}
		if err := checkEndpointName("alias", alias); err != nil {
			ep.optErr = err
			return
		}
		if ep.aliases == nil {
			ep.aliases = map[string]string{}
		}
		ep.aliases[alias] = name
	}
}

// CreateOptionMyAlias function returns an option setter for setting
// endpoint's self alias. An alias longer than 255 bytes or with control
// characters is refused with an InvalidParameter error.
func CreateOptionMyAlias(alias string) EndpointOption {
	return func(ep *endpoint) {
		if err := checkEndpointName("alias", alias); err != nil {
			ep.optErr = err
			return
		}
		ep.myAliases = append(ep.myAliases, alias)
	}
}

// EndpointOptionGeneric function returns an option setter for a Generic
// option defined in a Dictionary of Key-Value pair. netlabel.MacAddress
// (net.HardwareAddr or string), netlabel.PortMap and netlabel.ExposedPorts
// are taken from it.
func EndpointOptionGeneric(generic map[string]interface{}) EndpointOption {
	return func(ep *endpoint) {
		if ep.generic == nil {
			ep.generic = map[string]interface{}{}
		}
		for k, v := range generic {
			ep.generic[k] = v
		}
		if raw, ok := generic[netlabel.MacAddress]; ok && raw != nil {
			switch m := raw.(type) {
			case net.HardwareAddr:
				ep.prefMAC = types.GetMacCopy(m)
			case string:
				mac, err := net.ParseMAC(m)
				if err != nil {
					ep.optErr = types.InvalidParameterErrorf("option %s: %q is not a MAC address", netlabel.MacAddress, m)
					return
				}
				ep.prefMAC = mac
			default:
				ep.optErr = types.InvalidParameterErrorf("option %s: want a MAC address, got %T", netlabel.MacAddress, raw)
			}
		}
		if raw, ok := generic[netlabel.PortMap]; ok && raw != nil {
			pb, isPB := raw.([]types.PortBinding)
			if !isPB {
				ep.optErr = types.InvalidParameterErrorf("option %s: want []types.PortBinding, got %T", netlabel.PortMap, raw)
				return
			}
			CreateOptionPortMapping(pb)(ep)
		}
		if raw, ok := generic[netlabel.ExposedPorts]; ok && raw != nil {
			tp, isTP := raw.([]types.TransportPort)
			if !isTP {
				ep.optErr = types.InvalidParameterErrorf("option %s: want []types.TransportPort, got %T", netlabel.ExposedPorts, raw)
				return
			}
			CreateOptionExposedPorts(tp)(ep)
		}
	}
}

// JoinOptionPriority function returns an option setter for priority option
// to be passed to the endpoint.Join() method. Among the endpoints of a
// sandbox, the one with the highest priority provides the default gateway.
func JoinOptionPriority(ep Endpoint, prio int) EndpointOption {
	return func(e *endpoint) { e.joinPriority = prio }
}
