package drivertest

import (
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
)

// EndpointDriver is the part of a driver that CreateEndpoints and JoinNew
// use.
type EndpointDriver interface {
	// CreateEndpoint is driverapi.Driver's.
	CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, options map[string]interface{}) error
	// Join is driverapi.Driver's.
	Join(nid, eid string, sboxKey string, jinfo driverapi.JoinInfo, options map[string]interface{}) error
}

// CreateEndpoints creates n endpoints on network nid of d, for a
// benchmark: endpoint i has ID "<i in 11 hex digits>" followed by zeros
// and the address number i+2 of the /16 net16 ("10.120" gives
// 10.120.0.2/16, 10.120.0.3/16, ...). It returns the IDs.
func CreateEndpoints(tb testing.TB, d EndpointDriver, nid, net16 string, n int) []string {
	tb.Helper()
	eids := make([]string, n)
	for i := range eids {
		eids[i] = fmt.Sprintf("%011x%053x", i, 0)
		ip := fmt.Sprintf("%s.%d.%d/16", net16, (i+2)/256, (i+2)%256)
		if err := d.CreateEndpoint(nid, eids[i], &IfInfo{Addr: CIDR(tb, ip)}, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return eids
}

// JoinNew creates endpoint eid with address addr (a CIDR) on network nid
// of d, joins it to a new sandbox (NewNamespace) as eth0, and configures
// eth0 there as the controller would: the address and the static routes
// the driver reported. The driver reports through ji (nil for a default
// JoinInfo), whose Refuse settings stay and whose NS and IfName JoinNew
// sets. It returns the sandbox and what the driver reported.
func JoinNew(tb testing.TB, d EndpointDriver, nid, eid, addr string, ji *JoinInfo) (*osl.Namespace, *IfInfo, *JoinInfo) {
	tb.Helper()
	info := &IfInfo{Addr: CIDR(tb, addr)}
	if err := d.CreateEndpoint(nid, eid, info, nil); err != nil {
		tb.Fatalf("CreateEndpoint: %v", err)
	}
	sb := NewNamespace(tb)
	if ji == nil {
		ji = &JoinInfo{}
	}
	ji.NS, ji.IfName = sb, "eth0"
	if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
		tb.Fatalf("Join: %v", err)
	}
	if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: info.Addr, Routes: ji.OSLRoutes()}); err != nil {
		tb.Fatalf("ConfigureInterface: %v", err)
	}
	return sb, info, ji
}
