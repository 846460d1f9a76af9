package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// TestRestart: a new driver on a host (a restarted controller) adopts the
// network's namespace and devices with the peers programmed in them, so
// traffic goes on without AddPeer; it adopts a joined endpoint's veth and
// recreates one that is gone; CollectOrphans then removes the namespace of
// a network that was not restored (its VNI free at once) and the veth of
// an endpoint that is not kept, and leaves the rest.
func TestRestart(t *testing.T) {
	h1, h2 := twoHosts(t, 4100, "10.20.0.0/24")
	h1.createNet(t, nid2, 4101, "10.21.0.0/24") // not restored
	c1 := h1.join(t, nid1, eid1, "10.20.0.11/24")
	c2 := h2.join(t, nid1, eid2, "10.20.0.12/24")
	gone := h1.join(t, nid1, eid3, "10.20.0.13/24") // its veth vanishes
	addPeers(t, nid1, []*testHost{h1, h2}, []*container{c1, c2})
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Fatalf("before: %v", err)
	}
	before := h1.nsLinks(t, nid1)
	// An endpoint left without a Leave (a crash): its veth is an orphan.
	if err := h1.d.CreateEndpoint(nid1, "e4"+eid1[2:], &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.20.0.14/24")}, nil); err != nil {
		t.Fatal(err)
	}
	orphanSb := drivertest.NewNamespace(t)
	if err := h1.d.Join(nid1, "e4"+eid1[2:], orphanSb.Path(), joinInfo(orphanSb, "eth0"), nil); err != nil {
		t.Fatal(err)
	}
	// A segment the network no longer has (its configuration changed).
	ns, err := osl.OpenNamespace(filepath.Join(h1.nsDir, nid1))
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Handle().LinkAdd(bridgeSpec{name: "ov-00ffff", mark: Mark + nid1}.link()); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	// The veth of endpoint 3 is deleted behind the driver's back.
	if err := gone.ns.DeleteInterface("eth0"); err != nil {
		t.Fatal(err)
	}

	// The controller restarts.
	d := h1.newDriver(t)
	if err := d.RestoreNetwork(nid1, vniOpts("4100"), v4Data(t, "10.20.0.0/24"), nil); err != nil {
		t.Fatalf("RestoreNetwork: %v", err)
	}
	for _, c := range []*container{c1, gone} {
		ifi := &drivertest.IfInfo{Addr: c.addr, MAC: c.mac}
		if err := d.RestoreEndpoint(nid1, c.eid, ifi, c.ns.Path(), joinInfo(c.ns, "eth0"), nil); err != nil {
			t.Fatalf("RestoreEndpoint %s: %v", c.eid, err)
		}
	}
	if err := d.CollectOrphans(map[string]bool{nid1: true}, map[string]bool{eid1: true, eid3: true}); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	after := h1.nsLinks(t, nid1)
	for _, name := range []string{"ov-001004", "vx-001004", "veth" + eid1[:11]} {
		if before[name] == nil || after[name] == nil || before[name].Attrs().Index != after[name].Attrs().Index {
			t.Errorf("%s not adopted (before %v, after %v)", name, before[name], after[name])
		}
	}
	if l := after["veth"+eid3[:11]]; l == nil || l.Attrs().MasterIndex != after["ov-001004"].Attrs().Index {
		t.Errorf("the veth of the endpoint whose veth was gone was not recreated on the bridge: %v", l)
	}
	if l := after["ov-00ffff"]; l != nil {
		t.Errorf("the bridge of a segment the network no longer has is still there: %v", l)
	}
	if l := after["veth"+"e4"+eid1[2:11]]; l != nil {
		t.Errorf("the veth of an endpoint not kept was not collected: %v", l)
	}
	if _, err := os.Lstat(filepath.Join(h1.nsDir, nid2)); !os.IsNotExist(err) {
		t.Errorf("the namespace of a network not restored is still there: %v", err)
	}
	// Traffic goes on with the peers the kernel kept.
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	peers, err := d.Peers(nid1)
	if want := []Peer{{IP: c2.addr.IP, MAC: c2.mac, VTEP: h2.vtep}}; err != nil || fmt.Sprint(peers) != fmt.Sprint(want) {
		t.Errorf("Peers after the restart = %v, %v; want %v (no endpoint ID: the kernel does not keep it)", peers, err, want)
	}
	// The VNI of the collected network is free at once.
	if err := d.CreateNetwork(nid2, vniOpts("4101"), v4Data(t, "10.21.0.0/24"), nil); err != nil {
		t.Errorf("a new network with the VNI of a collected one: %v", err)
	}
	// A joined restored endpoint is joined.
	if err := d.Join(nid1, eid1, c1.ns.Path(), joinInfo(c1.ns, "eth1"), nil); !types.IsForbidden(err) {
		t.Errorf("Join of a restored joined endpoint = %v, want Forbidden", err)
	}
	// The restored endpoint leaves and deletes as any.
	if err := d.Leave(nid1, eid1); err != nil {
		t.Error(err)
	}
	if err := d.DeleteEndpoint(nid1, eid1); err != nil {
		t.Error(err)
	}
}

