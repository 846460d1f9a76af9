package drivertest

import (
	"net"
	"testing"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// TestJoinInfoRecords: every report lands in its field, in order for the
// static routes, and OSLRoutes gives them back as the controller applies
// them.
func TestJoinInfoRecords(t *testing.T) {
	j := &JoinInfo{IfName: "eth0"}
	if j.NetNSFd() != -1 || j.Sandbox().IfaceName() != "eth0" {
		t.Errorf("no namespace: fd %d, name %q; want -1, eth0", j.NetNSFd(), j.Sandbox().IfaceName())
	}
	gw4, gw6 := net.ParseIP("10.0.0.1"), net.ParseIP("fd00::1")
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	_, sub, _ := net.ParseCIDR("10.9.0.0/16")
	for _, err := range []error{
		j.InterfaceName().SetNames("mv0", "eth"), j.InterfaceName().SetCreatedInSandbox(),
		j.SetGateway(gw4), j.SetGatewayIPv6(gw6),
		j.AddStaticRoute(def, types.CONNECTED, nil), j.AddStaticRoute(sub, types.NEXTHOP, gw4),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	j.DisableGatewayService()
	if j.Moved != "mv0" || !j.Created || !j.GW4.Equal(gw4) || !j.GW6.Equal(gw6) || !j.NoGW {
		t.Errorf("recorded %+v", j)
	}
	want := []Route{{"0.0.0.0/0", types.CONNECTED, nil}, {"10.9.0.0/16", types.NEXTHOP, gw4}}
	if len(j.Routes) != 2 || j.Routes[0].Dst != want[0].Dst || j.Routes[0].Type != want[0].Type || j.Routes[0].NextHop != nil ||
		j.Routes[1].Dst != want[1].Dst || j.Routes[1].Type != want[1].Type || !j.Routes[1].NextHop.Equal(gw4) {
		t.Errorf("routes %+v, want %+v", j.Routes, want)
	}
	r := j.OSLRoutes()
	if len(r) != 2 || r[0].Dst.String() != "0.0.0.0/0" || r[0].Gw != nil || r[1].Dst.String() != "10.9.0.0/16" || !r[1].Gw.Equal(gw4) {
		t.Errorf("OSLRoutes = %+v", r)
	}
}

// TestJoinInfoRefuses: the Refuse settings make their report fail and
// record nothing.
func TestJoinInfoRefuses(t *testing.T) {
	j := &JoinInfo{RefuseSetNames: true, RefuseStaticRoutes: true}
	if err := j.SetNames("veth0", "eth"); err == nil || j.Moved != "" {
		t.Errorf("SetNames under RefuseSetNames: %v, moved %q", err, j.Moved)
	}
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	if err := j.AddStaticRoute(def, types.CONNECTED, nil); err == nil || len(j.Routes) != 0 {
		t.Errorf("AddStaticRoute under RefuseStaticRoutes: %v, routes %v", err, j.Routes)
	}
}

// TestIfInfo: the MAC is set once; addresses go by family.
func TestIfInfo(t *testing.T) {
	i := &IfInfo{}
	mac := net.HardwareAddr{2, 0x42, 0, 0, 0, 1}
	if err := i.SetMacAddress(mac); err != nil || i.MacAddress().String() != mac.String() {
		t.Fatalf("SetMacAddress: %v, %s", err, i.MacAddress())
	}
	if err := i.SetMacAddress(net.HardwareAddr{2, 0x42, 0, 0, 0, 2}); err == nil || i.MAC.String() != mac.String() {
		t.Errorf("second SetMacAddress: %v, MAC %s", err, i.MAC)
	}
	v4, v6 := CIDR(t, "10.0.0.2/24"), CIDR(t, "fd00::2/64")
	if i.SetIPAddress(v4) != nil || i.SetIPAddress(v6) != nil || i.Address() != v4 || i.AddressIPv6() != v6 {
		t.Errorf("addresses %v %v, want %v %v", i.Address(), i.AddressIPv6(), v4, v6)
	}
	if v4.String() != "10.0.0.2/24" {
		t.Errorf("CIDR kept %s, want the address 10.0.0.2/24", v4)
	}
}

// TestValues: the option map and IPAM data builders.
func TestValues(t *testing.T) {
	gen := GenericData("a", "1", "b", "2", "odd")[netlabel.GenericData].(map[string]string)
	if len(gen) != 2 || gen["a"] != "1" || gen["b"] != "2" {
		t.Errorf("GenericData = %v", gen)
	}
	d := IPAMData(t, "10.1.0.0/16", "10.1.0.1")
	if d.Pool.String() != "10.1.0.0/16" || d.Gateway.String() != "10.1.0.1/16" {
		t.Errorf("IPAMData = %v gateway %v", d.Pool, d.Gateway)
	}
	if d := IPAMData(t, "10.1.0.0/16", ""); d.Gateway != nil {
		t.Errorf("IPAMData without gateway has %v", d.Gateway)
	}
}
