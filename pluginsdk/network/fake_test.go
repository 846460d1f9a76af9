package network_test

import (
	"fmt"
	"sync"

	"github.com/netkit/libnetwork/pluginsdk/network"
)

// call is one request a fakeDriver received.
type call struct {
	Method string
	Req    any
}

// fakeDriver records what it receives and answers fixed values; the
// method named by fail returns an error instead, and with nilAnswers the
// methods that answer a value answer nil.
type fakeDriver struct {
	mu         sync.Mutex
	got        []call
	fail       string
	nilAnswers bool
}

var _ network.Driver = (*fakeDriver)(nil)

// The fixed answers, every field set.
var (
	capsAnswer     = network.CapabilitiesResponse{Scope: network.GlobalScope, ConnectivityScope: network.LocalScope}
	allocateAnswer = network.AllocateNetworkResponse{Options: map[string]string{"vni": "4097", "html": "<a&b>"}}
	endpointAnswer = network.CreateEndpointResponse{Interface: &network.EndpointInterface{
		Address: "10.0.0.2/24", AddressIPv6: "fd00::2/64", MacAddress: "02:42:0a:00:00:02"}}
	infoAnswer = network.InfoResponse{Value: map[string]string{"vlan": "7", "mode": "bridge"}}
	joinAnswer = network.JoinResponse{
		InterfaceName: network.InterfaceName{SrcName: "veth1234", DstPrefix: "eth"},
		Gateway:       "10.0.0.1", GatewayIPv6: "fd00::1",
		StaticRoutes: []*network.StaticRoute{
			{Destination: "192.0.2.0/24", RouteType: 1, NextHop: "10.0.0.254"},
			{Destination: "198.51.100.0/24", RouteType: 1, NextHop: "10.0.0.253"},
		},
		DisableGatewayService: true,
	}
)

// record keeps req and returns the error of a failing method.
func (d *fakeDriver) record(method string, req any) (nilAnswer bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, call{method, req})
	if d.fail == method {
		return false, fmt.Errorf(`%s refused: network "n1" <busy> & locked`, method)
	}
	return d.nilAnswers, nil
}

func (d *fakeDriver) set(fail string, nilAnswers bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail, d.nilAnswers = fail, nilAnswers
}

func (d *fakeDriver) calls() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]call(nil), d.got...)
}

func answer[T any](v T, nilAnswer bool, err error) (*T, error) {
	if err != nil || nilAnswer {
		return nil, err
	}
	return &v, nil
}

func (d *fakeDriver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	nilAnswer, err := d.record("GetCapabilities", nil)
	return answer(capsAnswer, nilAnswer, err)
}

func (d *fakeDriver) CreateNetwork(req *network.CreateNetworkRequest) error {
	_, err := d.record("CreateNetwork", req)
	return err
}

func (d *fakeDriver) AllocateNetwork(req *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	nilAnswer, err := d.record("AllocateNetwork", req)
	return answer(allocateAnswer, nilAnswer, err)
}

func (d *fakeDriver) DeleteNetwork(req *network.DeleteNetworkRequest) error {
	_, err := d.record("DeleteNetwork", req)
	return err
}

func (d *fakeDriver) FreeNetwork(req *network.FreeNetworkRequest) error {
	_, err := d.record("FreeNetwork", req)
	return err
}

func (d *fakeDriver) CreateEndpoint(req *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	nilAnswer, err := d.record("CreateEndpoint", req)
	return answer(endpointAnswer, nilAnswer, err)
}

func (d *fakeDriver) DeleteEndpoint(req *network.DeleteEndpointRequest) error {
	_, err := d.record("DeleteEndpoint", req)
	return err
}

func (d *fakeDriver) EndpointInfo(req *network.InfoRequest) (*network.InfoResponse, error) {
	nilAnswer, err := d.record("EndpointInfo", req)
	return answer(infoAnswer, nilAnswer, err)
}

func (d *fakeDriver) Join(req *network.JoinRequest) (*network.JoinResponse, error) {
	nilAnswer, err := d.record("Join", req)
	return answer(joinAnswer, nilAnswer, err)
}

func (d *fakeDriver) Leave(req *network.LeaveRequest) error {
	_, err := d.record("Leave", req)
	return err
}

func (d *fakeDriver) DiscoverNew(req *network.DiscoveryNotification) error {
	_, err := d.record("DiscoverNew", req)
	return err
}

func (d *fakeDriver) DiscoverDelete(req *network.DiscoveryNotification) error {
	_, err := d.record("DiscoverDelete", req)
	return err
}

func (d *fakeDriver) ProgramExternalConnectivity(req *network.ProgramExternalConnectivityRequest) error {
	_, err := d.record("ProgramExternalConnectivity", req)
	return err
}

func (d *fakeDriver) RevokeExternalConnectivity(req *network.RevokeExternalConnectivityRequest) error {
	_, err := d.record("RevokeExternalConnectivity", req)
	return err
}
