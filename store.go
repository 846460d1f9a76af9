package libnetwork

import (
	"net"

	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// Store kinds. Networks live in the data dir's store; endpoints and
// sandboxes, which describe kernel state that a reboot takes away, live in
// the exec root's store.
const (
	kindNetwork  = "network"
	kindEndpoint = "endpoint"
	kindSandbox  = "sandbox"
)

// The records below are the only place live objects and their stored form
// meet: record() builds one, restore.go turns one back into an object.

type networkRecord struct {
	ID           string
	Name         string
	Type         string
	IpamType     string
	AddrSpace    string
	IpamOptions  map[string]string `json:",omitempty"`
	IpamV4Config []*IpamConf       `json:",omitempty"`
	IpamV6Config []*IpamConf       `json:",omitempty"`
	IpamV4Info   []*IpamInfo       `json:",omitempty"`
	IpamV6Info   []*IpamInfo       `json:",omitempty"`
	EnableIPv6   bool
	Internal     bool
	PostIPv6     bool              `json:",omitempty"`
	Labels       map[string]string `json:",omitempty"`
	Generic      options.Generic   `json:",omitempty"`
	Scope        string
	Created      int64
}

func (n *network) record() *networkRecord {
	return &networkRecord{
		ID: n.id, Name: n.name, Type: n.networkType,
		IpamType: n.ipamType, AddrSpace: n.addrSpace, IpamOptions: n.ipamOptions,
		IpamV4Config: n.ipamV4Config, IpamV6Config: n.ipamV6Config,
		IpamV4Info: n.ipamV4Info, IpamV6Info: n.ipamV6Info,
		EnableIPv6: n.enableIPv6, Internal: n.internal, PostIPv6: n.postIPv6,
		Labels: n.labels, Generic: n.generic, Scope: n.scope, Created: n.created.UnixNano(),
	}
}

type endpointRecord struct {
	ID                string
	Name              string
	NetworkID         string
	MAC               string                `json:",omitempty"`
	Addr              string                `json:",omitempty"`
	AddrV6            string                `json:",omitempty"`
	PoolID            string                `json:",omitempty"`
	PoolIDv6          string                `json:",omitempty"`
	Anonymous         bool                  `json:",omitempty"`
	DisableResolution bool                  `json:",omitempty"`
	MyAliases         []string              `json:",omitempty"`
	Aliases           map[string]string     `json:",omitempty"`
	ExposedPorts      []types.TransportPort `json:",omitempty"`
	PortMapping       []types.PortBinding   `json:",omitempty"`
	Generic           map[string]any        `json:",omitempty"`
	Join              *joinRecord           `json:",omitempty"`
}

type joinRecord struct {
	SandboxID    string
	IfName       string               `json:",omitempty"`
	Gateway      string               `json:",omitempty"`
	GatewayV6    string               `json:",omitempty"`
	StaticRoutes []*types.StaticRoute `json:",omitempty"`
	DisableGW    bool                 `json:",omitempty"`
	Priority     int                  `json:",omitempty"`
	Populated    bool                 `json:",omitempty"`
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func ipNetString(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

// record returns the endpoint's record. It takes ep.mu.
func (ep *endpoint) record() *endpointRecord {
	r := ep.recordUnjoined()
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.join != nil {
		js := ep.join
		r.Join = &joinRecord{
			SandboxID: ep.sandboxID, IfName: js.ifName,
			Gateway: ipString(js.gw), GatewayV6: ipString(js.gw6),
			StaticRoutes: js.staticRoutes, DisableGW: js.disableGW,
			Priority: js.priority, Populated: js.populated,
		}
	}
	return r
}

// recordUnjoined returns the endpoint's record without its join state.
func (ep *endpoint) recordUnjoined() *endpointRecord {
	r := &endpointRecord{
		ID: ep.id, Name: ep.Name(), NetworkID: ep.network.id,
		Addr: ipNetString(ep.iface.addr), AddrV6: ipNetString(ep.iface.addrv6),
		PoolID: ep.iface.poolID, PoolIDv6: ep.iface.poolIDv6,
		Anonymous: ep.anonymous, DisableResolution: ep.disableResolution,
		MyAliases: ep.myAliases, Aliases: ep.aliases,
		ExposedPorts: ep.exposedPorts, PortMapping: ep.portMapping,
		Generic: storableGeneric(ep.generic),
	}
	if ep.iface.mac != nil {
		r.MAC = ep.iface.mac.String()
	}
	return r
}

// storableGeneric keeps the generic options that survive JSON; typed values
// the library reads (MAC, ports) are stored in their own fields.
func storableGeneric(g map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range g {
		switch v.(type) {
		case string, bool, int, int64, float64, map[string]string, []string:
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

type sandboxRecord struct {
	ID          string
	ContainerID string
	Key         string `json:",omitempty"`
	Config      sandboxConfig
	Labels      map[string]any `json:",omitempty"`
}

// record returns the sandbox's record. It takes sb.mu.
func (sb *sandbox) record() *sandboxRecord {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return &sandboxRecord{
		ID: sb.id, ContainerID: sb.containerID, Key: sb.key,
		Config: sb.config.clone(), Labels: storableGeneric(sb.labels),
	}
}
