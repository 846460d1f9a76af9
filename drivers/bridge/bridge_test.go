package bridge

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// testDriver returns a driver on the test namespace with a real firewall.
func testDriver(t testing.TB) (*Driver, *osl.Namespace) {
	t.Helper()
	testutil.RequireRoot(t)
	host := drivertest.CurrentNamespace(t)
	logger := drivertest.Logger(t)
	fw, err := firewall.New(-1, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Close() })
	if err := fw.Init(); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Logger: logger, Firewall: fw, Host: host.Handle(), AddVeth: host.AddVeth, DeleteLinks: host.DeleteLinks, SetSysctl: host.SetSysctl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, host
}

// createNetwork creates network nid with a v4 pool 10.<n>.0.0/24 and, when
// v6, fd00:<n>::/64.
func createNetwork(t testing.TB, d *Driver, nid string, n int, v6 bool, opts map[string]interface{}) {
	t.Helper()
	if opts == nil {
		opts = map[string]interface{}{}
	}
	opts[netlabel.EnableIPv6] = v6
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, fmt.Sprintf("10.%d.0.0/24", n), fmt.Sprintf("10.%d.0.1", n))}
	var v6d []driverapi.IPAMData
	if v6 {
		v6d = []driverapi.IPAMData{drivertest.IPAMData(t, fmt.Sprintf("fd00:%d::/64", n), fmt.Sprintf("fd00:%d::1", n))}
	}
	if err := d.CreateNetwork(nid, opts, v4, v6d); err != nil {
		t.Fatalf("CreateNetwork %s: %v", nid, err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(nid) })
}

func linkExists(t testing.TB, h *netlink.Handle, name string) bool {
	t.Helper()
	_, err := h.LinkByName(name)
	return err == nil
}

func nftTable(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", firewall.TableName).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

func TestCreateNetwork(t *testing.T) {
	d, host := testDriver(t)
	const nid = "aa00000000000000000000000000000000000000000000000000000000000001"
	createNetwork(t, d, nid, 101, true, nil)
	h := host.Handle()

	br, err := h.LinkByName("br-aa0000000000")
	if err != nil {
		t.Fatalf("bridge missing: %v", err)
	}
	if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 || br.Attrs().MTU != 1500 {
		t.Errorf("bridge %s: type %s flags %v mtu %d, want an up bridge with MTU 1500", br.Attrs().Name, br.Type(), br.Attrs().Flags, br.Attrs().MTU)
	}
	addrs, err := h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	for _, want := range []string{"10.101.0.1/24", "fd00:101::1/64"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("bridge addresses %v lack %s", got, want)
		}
	}
	if table := nftTable(t); !strings.Contains(table, "br-aa0000000000") {
		t.Errorf("nftables table does not mention the bridge:\n%s", table)
	}

	if err := d.DeleteNetwork(nid); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
	if linkExists(t, h, "br-aa0000000000") {
		t.Error("bridge left after DeleteNetwork")
	}
	if table := nftTable(t); strings.Contains(table, "br-aa0000000000") {
		t.Errorf("rules left after DeleteNetwork:\n%s", table)
	}
}

func TestRestoreNetworkAdoptsBridge(t *testing.T) {
	d, host := testDriver(t)
	const nid = "ab00000000000000000000000000000000000000000000000000000000000001"
	createNetwork(t, d, nid, 102, false, nil)
	// A restarted controller has a fresh driver and calls RestoreNetwork;
	// the bridge and its address are there already.
	d2, err := New(Config{Firewall: d.fw, Host: host.Handle()})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.102.0.0/24", "10.102.0.1")}
	if err := d2.RestoreNetwork(nid, nil, v4, nil); err != nil {
		t.Fatalf("RestoreNetwork on restart: %v", err)
	}
	d2.mu.Lock()
	idx := d2.networks[nid].bridgeIndex
	d2.mu.Unlock()
	br, err := host.Handle().LinkByName("br-ab0000000000")
	if err != nil || br.Attrs().Index != idx {
		t.Fatalf("adopted bridge index %d, link %v err %v", idx, br, err)
	}
}

