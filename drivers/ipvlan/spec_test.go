package ipvlan

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/types"
)

// TestLinkSpec checks the netlink request Join builds for every mode and
// flag, created in the sandbox and in the controller's namespace, without
// the kernel: an ipvlan link of the mode and flag, on the parent, with the
// MTU, and no MAC of its own.
func TestLinkSpec(t *testing.T) {
	modes := map[string]netlink.IPVlanMode{ModeL2: netlink.IPVLAN_MODE_L2, ModeL3: netlink.IPVLAN_MODE_L3, ModeL3S: netlink.IPVLAN_MODE_L3S}
	flags := map[string]netlink.IPVlanFlag{FlagBridge: netlink.IPVLAN_FLAG_BRIDGE, FlagPrivate: netlink.IPVLAN_FLAG_PRIVATE, FlagVEPA: netlink.IPVLAN_FLAG_VEPA}
	for mode, wantMode := range modes {
		for flag, wantFlag := range flags {
			for _, nsFd := range []int{7, -1} {
				l := linkSpec{name: "eth1", parentIndex: 42, mode: mode, flag: flag, mtu: 1400, nsFd: nsFd}.link()
				a := l.Attrs()
				if l.Type() != "ipvlan" || l.Mode != wantMode || l.Flag != wantFlag || a.Name != "eth1" || a.ParentIndex != 42 || a.MTU != 1400 {
					t.Errorf("%s/%s: %+v (mode %v flag %v), want ipvlan eth1 on 42, MTU 1400, mode %v flag %v", mode, flag, a, l.Mode, l.Flag, wantMode, wantFlag)
				}
				if a.HardwareAddr != nil {
					t.Errorf("%s/%s: MAC %s in the request; an ipvlan link has its parent's", mode, flag, a.HardwareAddr)
				}
				switch ns := a.Namespace.(type) {
				case netlink.NsFd:
					if nsFd < 0 || int(ns) != nsFd {
						t.Errorf("%s/%s nsFd %d: namespace %v", mode, flag, nsFd, ns)
					}
				case nil:
					if nsFd >= 0 {
						t.Errorf("%s/%s nsFd %d: no namespace in the request", mode, flag, nsFd)
					}
				default:
					t.Errorf("%s/%s: namespace %T", mode, flag, ns)
				}
			}
		}
	}
	if len(linkModes) != len(modes) || len(linkFlags) != len(flags) {
		t.Errorf("%d modes and %d flags, want %d and %d", len(linkModes), len(linkFlags), len(modes), len(flags))
	}
}

func TestParseNetworkConfig(t *testing.T) {
	c, err := parseNetworkConfig("n1", drivertest.GenericData(ParentOption, "eth0", "com.docker.network.some_label", "x"), nil, nil)
	if err != nil || c.mode != ModeL2 || c.flag != FlagBridge || c.parent != "eth0" || c.internal || c.mtu != 0 || c.routed() {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = parseNetworkConfig("n1", map[string]interface{}{"com.docker.network.generic": map[string]interface{}{ModeOption: "l3s", FlagOption: "vepa", MTUOption: 1400}}, nil, nil)
	if err != nil || c.mode != ModeL3S || c.flag != FlagVEPA || c.mtu != 1400 || !c.internal || !c.routed() {
		t.Errorf("l3s, vepa, MTU 1400, no parent: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		kv   []string
		want []string
	}{
		{[]string{ModeOption, "l4"}, []string{ModeOption, `"l4"`, "l3s"}},
		{[]string{ModeOption, "L3"}, []string{ModeOption, `"L3"`}},
		{[]string{FlagOption, "passthru"}, []string{FlagOption, `"passthru"`, "vepa"}},
		{[]string{"macvlan_mode", "bridge"}, []string{"macvlan_mode"}},
		{[]string{MTUOption, "20"}, []string{"20"}},
	} {
		_, err := parseNetworkConfig("n1", drivertest.GenericData(append([]string{ParentOption, "eth0"}, tc.kv...)...), nil, nil)
		if !types.IsBadRequest(err) {
			t.Errorf("%v: %v, want BadRequest", tc.kv, err)
			continue
		}
		for _, w := range append(tc.want, "n1") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not name %s", tc.kv, err, w)
			}
		}
	}
}

// TestReport checks what Join reports for each mode, without the kernel:
// l2 the gateways; l3 and l3s no gateway but default routes through the
// interface (IPv6 only for an endpoint with IPv6); internal nothing.
func TestReport(t *testing.T) {
	gw4, gw6 := net.ParseIP("192.168.90.1"), net.ParseIP("fd00::1")
	for _, tc := range []struct {
		mode     string
		internal bool
		v6       bool
		gw       bool
		routes   []string
	}{
		{ModeL2, false, true, true, nil},
		{ModeL3, false, false, false, []string{"0.0.0.0/0"}},
		{ModeL3, false, true, false, []string{"0.0.0.0/0", "::/0"}},
		{ModeL3S, false, true, false, []string{"0.0.0.0/0", "::/0"}},
		{ModeL2, true, true, false, nil},
		{ModeL3, true, true, false, nil},
	} {
		c := networkConfig{mode: tc.mode, flag: FlagBridge, internal: tc.internal, gw4: gw4, gw6: gw6}
		ji := &drivertest.JoinInfo{IfName: "eth0"}
		if err := report(c, tc.v6, ji); err != nil {
			t.Fatal(err)
		}
		name := tc.mode
		if tc.internal {
			name += " internal"
		}
		if !ji.Created {
			t.Errorf("%s: the interface was not reported created in the sandbox", name)
		}
		if tc.gw != (ji.GW4 != nil) || tc.gw != (ji.GW6 != nil) || ji.NoGW == tc.gw {
			t.Errorf("%s: gateways %v %v (disabled %v), want gateways %v", name, ji.GW4, ji.GW6, ji.NoGW, tc.gw)
		}
		var got []string
		for _, r := range ji.Routes {
			if r.Type != types.CONNECTED || r.NextHop != nil {
				t.Errorf("%s: route %+v, want connected, without next hop", name, r)
			}
			got = append(got, r.Dst)
		}
		if strings.Join(got, " ") != strings.Join(tc.routes, " ") {
			t.Errorf("%s: routes %v, want %v", name, got, tc.routes)
		}
	}
}

// TestIPAMRefused checks the IPAM data checks.
func TestIPAMRefused(t *testing.T) {
	v6opts := map[string]interface{}{"com.docker.network.enable_ipv6": true, "com.docker.network.generic": map[string]string{ParentOption: "eth0"}}
	for name, tc := range map[string]struct {
		opts   map[string]interface{}
		v4, v6 []driverapi.IPAMData
	}{
		"no pool":           {drivertest.GenericData(), []driverapi.IPAMData{{}}, nil},
		"IPv6 pool as IPv4": {drivertest.GenericData(), []driverapi.IPAMData{drivertest.IPAMData(t, "fd00::/64", "")}, nil},
		"gateway outside":   {drivertest.GenericData(), []driverapi.IPAMData{drivertest.IPAMData(t, "10.0.0.0/24", "10.0.1.1")}, nil},
		"IPv4 pool as IPv6": {v6opts, nil, []driverapi.IPAMData{drivertest.IPAMData(t, "10.0.0.0/24", "")}},
	} {
		if _, err := parseNetworkConfig("n1", tc.opts, tc.v4, tc.v6); !types.IsBadRequest(err) {
			t.Errorf("%s: %v, want BadRequest", name, err)
		}
	}
}