// TestRestoreRecreates: restoring a network whose namespace is gone
// creates it again; restoring one whose VXLAN device is gone or
// different recreates the device; the endpoints' veths stay on the
// bridge.
func TestRestoreRecreates(t *testing.T) {
	h1, h2 := twoHosts(t, 4200, "10.30.0.0/24")
	c1 := h1.join(t, nid1, eid1, "10.30.0.11/24")
	c2 := h2.join(t, nid1, eid2, "10.30.0.12/24")
	addPeers(t, nid1, []*testHost{h1, h2}, []*container{c1, c2})

	// Host 1: the VXLAN device is gone.
	ns, err := osl.OpenNamespace(filepath.Join(h1.nsDir, nid1))
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DeleteInterface("vx-001068"); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	d1 := h1.newDriver(t)
	if err := d1.RestoreNetwork(nid1, vniOpts("4200"), v4Data(t, "10.30.0.0/24"), nil); err != nil {
		t.Fatalf("RestoreNetwork without its VXLAN device: %v", err)
	}
	if err := d1.RestoreEndpoint(nid1, eid1, &drivertest.IfInfo{Addr: c1.addr, MAC: c1.mac}, c1.ns.Path(), joinInfo(c1.ns, "eth0"), nil); err != nil {
		t.Fatal(err)
	}
	if l := h1.nsLinks(t, nid1)["vx-001068"]; l == nil {
		t.Fatal("VXLAN device not recreated")
	}
	// The peers went with the device: the controller feeds them again.
	if err := d1.AddPeer(nid1, c2.peer(h2)); err != nil {
		t.Fatal(err)
	}
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Errorf("after recreating the VXLAN device: %v", err)
	}

	// Host 2: the whole namespace is gone (the veth of its endpoint too),
	// as after a reboot. Its VXLAN device is deleted first: the kernel
	// frees a namespace, and with it the device's VNI, asynchronously.
	_ = h2.d.Close()
	ns, err = osl.OpenNamespace(filepath.Join(h2.nsDir, nid1))
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DeleteInterface("vx-001068"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Destroy(); err != nil {
		t.Fatal(err)
	}
	d2 := h2.newDriver(t)
	if err := d2.RestoreNetwork(nid1, vniOpts("4200"), v4Data(t, "10.30.0.0/24"), nil); err != nil {
		t.Fatalf("RestoreNetwork without its namespace: %v", err)
	}
	ji := joinInfo(c2.ns, "eth0")
	if err := c2.ns.DeleteInterface("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := d2.RestoreEndpoint(nid1, eid2, &drivertest.IfInfo{Addr: c2.addr, MAC: c2.mac}, c2.ns.Path(), ji, nil); err != nil {
		t.Fatal(err)
	}
	if !ji.Created {
		t.Error("the endpoint's veth was not made again")
	}
	if err := c2.ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: c2.addr}); err != nil {
		t.Fatal(err)
	}
	if err := d2.AddPeer(nid1, c1.peer(h1)); err != nil {
		t.Fatal(err)
	}
	if err := tcpCheck(t, c2, c1); err != nil {
		t.Errorf("after recreating the namespace: %v", err)
	}
}
