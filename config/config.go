// Package config holds the controller's boot configuration and the
// config.Option functions that set it.
package config

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/netkit/libnetwork/rootless/port"
)

// Default locations. The data dir holds durable configuration (networks);
// the exec root holds runtime state (endpoints, sandboxes, netns mounts) and
// is expected on a tmpfs so it vanishes at reboot with the kernel state it
// describes.
const (
	DefaultDataDir  = "/var/lib/libnetwork"
	DefaultExecRoot = "/run/libnetwork"
	// DefaultDriver is the driver of the default network.
	DefaultDriver = "bridge"
	// DefaultNetwork is the name of the default network.
	DefaultNetwork = "bridge"
)

// Default plugin discovery directories.
var (
	DefaultPluginSocketDirs = []string{"/run/docker/plugins"}
	DefaultPluginSpecDirs   = []string{"/etc/docker/plugins", "/usr/lib/docker/plugins"}
)

// PoolSpec is one range of default address pools: Base is carved into
// subnets of Size bits.
type PoolSpec struct {
	Base netip.Prefix
	Size int
}

// Config is the controller's configuration.
type Config struct {
	Daemon DaemonCfg
	// GlobalStore is the store of global-scope networks (OptionKVProvider).
	GlobalStore GlobalStoreCfg
	// Cluster is this host's place in the cluster (OptionDiscoveryAddress).
	Cluster ClusterCfg
}

// DaemonCfg is the controller-wide part of the configuration.
type DaemonCfg struct {
	// DataDir holds the durable store (networks).
	DataDir string
	// ExecRoot holds runtime state, netns mounts and the setkey socket.
	ExecRoot string
	// DefaultNetwork and DefaultDriver name the default network.
	DefaultNetwork string
	DefaultDriver  string
	// Labels are the daemon labels, "key=value".
	Labels []string
	// DriverCfg maps a driver name to its generic configuration.
	DriverCfg map[string]interface{}
	// DefaultAddressPools are the pools networks without an explicit
	// subnet draw from; nil means the built-in list.
	DefaultAddressPools []PoolSpec
	// PluginSocketDirs are searched for "<name>.sock".
	PluginSocketDirs []string
	// PluginSpecDirs are searched for "<name>.spec" and "<name>.json".
	PluginSpecDirs []string
	// PluginCallTimeout bounds each call to a remote plugin (see
	// OptionPluginCallTimeout); 0 means the default, 30 s.
	PluginCallTimeout time.Duration
	// PluginRetryWindow bounds how long a call keeps trying to reach a
	// plugin whose socket refuses (see OptionPluginRetryWindow); 0 means
	// the default, 5 s.
	PluginRetryWindow time.Duration
	// RootlessPorts, when set, exposes every published port on the real
	// host too (see OptionRootlessPortManager).
	RootlessPorts port.Manager
	// Logger receives the library's logs.
	Logger *slog.Logger
	// NetworkNamespace is the path of the network namespace the controller
	// programs (bridges, firewall rules, host-network sandboxes); "" means
	// the namespace the process runs in.
	NetworkNamespace string
	// ForwardingNoDrop keeps the bridge driver from dropping forwarded
	// traffic that neither enters nor leaves one of its bridges when it
	// turns IP forwarding on itself (see OptionForwardingNoDrop).
	ForwardingNoDrop bool
}

// Option sets a configuration value.
type Option func(c *Config)

// New returns the configuration with the defaults and opts applied.
func New(opts ...Option) *Config {
	c := &Config{Daemon: DaemonCfg{
		DataDir:          DefaultDataDir,
		ExecRoot:         DefaultExecRoot,
		DefaultNetwork:   DefaultNetwork,
		DefaultDriver:    DefaultDriver,
		DriverCfg:        map[string]interface{}{},
		PluginSocketDirs: slices.Clone(DefaultPluginSocketDirs),
		PluginSpecDirs:   slices.Clone(DefaultPluginSpecDirs),
	}}
	c.Apply(opts...)
	return c
}

// Apply applies opts to c.
func (c *Config) Apply(opts ...Option) {
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
}

// Clone returns a copy of c that shares nothing mutable with it.
func (c *Config) Clone() Config {
	d := c.Daemon
	d.Labels = slices.Clone(d.Labels)
	d.DriverCfg = maps.Clone(d.DriverCfg)
	d.DefaultAddressPools = slices.Clone(d.DefaultAddressPools)
	d.PluginSocketDirs = slices.Clone(d.PluginSocketDirs)
	d.PluginSpecDirs = slices.Clone(d.PluginSpecDirs)
	g := c.GlobalStore
	g.Opts = maps.Clone(g.Opts)
	return Config{Daemon: d, GlobalStore: g, Cluster: c.Cluster}
}

// OptionDataDir sets the directory of the durable store. It and every
// directory on the way to it must be safe from users other than root (or
// the controller's own): libnetwork.New documents the rule and refuses a
// directory that breaks it.
func OptionDataDir(dataDir string) Option {
	return func(c *Config) { c.Daemon.DataDir = dataDir }
}