func TestCreateNetworkRefusesNonBridge(t *testing.T) {
	d, host := testDriver(t)
	dummy := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "notabridge"}, PeerName: "notabridgepeer"}
	if err := host.Handle().LinkAdd(dummy); err != nil {
		t.Fatal(err)
	}
	defer host.Handle().LinkDel(dummy)
	opts := map[string]interface{}{netlabel.GenericData: map[string]string{BridgeName: "notabridge"}}
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.103.0.0/24", "10.103.0.1")}
	err := d.CreateNetwork("ac00000000000000", opts, v4, nil)
	if !types.IsForbidden(err) {
		t.Fatalf("CreateNetwork over a veth = %v, want Forbidden", err)
	}
}

func TestDuplicateBridgeName(t *testing.T) {
	d, _ := testDriver(t)
	opts := func() map[string]interface{} {
		return map[string]interface{}{netlabel.GenericData: options.Generic{BridgeName: "dupbr0"}}
	}
	createNetwork(t, d, "ad00000000000001", 104, false, opts())
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.105.0.0/24", "10.105.0.1")}
	err := d.CreateNetwork("ad00000000000002", opts(), v4, nil)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "ad00000000000001") {
		t.Fatalf("second network on dupbr0 = %v, want Forbidden naming the first", err)
	}
	err = d.CreateNetwork("ad00000000000001", nil, v4, nil)
	if !types.IsForbidden(err) {
		t.Fatalf("same network ID twice = %v, want Forbidden", err)
	}
}

