package ipvlan

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

const (
	nid1 = "aa00000000000000000000000000000000000000000000000000000000000001"
	nid2 = "aa00000000000000000000000000000000000000000000000000000000000002"
	nid3 = "ab00000000000000000000000000000000000000000000000000000000000003"
	eid1 = "ee00000000000000000000000000000000000000000000000000000000000001"
	eid2 = "ee00000000000000000000000000000000000000000000000000000000000002"
)

// kernelHasIPVlan decides, by trying, whether the kernel has the ipvlan
// link type: it creates an ipvlan link on a veth in the test namespace
// and deletes both. It returns the kernel's error when it has not.
func kernelHasIPVlan(t *testing.T) (bool, error) {
	t.Helper()
	_, host := testDriver(t)
	h := host.Handle()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ipvprobe0"}, PeerName: "ipvprobe1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("creating the probe's parent: %v", err)
	}
	defer func() { _ = h.LinkDel(veth) }()
	l := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "ipvprobe2", ParentIndex: drivertest.MustIndex(t, h, "ipvprobe0")}, Mode: netlink.IPVLAN_MODE_L2}
	if err := h.LinkAdd(l); err != nil {
		return false, err
	}
	_ = h.LinkDel(l)
	return true, nil
}

// requireIPVlan skips a live test on a kernel without ipvlan.
func requireIPVlan(t *testing.T) {
	t.Helper()
	if ok, err := kernelHasIPVlan(t); !ok {
		t.Skipf("the kernel has no ipvlan link type (creating one in the test namespace failed: %v)", err)
	}
}

func isNotImplemented(err error) bool {
	var e types.NotImplementedError
	return errors.As(err, &e)
}

// sandboxLink returns the joined interface as an ipvlan.
func sandboxLink(t *testing.T, ji *drivertest.JoinInfo) *netlink.IPVlan {
	t.Helper()
	l, err := ji.NS.Handle().LinkByName(ji.IfName)
	if err != nil {
		t.Fatalf("%s in the sandbox: %v", ji.IfName, err)
	}
	iv, ok := l.(*netlink.IPVlan)
	if !ok {
		t.Fatalf("%s in the sandbox is a %s, not an ipvlan", ji.IfName, l.Type())
	}
	return iv
}

// TestL2ReachesLANAndPeers: in l2 mode (bridge flag) endpoints reach the
// LAN and each other, with the parent's MAC and the network's gateway.
func TestL2ReachesLANAndPeers(t *testing.T) {
	requireIPVlan(t)
	d, host := testDriver(t)
	lan := drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "", "")
	sb1, _, ji1 := drivertest.JoinNew(t, d, nid1, eid1, "192.168.90.11/24", nil)
	sb2, _, _ := drivertest.JoinNew(t, d, nid1, eid2, "192.168.90.12/24", nil)
	if !ji1.Created || !ji1.GW4.Equal(net.ParseIP("192.168.90.1")) || ji1.NoGW || len(ji1.Routes) != 0 {
		t.Errorf("join reported created=%v gateway %v (disabled %v) routes %v; want created, 192.168.90.1, no routes", ji1.Created, ji1.GW4, ji1.NoGW, ji1.Routes)
	}
	iv := sandboxLink(t, ji1)
	parent, _ := host.Handle().LinkByName("lan0")
	if iv.Mode != netlink.IPVLAN_MODE_L2 || iv.Flag != netlink.IPVLAN_FLAG_BRIDGE || iv.HardwareAddr.String() != parent.Attrs().HardwareAddr.String() {
		t.Errorf("link mode %v flag %v MAC %s, want l2, bridge and the parent's MAC %s", iv.Mode, iv.Flag, iv.HardwareAddr, parent.Attrs().HardwareAddr)
	}
	for i, ns := range []*osl.Namespace{sb1, sb2} {
		if got, err := drivertest.DialTCP(ns, lan.Addr, time.Second); err != nil || got != "lan" {
			t.Errorf("endpoint %d to the LAN server: %q, %v", i+1, got, err)
		}
	}
	peer := drivertest.ListenTCP(t, sb2, "192.168.90.12:0", "peer")
	if got, err := drivertest.DialTCP(sb1, peer, time.Second); err != nil || got != "peer" {
		t.Errorf("endpoint 1 to endpoint 2 with flag bridge: %q, %v", got, err)
	}
}

