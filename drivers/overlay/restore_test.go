package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// TestRestart: a new driver on a host (a restarted controller) adopts the
// network's namespace and VXLAN device with the peers programmed in it,
// so traffic goes on without AddPeer and a joined endpoint's link in its
// sandbox is untouched; devices the network does not have (another
// segment's, an older build's bridge and veth) are deleted; CollectOrphans
// then removes the namespace of a network that was not restored (its VNI
// free at once) and leaves the rest.
func TestRestart(t *testing.T) {
	h1, h2 := twoHosts(t, 4100, "10.20.0.0/24")
	h1.createNet(t, nid2, 4101, "10.21.0.0/24") // not restored
	c1 := h1.join(t, nid1, eid1, "10.20.0.11/24")
	c2 := h2.join(t, nid1, eid2, "10.20.0.12/24")
	addPeers(t, nid1, []*testHost{h1, h2}, []*container{c1, c2})
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Fatalf("before: %v", err)
	}
	vxBefore := h1.nsLinks(t, nid1)["vx-001004"]
	eth0Before, err := c1.ns.Handle().LinkByName("eth0")
	if err != nil || vxBefore == nil {
		t.Fatal(vxBefore, err)
	}
	// Devices the network does not have: another segment's VXLAN device,
	// a bridge with a veth on it.
	ns, err := osl.OpenNamespace(filepath.Join(h1.nsDir, nid1))
	if err != nil {
		t.Fatal(err)
	}
	stray := vxlanSpec{name: "vx-00ffff", vni: 0xffff, port: DefaultVXLANPort, local: h1.vtep, mark: Mark + nid1, nsFd: ns.Fd()}
	if err := h1.ns.Handle().LinkAdd(stray.link()); err != nil {
		t.Fatal(err)
	}
	if err := ns.Handle().LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ov-001004"}}); err != nil {
		t.Fatal(err)
	}
	br, err := ns.Handle().LinkByName("ov-001004")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.AddVeth(osl.Veth{Name: "veth" + eid1[:11], Master: br.Attrs().Index, PeerName: "old0", PeerNS: ns.Fd()}); err != nil {
		t.Fatal(err)
	}
	ns.Close()

	// The controller restarts.
	d := h1.newDriver(t)
	if err := d.RestoreNetwork(nid1, vniOpts("4100"), v4Data(t, "10.20.0.0/24"), nil); err != nil {
		t.Fatalf("RestoreNetwork: %v", err)
	}
	ji := joinInfo(c1.ns, "eth0")
	if err := d.RestoreEndpoint(nid1, c1.eid, &drivertest.IfInfo{Addr: c1.addr, MAC: c1.mac}, c1.ns.Path(), ji, nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if ji.Created {
		t.Error("RestoreEndpoint made a link; the controller asks Join for that")
	}
	if err := d.CollectOrphans(map[string]bool{nid1: true}, map[string]bool{eid1: true}); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	after := h1.nsLinks(t, nid1)
	if l := after["vx-001004"]; l == nil || l.Attrs().Index != vxBefore.Attrs().Index {
		t.Errorf("the VXLAN device was not adopted (before %v, after %v)", vxBefore, l)
	}
	if len(after) != 2 {
		t.Errorf("namespace links after the restart %v: want lo and vx-001004", after)
	}
	if l, err := c1.ns.Handle().LinkByName("eth0"); err != nil || l.Attrs().Index != eth0Before.Attrs().Index {
		t.Errorf("the container's link after the restart: %v, %v; want the one it had", l, err)
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
	// The VNIs of the collected network and of the deleted device are
	// free at once.
	if err := d.CreateNetwork(nid2, vniOpts("4101,65535"), v4Data(t, "10.21.0.0/24", "10.22.0.0/24"), nil); err != nil {
		t.Errorf("a new network with the VNIs of a collected network and a deleted device: %v", err)
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

// restoreAsController restores c's joined endpoint on d as the controller
// does: RestoreEndpoint, then, when the sandbox has lost the link, Leave
// and Join again and configure the address. It reports whether the link
// was made again.
func restoreAsController(t *testing.T, d *Driver, c *container) bool {
	t.Helper()
	if err := d.RestoreEndpoint(nid1, c.eid, &drivertest.IfInfo{Addr: c.addr, MAC: c.mac}, c.ns.Path(), joinInfo(c.ns, "eth0"), nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if _, err := c.ns.Handle().LinkByName("eth0"); err == nil {
		return false
	}
	if err := d.Leave(nid1, c.eid); err != nil {
		t.Fatal(err)
	}
	ji := joinInfo(c.ns, "eth0")
	if err := d.Join(nid1, c.eid, c.ns.Path(), ji, nil); err != nil || !ji.Created {
		t.Fatalf("joining again: %v (created %v)", err, ji.Created)
	}
	if err := c.ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: c.addr}); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestRestoreRecreates: restoring a network whose namespace is gone
// creates it again; restoring one whose VXLAN device is gone recreates
// the device. Either takes the endpoints' links in their sandboxes, and
// the controller has them made again.
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
	if !restoreAsController(t, d1, c1) {
		t.Error("the container kept a link whose VXLAN device is gone")
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

	// Host 2: the whole namespace is gone, as after a reboot. Its VXLAN
	// device is deleted first: the kernel frees a namespace, and with it
	// the device's VNI, asynchronously.
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
	if !restoreAsController(t, d2, c2) {
		t.Error("the container kept a link whose namespace is gone")
	}
	if err := d2.AddPeer(nid1, c1.peer(h1)); err != nil {
		t.Fatal(err)
	}
	if err := tcpCheck(t, c2, c1); err != nil {
		t.Errorf("after recreating the namespace: %v", err)
	}
}
