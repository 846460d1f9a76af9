package vethdriver

import (
	"net"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	nid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	eid = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func newDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// addNetwork records a network without touching the kernel, for the
// tests of endpoint bookkeeping.
func addNetwork(d *Driver, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.networks[id] = &network{id: id, bridge: BridgeName(id), endpoints: map[string]*endpoint{}}
}

func TestNames(t *testing.T) {
	if got := BridgeName(nid); got != "vpb01234567" {
		t.Errorf("BridgeName = %s", got)
	}
	host, container := VethNames(eid)
	if host != "vphfedcba9" || container != "vpcfedcba9" {
		t.Errorf("VethNames = %s, %s", host, container)
	}
	if got := BridgeName("abc"); got != "vpbabc" {
		t.Errorf("BridgeName of a short ID = %s", got)
	}
}

func TestMACFromID(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{eid, nid, "a", "b", strings.Repeat("0", 64)} {
		mac := MACFromID(id)
		if len(mac) != 6 || mac[0]&0x02 == 0 || mac[0]&0x01 != 0 {
			t.Errorf("MACFromID(%s) = %s: not a locally administered unicast address", id, mac)
		}
		if again := MACFromID(id); again.String() != mac.String() {
			t.Errorf("MACFromID(%s) changed: %s then %s", id, mac, again)
		}
		if other, ok := seen[mac.String()]; ok {
			t.Errorf("IDs %s and %s share MAC %s", id, other, mac)
		}
		seen[mac.String()] = id
	}
}

// TestCreateEndpointMAC: the driver answers a MAC only when the library
// left it empty, never an address, and reports the MAC it keeps.
func TestCreateEndpointMAC(t *testing.T) {
	d := newDriver(t)
	addNetwork(d, nid)

	res, err := d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: &api.EndpointInterface{Address: "10.0.0.2/24"}})
	if err != nil {
		t.Fatal(err)
	}
	want := MACFromID(eid).String()
	if res.Interface == nil || *res.Interface != (api.EndpointInterface{MacAddress: want}) {
		t.Errorf("CreateEndpoint without a MAC answered %+v, want only MAC %s", res.Interface, want)
	}
	info, err := d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: eid})
	if err != nil || info.Value[MACAddressKey] != want {
		t.Errorf("EndpointInfo: %+v, %v", info, err)
	}

	given := "02:aa:bb:cc:dd:ee"
	res, err = d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: "e2", Interface: &api.EndpointInterface{Address: "10.0.0.3/24", MacAddress: given}})
	if err != nil || res.Interface != nil {
		t.Errorf("CreateEndpoint with a MAC answered %+v, %v; want nothing", res, err)
	}
	info, _ = d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: "e2"})
	if info.Value[MACAddressKey] != given {
		t.Errorf("EndpointInfo of e2: %+v", info)
	}

	res, err = d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: "e3"})
	if err != nil || res.Interface == nil || res.Interface.MacAddress != MACFromID("e3").String() {
		t.Errorf("CreateEndpoint without an interface: %+v, %v", res, err)
	}

	for _, tc := range []struct {
		req  api.CreateEndpointRequest
		want string
		ok   func(error) bool
	}{
		{api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid}, "already exists", isForbidden},
		{api.CreateEndpointRequest{NetworkID: "other", EndpointID: "e4"}, "network other not found", isNotFound},
		{api.CreateEndpointRequest{NetworkID: nid}, "no endpoint ID", isBadRequest},
		{api.CreateEndpointRequest{NetworkID: nid, EndpointID: "e5", Interface: &api.EndpointInterface{MacAddress: "zz"}}, `MAC "zz"`, isBadRequest},
	} {
		_, err := d.CreateEndpoint(&tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !tc.ok(err) {
			t.Errorf("CreateEndpoint(%+v): %v, want an error about %q", tc.req, err, tc.want)
		}
	}

	err = d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid})
	if err == nil || !isForbidden(err) || !strings.Contains(err.Error(), "3 endpoints still exist") {
		t.Errorf("DeleteNetwork with endpoints: %v", err)
	}
	for _, id := range []string{eid, "e2", "e3"} {
		if err := d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: id}); err != nil {
			t.Error(err)
		}
	}
	if _, err := d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: eid}); err == nil || !isNotFound(err) {
		t.Errorf("EndpointInfo of a deleted endpoint: %v", err)
	}
	if err := d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}); err == nil || !isNotFound(err) {
		t.Errorf("DeleteEndpoint twice: %v", err)
	}
}

func TestNoOps(t *testing.T) {
	d := newDriver(t)
	c, err := d.GetCapabilities()
	if err != nil || c.Scope != api.LocalScope || c.ConnectivityScope != api.LocalScope {
		t.Errorf("GetCapabilities: %+v, %v", c, err)
	}
	if _, err := d.AllocateNetwork(&api.AllocateNetworkRequest{NetworkID: nid}); err != nil {
		t.Error(err)
	}
	for _, err := range []error{
		d.FreeNetwork(&api.FreeNetworkRequest{NetworkID: nid}),
		d.DiscoverNew(&api.DiscoveryNotification{DiscoveryType: 1}),
		d.DiscoverDelete(&api.DiscoveryNotification{DiscoveryType: 1}),
		d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid}),
		d.RevokeExternalConnectivity(&api.RevokeExternalConnectivityRequest{NetworkID: nid, EndpointID: eid}),
	} {
		if err != nil {
			t.Error(err)
		}
	}
	if got := d.HandlerTime().Stats().Calls; got != 7 {
		t.Errorf("HandlerTime counted %d calls, want 7", got)
	}
	// Refused before any kernel work.
	for _, req := range []*api.CreateNetworkRequest{
		{},
		{NetworkID: nid, IPv4Data: []*api.IPAMData{{Pool: "10.0.0.0/24", Gateway: "10.0.0.1"}}},
		{NetworkID: nid, IPv4Data: []*api.IPAMData{{Pool: "fd00::/64", Gateway: "fd00::1/64"}}},
	} {
		if err := d.CreateNetwork(req); err == nil || !isBadRequest(err) {
			t.Errorf("CreateNetwork(%+v): %v, want a bad request", req, err)
		}
	}
	if _, err := d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid}); err == nil || !isNotFound(err) {
		t.Errorf("Join of an unknown endpoint: %v", err)
	}
	if err := d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eid}); err == nil || !isNotFound(err) {
		t.Errorf("Leave of an unknown endpoint: %v", err)
	}
}

func isForbidden(err error) bool  { _, ok := err.(types.ForbiddenError); return ok }
func isNotFound(err error) bool   { _, ok := err.(types.NotFoundError); return ok }
func isBadRequest(err error) bool { _, ok := err.(types.BadRequestError); return ok }

// mac parses a MAC for comparisons.
func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
