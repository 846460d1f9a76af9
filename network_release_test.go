package libnetwork

import "testing"

// TestFailedNetworkReleasesItsPools: a NewNetwork that fails after IPAM
// gave it a pool (here on the gateway request) returns every pool it got,
// so the same pools can be asked for again.
func TestFailedNetworkReleasesItsPools(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	before := e.snapshot(c)
	// The network address is no gateway: IPAM refuses it after giving the
	// pool.
	badV4 := []*IpamConf{{PreferredPool: "10.174.0.0/24", Gateway: "10.174.0.0"}}
	goodV4 := []*IpamConf{{PreferredPool: "10.174.0.0/24"}}
	badV6 := []*IpamConf{{PreferredPool: "fd17:4::/64", Gateway: "fd17:4::"}}
	goodV6 := []*IpamConf{{PreferredPool: "fd17:4::/64"}}
	if _, err := c.NewNetwork("bridge", "bad4", NetworkOptionIpam("", "", badV4, nil, nil)); err == nil {
		t.Fatal("a network with its network address as gateway was created")
	}
	if _, err := c.NewNetwork("bridge", "bad6", NetworkOptionEnableIPv6(true), NetworkOptionIpam("", "", goodV4, badV6, nil)); err == nil {
		t.Fatal("a network with its IPv6 network address as gateway was created")
	}
	e.requireSame(before, e.snapshot(c), "failed network creates")
	n, err := c.NewNetwork("bridge", "good", NetworkOptionEnableIPv6(true), NetworkOptionIpam("", "", goodV4, goodV6, nil))
	mustf(t, err, "network on the pools the failed creates asked for")
	mustf(t, n.Delete(), "delete")
}
