package ipamutils

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/netkit/libnetwork/config"
)

func TestDefaultPoolsValid(t *testing.T) {
	for _, specs := range [][]config.PoolSpec{LocalDefaultPools(), GlobalDefaultPools()} {
		for _, s := range specs {
			if err := ValidatePoolSpec(s); err != nil {
				t.Errorf("default pool %v: %v", s, err)
			}
		}
	}
	local := LocalDefaultPools()
	if len(local) != 17 || local[0].Base != netip.MustParsePrefix("172.17.0.0/16") || local[14].Base != netip.MustParsePrefix("172.31.0.0/16") {
		t.Fatalf("LocalDefaultPools = %v", local)
	}
	// The caller owns the slice: changing it does not change the defaults.
	local[0].Size = 30
	if LocalDefaultPools()[0].Size != 16 {
		t.Fatal("LocalDefaultPools shares its slice")
	}
}

func TestValidatePoolSpec(t *testing.T) {
	tests := []struct {
		spec config.PoolSpec
		ok   bool
	}{
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24}, true},
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 8}, true},
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 31}, true},
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 32}, false}, // no room beside the gateway
		{config.PoolSpec{Base: netip.MustParsePrefix("127.0.0.0/8"), Size: 24}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("0.0.0.0/0"), Size: 24}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("fe80::/16"), Size: 64}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 7}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 33}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("fd00::/8"), Size: 127}, true},
		{config.PoolSpec{Base: netip.MustParsePrefix("fd00::/8"), Size: 128}, false},
		{config.PoolSpec{Base: netip.MustParsePrefix("::ffff:10.0.0.0/104"), Size: 120}, false},
		{config.PoolSpec{Size: 24}, false},
	}
	for _, tt := range tests {
		if err := ValidatePoolSpec(tt.spec); (err == nil) != tt.ok {
			t.Errorf("ValidatePoolSpec(%v) = %v, want ok=%v", tt.spec, err, tt.ok)
		}
	}
}

func TestLastAddr(t *testing.T) {
	tests := map[string]string{
		"10.0.0.0/8":        "10.255.255.255",
		"192.168.1.7/24":    "192.168.1.255",
		"10.0.0.1/32":       "10.0.0.1",
		"0.0.0.0/0":         "255.255.255.255",
		"fd00::/8":          "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:db8::/61":     "2001:db8:0:7:ffff:ffff:ffff:ffff",
		"2001:db8::1/128":   "2001:db8::1",
		"2001:db8::100/121": "2001:db8::17f",
	}
	for p, want := range tests {
		if got := LastAddr(netip.MustParsePrefix(p)); got != netip.MustParseAddr(want) {
			t.Errorf("LastAddr(%s) = %v, want %s", p, got, want)
		}
	}
}

func TestSubnetFrom(t *testing.T) {
	spec := config.PoolSpec{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20}
	tests := []struct {
		from string
		want string // "" for none
	}{
		{"10.0.0.0", "192.168.0.0/20"},
		{"192.168.0.0", "192.168.0.0/20"},
		{"192.168.0.1", "192.168.16.0/20"},
		{"192.168.16.0", "192.168.16.0/20"},
		{"192.168.240.0", "192.168.240.0/20"},
		{"192.168.240.1", ""},
		{"192.169.0.0", ""},
		{"fd00::", ""},
	}
	for _, tt := range tests {
		got, ok := SubnetFrom(spec, netip.MustParseAddr(tt.from))
		if (tt.want == "") == ok || (ok && got != netip.MustParsePrefix(tt.want)) {
			t.Errorf("SubnetFrom(%v, %s) = %v, %v; want %q", spec, tt.from, got, ok, tt.want)
		}
	}
}

func TestSubnets(t *testing.T) {
	got := slices.Collect(Subnets(
		config.PoolSpec{Base: netip.MustParsePrefix("172.17.0.0/16"), Size: 16},
		config.PoolSpec{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 7}, // invalid: skipped
		config.PoolSpec{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 18},
		config.PoolSpec{Base: netip.MustParsePrefix("255.255.255.252/30"), Size: 31},
	))
	want := []netip.Prefix{
		netip.MustParsePrefix("172.17.0.0/16"),
		netip.MustParsePrefix("192.168.0.0/18"),
		netip.MustParsePrefix("192.168.64.0/18"),
		netip.MustParsePrefix("192.168.128.0/18"),
		netip.MustParsePrefix("192.168.192.0/18"),
		netip.MustParsePrefix("255.255.255.252/31"),
		netip.MustParsePrefix("255.255.255.254/31"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Subnets = %v, want %v", got, want)
	}
}

// TestSubnetsLazy enumerates the start of a space of 2^56 subnets: it must
// not materialise them.
func TestSubnetsLazy(t *testing.T) {
	var got []netip.Prefix
	for p := range Subnets(config.PoolSpec{Base: netip.MustParsePrefix("fd00::/8"), Size: 64}) {
		if got = append(got, p); len(got) == 3 {
			break
		}
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("fd00::/64"),
		netip.MustParsePrefix("fd00:0:0:1::/64"),
		netip.MustParsePrefix("fd00:0:0:2::/64"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Subnets = %v, want %v", got, want)
	}
}
