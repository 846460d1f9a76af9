package macvlan

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
	eid1 = "ee00000000000000000000000000000000000000000000000000000000000001"
	eid2 = "ee00000000000000000000000000000000000000000000000000000000000002"
)

// sandboxLink returns eth0 of sb as a macvlan.
func sandboxLink(t *testing.T, ji *drivertest.JoinInfo) *netlink.Macvlan {
	t.Helper()
	l, err := ji.NS.Handle().LinkByName(ji.IfName)
	if err != nil {
		t.Fatalf("%s in the sandbox: %v", ji.IfName, err)
	}
	mv, ok := l.(*netlink.Macvlan)
	if !ok {
		t.Fatalf("%s in the sandbox is a %s, not a macvlan", ji.IfName, l.Type())
	}
	return mv
}

func TestBridgeModeReachesLANAndPeers(t *testing.T) {
	d, host := testDriver(t)
	lan := drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "")
	sb1, _, ji1 := drivertest.JoinNew(t, d, nid1, eid1, "192.168.90.11/24", nil)
	sb2, _, _ := drivertest.JoinNew(t, d, nid1, eid2, "192.168.90.12/24", nil)

	if !ji1.Created || ji1.Moved != "" {
		t.Errorf("join reported created=%v moved=%q, want the link created in the sandbox", ji1.Created, ji1.Moved)
	}
	if !ji1.GW4.Equal(net.ParseIP("192.168.90.1")) || ji1.NoGW {
		t.Errorf("gateway %v (disabled %v), want 192.168.90.1", ji1.GW4, ji1.NoGW)
	}
	mv := sandboxLink(t, ji1)
	if mv.Mode != netlink.MACVLAN_MODE_BRIDGE || mv.HardwareAddr.String() != "02:42:c0:a8:5a:0b" {
		t.Errorf("link mode %v MAC %s, want bridge and 02:42:c0:a8:5a:0b (from the address)", mv.Mode, mv.HardwareAddr)
	}
	parent, _ := host.Handle().LinkByName("lan0")
	if mv.MTU != parent.Attrs().MTU {
		t.Errorf("link MTU %d, want the parent's %d", mv.MTU, parent.Attrs().MTU)
	}
	for i, ns := range []*osl.Namespace{sb1, sb2} {
		if got, err := drivertest.DialTCP(ns, lan.Addr, time.Second); err != nil || got != "lan" {
			t.Errorf("endpoint %d to the LAN server: %q, %v", i+1, got, err)
		}
	}
	peer := drivertest.ListenTCP(t, sb2, "192.168.90.12:0", "peer")
	if got, err := drivertest.DialTCP(sb1, peer, time.Second); err != nil || got != "peer" {
		t.Errorf("endpoint 1 to endpoint 2 in bridge mode: %q, %v", got, err)
	}
}

func TestPrivateModeIsolatesEndpoints(t *testing.T) {
	d, host := testDriver(t)
	lan := drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", ModePrivate)
	sb1, _, _ := drivertest.JoinNew(t, d, nid1, eid1, "192.168.90.11/24", nil)
	sb2, _, ji2 := drivertest.JoinNew(t, d, nid1, eid2, "192.168.90.12/24", nil)
	if mv := sandboxLink(t, ji2); mv.Mode != netlink.MACVLAN_MODE_PRIVATE {
		t.Errorf("link mode %v, want private", mv.Mode)
	}
	for i, sb := range []*osl.Namespace{sb1, sb2} {
		if got, err := drivertest.DialTCP(sb, lan.Addr, time.Second); err != nil || got != "lan" {
			t.Errorf("endpoint %d to the LAN server: %q, %v", i+1, got, err)
		}
	}
	peer := drivertest.ListenTCP(t, sb2, "192.168.90.12:0", "peer")
	if got, err := drivertest.DialTCP(sb1, peer, time.Second); err == nil {
		t.Errorf("endpoint 1 reached endpoint 2 in private mode (%q)", got)
	}
}

