package libnetwork

import (
	"net"
	"path/filepath"
	"strings"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/osl"
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
	Published    []types.PortBinding  `json:",omitempty"`
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
			Published: js.published,
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

// Stored records are input like any other: a record forged or damaged on
// disk must not name paths outside the exec root, panic the restore, or
// keep the controller from starting. The checks below refuse what the API
// could not have created; restore moves a refused record to quarantine
// (datastore.Load) and starts with the rest.

// isID reports whether s has the form of the IDs the library makes (newID):
// 64 lowercase hex digits. Only such IDs reach paths and kernel names.
func isID(s string) bool { return osl.HasHexSuffix(s, "", 64) }

// checkRecordID checks a record's ID and that it is the key it is stored
// under.
func checkRecordID(key, id string) error {
	if !isID(id) {
		return types.InvalidParameterErrorf("ID %q is not 64 lowercase hex digits", id)
	}
	if key != id {
		return types.InvalidParameterErrorf("record of ID %s is stored under key %q", id, key)
	}
	return nil
}

// checkIfName checks a stored interface name the way the kernel keeps it
// verbatim: 1 to 15 bytes of printable ASCII without '/', '%' or spaces.
func checkIfName(name string) error {
	if name == "" || len(name) > 15 {
		return types.InvalidParameterErrorf("interface name %q is not 1 to 15 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		if ch := name[i]; ch <= ' ' || ch > '~' || ch == '/' || ch == '%' {
			return types.InvalidParameterErrorf("interface name %q has a character the kernel does not keep", name)
		}
	}
	return nil
}

// checkCIDR checks an address in CIDR form, when there is one.
func checkCIDR(what, s string) error {
	if s == "" {
		return nil
	}
	if _, err := types.ParseCIDR(s); err != nil {
		return types.InvalidParameterErrorf("%s: %v", what, err)
	}
	return nil
}

// checkIP checks a bare address, when there is one.
func checkIP(what, s string) error {
	if s != "" && net.ParseIP(s) == nil {
		return types.InvalidParameterErrorf("%s %q is not an IP address", what, s)
	}
	return nil
}

// checkNetworkRecord refuses a network record the API could not have made.
func checkNetworkRecord(key string, r *networkRecord) error {
	if err := checkRecordID(key, r.ID); err != nil {
		return err
	}
	if !config.IsValidName(r.Name) {
		return types.InvalidParameterErrorf("invalid network name %q", r.Name)
	}
	if r.Type == "" {
		return types.InvalidParameterErrorf("no network driver")
	}
	for _, confs := range [][]*IpamConf{r.IpamV4Config, r.IpamV6Config} {
		for _, conf := range confs {
			if conf == nil {
				return types.InvalidParameterErrorf("empty IPAM configuration")
			}
			if err := checkStoredIpamConf(conf); err != nil {
				return err
			}
		}
	}
	// IpamInfo's decoder has parsed the addresses; only holes are left.
	for _, infos := range [][]*IpamInfo{r.IpamV4Info, r.IpamV6Info} {
		for _, info := range infos {
			if info == nil || info.Pool == nil {
				return types.InvalidParameterErrorf("IPAM pool without an address")
			}
		}
	}
	return nil
}

// checkStoredIpamConf checks that a stored IPAM configuration parses. The
// pool policy of IpamConf.Validate (no loopback, no /32, ...) is not
// applied here: a network a previous version created under a looser
// policy is a record to restore or to fail restoring (and keep, with its
// endpoints, for the next start), not a forgery to quarantine.
func checkStoredIpamConf(c *IpamConf) error {
	for what, v := range map[string]string{"pool": c.PreferredPool, "sub-pool": c.SubPool} {
		if v == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(v); err != nil {
			return types.InvalidParameterErrorf("ipam configuration: invalid %s %q", what, v)
		}
	}
	if c.Gateway != "" && net.ParseIP(c.Gateway) == nil {
		return types.InvalidParameterErrorf("ipam configuration: invalid gateway %q", c.Gateway)
	}
	for name, a := range c.AuxAddresses {
		if net.ParseIP(a) == nil {
			return types.InvalidParameterErrorf("ipam configuration: invalid auxiliary address %s=%q", name, a)
		}
	}
	return nil
}

// checkEndpointRecord refuses an endpoint record the API could not have
// made. Whether its network and sandbox exist is restore's business.
func checkEndpointRecord(key string, r *endpointRecord) error {
	if err := checkRecordID(key, r.ID); err != nil {
		return err
	}
	if !isID(r.NetworkID) {
		return types.InvalidParameterErrorf("network ID %q is not 64 lowercase hex digits", r.NetworkID)
	}
	if r.Name == "" || len(r.Name) > 255 {
		return types.InvalidParameterErrorf("invalid endpoint name %q", r.Name)
	}
	// Names and aliases reach the sandboxes' files and the resolver.
	for _, a := range r.MyAliases {
		if err := checkEndpointName("alias", a); err != nil {
			return err
		}
	}
	for name, alias := range r.Aliases {
		if err := checkEndpointName("link name", name); err != nil {
			return err
		}
		if err := checkEndpointName("link alias", alias); err != nil {
			return err
		}
	}
	if r.MAC != "" {
		if _, err := net.ParseMAC(r.MAC); err != nil {
			return types.InvalidParameterErrorf("MAC %q: %v", r.MAC, err)
		}
	}
	if err := checkCIDR("address", r.Addr); err != nil {
		return err
	}
	if err := checkCIDR("IPv6 address", r.AddrV6); err != nil {
		return err
	}
	j := r.Join
	if j == nil {
		return nil
	}
	if !isID(j.SandboxID) {
		return types.InvalidParameterErrorf("joined sandbox ID %q is not 64 lowercase hex digits", j.SandboxID)
	}
	if j.IfName != "" {
		if err := checkIfName(j.IfName); err != nil {
			return err
		}
	}
	if err := checkIP("gateway", j.Gateway); err != nil {
		return err
	}
	if err := checkIP("IPv6 gateway", j.GatewayV6); err != nil {
		return err
	}
	for _, rt := range j.StaticRoutes {
		if rt == nil || rt.Destination == nil {
			return types.InvalidParameterErrorf("static route without a destination")
		}
	}
	return nil
}

// checkSandboxRecord refuses a sandbox record the API could not have made:
// its ID and key become paths under the exec root, so the key must be the
// one the library derives from the ID (or none yet).
func (c *controller) checkSandboxRecord(key string, r *sandboxRecord) error {
	if err := checkRecordID(key, r.ID); err != nil {
		return err
	}
	if r.ContainerID == "" {
		return types.InvalidParameterErrorf("no container ID")
	}
	if !r.Config.UseDefaultSandbox && r.Key != "" && r.Key != c.sandboxKeyPath(r.ID) {
		return types.InvalidParameterErrorf("key %q is not the sandbox's path under the exec root", r.Key)
	}
	// The caller's own file paths are trusted, but not relative ones: they
	// would resolve against whatever the working directory is now.
	for _, p := range []string{r.Config.HostsPath, r.Config.OriginHostsPath, r.Config.ResolvConfPath, r.Config.OriginResolvConfPath} {
		if p != "" && (!filepath.IsAbs(p) || strings.ContainsRune(p, 0)) {
			return types.InvalidParameterErrorf("file path %q is not absolute", p)
		}
	}
	return checkStoredSandboxConfig(&r.Config)
}

// checkStoredSandboxConfig refuses what would inject lines into a
// sandbox's hosts or resolv.conf when they are rebuilt: control characters
// anywhere, whitespace inside a name or an entry. The API's stricter
// rules (RFC 1123 hostnames) are not applied to stored records, so a
// sandbox a previous version accepted is not quarantined for them.
func checkStoredSandboxConfig(c *sandboxConfig) error {
	words := []string{c.HostName, c.DomainName}
	words = append(words, c.DNSSearchList...)
	words = append(words, c.DNSOptionsList...)
	words = append(words, c.DNSList...)
	for _, h := range c.ExtraHosts {
		words = append(words, h.IP)
	}
	for _, w := range words {
		if err := checkResolvEntry("sandbox configuration: entry", w); err != nil {
			return err
		}
	}
	for _, h := range c.ExtraHosts {
		if err := checkExtraHostName(h.Name); err != nil {
			return err
		}
	}
	return nil
}