// OptionExecRoot sets the directory of runtime state. It and every
// directory on the way to it must be safe from users other than root (or
// the controller's own): libnetwork.New documents the rule and refuses a
// directory that breaks it.
func OptionExecRoot(execRoot string) Option {
	return func(c *Config) { c.Daemon.ExecRoot = execRoot }
}

// OptionDefaultNetwork sets the name of the default network.
func OptionDefaultNetwork(dn string) Option {
	return func(c *Config) { c.Daemon.DefaultNetwork = dn }
}

// OptionDefaultDriver sets the driver of the default network.
func OptionDefaultDriver(dd string) Option {
	return func(c *Config) { c.Daemon.DefaultDriver = dd }
}

// OptionLabels sets the daemon labels ("key=value").
func OptionLabels(labels []string) Option {
	return func(c *Config) { c.Daemon.Labels = slices.Clone(labels) }
}

// OptionDriverConfig sets the generic configuration of one driver.
func OptionDriverConfig(networkType string, config map[string]interface{}) Option {
	return func(c *Config) {
		if c.Daemon.DriverCfg == nil {
			c.Daemon.DriverCfg = map[string]interface{}{}
		}
		c.Daemon.DriverCfg[networkType] = config
	}
}

// OptionDefaultAddressPools sets the pools networks without a subnet draw
// from, replacing the built-in list.
func OptionDefaultAddressPools(pools []PoolSpec) Option {
	return func(c *Config) { c.Daemon.DefaultAddressPools = slices.Clone(pools) }
}

// OptionPluginSocketDirs sets the directories searched for plugin sockets.
func OptionPluginSocketDirs(dirs ...string) Option {
	return func(c *Config) { c.Daemon.PluginSocketDirs = slices.Clone(dirs) }
}

// OptionPluginSpecDirs sets the directories searched for plugin spec files.
func OptionPluginSpecDirs(dirs ...string) Option {
	return func(c *Config) { c.Daemon.PluginSpecDirs = slices.Clone(dirs) }
}

// OptionPluginCallTimeout bounds each call to a remote plugin, a port
// mapper's MapPorts or UnmapPorts for one, so that a plugin that hangs
// fails the operation waiting on it after d. 0 keeps the default, 30 s; a
// negative d makes New fail with a types.BadRequestError. A plugin's
// activation has its own bound (10 s, or d if shorter).
func OptionPluginCallTimeout(d time.Duration) Option {
	return func(c *Config) { c.Daemon.PluginCallTimeout = d }
}

// OptionPluginRetryWindow bounds how long a call to a plugin keeps
// retrying, with backoff, while the plugin cannot be reached (its socket
// is missing or refuses: it is restarting): then the call fails. 0 keeps
// the default, 5 s; a negative d makes New fail with a
// types.BadRequestError. The call's own timeout bounds it too.
func OptionPluginRetryWindow(d time.Duration) Option {
	return func(c *Config) { c.Daemon.PluginRetryWindow = d }
}

// OptionRootlessPortManager is for a controller that runs rootless: inside
// a user namespace and a network namespace of its own, as rootlesskit sets
// them up. Every port it publishes is then also exposed on the real host
// through m (rootlesskit's port driver, the built-in one of package
// rootless/port/builtin, or a client of a rootlesskit API socket): the
// binding's host address and port on the host side, the same port inside
// the namespace on the child side (on loopback for an IPv4 wildcard
// binding, on the network's IPv6 gateway for an IPv6 one). Ports are removed from m on leave and
// delete, and at New m is made to expose exactly the published ports
// (ports it lists that no endpoint owns are removed).
func OptionRootlessPortManager(m port.Manager) Option {
	return func(c *Config) { c.Daemon.RootlessPorts = m }
}

// OptionLogger sets the logger the library logs through. Without it the
// library logs nothing.
func OptionLogger(l *slog.Logger) Option {
	return func(c *Config) { c.Daemon.Logger = l }
}

// OptionNetworkNamespace makes the controller program the network
// namespace at path (a bind mount or /proc/<pid>/ns/net) instead of the one
// the process runs in. Bridges, firewall rules and host-network sandboxes
// live there; tests use it to give each controller a namespace of its own.
func OptionNetworkNamespace(path string) Option {
	return func(c *Config) { c.Daemon.NetworkNamespace = path }
}

// OptionForwardingNoDrop, with noDrop set, keeps the library from
// dropping other forwarded traffic when it turns IP forwarding on (docker's
// --ip-forward-no-drop).
//
// A bridge network needs net.ipv4.ip_forward (and, with IPv6,
// net.ipv6.conf.all.forwarding) on in the controller's namespace. When the
// bridge driver finds a family's forwarding off and turns it on, the host
// would start routing between all its interfaces; so by default the
// library's nftables table then drops, for that family, forwarded packets
// that neither enter nor leave one of its bridges. Forwarding that was
// already on is left as it was found, and other traffic with it. The fact
// that the library turned forwarding on is kept in its nftables table, so
// the drop survives a restart of the controller; with noDrop set, New
// removes a drop an earlier run installed.
func OptionForwardingNoDrop(noDrop bool) Option {
	return func(c *Config) { c.Daemon.ForwardingNoDrop = noDrop }
}

// IsValidName reports whether name is usable as a network or endpoint name.
func IsValidName(name string) bool {
	return name != "" && len(name) <= 255
}