func TestModesMakeLinksOfTheirMode(t *testing.T) {
	for mode, want := range map[string]netlink.MacvlanMode{
		ModeVEPA: netlink.MACVLAN_MODE_VEPA, ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
	} {
		t.Run(mode, func(t *testing.T) {
			d, host := testDriver(t)
			drivertest.NewLAN(t, host, "lan0")
			lanNetwork(t, d, nid1, "lan0", mode)
			_, _, ji := drivertest.JoinNew(t, d, nid1, eid1, "192.168.90.11/24", nil)
			if mv := sandboxLink(t, ji); mv.Mode != want {
				t.Errorf("link mode %v, want %v", mv.Mode, want)
			}
		})
	}
}

func TestInternalNetwork(t *testing.T) {
	d, host := testDriver(t)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.77.0.0/24", "10.77.0.1")}
	if err := d.CreateNetwork(nid1, nil, v4, nil); err != nil {
		t.Fatalf("CreateNetwork without parent: %v", err)
	}
	l, err := host.Handle().LinkByName("dm-aa0000000000")
	if err != nil {
		t.Fatalf("internal parent missing: %v", err)
	}
	if l.Attrs().Alias != Mark || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("internal parent %s (%s): alias %q flags %v, want %q and up", l.Attrs().Name, l.Type(), l.Attrs().Alias, l.Attrs().Flags, Mark)
	}
	t.Logf("internal parent is a %s link (a portless bridge where the kernel has no dummy links)", l.Type())
	sb1, _, ji := drivertest.JoinNew(t, d, nid1, eid1, "10.77.0.11/24", nil)
	sb2, _, _ := drivertest.JoinNew(t, d, nid1, eid2, "10.77.0.12/24", nil)
	if !ji.NoGW || ji.GW4 != nil {
		t.Errorf("internal network: gateway %v, disabled %v; want none", ji.GW4, ji.NoGW)
	}
	peer := drivertest.ListenTCP(t, sb2, "10.77.0.12:0", "peer")
	if got, err := drivertest.DialTCP(sb1, peer, time.Second); err != nil || got != "peer" {
		t.Errorf("endpoints of an internal network: %q, %v", got, err)
	}
	_ = d.DeleteEndpoint(nid1, eid1)
	_ = d.DeleteEndpoint(nid1, eid2)
	if err := d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Handle().LinkByName("dm-aa0000000000"); err == nil {
		t.Error("internal parent left after DeleteNetwork")
	}
}

// TestVLANParent tries a VLAN sub-interface parent. Where the kernel has
// no 802.1q support the creation fails: it must be refused clearly and
// leave no link. Where it has, the sub-interface is created, marked,
// shared by two networks, and removed with the last.
func TestVLANParent(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	h := host.Handle()
	before := drivertest.LinkNames(t, h)
	o := drivertest.GenericData(ParentOption, "lan0.10")
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "192.168.10.0/24", "192.168.10.1")}
	err := d.CreateNetwork(nid1, o, v4, nil)
	if err != nil {
		if !isNotImplemented(err) || !strings.Contains(err.Error(), "lan0.10") || !strings.Contains(err.Error(), "802.1q") {
			t.Fatalf("VLAN parent refused with %v; want a NotImplemented error naming lan0.10 and 802.1q", err)
		}
		if after := drivertest.LinkNames(t, h); after != before {
			t.Errorf("links after the refused VLAN parent:\n%s\nbefore:\n%s", after, before)
		}
		t.Skipf("kernel has no 802.1q (creating the VLAN link failed: %v); refusal and cleanup checked", err)
	}
	l, err := h.LinkByName("lan0.10")
	if err != nil {
		t.Fatal(err)
	}
	if vl, ok := l.(*netlink.Vlan); !ok || vl.VlanId != 10 || l.Attrs().Alias != Mark {
		t.Fatalf("lan0.10: %#v, want VLAN 10 marked %q", l, Mark)
	}
	v4b := []driverapi.IPAMData{drivertest.IPAMData(t, "192.168.11.0/24", "192.168.11.1")}
	if err := d.CreateNetwork(nid2, drivertest.GenericData(ParentOption, "lan0.10"), v4b, nil); err != nil {
		t.Fatalf("second network on lan0.10: %v", err)
	}
	if err := d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("lan0.10"); err != nil {
		t.Errorf("lan0.10 deleted while network %s still uses it", nid2)
	}
	if err := d.DeleteNetwork(nid2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("lan0.10"); err == nil {
		t.Error("lan0.10 left after its last network")
	}
}

