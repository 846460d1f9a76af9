package libnetwork

import (
	"strings"
	"testing"

	"github.com/netkit/libnetwork/types"
)

// TestNameRules checks the edges of the name rules without a kernel: the
// longest and oddest names still allowed, and the first ones refused, each
// refusal an InvalidParameter error naming the value.
func TestNameRules(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	ok := []sandboxConfig{
		{HostName: "web", DomainName: "example.org"},
		{HostName: "0web-1", DomainName: "example.org."},
		{HostName: name253},
		{HostName: "WEB", DomainName: label63},
		{HostsPath: "/run/c/hosts", ResolvConfPath: "/run/c/resolv.conf", OriginHostsPath: "/etc/hosts", OriginResolvConfPath: "/etc/resolv.conf"},
		{DNSSearchList: []string{".", "example.org"}, DNSOptionsList: []string{"ndots:2", "rotate"}},
		{ExtraHosts: []extraHost{{Name: "db", IP: "192.0.2.1"}}},
	}
	for _, cfg := range ok {
		if err := cfg.validate(); err != nil {
			t.Errorf("%+v refused: %v", cfg, err)
		}
	}
	bad := []struct {
		cfg   sandboxConfig
		value string
	}{
		{sandboxConfig{HostName: name253 + "b"}, "aaaa"},
		{sandboxConfig{HostName: label63 + "a"}, label63},
		{sandboxConfig{HostName: "web-"}, "web-"},
		{sandboxConfig{HostName: "."}, "."},
		{sandboxConfig{HostName: "web..x"}, "web..x"},
		{sandboxConfig{HostName: "wéb"}, "w"},
		{sandboxConfig{HostName: "web", DomainName: "exa mple.org"}, "exa mple.org"},
		{sandboxConfig{HostsPath: "hosts"}, "OptionHostsPath"},
		{sandboxConfig{ResolvConfPath: "./resolv.conf"}, "OptionResolvConfPath"},
		{sandboxConfig{OriginHostsPath: "../etc/hosts"}, "OptionOriginHostsPath"},
		{sandboxConfig{OriginResolvConfPath: "resolv.conf"}, "OptionOriginResolvConfPath"},
		{sandboxConfig{DNSSearchList: []string{"a\u00a0b"}}, "DNS search domain"},
		{sandboxConfig{DNSOptionsList: []string{"ndots:2\r"}}, "DNS option"},
		{sandboxConfig{ExtraHosts: []extraHost{{Name: "db\nevil", IP: "192.0.2.1"}}}, "extra host"},
	}
	for _, tc := range bad {
		err := tc.cfg.validate()
		if !types.IsBadRequest(err) {
			t.Errorf("%+v: %v, want BadRequest", tc.cfg, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%+v: error %q does not name %q", tc.cfg, err, tc.value)
		}
	}

	if err := checkEndpointName("endpoint name", strings.Repeat("e", 255)); err != nil {
		t.Errorf("255-byte endpoint name refused: %v", err)
	}
	if err := checkEndpointName("alias", "wéb.example"); err != nil {
		t.Errorf("non-ASCII alias refused: %v", err)
	}
	for _, name := range []string{strings.Repeat("e", 256), "a\tb", "a\x7f", "a\u0085"} {
		if err := checkEndpointName("alias", name); !types.IsBadRequest(err) || !strings.Contains(err.Error(), "alias") {
			t.Errorf("alias %q: %v, want BadRequest naming it", name, err)
		}
	}
}
