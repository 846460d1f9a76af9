package ipam_test

import (
	"fmt"
	"sync"

	"github.com/netkit/libnetwork/pluginsdk/ipam"
)

// call is one request a fakeIpam received.
type call struct {
	Method string
	Req    any
}

// fakeIpam records what it receives and answers fixed values; the method
// named by fail returns an error instead, and with nilAnswers the
// methods that answer a value answer nil.
type fakeIpam struct {
	mu         sync.Mutex
	got        []call
	fail       string
	nilAnswers bool
}

var _ ipam.Ipam = (*fakeIpam)(nil)

// The fixed answers, every field set (but RequiresRequestReplay, which
// go-plugins-helpers does not have).
var (
	capsAnswer   = ipam.CapabilitiesResponse{RequiresMACAddress: true}
	spacesAnswer = ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "local<1>", GlobalDefaultAddressSpace: "global&2"}
	poolAnswer   = ipam.RequestPoolResponse{PoolID: "pool-1", Pool: "10.0.0.0/24",
		Data: map[string]string{"com.docker.network.gateway": "10.0.0.1/24", "x": "y"}}
	addressAnswer = ipam.RequestAddressResponse{Address: "10.0.0.2/24", Data: map[string]string{"mac": "02:42:0a:00:00:02"}}
)

// record keeps req and returns the error of a failing method.
func (d *fakeIpam) record(method string, req any) (nilAnswer bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, call{method, req})
	if d.fail == method {
		return false, fmt.Errorf(`%s refused: pool "p1" <exhausted> & locked`, method)
	}
	return d.nilAnswers, nil
}

func (d *fakeIpam) set(fail string, nilAnswers bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail, d.nilAnswers = fail, nilAnswers
}

func (d *fakeIpam) calls() []call {
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

func (d *fakeIpam) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	nilAnswer, err := d.record("GetCapabilities", nil)
	return answer(capsAnswer, nilAnswer, err)
}

func (d *fakeIpam) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	nilAnswer, err := d.record("GetDefaultAddressSpaces", nil)
	return answer(spacesAnswer, nilAnswer, err)
}

func (d *fakeIpam) RequestPool(req *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	nilAnswer, err := d.record("RequestPool", req)
	return answer(poolAnswer, nilAnswer, err)
}

func (d *fakeIpam) ReleasePool(req *ipam.ReleasePoolRequest) error {
	_, err := d.record("ReleasePool", req)
	return err
}

func (d *fakeIpam) RequestAddress(req *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	nilAnswer, err := d.record("RequestAddress", req)
	return answer(addressAnswer, nilAnswer, err)
}

func (d *fakeIpam) ReleaseAddress(req *ipam.ReleaseAddressRequest) error {
	_, err := d.record("ReleaseAddress", req)
	return err
}
