package libnetwork

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

func TestIpamConfValidate(t *testing.T) {
	for _, tc := range []struct {
		conf IpamConf
		ok   bool
	}{
		{IpamConf{}, true},
		{IpamConf{PreferredPool: "10.0.0.0/16", SubPool: "10.0.1.0/24", Gateway: "10.0.0.1", AuxAddresses: map[string]string{"a": "10.0.0.2"}}, true},
		{IpamConf{PreferredPool: "fd00::/48", Gateway: "fd00::1"}, true},
		{IpamConf{PreferredPool: "10.0.0.0/33"}, false},
		{IpamConf{PreferredPool: "10.0.0.0/16", SubPool: "10.1.0.0/24"}, false},
		{IpamConf{PreferredPool: "10.0.0.0/24", SubPool: "10.0.0.0/16"}, false},
		{IpamConf{PreferredPool: "10.0.0.0/24", Gateway: "10.0.1.1"}, false},
		{IpamConf{PreferredPool: "10.0.0.0/24", Gateway: "nope"}, false},
		{IpamConf{PreferredPool: "10.0.0.0/24", AuxAddresses: map[string]string{"a": "10.9.0.1"}}, false},
		{IpamConf{Gateway: "10.0.0.1"}, false},
	} {
		err := tc.conf.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.conf, err, tc.ok)
		}
		if err != nil && !types.IsBadRequest(err) {
			t.Errorf("Validate(%+v) = %v, not a BadRequest", tc.conf, err)
		}
	}
	src := &IpamConf{PreferredPool: "10.0.0.0/24", AuxAddresses: map[string]string{"a": "10.0.0.2"}}
	dst := &IpamConf{}
	mustf(t, src.CopyTo(dst), "CopyTo")
	dst.AuxAddresses["a"] = "changed"
	if src.AuxAddresses["a"] != "10.0.0.2" || dst.PreferredPool != src.PreferredPool {
		t.Errorf("CopyTo is not deep: %+v %+v", src, dst)
	}
}

func TestIpamInfoJSON(t *testing.T) {
	_, pool, _ := net.ParseCIDR("10.0.0.0/24")
	gw, _ := types.ParseCIDR("10.0.0.1/24")
	aux, _ := types.ParseCIDR("10.0.0.5/24")
	in := &IpamInfo{PoolID: "LocalDefault/10.0.0.0/24", Meta: map[string]string{"k": "v"}}
	in.AddressSpace, in.Pool, in.Gateway = "LocalDefault", pool, gw
	in.AuxAddresses = map[string]*net.IPNet{"r": aux}
	b, err := json.Marshal(in)
	mustf(t, err, "marshal")
	out := &IpamInfo{}
	mustf(t, json.Unmarshal(b, out), "unmarshal %s", b)
	if out.PoolID != in.PoolID || out.Meta["k"] != "v" || out.Pool.String() != "10.0.0.0/24" ||
		out.Gateway.String() != "10.0.0.1/24" || out.AuxAddresses["r"].String() != "10.0.0.5/24" || out.AddressSpace != "LocalDefault" {
		t.Errorf("round trip: %s -> %+v", b, out)
	}
	cp := &IpamInfo{}
	mustf(t, in.CopyTo(cp), "CopyTo")
	cp.Gateway.IP[0] = 99
	if in.Gateway.IP[0] == 99 {
		t.Error("IpamInfo.CopyTo is not deep")
	}
	if err := json.Unmarshal([]byte(`{"Pool":"nope"}`), out); err == nil {
		t.Error("bad pool in JSON accepted")
	}
}

func TestDefaultPoolSkipsRoutedSubnets(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	// The host already routes the first default pool.
	link := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "taken0"}}
	mustf(t, e.host.Handle().LinkAdd(link), "link")
	mustf(t, e.host.Handle().LinkSetUp(link), "up")
	_, dst, _ := net.ParseCIDR("172.17.0.0/16")
	mustf(t, e.host.Handle().RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}), "route")
	n, err := c.NewNetwork("bridge", "auto")
	mustf(t, err, "network")
	v4, _ := n.Info().IpamInfo()
	if len(v4) != 1 || v4[0].Pool.String() == "172.17.0.0/16" {
		t.Fatalf("default pool %v overlaps a routed subnet", v4[0].Pool)
	}
	if v4[0].Pool.String() != "172.18.0.0/16" {
		t.Errorf("default pool %v, want the next one, 172.18.0.0/16", v4[0].Pool)
	}
	n2, err := c.NewNetwork("bridge", "auto2")
	mustf(t, err, "second network")
	v4b, _ := n2.Info().IpamInfo()
	if v4b[0].Pool.String() != "172.19.0.0/16" {
		t.Errorf("second default pool %v, want 172.19.0.0/16", v4b[0].Pool)
	}
}

func TestHugeIPv6Pool(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	// A /40: 2^88 addresses.
	n, err := c.NewNetwork("bridge", "big", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.120.0.0/24"}}, []*IpamConf{{PreferredPool: "fd12:3400::/40"}}, nil))
	mustf(t, err, "network")
	pref := net.ParseIP("fd12:3400:ff:ffff:ffff:ffff:ffff:fffe")
	far, err := n.CreateEndpoint("far", CreateOptionIpam(nil, pref, nil))
	mustf(t, err, "endpoint at the end of the pool")
	if !far.Info().Iface().AddressIPv6().IP.Equal(pref) {
		t.Errorf("preferred IPv6 address: %v", far.Info().Iface().AddressIPv6())
	}
	near, err := n.CreateEndpoint("near")
	mustf(t, err, "endpoint")
	if got := near.Info().Iface().AddressIPv6(); got.String() != "fd12:3400::2/40" {
		t.Errorf("first IPv6 address %v, want fd12:3400::2/40 (after the gateway)", got)
	}
	sb, err := c.NewSandbox("big")
	mustf(t, err, "sandbox")
	mustf(t, far.Join(sb), "join")
	_, peer := joined(t, c, n, "peer")
	mustReach(t, nsOf(t, peer), listen(t, nsOf(t, sb), pref))
}
