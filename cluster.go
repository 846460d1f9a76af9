package libnetwork

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/types"
)

// overlayNetworkType is the built-in multi-host driver's type, whose
// networks live in the global store.
const overlayNetworkType = "overlay"

// clusterConfig is the checked form of the global store's and the
// cluster's configuration.
type clusterConfig struct {
	// endpoints are the global store's addresses; none without a store.
	endpoints []string
	// advertise is the address this host advertises (the VTEP of its
	// overlay networks); invalid without OptionDiscoveryAddress.
	advertise netip.Addr
}

// checkClusterConfig checks the global store's and the cluster's options
// at New, so that a mistake is refused before anything is opened.
func checkClusterConfig(cfg config.Config) (clusterConfig, error) {
	var cc clusterConfig
	g := cfg.GlobalStore
	if a := cfg.Cluster.Address; a != "" {
		host := a
		if h, port, err := net.SplitHostPort(a); err == nil {
			if p, perr := strconv.Atoi(port); perr != nil || p < 1 || p > 65535 {
				return cc, types.BadRequestErrorf("discovery address %q: port %q is not a port number", a, port)
			}
			host = h
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
			return cc, types.BadRequestErrorf("discovery address %q: want this host's unicast IP address, ip[:port]", a)
		}
		cc.advertise = ip.Unmap()
	}
	switch g.Provider {
	case "":
		if g.URL != "" || len(g.Opts) > 0 {
			return cc, types.BadRequestErrorf("global store %q: options given without a provider (config.OptionKVProvider)", g.URL)
		}
		return cc, nil
	case config.KVProviderEtcd:
	case "consul", "zk", "boltdb":
		return cc, types.NotImplementedErrorf("global store provider %q: only %q is supported", g.Provider, config.KVProviderEtcd)
	default:
		return cc, types.BadRequestErrorf("global store provider %q: unknown; the provider is %q", g.Provider, config.KVProviderEtcd)
	}
	url := strings.TrimPrefix(g.URL, config.KVProviderEtcd+"://")
	if url == "" {
		return cc, types.BadRequestErrorf("global store %s: no address (config.OptionKVProviderURL)", g.Provider)
	}
	for _, ep := range strings.Split(url, ",") {
		ep = strings.TrimSpace(ep)
		host, port, err := net.SplitHostPort(ep)
		if err != nil || host == "" {
			return cc, types.BadRequestErrorf("global store address %q in %q: want host:port", ep, g.URL)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return cc, types.BadRequestErrorf("global store address %q in %q: port %q is not a port number", ep, g.URL, port)
		}
		cc.endpoints = append(cc.endpoints, ep)
	}
	for k := range g.Opts {
		switch k {
		case config.KVCACertFile, config.KVCertFile, config.KVKeyFile:
		default:
			return cc, types.BadRequestErrorf("global store option %q: unknown; the options are %s, %s and %s", k, config.KVCACertFile, config.KVCertFile, config.KVKeyFile)
		}
	}
	if (g.Opts[config.KVCertFile] == "") != (g.Opts[config.KVKeyFile] == "") {
		return cc, types.BadRequestErrorf("global store options: %s and %s go together", config.KVCertFile, config.KVKeyFile)
	}
	if g.Prefix != "" && (!strings.HasPrefix(g.Prefix, "/") || strings.ContainsAny(g.Prefix, " \t\n")) {
		return cc, types.BadRequestErrorf("global store prefix %q: want an absolute key path such as /netkit/libnetwork", g.Prefix)
	}
	if g.DialTimeout < 0 || g.RequestTimeout < 0 || g.LeaseTTL < 0 {
		return cc, types.BadRequestErrorf("global store timeouts (dial %v, request %v, lease %v): negative", g.DialTimeout, g.RequestTimeout, g.LeaseTTL)
	}
	return cc, nil
}

// refuseWithoutGlobalStore refuses a network of the overlay driver when no
// global store is configured: its VNI, addresses and peers must be shared
// with the other hosts.
func (c *controller) refuseWithoutGlobalStore(networkType, name string) error {
	if networkType != overlayNetworkType || len(c.cluster.endpoints) > 0 {
		return nil
	}
	return types.ForbiddenErrorf("network %s: the overlay driver needs a global store; configure etcd with config.OptionKVProvider(%q) and config.OptionKVProviderURL", name, config.KVProviderEtcd)
}
