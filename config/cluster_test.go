package config

import (
	"testing"
	"time"
)

func TestGlobalStoreOptions(t *testing.T) {
	opts := map[string]string{KVCACertFile: "/ca.pem"}
	c := New(OptionKVProvider(" etcd "), OptionKVProviderURL("10.0.0.1:2379,10.0.0.2:2379"), OptionKVOpts(opts),
		OptionKVPrefix("/test"), OptionKVTimeouts(time.Second, 2*time.Second), OptionKVLeaseTTL(3*time.Second),
		OptionDiscoveryAddress("192.168.1.5"))
	g := c.GlobalStore
	if g.Provider != KVProviderEtcd || g.URL != "10.0.0.1:2379,10.0.0.2:2379" || g.Prefix != "/test" ||
		g.DialTimeout != time.Second || g.RequestTimeout != 2*time.Second || g.LeaseTTL != 3*time.Second ||
		g.Opts[KVCACertFile] != "/ca.pem" || c.Cluster.Address != "192.168.1.5" {
		t.Errorf("config %+v %+v", g, c.Cluster)
	}
	// The caller's map and a clone's are the config's own.
	opts[KVCACertFile] = "/other.pem"
	cl := c.Clone()
	cl.GlobalStore.Opts[KVKeyFile] = "/key.pem"
	if c.GlobalStore.Opts[KVCACertFile] != "/ca.pem" || c.GlobalStore.Opts[KVKeyFile] != "" {
		t.Errorf("options shared: %v", c.GlobalStore.Opts)
	}
	if cl.GlobalStore.Provider != KVProviderEtcd || cl.Cluster.Address != "192.168.1.5" {
		t.Errorf("clone lost the global store: %+v", cl)
	}
}