func TestCreateNetworkFailureLeavesNothing(t *testing.T) {
	for _, step := range []string{stepBridge, stepAddresses, stepUp, stepFirewall, stepSysctl} {
		t.Run(step, func(t *testing.T) {
			d, host := testDriver(t)
			d.SetFailAfter(step)
			v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.106.0.0/24", "10.106.0.1")}
			v6 := []driverapi.IPAMData{drivertest.IPAMData(t, "fd00:106::/64", "fd00:106::1")}
			err := d.CreateNetwork("ae00000000000001", map[string]interface{}{netlabel.EnableIPv6: true}, v4, v6)
			if err == nil {
				t.Fatal("CreateNetwork succeeded despite the injected failure")
			}
			if linkExists(t, host.Handle(), "br-ae0000000000") {
				t.Error("bridge left behind")
			}
			if table := nftTable(t); strings.Contains(table, "br-ae0000000000") {
				t.Errorf("rules left behind:\n%s", table)
			}
			// The name is free again.
			d.SetFailAfter("")
			if err := d.CreateNetwork("ae00000000000001", nil, v4, nil); err != nil {
				t.Fatalf("CreateNetwork after the failure: %v", err)
			}
			if err := d.DeleteNetwork("ae00000000000001"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// joinInfo returns a JoinInfo for the interface ifName in sb that
// refuses SetNames: the bridge driver creates the sandbox's end of its
// veth in the sandbox, and must never have the controller move one.
func joinInfo(sb *osl.Namespace, ifName string) *drivertest.JoinInfo {
	return &drivertest.JoinInfo{NS: sb, IfName: ifName, RefuseSetNames: true}
}

// joinEndpoint creates endpoint eid with address addr and joins it to a
// new sandbox, configuring eth0 there as the controller would
// (drivertest.JoinNew), with a JoinInfo that refuses SetNames.
func joinEndpoint(t testing.TB, d *Driver, nid, eid, addr string) (*osl.Namespace, *drivertest.IfInfo, *drivertest.JoinInfo) {
	t.Helper()
	return drivertest.JoinNew(t, d, nid, eid, addr, joinInfo(nil, ""))
}

func TestJoin(t *testing.T) {
	d, host := testDriver(t)
	testJoin(t, d, host)
}

func testJoin(t *testing.T, d *Driver, host *osl.Namespace) {
	const nid = "af00000000000001"
	const eid = "afa0000000000000000000000000000000000000000000000000000000000002"
	createNetwork(t, d, nid, 107, true, nil)
	sb, info, ji := joinEndpoint(t, d, nid, eid, "10.107.0.2/24")

	if info.MAC.String() != "02:42:0a:6b:00:02" {
		t.Errorf("endpoint MAC = %s, want 02:42:0a:6b:00:02", info.MAC)
	}
	if !ji.Created || !ji.GW4.Equal(net.ParseIP("10.107.0.1")) || !ji.GW6.Equal(net.ParseIP("fd00:107::1")) || ji.NoGW {
		t.Errorf("join reported %+v", ji)
	}
	eth0, err := sb.Handle().LinkByName("eth0")
	if err != nil {
		t.Fatalf("no eth0 in the sandbox: %v", err)
	}
	if eth0.Attrs().HardwareAddr.String() != info.MAC.String() {
		t.Errorf("eth0 MAC = %s, want %s", eth0.Attrs().HardwareAddr, info.MAC)
	}
	veth, err := host.Handle().LinkByName("vethafa00000000")
	if err != nil {
		t.Fatalf("no host veth: %v", err)
	}
	br, _ := host.Handle().LinkByName("br-af0000000000")
	if veth.Attrs().MasterIndex != br.Attrs().Index || veth.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host veth master %d flags %v, want up on bridge %d", veth.Attrs().MasterIndex, veth.Attrs().Flags, br.Attrs().Index)
	}
	oper, err := d.EndpointOperInfo(nid, eid)
	if err != nil || oper[netlabel.MacAddress].(net.HardwareAddr).String() != info.MAC.String() {
		t.Errorf("EndpointOperInfo = %v, %v", oper, err)
	}
	if err := d.Join(nid, eid, sb.Path(), ji, nil); !types.IsForbidden(err) {
		t.Errorf("second Join = %v, want Forbidden", err)
	}
}

func TestJoinInternal(t *testing.T) {
	d, _ := testDriver(t)
	const nid = "b000000000000001"
	createNetwork(t, d, nid, 108, false, map[string]interface{}{netlabel.Internal: true})
	_, _, ji := joinEndpoint(t, d, nid, "b0a0000000000002", "10.108.0.2/24")
	if !ji.NoGW || ji.GW4 != nil {
		t.Errorf("internal network join reported %+v, want no gateway", ji)
	}
}

func TestTrafficBetweenEndpoints(t *testing.T) {
	d, _ := testDriver(t)
	const nid = "b100000000000001"
	createNetwork(t, d, nid, 109, false, nil)
	sb1, _, _ := joinEndpoint(t, d, nid, "b1a0000000000002", "10.109.0.2/24")
	sb2, _, _ := joinEndpoint(t, d, nid, "b1b0000000000003", "10.109.0.3/24")
	drivertest.ListenTCP(t, sb2, "10.109.0.3:8080", "hello")
	got, err := drivertest.DialTCP(sb1, "10.109.0.3:8080", 5*time.Second)
	if err != nil || got != "hello" {
		t.Fatalf("dial 10.109.0.3:8080 from the first sandbox = %q, %v", got, err)
	}
}

func TestLeaveAndJoinAgain(t *testing.T) {
	d, host := testDriver(t)
	const nid = "b200000000000001"
	const eid = "b2a0000000000002"
	createNetwork(t, d, nid, 110, false, nil)
	server, _, _ := joinEndpoint(t, d, nid, "b2b0000000000003", "10.110.0.3/24")
	drivertest.ListenTCP(t, server, "10.110.0.3:8080", "hello")
	sb, info, ji := joinEndpoint(t, d, nid, eid, "10.110.0.2/24")

	// Leave as the controller does it: retire the sandbox side, then Leave.
	if err := sb.RetireInterface("eth0", "tomb0"); err != nil {
		t.Fatal(err)
	}
	if err := d.Leave(nid, eid); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	// The retired peer took the carrier off the host side: the bridge
	// forwards nothing to it.
	if l, err := host.Handle().LinkByName("vethb2a00000000"); err == nil && l.Attrs().OperState == netlink.OperUp {
		t.Error("host veth still operationally up after Leave")
	}
	// Join the same sandbox again: the old pair is still there.
	if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
		t.Fatalf("Join again: %v", err)
	}
	if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: info.Addr}); err != nil {
		t.Fatal(err)
	}
	got, err := drivertest.DialTCP(sb, "10.110.0.3:8080", 5*time.Second)
	if err != nil || got != "hello" {
		t.Fatalf("dial after join again = %q, %v", got, err)
	}
}

func TestReaperDeletesLeftVeth(t *testing.T) {
	d, host := testDriver(t)
	d.reaper.grace = 0
	const nid = "b300000000000001"
	const eid = "b3a0000000000002"
	createNetwork(t, d, nid, 111, false, nil)
	sb, _, _ := joinEndpoint(t, d, nid, eid, "10.111.0.2/24")
	if err := sb.RetireInterface("eth0", "tomb0"); err != nil {
		t.Fatal(err)
	}
	if err := d.Leave(nid, eid); err != nil {
		t.Fatal(err)
	}
	// Close drains the reaper: whatever it held is deleted when it returns.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, host.Handle(), "vethb3a00000000") {
		t.Error("left veth still exists after the reaper ran")
	}
	if linkExists(t, sb.Handle(), "tomb0") {
		t.Error("retired sandbox side still exists after the reaper ran")
	}
}

