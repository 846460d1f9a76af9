package ipamutils

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/types"
)

func TestCheckPool(t *testing.T) {
	tests := []struct {
		pool   string
		reason string // "" when accepted
	}{
		{"10.0.0.0/24", ""},
		{"172.17.0.0/16", ""},
		{"10.0.0.0/31", ""}, // point-to-point, RFC 3021, as docker
		{"2001:db8::/64", ""},
		{"fd00::/8", ""},
		{"2001:db8::/127", ""}, // point-to-point, RFC 6164, as docker
		{"0.0.0.0/0", "every address"},
		{"::/0", "every address"},
		{"0.0.0.0/24", "unspecified"},
		{"127.0.0.0/24", "loopback"},
		{"96.0.0.0/3", "loopback"},
		{"224.0.0.0/24", "multicast"},
		{"239.255.0.0/16", "multicast"},
		{"169.254.0.0/16", "link-local"},
		{"169.254.7.0/24", "link-local"},
		{"::1/128", "loopback"},
		{"::/64", "unspecified"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped"},
		{"ff00::/8", "multicast"},
		{"ff02::/64", "multicast"},
		{"fe80::/10", "link-local"},
		{"fe80::/64", "link-local"},
		{"fe80::/80", "link-local"},
		{"fe90::/64", ""}, // as docker, and v0.7's tests
		{"10.0.0.1/32", "no room"},
		{"2001:db8::1/128", "no room"},
	}
	for _, tt := range tests {
		err := CheckPool(netip.MustParsePrefix(tt.pool))
		if tt.reason == "" {
			if err != nil {
				t.Errorf("CheckPool(%s) = %v, want accepted", tt.pool, err)
			}
			continue
		}
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "pool ") {
			t.Errorf("CheckPool(%s) = %v, want a BadRequest naming the pool and %q", tt.pool, err, tt.reason)
		}
	}
	if err := CheckPool(netip.Prefix{}); !types.IsBadRequest(err) {
		t.Errorf("CheckPool(invalid) = %v, want BadRequest", err)
	}
}

func TestCheckSubPool(t *testing.T) {
	tests := []struct {
		pool, sub, gw string
		ok            bool
	}{
		{"10.0.0.0/24", "10.0.0.0/25", "", true},
		{"10.0.0.0/24", "10.0.0.0/32", "10.0.0.1", false},   // the network address only
		{"10.0.0.0/24", "10.0.0.255/32", "10.0.0.1", false}, // the broadcast address only
		{"10.0.0.0/24", "10.0.0.0/31", "", false},           // 10.0.0.1 only, and the gateway takes it
		{"10.0.0.0/24", "10.0.0.0/31", "10.0.0.9", true},    // the gateway is elsewhere
		{"10.0.0.0/24", "10.0.0.7/32", "10.0.0.7", false},
		{"10.0.0.0/24", "10.0.0.7/32", "10.0.0.1", true},
		{"10.0.0.0/24", "10.0.0.4/30", "", true},
		{"10.0.0.0/31", "10.0.0.0/31", "", true},
		{"2001:db8::/64", "2001:db8::/128", "2001:db8::1", false}, // subnet-router anycast only
		{"2001:db8::/64", "2001:db8::/127", "", false},
		{"2001:db8::/64", "2001:db8::/126", "", true},
	}
	for _, tt := range tests {
		var gw netip.Addr
		if tt.gw != "" {
			gw = netip.MustParseAddr(tt.gw)
		}
		err := CheckSubPool(netip.MustParsePrefix(tt.pool), netip.MustParsePrefix(tt.sub), gw)
		if (err == nil) != tt.ok || err != nil && !types.IsBadRequest(err) {
			t.Errorf("CheckSubPool(%s, %s, %q) = %v, want ok=%v", tt.pool, tt.sub, tt.gw, err, tt.ok)
		}
	}
}
