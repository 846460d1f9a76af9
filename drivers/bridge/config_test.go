package bridge

import (
	"net"
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

const testNID = "0123456789abcdef0123456789abcdef"

func TestParseNetworkConfig(t *testing.T) {
	v4 := func(t *testing.T) []driverapi.IPAMData {
		return []driverapi.IPAMData{drivertest.IPAMData(t, "10.10.0.0/24", "10.10.0.1")}
	}
	tests := []struct {
		name    string
		opts    map[string]interface{}
		check   func(t *testing.T, c networkConfig)
		wantErr bool
	}{
		{
			name: "defaults",
			opts: nil,
			check: func(t *testing.T, c networkConfig) {
				if c.bridgeName != "br-0123456789ab" || !c.enableICC || !c.enableMasq || c.mtu != 1500 || c.internal || c.enableIPv6 {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "generic of every kind and string values",
			opts: map[string]interface{}{netlabel.GenericData: map[string]string{
				BridgeName: "mybr", EnableICC: "false", EnableIPMasquerade: "false",
				DefaultBindingIP: "127.0.0.1", MTU: "9000",
			}},
			check: func(t *testing.T, c networkConfig) {
				if c.bridgeName != "mybr" || c.enableICC || c.enableMasq || c.mtu != 9000 || c.hostBindingIP != netip.MustParseAddr("127.0.0.1") {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "options.Generic with typed values",
			opts: map[string]interface{}{
				netlabel.GenericData: options.Generic{MTU: 1400, EnableICC: false},
				netlabel.Internal:    true,
			},
			check: func(t *testing.T, c networkConfig) {
				if c.mtu != 1400 || c.enableICC || !c.internal {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "default bridge",
			opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{DefaultBridge: true}},
			check: func(t *testing.T, c networkConfig) {
				if c.bridgeName != DefaultBridgeName || !c.defaultBridge {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "unknown keys outside the bridge prefix are ignored",
			opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{"com.example.x": 1}},
			check: func(t *testing.T, c networkConfig) {
				if c.bridgeName != "br-0123456789ab" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "gateway modes",
			opts: map[string]interface{}{netlabel.GenericData: map[string]string{GatewayModeIPv4: "nat-unprotected", GatewayModeIPv6: "routed"}},
			check: func(t *testing.T, c networkConfig) {
				if c.routedV4 || !c.routedV6 {
					t.Errorf("got %+v, want IPv6 routed only", c)
				}
				if got := (&network{config: c}).mapperNames(""); got != [2]string{"", "routed"} {
					t.Errorf("default mappers %q, want nat for IPv4 and routed for IPv6", got)
				}
				if got := (&network{config: c}).mapperNames("nat"); got != [2]string{"nat", "nat"} {
					t.Errorf("mappers with an option %q, want nat for both", got)
				}
			},
		},
		{name: "gateway mode unknown", opts: map[string]interface{}{netlabel.GenericData: map[string]string{GatewayModeIPv4: "isolated"}}, wantErr: true},
		{name: "gateway mode not a string", opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{GatewayModeIPv6: true}}, wantErr: true},
		{name: "unknown bridge key", opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{OptionPrefix + "nope": "1"}}, wantErr: true},
		{name: "generic of a wrong type", opts: map[string]interface{}{netlabel.GenericData: 42}, wantErr: true},
		{name: "icc not a bool", opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{EnableICC: 1}}, wantErr: true},
		{name: "icc bad string", opts: map[string]interface{}{netlabel.GenericData: map[string]string{EnableICC: "maybe"}}, wantErr: true},
		{name: "name not a string", opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{BridgeName: 7}}, wantErr: true},
		{name: "name too long", opts: map[string]interface{}{netlabel.GenericData: map[string]string{BridgeName: "abcdefghijklmnopq"}}, wantErr: true},
		{name: "mtu too small", opts: map[string]interface{}{netlabel.GenericData: map[string]interface{}{MTU: 67}}, wantErr: true},
		{name: "mtu too large", opts: map[string]interface{}{netlabel.GenericData: map[string]string{MTU: "65536"}}, wantErr: true},
		{name: "mtu not a number", opts: map[string]interface{}{netlabel.GenericData: map[string]string{MTU: "big"}}, wantErr: true},
		{name: "binding ip not ipv4", opts: map[string]interface{}{netlabel.GenericData: map[string]string{DefaultBindingIP: "::1"}}, wantErr: true},
		{name: "enable_ipv6 not a bool", opts: map[string]interface{}{netlabel.EnableIPv6: 3}, wantErr: true},
		{name: "internal not a bool", opts: map[string]interface{}{netlabel.Internal: "sure"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseNetworkConfig(testNID, tt.opts, v4(t), nil)
			if tt.wantErr {
				if !types.IsBadRequest(err) {
					t.Fatalf("err = %v, want a BadRequest error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseIPAM(t *testing.T) {
	v6on := map[string]interface{}{netlabel.EnableIPv6: true}
	tests := []struct {
		name    string
		opts    map[string]interface{}
		v4, v6  []driverapi.IPAMData
		wantGW4 string
		wantGW6 string
		wantN   int
		wantErr bool
	}{
		{name: "v4", v4: []driverapi.IPAMData{drivertest.IPAMData(t, "10.1.0.0/16", "10.1.0.1")}, wantGW4: "10.1.0.1", wantN: 1},
		{name: "v4 and v6", opts: v6on, v4: []driverapi.IPAMData{drivertest.IPAMData(t, "10.1.0.0/16", "10.1.0.1")}, v6: []driverapi.IPAMData{drivertest.IPAMData(t, "fd00:1::/64", "fd00:1::1")}, wantGW4: "10.1.0.1", wantGW6: "fd00:1::1", wantN: 2},
		{name: "v6 ignored unless enabled", v4: []driverapi.IPAMData{drivertest.IPAMData(t, "10.1.0.0/16", "10.1.0.1")}, v6: []driverapi.IPAMData{drivertest.IPAMData(t, "fd00:1::/64", "fd00:1::1")}, wantGW4: "10.1.0.1", wantN: 1},
		{name: "v6 only", opts: v6on, v6: []driverapi.IPAMData{drivertest.IPAMData(t, "fd00:1::/64", "fd00:1::1")}, wantGW6: "fd00:1::1", wantN: 1},
		{name: "no gateway", v4: []driverapi.IPAMData{drivertest.IPAMData(t, "10.1.0.0/16", "")}, wantErr: true},
		{name: "no data", wantErr: true},
		{name: "gateway outside pool", v4: []driverapi.IPAMData{drivertest.IPAMData(t, "10.1.0.0/16", "10.2.0.1")}, wantErr: true},
		{name: "v6 pool as v4", v4: []driverapi.IPAMData{drivertest.IPAMData(t, "fd00:1::/64", "fd00:1::1")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseNetworkConfig(testNID, tt.opts, tt.v4, tt.v6)
			if tt.wantErr {
				if !types.IsBadRequest(err) {
					t.Fatalf("err = %v, want a BadRequest error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ipString(c.gatewayV4); got != tt.wantGW4 {
				t.Errorf("gatewayV4 = %q, want %q", got, tt.wantGW4)
			}
			if got := ipString(c.gatewayV6); got != tt.wantGW6 {
				t.Errorf("gatewayV6 = %q, want %q", got, tt.wantGW6)
			}
			if len(c.gateways) != tt.wantN || len(c.subnets) != tt.wantN {
				t.Errorf("gateways %v subnets %v, want %d of each", c.gateways, c.subnets, tt.wantN)
			}
		})
	}
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func TestParseDriverConfig(t *testing.T) {
	c, err := parseDriverConfig(map[string]interface{}{EnableIPForwarding: false, "EnableUserlandProxy": true})
	if err != nil {
		t.Fatal(err)
	}
	if c.enableIPForwarding || !c.enableFirewall {
		t.Errorf("got %+v", c)
	}
	if _, err := parseDriverConfig(map[string]interface{}{EnableIPTables: "x"}); !types.IsBadRequest(err) {
		t.Errorf("bad EnableIPTables: err = %v, want BadRequest", err)
	}
}

func TestEndpointMAC(t *testing.T) {
	mac := endpointMAC(&net.IPNet{IP: net.ParseIP("172.18.0.5"), Mask: net.CIDRMask(16, 32)})
	if mac.String() != "02:42:ac:12:00:05" {
		t.Errorf("MAC of 172.18.0.5 = %s", mac)
	}
	r := endpointMAC(nil)
	if len(r) != 6 || r[0]&0x01 != 0 || r[0]&0x02 == 0 {
		t.Errorf("random MAC %s is not a locally administered unicast MAC", r)
	}
}

func TestOwnNames(t *testing.T) {
	tests := []struct {
		name, prefix string
		n            int
		want         bool
	}{
		{"br-0123456789ab", bridgePrefix, 12, true},
		{"br-0123456789aB", bridgePrefix, 12, false},
		{"br-0123456789a", bridgePrefix, 12, false},
		{"docker0", bridgePrefix, 12, false},
		{"veth0123456789a", vethPrefix, 11, true},
		{"veth0123456789", vethPrefix, 11, false},
		{"vethxyz3456789a", vethPrefix, 11, false},
	}
	for _, tt := range tests {
		if got := isOwnName(tt.name, tt.prefix, tt.n); got != tt.want {
			t.Errorf("isOwnName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