// TestUsersVLANNeverDeleted: a sub-interface the driver did not create
// stays (here a veth named like one, since the kernel may lack 802.1q).
func TestUsersVLANNeverDeleted(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0.20")
	lanNetwork(t, d, nid1, "lan0.20", "")
	if err := d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Handle().LinkByName("lan0.20"); err != nil {
		t.Errorf("the user's lan0.20 was deleted: %v", err)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	h := host.Handle()
	// A bridge port and a macvlan link, neither usable as parent.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "usrbr0"}}
	port := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "port0"}, PeerName: "port0p"}
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "usrmv0", ParentIndex: drivertest.MustIndex(t, h, "lan0")}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	for _, l := range []netlink.Link{br, port, mv} {
		if err := h.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.LinkDel(l) })
	}
	if err := h.LinkSetMaster(port, br); err != nil {
		t.Fatal(err)
	}
	lanNetwork(t, d, nid1, "lan0", ModeBridge)
	v4 := func(p, gw string) []driverapi.IPAMData { return []driverapi.IPAMData{drivertest.IPAMData(t, p, gw)} }
	lanV4 := v4("192.168.90.0/25", "192.168.90.1")
	otherV4 := v4("10.88.0.0/24", "10.88.0.1")

	tests := []struct {
		name  string
		opts  map[string]interface{}
		v4    []driverapi.IPAMData
		check func(error) bool
		want  []string // in the message
	}{
		{"unknown option", drivertest.GenericData(ParentOption, "lan0", "macvlan_flavour", "x"), otherV4, types.IsBadRequest, []string{"macvlan_flavour", "x"}},
		{"unknown mode", drivertest.GenericData(ParentOption, "lan0", ModeOption, "l3"), otherV4, types.IsBadRequest, []string{ModeOption, "l3"}},
		{"missing parent", drivertest.GenericData(ParentOption, "nosuch0"), otherV4, types.IsNotFound, []string{"nosuch0"}},
		{"missing VLAN base", drivertest.GenericData(ParentOption, "nosuch0.10"), otherV4, types.IsNotFound, []string{"nosuch0"}},
		{"VLAN ID out of range", drivertest.GenericData(ParentOption, "lan0.4095"), otherV4, types.IsBadRequest, []string{"4095"}},
		{"VLAN suffix not a number", drivertest.GenericData(ParentOption, "lan0.x"), otherV4, types.IsBadRequest, []string{"lan0.x"}},
		{"bridge port", drivertest.GenericData(ParentOption, "port0"), otherV4, types.IsForbidden, []string{"port0", "usrbr0"}},
		{"macvlan link", drivertest.GenericData(ParentOption, "usrmv0"), otherV4, types.IsForbidden, []string{"usrmv0", "macvlan"}},
		{"another network's internal parent", nil, otherV4, nil, nil}, // filled below
		{"MTU above the parent's", drivertest.GenericData(ParentOption, "lan0", MTUOption, "9000"), otherV4, types.IsBadRequest, []string{"9000", "lan0"}},
		{"MTU out of range", drivertest.GenericData(ParentOption, "lan0", MTUOption, "20"), otherV4, types.IsBadRequest, []string{"20"}},
		{"overlapping subnet on the same parent", drivertest.GenericData(ParentOption, "lan0"), lanV4, types.IsForbidden, []string{"192.168.90.0/25", nid1}},
		{"passthru on a shared parent", drivertest.GenericData(ParentOption, "lan0", ModeOption, ModePassthru), otherV4, types.IsForbidden, []string{"passthru", nid1}},
		{"bad option type", map[string]interface{}{netlabel.GenericData: 42}, otherV4, types.IsBadRequest, []string{netlabel.GenericData}},
	}
	// The internal parent of an internal network is not a parent for
	// another.
	if err := d.CreateNetwork(nid2, nil, v4("10.99.0.0/24", "10.99.0.1"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(nid2) })
	tests[8] = struct {
		name  string
		opts  map[string]interface{}
		v4    []driverapi.IPAMData
		check func(error) bool
		want  []string
	}{"another network's internal parent", drivertest.GenericData(ParentOption, "dm-aa0000000000"), otherV4, types.IsForbidden, []string{"dm-aa0000000000", "internal parent"}}

	before := drivertest.LinkNames(t, h)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const nid = "bb00000000000000000000000000000000000000000000000000000000000001"
			err := d.CreateNetwork(nid, tc.opts, tc.v4, nil)
			if err == nil {
				_ = d.DeleteNetwork(nid)
				t.Fatal("accepted")
			}
			if !tc.check(err) {
				t.Errorf("error %v (%T) is not of the expected class", err, errors.Unwrap(err))
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

func TestPortPublishingRefused(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "")
	if err := d.CreateEndpoint(nid1, eid1, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "192.168.90.11/24")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.ProgramExternalConnectivity(nid1, eid1, map[string]interface{}{}); err != nil {
		t.Errorf("no binding: %v", err)
	}
	pm := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}
	err := d.ProgramExternalConnectivity(nid1, eid1, map[string]interface{}{netlabel.PortMap: pm})
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "do not publish ports") {
		t.Errorf("binding: %v, want Forbidden saying macvlan networks do not publish ports", err)
	}
	info, err := d.EndpointOperInfo(nid1, eid1)
	if err != nil || info[netlabel.MacAddress].(net.HardwareAddr).String() != "02:42:c0:a8:5a:0b" {
		t.Errorf("EndpointOperInfo = %v, %v", info, err)
	}
}

