package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// Driver option keys of a bridge network (under netlabel.GenericData).
const (
	// OptionPrefix is the prefix of the bridge driver's own option keys; an
	// unknown key under it is refused.
	OptionPrefix = "com.docker.network.bridge."
	// BridgeName is the name of the Linux bridge (string).
	BridgeName = OptionPrefix + "name"
	// EnableICC allows traffic between the network's containers (bool,
	// default true).
	EnableICC = OptionPrefix + "enable_icc"
	// EnableIPMasquerade masquerades traffic leaving the network (bool,
	// default true).
	EnableIPMasquerade = OptionPrefix + "enable_ip_masquerade"
	// DefaultBridge marks the network as the default bridge network (bool).
	DefaultBridge = OptionPrefix + "default_bridge"
	// DefaultBindingIP is the host IPv4 address ports are published on
	// (string).
	DefaultBindingIP = OptionPrefix + "host_binding_ipv4"
	// MTU is the MTU of the bridge and its veths (int or string, default
	// 1500, 68..65535); it is netlabel.DriverMTU.
	MTU = netlabel.DriverMTU
	// GatewayModeIPv4 and GatewayModeIPv6 are the network's gateway mode
	// for each family, as docker 28 names them: GatewayModeNAT (the
	// default), GatewayModeNATUnprotected (the same here) or
	// GatewayModeRouted.
	GatewayModeIPv4 = OptionPrefix + "gateway_mode_ipv4"
	GatewayModeIPv6 = OptionPrefix + "gateway_mode_ipv6"
)

// Gateway modes (GatewayModeIPv4, GatewayModeIPv6).
const (
	// GatewayModeNAT masquerades the family's traffic leaving the network
	// (if EnableIPMasquerade) and publishes ports through NAT (the nat
	// port mapper). It does not filter traffic routed to the containers'
	// own addresses: unlike docker 28's nat mode, which drops it for the
	// ports that are not published, it behaves as docker's
	// nat-unprotected.
	GatewayModeNAT = "nat"
	// GatewayModeNATUnprotected is accepted as docker names it, and is
	// GatewayModeNAT.
	GatewayModeNATUnprotected = "nat-unprotected"
	// GatewayModeRouted masquerades nothing of the family; the network's
	// default port mapper becomes "routed" for it (unless
	// PortMapperOption names one), and from outside the bridge only the
	// ports it opens, ICMP and replies reach the containers' addresses of
	// the family.
	GatewayModeRouted = "routed"
)

// Driver-wide option keys (under netlabel.GenericData of the driver's
// configuration). Other keys are ignored, so docker-style configurations
// with keys this driver does not implement are accepted.
const (
	// EnableIPForwarding lets the driver turn on IP forwarding in the
	// host's namespace (bool, default true).
	EnableIPForwarding = "EnableIPForwarding"
	// EnableIPTables lets the driver program firewall rules (bool, default
	// true).
	EnableIPTables = "EnableIPTables"
)

// Defaults.
const (
	// DefaultMTU is the MTU of a network that sets none.
	DefaultMTU = 1500
	// DefaultBridgeName is the bridge of the default bridge network when
	// the options name none.
	DefaultBridgeName = "lnbr0"
	// bridgePrefix names the bridges of other networks: "br-" + nid[:12].
	bridgePrefix = "br-"
	// vethPrefix names host-side veths: "veth" + eid[:11].
	vethPrefix = "veth"
	// retiredPrefix names host-side veths renamed away so that their
	// endpoint can join again at once: "vgone" + 10 hex digits. Nothing
	// owns them; the reaper or the orphan collector deletes them.
	retiredPrefix = "vgone"
	minMTU        = 68
	maxMTU        = 65535
)

// driverConfig is the driver-wide configuration.
type driverConfig struct {
	enableIPForwarding bool
	enableFirewall     bool
}

