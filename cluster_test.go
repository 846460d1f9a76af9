package libnetwork

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/types"
)

// TestClusterConfigRefused: mistakes in the global store's options are
// refused at New, typed and naming what was given, before anything is
// opened or created.
func TestClusterConfigRefused(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		opts  []config.Option
		check func(error) bool
		want  string
	}{
		{"unsupported provider", []config.Option{config.OptionKVProvider("consul"), config.OptionKVProviderURL("127.0.0.1:8500")}, isNotImplemented, "consul"},
		{"unknown provider", []config.Option{config.OptionKVProvider("redis"), config.OptionKVProviderURL("127.0.0.1:6379")}, types.IsBadRequest, "redis"},
		{"no address", []config.Option{config.OptionKVProvider("etcd")}, types.IsBadRequest, "no address"},
		{"address without port", []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1")}, types.IsBadRequest, "127.0.0.1"},
		{"bad port", []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1:2379,127.0.0.1:x")}, types.IsBadRequest, "127.0.0.1:x"},
		{"URL without provider", []config.Option{config.OptionKVProviderURL("127.0.0.1:2379")}, types.IsBadRequest, "without a provider"},
		{"unknown option", []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1:2379"), config.OptionKVOpts(map[string]string{"kv.password": "x"})}, types.IsBadRequest, "kv.password"},
		{"cert without key", []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1:2379"), config.OptionKVOpts(map[string]string{config.KVCertFile: "/c.pem"})}, types.IsBadRequest, config.KVKeyFile},
		{"relative prefix", []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1:2379"), config.OptionKVPrefix("netkit")}, types.IsBadRequest, "netkit"},
		{"advertise a name", []config.Option{config.OptionDiscoveryAddress("node1")}, types.IsBadRequest, "node1"},
		{"advertise the unspecified address", []config.Option{config.OptionDiscoveryAddress("0.0.0.0:2376")}, types.IsBadRequest, "0.0.0.0"},
		{"advertise a bad port", []config.Option{config.OptionDiscoveryAddress("10.0.0.1:99999")}, types.IsBadRequest, "99999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := New(e.options(tc.opts...)...)
			if err == nil {
				nc.Stop()
				t.Fatal("accepted")
			}
			if !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v (%T), want the class checked and %q in the message", err, err, tc.want)
			}
		})
	}
	// Refused before anything was made: not even the data dir.
	if _, err := os.Stat(e.dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data dir after the refusals: %v, want it never made", err)
	}
}

func isNotImplemented(err error) bool {
	var ni types.NotImplementedError
	return errors.As(err, &ni)
}

// TestOverlayNeedsGlobalStore: without a global store an overlay network
// is refused at once (not after looking for a plugin), with an error that
// says what to configure, and nothing is left.
func TestOverlayNeedsGlobalStore(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	before := e.snapshot(c)
	_, err := c.NewNetwork("overlay", "ov", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.200.0.0/24"}}, nil, nil))
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "global store") || !strings.Contains(err.Error(), "OptionKVProvider") {
		t.Errorf("overlay without a global store: %v (%T), want a ForbiddenError naming the option", err, err)
	}
	if _, ok := err.(types.ForbiddenError); !ok {
		t.Errorf("error %T does not assert to types.ForbiddenError", err)
	}
	e.requireSame(before, e.snapshot(c), "after the refused overlay network")
	if err := c.ReloadConfiguration(config.OptionKVProvider("etcd"), config.OptionKVProviderURL("127.0.0.1:2379")); !types.IsForbidden(err) {
		t.Errorf("adding a global store by reload: %v, want Forbidden", err)
	}
}
