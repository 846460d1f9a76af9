package config

import (
	"maps"
	"strings"
	"time"
)

// Keys of OptionKVOpts, as in libnetwork v0.7 (docker's --cluster-store-opt).
const (
	// KVCACertFile is the CA certificate that verifies the store's servers.
	KVCACertFile = "kv.cacertfile"
	// KVCertFile is the client certificate presented to the store.
	KVCertFile = "kv.certfile"
	// KVKeyFile is the client certificate's key.
	KVKeyFile = "kv.keyfile"
)

// KVProviderEtcd is the one global store provider: etcd's v3 API.
const KVProviderEtcd = "etcd"

// GlobalStoreCfg configures the global store that holds networks of global
// scope (overlay, remote drivers that declare it). With no provider set
// there is none, and creating such a network is refused.
type GlobalStoreCfg struct {
	// Provider is the store's kind: "etcd" or "" (none).
	Provider string
	// URL is the store's addresses, "host:port[,host:port...]".
	URL string
	// Opts are the store's options (KVCACertFile, KVCertFile, KVKeyFile).
	Opts map[string]string
	// Prefix is the key prefix the library's keys live under; "" means
	// "/netkit/libnetwork".
	Prefix string
	// DialTimeout bounds connecting to the store; 0 means 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds each request to the store; 0 means 5 s.
	RequestTimeout time.Duration
	// LeaseTTL is how long this host's records (its presence, its
	// endpoints on global networks) outlive it if it disappears without
	// Stop; 0 means 15 s.
	LeaseTTL time.Duration
}

// ClusterCfg is this host's place among the controllers sharing the global
// store.
type ClusterCfg struct {
	// Address is the address this host advertises, "ip[:port]"
	// (docker's --cluster-advertise): overlay networks' VXLAN tunnels
	// end there.
	Address string
}

// OptionKVProvider sets the global store's provider ("etcd"), as in v0.7.
func OptionKVProvider(provider string) Option {
	return func(c *Config) { c.GlobalStore.Provider = strings.TrimSpace(provider) }
}

// OptionKVProviderURL sets the global store's addresses,
// "host:port[,host:port...]", as in v0.7.
func OptionKVProviderURL(url string) Option {
	return func(c *Config) { c.GlobalStore.URL = strings.TrimSpace(url) }
}

// OptionKVOpts sets the global store's options, as in v0.7: KVCACertFile,
// KVCertFile and KVKeyFile for TLS.
func OptionKVOpts(opts map[string]string) Option {
	return func(c *Config) { c.GlobalStore.Opts = maps.Clone(opts) }
}

// OptionKVPrefix sets the key prefix of the library's keys in the global
// store, so that several clusters (or tests) can share one etcd.
func OptionKVPrefix(prefix string) Option {
	return func(c *Config) { c.GlobalStore.Prefix = prefix }
}

// OptionKVTimeouts sets how long connecting to the global store and each
// request to it may take before the operation fails; 0 keeps a default.
func OptionKVTimeouts(dial, request time.Duration) Option {
	return func(c *Config) { c.GlobalStore.DialTimeout, c.GlobalStore.RequestTimeout = dial, request }
}

// OptionKVLeaseTTL sets how long this host's records in the global store
// outlive it when it disappears without Stop: after that, the other hosts
// forget its endpoints and stop sending to it.
func OptionKVLeaseTTL(ttl time.Duration) Option {
	return func(c *Config) { c.GlobalStore.LeaseTTL = ttl }
}

// OptionDiscoveryAddress sets the address this host advertises to the
// others sharing the global store, "ip[:port]", as in v0.7.
func OptionDiscoveryAddress(address string) Option {
	return func(c *Config) { c.Cluster.Address = strings.TrimSpace(address) }
}
