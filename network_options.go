package libnetwork

import (
	"maps"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
)

// NetworkOption is an option setter function type used to pass various
// options to NewNetwork method. The various setter functions of type
// NetworkOption are provided by libnetwork, they look like
// NetworkOptionXXXX(...)
type NetworkOption func(n *network)

// NetworkOptionGeneric function returns an option setter for a Generic
// option defined in a Dictionary of Key-Value pair. netlabel.EnableIPv6 and
// netlabel.Internal in it set those network properties.
func NetworkOptionGeneric(generic map[string]interface{}) NetworkOption {
	return func(n *network) {
		if n.generic == nil {
			n.generic = options.Generic{}
		}
		for k, v := range generic {
			n.generic[k] = v
		}
		if v, ok, err := options.GetBool(generic, netlabel.EnableIPv6); err != nil {
			n.optErr = err
		} else if ok {
			n.enableIPv6 = v
		}
		if v, ok, err := options.GetBool(generic, netlabel.Internal); err != nil {
			n.optErr = err
		} else if ok {
			n.internal = v
		}
	}
}

// NetworkOptionPersist returns an option setter to set persistence policy
// for a network: a network that does not persist is not restored when a
// controller starts again on the same data dir.
func NetworkOptionPersist(persist bool) NetworkOption {
	return func(n *network) { n.persist = persist }
}

// NetworkOptionEnableIPv6 returns an option setter to explicitly configure
// IPv6.
func NetworkOptionEnableIPv6(enableIPv6 bool) NetworkOption {
	return func(n *network) { n.enableIPv6 = enableIPv6 }
}

// NetworkOptionInternalNetwork returns an option setter to config the
// network to be internal which disables default gateway service.
func NetworkOptionInternalNetwork() NetworkOption {
	return func(n *network) { n.internal = true }
}

// NetworkOptionIpam function returns an option setter for the ipam
// configuration for this network.
func NetworkOptionIpam(ipamDriver string, addrSpace string, ipV4 []*IpamConf, ipV6 []*IpamConf, opts map[string]string) NetworkOption {
	return func(n *network) {
		if ipamDriver != "" {
			n.ipamType = ipamDriver
		}
		n.addrSpace = addrSpace
		n.ipamOptions = maps.Clone(opts)
		n.ipamV4Config = copyIpamConfs(ipV4)
		n.ipamV6Config = copyIpamConfs(ipV6)
	}
}

// NetworkOptionDriverOpts function returns an option setter for any driver
// parameter described by a map.
func NetworkOptionDriverOpts(opts map[string]string) NetworkOption {
	return func(n *network) {
		if n.generic == nil {
			n.generic = options.Generic{}
		}
		if opts == nil {
			opts = map[string]string{}
		}
		n.generic[netlabel.GenericData] = maps.Clone(opts)
		if v, ok, err := options.GetBool(stringsToGeneric(opts), netlabel.EnableIPv6); err != nil {
			n.optErr = err
		} else if ok {
			n.enableIPv6 = v
		}
	}
}

// NetworkOptionLabels function returns an option setter for labels specific
// to a network.
func NetworkOptionLabels(labels map[string]string) NetworkOption {
	return func(n *network) { n.labels = maps.Clone(labels) }
}

// NetworkOptionDeferIPv6Alloc instructs the network to defer the IPV6
// address allocation until after the endpoint has been created. It is
// being provided to support the specific docker daemon flags where user
// can deterministically assign an IPv6 address to a container as
// combination of fixed-cidr-v6 + mac-address.
func NetworkOptionDeferIPv6Alloc(enable bool) NetworkOption {
	return func(n *network) { n.postIPv6 = enable }
}

func copyIpamConfs(in []*IpamConf) []*IpamConf {
	if in == nil {
		return nil
	}
	out := make([]*IpamConf, 0, len(in))
	for _, c := range in {
		if c == nil {
			continue
		}
		d := &IpamConf{}
		c.CopyTo(d)
		out = append(out, d)
	}
	return out
}

func stringsToGeneric(m map[string]string) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