// parseDriverConfig parses the driver-wide options.
func parseDriverConfig(m map[string]interface{}) (driverConfig, error) {
	c := driverConfig{enableIPForwarding: true, enableFirewall: true}
	var err error
	if c.enableIPForwarding, err = boolOption(m, EnableIPForwarding, true); err != nil {
		return c, fmt.Errorf("bridge driver configuration: %w", err)
	}
	if c.enableFirewall, err = boolOption(m, EnableIPTables, true); err != nil {
		return c, fmt.Errorf("bridge driver configuration: %w", err)
	}
	return c, nil
}

// networkConfig is a bridge network's configuration, parsed once from the
// options of CreateNetwork.
type networkConfig struct {
	bridgeName    string
	enableICC     bool
	enableMasq    bool
	defaultBridge bool
	hostBindingIP netip.Addr // invalid when not set
	portMapper    string     // PortMapperOption; "" is nat
	routedV4      bool       // GatewayModeIPv4 is routed
	routedV6      bool       // GatewayModeIPv6 is routed
	mtu           int
	enableIPv6    bool
	internal      bool
	gateways      []*net.IPNet // gateway addresses with the pool mask, IPv4 first
	subnets       []netip.Prefix
	gatewayV4     net.IP // first IPv4 gateway, nil if none
	gatewayV6     net.IP // first IPv6 gateway, nil if none
}

// parseNetworkConfig turns CreateNetwork's arguments into a networkConfig.
// Errors are invalid-parameter errors.
func parseNetworkConfig(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) (networkConfig, error) {
	c := networkConfig{enableICC: true, enableMasq: true, mtu: DefaultMTU}
	wrap := func(err error) error { return fmt.Errorf("bridge network %s: %w", nid, err) }

	var err error
	if c.enableIPv6, err = boolOption(opts, netlabel.EnableIPv6, false); err != nil {
		return c, wrap(err)
	}
	if c.internal, err = boolOption(opts, netlabel.Internal, false); err != nil {
		return c, wrap(err)
	}
	gen, _, err := options.GetGeneric(opts, netlabel.GenericData)
	if err != nil {
		return c, wrap(err)
	}
	if err := c.parseDriverOptions(gen); err != nil {
		return c, wrap(err)
	}
	if c.bridgeName == "" {
		if c.defaultBridge {
			c.bridgeName = DefaultBridgeName
		} else {
			c.bridgeName = bridgePrefix + shortID(nid, 12)
		}
	}
	if err := c.parseIPAM(ipV4Data, ipV6Data); err != nil {
		return c, wrap(err)
	}
	return c, nil
}

func (c *networkConfig) parseDriverOptions(gen map[string]interface{}) error {
	for k := range gen {
		switch k {
		case BridgeName, EnableICC, EnableIPMasquerade, DefaultBridge, DefaultBindingIP, MTU, PortMapperOption,
			GatewayModeIPv4, GatewayModeIPv6:
		default:
			if strings.HasPrefix(k, OptionPrefix) {
				return types.InvalidParameterErrorf("unknown bridge option %s", k)
			}
		}
	}
	var err error
	if name, ok, err := options.GetString(gen, BridgeName); err != nil {
		return err
	} else if ok {
		if err := validIfaceName(name); err != nil {
			return types.InvalidParameterErrorf("option %s: %v", BridgeName, err)
		}
		c.bridgeName = name
	}
	if c.enableICC, err = boolOption(gen, EnableICC, true); err != nil {
		return err
	}
	if c.enableMasq, err = boolOption(gen, EnableIPMasquerade, true); err != nil {
		return err
	}
	if c.defaultBridge, err = boolOption(gen, DefaultBridge, false); err != nil {
		return err
	}
	if s, ok, err := options.GetString(gen, DefaultBindingIP); err != nil {
		return err
	} else if ok && s != "" {
		ip, perr := netip.ParseAddr(s)
		if perr != nil || !ip.Is4() {
			return types.InvalidParameterErrorf("option %s: %q is not an IPv4 address", DefaultBindingIP, s)
		}
		c.hostBindingIP = ip
	}
	if name, _, err := options.GetString(gen, PortMapperOption); err != nil {
		return err
	} else {
		c.portMapper = name
	}
	if c.routedV4, err = gatewayModeOption(gen, GatewayModeIPv4); err != nil {
		return err
	}
	if c.routedV6, err = gatewayModeOption(gen, GatewayModeIPv6); err != nil {
		return err
	}
	if mtu, ok, err := options.GetInt(gen, MTU); err != nil {
		return err
	} else if ok && mtu != 0 {
		if mtu < minMTU || mtu > maxMTU {
			return types.InvalidParameterErrorf("option %s: %d is out of range %d..%d", MTU, mtu, minMTU, maxMTU)
		}
		c.mtu = mtu
	}
	return nil
}

