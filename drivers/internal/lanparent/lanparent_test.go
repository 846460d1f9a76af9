package lanparent

import (
	"testing"

	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

func TestParseVLAN(t *testing.T) {
	tests := []struct {
		name   string
		base   string
		id     int
		ok     bool
		badReq bool
	}{
		{"eth0", "", 0, false, false},
		{"eth0.10", "eth0", 10, true, false},
		{"eth0.1", "eth0", 1, true, false},
		{"eth0.4094", "eth0", 4094, true, false},
		{"bond0.100.20", "bond0.100", 20, true, false},
		{"eth0.0", "", 0, false, true},
		{"eth0.4095", "", 0, false, true},
		{"eth0.x", "", 0, false, true},
		{"eth0.", "", 0, false, true},
		{".10", "", 0, false, true},
		{"eth0.+10", "", 0, false, true},
		{"eth0.-1", "", 0, false, true},
	}
	for _, tc := range tests {
		base, id, ok, err := ParseVLAN(tc.name)
		if base != tc.base || id != tc.id || ok != tc.ok || (err != nil) != tc.badReq || (err != nil && !types.IsBadRequest(err)) {
			t.Errorf("ParseVLAN(%q) = %q, %d, %v, %v", tc.name, base, id, ok, err)
		}
	}
}

// TestVLANLink checks the netlink request for every VLAN ID's kind of
// value, without the kernel.
func TestVLANLink(t *testing.T) {
	for _, id := range []int{1, 10, 100, 4094} {
		l := VLANLink("eth0.x", 3, id, "netkit-test")
		if l.Type() != "vlan" || l.VlanId != id || l.Attrs().ParentIndex != 3 || l.Attrs().Name != "eth0.x" || l.Attrs().Alias != "netkit-test" {
			t.Errorf("VLAN %d: %+v", id, l)
		}
	}
	if d := DummyLink("dm-1", 1400, "netkit-test"); d.Type() != "dummy" || d.MTU != 1400 || d.Alias != "netkit-test" {
		t.Errorf("dummy: %+v", d)
	}
	if b := PortlessBridgeLink("dm-1", 0, "netkit-test"); b.Type() != "bridge" || b.Alias != "netkit-test" {
		t.Errorf("bridge: %+v", b)
	}
}

func TestDriverOptions(t *testing.T) {
	o := map[string]interface{}{netlabel.GenericData: map[string]interface{}{"parent": "eth0", "m": 3, netlabel.Prefix + ".label": "x"}}
	got, err := DriverOptions("macvlan", o, "parent", "m")
	if err != nil || got["parent"] != "eth0" || got["m"] != "3" {
		t.Errorf("got %v, %v", got, err)
	}
	o = map[string]interface{}{netlabel.GenericData: map[string]string{"prent": "eth0"}}
	if _, err := DriverOptions("macvlan", o, "parent"); !types.IsBadRequest(err) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"", "0123456789abcdef", "a/b", "a b", "a%d", "..", "a:b"} {
		if ValidName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	if err := ValidName("eth0.10"); err != nil {
		t.Error(err)
	}
}
