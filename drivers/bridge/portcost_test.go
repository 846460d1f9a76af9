package bridge

import (
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
)

// TestPortsAddNoPerPortState checks the choices that keep a join from
// costing O(ports) in the kernel: the bridge does no multicast snooping
// (created or adopted), host-side veths share the bridge's address, so
// the bridge holds one local fdb entry, not one per port, and have IPv6
// off, so the host has no IPv6 route per port.
func TestPortsAddNoPerPortState(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const nid = "d000000000000001"
	createNetwork(t, d, nid, 130, false, nil)
	joinEndpoint(t, d, nid, "d0a0000000000000000000000000000000000000000000000000000000000001", "10.130.0.2/24")
	joinEndpoint(t, d, nid, "d0b0000000000000000000000000000000000000000000000000000000000002", "10.130.0.3/24")

	snooping := func() bool {
		t.Helper()
		l, err := h.LinkByName("br-d00000000000")
		if err != nil {
			t.Fatal(err)
		}
		br, ok := l.(*netlink.Bridge)
		if !ok || br.MulticastSnooping == nil {
			t.Fatalf("bridge attributes %+v", l)
		}
		return *br.MulticastSnooping
	}
	if snooping() {
		t.Error("multicast snooping is on for a new bridge")
	}
	br, _ := h.LinkByName("br-d00000000000")
	for _, name := range []string{"vethd0a00000000", "vethd0b00000000"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().HardwareAddr.String() != br.Attrs().HardwareAddr.String() {
			t.Errorf("%s has address %s, bridge %s", name, l.Attrs().HardwareAddr, br.Attrs().HardwareAddr)
		}
		// No IPv6 on the port, so no multicast route per port either.
		if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"); err != nil || strings.TrimSpace(string(v)) != "1" {
			t.Errorf("%s: disable_ipv6 = %q, %v; want 1", name, v, err)
		}
		// The bridge's own entry covers the port: none on the port.
		fdb, err := h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fdb {
			if e.State&netlink.NUD_PERMANENT != 0 && e.HardwareAddr.String() == br.Attrs().HardwareAddr.String() {
				t.Errorf("%s has a local fdb entry %s", name, e.HardwareAddr)
			}
		}
	}

	// A restarted driver adopts the bridge and turns snooping off again.
	d.mu.Lock()
	n := d.networks[nid]
	d.mu.Unlock()
	if err := d.setSnooping(n, true); err != nil {
		t.Fatal(err)
	}
	d2, err := New(Config{Firewall: d.fw, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.130.0.0/24", "10.130.0.1")}
	if err := d2.RestoreNetwork(nid, nil, v4, nil); err != nil {
		t.Fatalf("RestoreNetwork on restart: %v", err)
	}
	if snooping() {
		t.Error("multicast snooping is on for an adopted bridge")
	}
}