// TestL3ModesReachLAN: in l3 and l3s modes an endpoint of a subnet of its
// own has no gateway but a default route through its interface, and
// reaches the LAN, which routes the subnet through the controller
// namespace's address on the parent (as docker's documentation sets it).
func TestL3ModesReachLAN(t *testing.T) {
	for _, mode := range []string{ModeL3, ModeL3S} {
		t.Run(mode, func(t *testing.T) {
			requireIPVlan(t)
			d, host := testDriver(t)
			lan := drivertest.NewLAN(t, host, "lan0")
			if err := host.ConfigureInterface(osl.IfaceConfig{Name: "lan0", Addr: drivertest.CIDR(t, "192.168.90.2/24")}); err != nil {
				t.Fatal(err)
			}
			_, sub, _ := net.ParseCIDR("10.91.0.0/24")
			if err := lan.NS.Handle().RouteAdd(&netlink.Route{Dst: sub, Gw: net.ParseIP("192.168.90.2")}); err != nil {
				t.Fatal(err)
			}
			v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.91.0.0/24", "10.91.0.1")}
			if err := d.CreateNetwork(nid1, drivertest.GenericData(ParentOption, "lan0", ModeOption, mode), v4, nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.DeleteNetwork(nid1) })
			sb, _, ji := drivertest.JoinNew(t, d, nid1, eid1, "10.91.0.11/24", nil)
			if ji.GW4 != nil || len(ji.Routes) != 1 || ji.Routes[0].Dst != "0.0.0.0/0" {
				t.Errorf("join reported gateway %v routes %v, want none and 0.0.0.0/0", ji.GW4, ji.Routes)
			}
			if iv := sandboxLink(t, ji); iv.Mode != linkModes[mode] {
				t.Errorf("link mode %v, want %v", iv.Mode, linkModes[mode])
			}
			if got, err := drivertest.DialTCP(sb, lan.Addr, time.Second); err != nil || got != "lan" {
				t.Errorf("endpoint to the LAN server in %s mode: %q, %v", mode, got, err)
			}
		})
	}
}

