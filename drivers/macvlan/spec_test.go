package macvlan

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
)

// TestLinkSpec checks the netlink request Join builds for every mode,
// created in the sandbox and (the slow path) in the controller's
// namespace, without the kernel.
func TestLinkSpec(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 1, 2, 3, 4}
	for mode, want := range map[string]netlink.MacvlanMode{
		ModeBridge: netlink.MACVLAN_MODE_BRIDGE, ModePrivate: netlink.MACVLAN_MODE_PRIVATE,
		ModeVEPA: netlink.MACVLAN_MODE_VEPA, ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
	} {
		for _, nsFd := range []int{7, -1} {
			l := linkSpec{name: "eth1", parentIndex: 42, mode: mode, mac: mac, mtu: 1400, nsFd: nsFd}.link()
			a := l.Attrs()
			if l.Type() != "macvlan" || l.Mode != want || a.Name != "eth1" || a.ParentIndex != 42 || a.MTU != 1400 || a.HardwareAddr.String() != mac.String() {
				t.Errorf("mode %s: %+v (mode %v), want macvlan eth1 on 42, MTU 1400, %s, mode %v", mode, a, l.Mode, mac, want)
			}
			switch ns := a.Namespace.(type) {
			case netlink.NsFd:
				if nsFd < 0 || int(ns) != nsFd {
					t.Errorf("mode %s nsFd %d: namespace %v", mode, nsFd, ns)
				}
			case nil:
				if nsFd >= 0 {
					t.Errorf("mode %s nsFd %d: no namespace in the request", mode, nsFd)
				}
			default:
				t.Errorf("mode %s: namespace %T", mode, ns)
			}
		}
	}
	if len(linkModes) != 4 {
		t.Errorf("%d modes, want 4", len(linkModes))
	}
}

func TestParseNetworkConfig(t *testing.T) {
	c, err := parseNetworkConfig("n1", drivertest.GenericData(ParentOption, "eth0", "com.docker.network.some_label", "x"), nil, nil)
	if err != nil || c.mode != ModeBridge || c.parent != "eth0" || c.internal || c.mtu != 0 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = parseNetworkConfig("n1", map[string]interface{}{"com.docker.network.generic": map[string]interface{}{ModeOption: "vepa", MTUOption: 1400}}, nil, nil)
	if err != nil || c.mode != ModeVEPA || c.mtu != 1400 || !c.internal {
		t.Errorf("vepa, MTU 1400, no parent: %+v, %v", c, err)
	}
}

func TestEndpointMAC(t *testing.T) {
	if got := endpointMAC(&net.IPNet{IP: net.ParseIP("192.168.90.11")}).String(); got != "02:42:c0:a8:5a:0b" {
		t.Errorf("from 192.168.90.11: %s", got)
	}
	for range 20 {
		m := endpointMAC(nil)
		if len(m) != 6 || m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("random MAC %s is not locally administered unicast", m)
		}
	}
}