func TestParentComesBack(t *testing.T) {
	d, host := testDriver(t)
	drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "")
	h := host.Handle()
	if err := h.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0", Index: drivertest.MustIndex(t, h, "lan0")}}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateEndpoint(nid1, eid1, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "192.168.90.11/24")}, nil); err != nil {
		t.Fatal(err)
	}
	sb := drivertest.NewNamespace(t)
	err := d.Join(nid1, eid1, sb.Path(), &drivertest.JoinInfo{NS: sb, IfName: "eth0"}, nil)
	if !types.IsNotFound(err) || !strings.Contains(err.Error(), "lan0") {
		t.Fatalf("join with the parent gone: %v, want NotFound naming lan0", err)
	}
	lan := drivertest.NewLAN(t, host, "lan0") // back, with another index
	ji := &drivertest.JoinInfo{NS: sb, IfName: "eth0"}
	if err := d.Join(nid1, eid1, sb.Path(), ji, nil); err != nil {
		t.Fatalf("join with the parent back: %v", err)
	}
	if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: drivertest.CIDR(t, "192.168.90.11/24")}); err != nil {
		t.Fatal(err)
	}
	if got, err := drivertest.DialTCP(sb, lan.Addr, time.Second); err != nil || got != "lan" {
		t.Errorf("to the LAN server through the new parent: %q, %v", got, err)
	}
}

func isNotImplemented(err error) bool {
	var e types.NotImplementedError
	return errors.As(err, &e)
}

// TestRejoinAfterLeave: the controller retires the interface at Leave
// (down, renamed, left in the sandbox); joining again makes a new link
// with the same MAC on the same parent, which works.
func TestRejoinAfterLeave(t *testing.T) {
	d, host := testDriver(t)
	lan := drivertest.NewLAN(t, host, "lan0")
	lanNetwork(t, d, nid1, "lan0", "")
	sb, _, _ := drivertest.JoinNew(t, d, nid1, eid1, "192.168.90.11/24", nil)
	if err := sb.RetireInterface("eth0", "gone0"); err != nil {
		t.Fatal(err)
	}
	if err := d.Leave(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	ji := &drivertest.JoinInfo{NS: sb, IfName: "eth0"}
	if err := d.Join(nid1, eid1, sb.Path(), ji, nil); err != nil {
		t.Fatalf("join after leave: %v", err)
	}
	if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: drivertest.CIDR(t, "192.168.90.11/24")}); err != nil {
		t.Fatal(err)
	}
	if got, err := drivertest.DialTCP(sb, lan.Addr, time.Second); err != nil || got != "lan" {
		t.Errorf("to the LAN server after rejoining: %q, %v", got, err)
	}
}