// TestJoinWithoutIPVlan runs on a kernel without the ipvlan link type:
// Join fails with a NotImplemented error naming ipvlan and the kernel's
// error, leaves no link in the sandbox nor in the controller's namespace,
// and leaves the endpoint joinable.
func TestJoinWithoutIPVlan(t *testing.T) {
	ok, kerr := kernelHasIPVlan(t)
	if ok {
		t.Skip("the kernel has the ipvlan link type (decided by trying); the live tests cover Join")
	}
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	h := host.Handle()
	for i, mode := range []string{ModeL2, ModeL3, ModeL3S} {
		nid := []string{nid1, nid2, nid3}[i]
		v4 := []driverapi.IPAMData{drivertest.IPAMData(t, []string{"10.81.0.0/24", "10.82.0.0/24", "10.83.0.0/24"}[i], "")}
		if err := d.CreateNetwork(nid, drivertest.GenericData(ParentOption, "lan0", ModeOption, mode, FlagOption, FlagPrivate), v4, nil); err != nil {
			if i > 0 && types.IsForbidden(err) {
				// One mode per parent: the others on parents of their own.
				parent := "lan" + mode
				drivertest.NewLAN(t, host, parent)
				err = d.CreateNetwork(nid, drivertest.GenericData(ParentOption, parent, ModeOption, mode, FlagOption, FlagPrivate), v4, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { _ = d.DeleteNetwork(nid) })
		if err := d.CreateEndpoint(nid, eid1, &drivertest.IfInfo{Addr: drivertest.CIDR(t, strings.Replace(v4[0].Pool.String(), ".0/24", ".11/24", 1))}, nil); err != nil {
			t.Fatal(err)
		}
		sb := drivertest.NewNamespace(t)
		before, sbBefore := drivertest.LinkNames(t, h), drivertest.LinkNames(t, sb.Handle())
		for range 2 { // the second attempt must fail the same way
			ji := &drivertest.JoinInfo{NS: sb, IfName: "eth0"}
			err := d.Join(nid, eid1, sb.Path(), ji, nil)
			if !isNotImplemented(err) || !strings.Contains(err.Error(), "ipvlan") || !strings.Contains(err.Error(), kerr.Error()) {
				t.Fatalf("%s: Join = %v; want NotImplemented naming ipvlan and the kernel's error %q", mode, err, kerr)
			}
			if ji.Created || ji.GW4 != nil || len(ji.Routes) != 0 {
				t.Errorf("%s: a failed Join reported %+v", mode, ji)
			}
		}
		if after := drivertest.LinkNames(t, h); after != before {
			t.Errorf("%s: links of the controller's namespace after the failed Join:\n%s\nbefore:\n%s", mode, after, before)
		}
		if after := drivertest.LinkNames(t, sb.Handle()); after != sbBefore {
			t.Errorf("%s: links of the sandbox after the failed Join:\n%s\nbefore:\n%s", mode, after, sbBefore)
		}
		if err := d.Leave(nid, eid1); err != nil {
			t.Errorf("%s: Leave of the endpoint: %v", mode, err)
		}
		if err := d.DeleteEndpoint(nid, eid1); err != nil {
			t.Errorf("%s: DeleteEndpoint: %v", mode, err)
		}
	}
	t.Logf("the kernel has no ipvlan link type (%v): Join refused cleanly", kerr)
}

// TestParentSharing: networks on one parent must have the same mode and
// flag (the kernel keeps one per parent) and disjoint subnets; a refusal
// leaves nothing, and the parent stays after the last network.
func TestParentSharing(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	h := host.Handle()
	lanNetwork(t, d, nid1, "lan0", ModeL2, FlagBridge)
	before := drivertest.LinkNames(t, h)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.70.0.0/24", "10.70.0.1")}
	for _, kv := range [][]string{{ModeOption, ModeL3}, {FlagOption, FlagPrivate}, {ModeOption, ModeL3S, FlagOption, FlagVEPA}} {
		err := d.CreateNetwork(nid2, drivertest.GenericData(append([]string{ParentOption, "lan0"}, kv...)...), v4, nil)
		if !types.IsForbidden(err) || !strings.Contains(err.Error(), nid1) || !strings.Contains(err.Error(), "lan0") {
			t.Errorf("%v on lan0 used in l2/bridge: %v, want Forbidden naming %s and lan0", kv, err, nid1)
		}
		if after := drivertest.LinkNames(t, h); after != before {
			t.Errorf("links changed:\n%s\nbefore:\n%s", after, before)
		}
	}
	if err := d.CreateNetwork(nid2, drivertest.GenericData(ParentOption, "lan0", ModeOption, ModeL2), v4, nil); err != nil {
		t.Fatalf("second l2/bridge network on lan0: %v", err)
	}
	// Refusals released their claims: nid2 could be created.
	if err := d.CreateNetwork(nid3, drivertest.GenericData(ParentOption, "lan0"), []driverapi.IPAMData{drivertest.IPAMData(t, "10.70.0.0/25", "")}, nil); !types.IsForbidden(err) {
		t.Errorf("overlapping subnet on lan0: %v, want Forbidden", err)
	}
	for _, nid := range []string{nid2, nid1} {
		if err := d.DeleteNetwork(nid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.LinkByName("lan0"); err != nil {
		t.Errorf("the user's lan0 was deleted: %v", err)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	h := host.Handle()
	before := drivertest.LinkNames(t, h)
	otherV4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.88.0.0/24", "10.88.0.1")}
	for name, tc := range map[string]struct {
		opts  map[string]interface{}
		check func(error) bool
		want  []string
	}{
		"unknown option":   {drivertest.GenericData(ParentOption, "lan0", "macvlan_mode", "bridge"), types.IsBadRequest, []string{"macvlan_mode"}},
		"unknown mode":     {drivertest.GenericData(ParentOption, "lan0", ModeOption, "l4"), types.IsBadRequest, []string{ModeOption, "l4"}},
		"unknown flag":     {drivertest.GenericData(ParentOption, "lan0", FlagOption, "passthru"), types.IsBadRequest, []string{FlagOption, "passthru"}},
		"missing parent":   {drivertest.GenericData(ParentOption, "nosuch0"), types.IsNotFound, []string{"nosuch0"}},
		"MTU above parent": {drivertest.GenericData(ParentOption, "lan0", MTUOption, "9000"), types.IsBadRequest, []string{"9000", "lan0"}},
		"bad option type":  {map[string]interface{}{netlabel.GenericData: 42}, types.IsBadRequest, []string{netlabel.GenericData}},
	} {
		t.Run(name, func(t *testing.T) {
			err := d.CreateNetwork(nid1, tc.opts, otherV4, nil)
			if err == nil {
				_ = d.DeleteNetwork(nid1)
				t.Fatal("accepted")
			}
			if !tc.check(err) {
				t.Errorf("error %v is not of the expected class", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if after := drivertest.LinkNames(t, h); after != before {
				t.Errorf("links changed:\n%s\nbefore:\n%s", after, before)
			}
		})
	}
}

// TestInternalNetwork: no parent gives an internal parent of the
// driver's own, marked, removed with the network.
func TestInternalNetwork(t *testing.T) {
	d, host := testDriver(t)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.77.0.0/24", "10.77.0.1")}
	if err := d.CreateNetwork(nid1, drivertest.GenericData(ModeOption, ModeL3), v4, nil); err != nil {
		t.Fatalf("CreateNetwork without parent: %v", err)
	}
	l, err := host.Handle().LinkByName("di-aa0000000000")
	if err != nil {
		t.Fatalf("internal parent missing: %v", err)
	}
	if l.Attrs().Alias != Mark || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("internal parent %s: alias %q flags %v, want %q and up", l.Attrs().Name, l.Attrs().Alias, l.Attrs().Flags, Mark)
	}
	if err := d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Handle().LinkByName("di-aa0000000000"); err == nil {
		t.Error("internal parent left after DeleteNetwork")
	}
}

// TestEndpointsAndPorts: CreateEndpoint sets no MAC, a port binding is
// refused, and the endpoint bookkeeping refuses duplicates and unknowns.
func TestEndpointsAndPorts(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "", "")
	info := &drivertest.IfInfo{Addr: drivertest.CIDR(t, "192.168.90.11/24")}
	if err := d.CreateEndpoint(nid1, eid1, info, nil); err != nil {
		t.Fatal(err)
	}
	if info.MAC != nil {
		t.Errorf("CreateEndpoint set MAC %s; an ipvlan link has its parent's", info.MAC)
	}
	if err := d.CreateEndpoint(nid1, eid1, &drivertest.IfInfo{}, nil); !types.IsForbidden(err) {
		t.Errorf("duplicate endpoint: %v, want Forbidden", err)
	}
	if err := d.CreateEndpoint(nid2, eid2, &drivertest.IfInfo{}, nil); !types.IsNotFound(err) {
		t.Errorf("endpoint of an unknown network: %v, want NotFound", err)
	}
	if err := d.ProgramExternalConnectivity(nid1, eid1, map[string]interface{}{}); err != nil {
		t.Errorf("no binding: %v", err)
	}
	pm := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}
	err := d.ProgramExternalConnectivity(nid1, eid1, map[string]interface{}{netlabel.PortMap: pm})
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "do not publish ports") {
		t.Errorf("binding: %v, want Forbidden saying ipvlan networks do not publish ports", err)
	}
	if info, err := d.EndpointOperInfo(nid1, eid1); err != nil || len(info) != 0 {
		t.Errorf("EndpointOperInfo = %v, %v", info, err)
	}
	if err := d.DeleteEndpoint(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(nid1, eid1); !types.IsNotFound(err) {
		t.Errorf("second DeleteEndpoint: %v, want NotFound", err)
	}
}

// TestRestoreAndOrphans: a restarted driver adopts the internal parent of
// a restored network and collects that of a network that is gone.
func TestRestoreAndOrphans(t *testing.T) {
	d1, host := testDriver(t)
	h := host.Handle()
	v4 := func(p string) []driverapi.IPAMData { return []driverapi.IPAMData{drivertest.IPAMData(t, p, "")} }
	if err := d1.CreateNetwork(nid1, nil, v4("10.61.0.0/24"), nil); err != nil {
		t.Fatal(err)
	}
	if err := d1.CreateNetwork(nid3, nil, v4("10.62.0.0/24"), nil); err != nil {
		t.Fatal(err)
	}
	kept := drivertest.MustIndex(t, h, "di-aa0000000000")
	d2, _ := testDriver(t)
	if err := d2.RestoreNetwork(nid1, nil, v4("10.61.0.0/24"), nil); err != nil {
		t.Fatalf("RestoreNetwork: %v", err)
	}
	if err := d2.RestoreEndpoint(nid1, eid1, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.61.0.11/24")}, "/x", &drivertest.JoinInfo{}, nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if err := d2.Join(nid1, eid1, "/x", &drivertest.JoinInfo{NS: drivertest.NewNamespace(t), IfName: "eth0"}, nil); !types.IsForbidden(err) {
		t.Errorf("Join of a restored joined endpoint = %v, want Forbidden", err)
	}
	if err := d2.CollectOrphans(map[string]bool{nid1: true}, map[string]bool{eid1: true}); err != nil {
		t.Fatal(err)
	}
	if got := drivertest.MustIndex(t, h, "di-aa0000000000"); got != kept {
		t.Errorf("restored network's parent index %d, want %d (adopted)", got, kept)
	}
	if _, err := h.LinkByName("di-ab0000000000"); err == nil {
		t.Error("the parent of a network that is gone was not collected")
	}
	_ = d2.DeleteEndpoint(nid1, eid1)
	if err := d2.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
}

// TestConnectedDefaultRoutesApply checks that the routes an l3 Join
// reports work as the controller applies them (osl.Route without
// gateway: scope link through the interface), on a veth standing in for
// the ipvlan link the kernel may lack: a default route of each family
// through eth0, and a destination outside the subnet reached through it.
func TestConnectedDefaultRoutesApply(t *testing.T) {
	_, host := testDriver(t)
	sb, peer := drivertest.NewNamespace(t), drivertest.NewNamespace(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Namespace: netlink.NsFd(sb.Fd())}, PeerName: "peer0", PeerNamespace: netlink.NsFd(peer.Fd())}
	if err := host.Handle().LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	ji := &drivertest.JoinInfo{IfName: "eth0"}
	if err := report(networkConfig{mode: ModeL3, flag: FlagBridge}, true, ji); err != nil {
		t.Fatal(err)
	}
	cfg := osl.IfaceConfig{Name: "eth0", Addr: drivertest.CIDR(t, "10.91.0.11/24"), AddrV6: drivertest.CIDR(t, "fd91::11/64"), Routes: ji.OSLRoutes()}
	if err := sb.ConfigureInterface(cfg); err != nil {
		t.Fatalf("applying the l3 routes %v: %v", ji.Routes, err)
	}
	// The peer answers for an address outside the endpoint's subnet, on
	// the link (as the parent routes in l3 mode).
	if err := peer.ConfigureInterface(osl.IfaceConfig{Name: "peer0", Addr: drivertest.CIDR(t, "172.30.0.1/32"),
		Routes: []osl.Route{{Dst: drivertest.CIDR(t, "10.91.0.0/24")}}}); err != nil {
		t.Fatal(err)
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := sb.Handle().RouteListFiltered(family, &netlink.Route{Dst: nil}, 0)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw == nil && r.LinkIndex == drivertest.MustIndex(t, sb.Handle(), "eth0") {
				found = true
			}
		}
		if !found {
			t.Errorf("family %d: no default route through eth0 without gateway in %v", family, routes)
		}
	}
	srv := drivertest.ListenTCP(t, peer, "172.30.0.1:0", "routed")
	if got, err := drivertest.DialTCP(sb, srv, time.Second); err != nil || got != "routed" {
		t.Errorf("through the connected default route: %q, %v", got, err)
	}
}