func TestRestoreEndpoint(t *testing.T) {
	d, host := testDriver(t)
	const nid = "b400000000000001"
	const eid = "b4a0000000000002"
	createNetwork(t, d, nid, 112, false, nil)
	sb, info, _ := joinEndpoint(t, d, nid, eid, "10.112.0.2/24")

	restart := func() *Driver {
		d2, err := New(Config{Firewall: d.fw, Host: host.Handle()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d2.Close() })
		v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.112.0.0/24", "10.112.0.1")}
		if err := d2.RestoreNetwork(nid, nil, v4, nil); err != nil {
			t.Fatal(err)
		}
		return d2
	}

	// The veth survived: nothing is recreated.
	d2 := restart()
	ji := joinInfo(sb, "eth0")
	if err := d2.RestoreEndpoint(nid, eid, info, sb.Path(), ji, nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if ji.Created {
		t.Error("RestoreEndpoint recreated a veth that exists")
	}

	// The veth is gone: it is recreated through jinfo.
	if err := sb.DeleteInterface("eth0"); err != nil {
		t.Fatal(err)
	}
	d3 := restart()
	ji = joinInfo(sb, "eth0")
	if err := d3.RestoreEndpoint(nid, eid, info, sb.Path(), ji, nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if !ji.Created || !linkExists(t, sb.Handle(), "eth0") || !linkExists(t, host.Handle(), "vethb4a00000000") {
		t.Errorf("veth not recreated (reported %+v)", ji)
	}
	if err := d3.Leave(nid, eid); err != nil {
		t.Fatalf("Leave after restore: %v", err)
	}
}

func TestCollectOrphans(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const keepNID = "b500000000000001"
	createNetwork(t, d, keepNID, 113, false, nil)
	sb, _, _ := joinEndpoint(t, d, keepNID, "b5a0000000000002", "10.113.0.2/24")
	_ = sb

	// Leftovers of a crashed run: a bridge with our name and mark, and a
	// veth with our name on it.
	orphanBr := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-b5ffffffffff"}}
	if err := h.LinkAdd(orphanBr); err != nil {
		t.Fatal(err)
	}
	markBridge(t, h, orphanBr, "b5ffffffffff0001")
	orphanVeth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethb5fffffffff", MasterIndex: orphanBr.Attrs().Index}, PeerName: "orphanpeer"}
	if err := h.LinkAdd(orphanVeth); err != nil {
		t.Fatal(err)
	}
	// Not ours by name.
	other := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "otherbr0"}}
	if err := h.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	defer h.LinkDel(other)

	if err := d.CollectOrphans(map[string]bool{keepNID: true}, map[string]bool{"b5a0000000000002": true}); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	for _, gone := range []string{"br-b5ffffffffff", "vethb5fffffffff", "orphanpeer"} {
		if linkExists(t, h, gone) {
			t.Errorf("orphan %s still exists", gone)
		}
	}
	for _, kept := range []string{"br-b50000000000", "vethb5a00000000", "otherbr0"} {
		if !linkExists(t, h, kept) {
			t.Errorf("%s was deleted", kept)
		}
	}
	if table := nftTable(t); !strings.Contains(table, "br-b50000000000") {
		t.Errorf("rules of the kept network are gone:\n%s", table)
	}
}