// parseIPAM takes the gateways and subnets. IPv6 data counts only when
// IPv6 is enabled; at least one gateway is required.
func (c *networkConfig) parseIPAM(ipV4Data, ipV6Data []driverapi.IPAMData) error {
	add := func(d driverapi.IPAMData, v6 bool) error {
		if d.Pool == nil {
			return types.InvalidParameterErrorf("IPAM data without a pool")
		}
		if (d.Pool.IP.To4() == nil) != v6 {
			return types.InvalidParameterErrorf("pool %s is of the wrong address family", d.Pool)
		}
		if p, ok := prefixOf(d.Pool); ok {
			c.subnets = append(c.subnets, p.Masked())
		}
		if d.Gateway == nil {
			return nil
		}
		if !d.Pool.Contains(d.Gateway.IP) {
			return types.InvalidParameterErrorf("gateway %s is outside pool %s", d.Gateway.IP, d.Pool)
		}
		gw := &net.IPNet{IP: d.Gateway.IP, Mask: d.Pool.Mask}
		c.gateways = append(c.gateways, gw)
		if v6 && c.gatewayV6 == nil {
			c.gatewayV6 = d.Gateway.IP
		}
		if !v6 && c.gatewayV4 == nil {
			c.gatewayV4 = d.Gateway.IP
		}
		return nil
	}
	for _, d := range ipV4Data {
		if err := add(d, false); err != nil {
			return err
		}
	}
	if c.enableIPv6 {
		for _, d := range ipV6Data {
			if err := add(d, true); err != nil {
				return err
			}
		}
	}
	if len(c.gateways) == 0 {
		return types.InvalidParameterErrorf("no gateway address in the IPAM data")
	}
	return nil
}

// gatewayModeOption reports whether the gateway mode option key is
// GatewayModeRouted.
func gatewayModeOption(m map[string]interface{}, key string) (bool, error) {
	s, _, err := options.GetString(m, key)
	if err != nil {
		return false, err
	}
	switch s {
	case "", GatewayModeNAT, GatewayModeNATUnprotected:
		return false, nil
	case GatewayModeRouted:
		return true, nil
	}
	return false, types.InvalidParameterErrorf("option %s: unknown gateway mode %q (want %s, %s or %s)",
		key, s, GatewayModeNAT, GatewayModeNATUnprotected, GatewayModeRouted)
}

func boolOption(m map[string]interface{}, key string, def bool) (bool, error) {
	v, ok, err := options.GetBool(m, key)
	if err != nil || !ok {
		return def, err
	}
	return v, nil
}

// validIfaceName accepts only names the kernel keeps verbatim: 1 to 15
// bytes (IFNAMSIZ-1) of printable ASCII without '/', ':', '%' or spaces,
// and not "." or "..". The kernel expands a '%' ("a%d" becomes "a0"), so a
// link created under such a name could not be found again to delete.
func validIfaceName(name string) error {
	if name == "" || len(name) > 15 {
		return fmt.Errorf("%q is not a valid interface name: it must be 1 to 15 bytes long", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '/' || r == ':' || r == '%' {
			return fmt.Errorf("%q is not a valid interface name: only printable ASCII without '/', ':', '%%' or whitespace", name)
		}
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

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	ones, bits := n.Mask.Size()
	if bits != addr.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}
