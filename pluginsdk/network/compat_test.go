package network_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	helpers "github.com/docker/go-plugins-helpers/network"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/pluginsdk/internal/wiretest"
	"github.com/netkit/libnetwork/pluginsdk/network"
)

// helpersDriver serves a network.Driver through go-plugins-helpers'
// handler: each request and answer crosses to the other side's type
// through JSON.
type helpersDriver struct{ d network.Driver }

var _ helpers.Driver = helpersDriver{}

func (h helpersDriver) GetCapabilities() (*helpers.CapabilitiesResponse, error) {
	res, err := h.d.GetCapabilities()
	return wiretest.Convert[helpers.CapabilitiesResponse](res), err
}

func (h helpersDriver) CreateNetwork(req *helpers.CreateNetworkRequest) error {
	return h.d.CreateNetwork(wiretest.Convert[network.CreateNetworkRequest](req))
}

func (h helpersDriver) AllocateNetwork(req *helpers.AllocateNetworkRequest) (*helpers.AllocateNetworkResponse, error) {
	res, err := h.d.AllocateNetwork(wiretest.Convert[network.AllocateNetworkRequest](req))
	return wiretest.Convert[helpers.AllocateNetworkResponse](res), err
}

func (h helpersDriver) DeleteNetwork(req *helpers.DeleteNetworkRequest) error {
	return h.d.DeleteNetwork(wiretest.Convert[network.DeleteNetworkRequest](req))
}

func (h helpersDriver) FreeNetwork(req *helpers.FreeNetworkRequest) error {
	return h.d.FreeNetwork(wiretest.Convert[network.FreeNetworkRequest](req))
}

func (h helpersDriver) CreateEndpoint(req *helpers.CreateEndpointRequest) (*helpers.CreateEndpointResponse, error) {
	res, err := h.d.CreateEndpoint(wiretest.Convert[network.CreateEndpointRequest](req))
	return wiretest.Convert[helpers.CreateEndpointResponse](res), err
}

func (h helpersDriver) DeleteEndpoint(req *helpers.DeleteEndpointRequest) error {
	return h.d.DeleteEndpoint(wiretest.Convert[network.DeleteEndpointRequest](req))
}

func (h helpersDriver) EndpointInfo(req *helpers.InfoRequest) (*helpers.InfoResponse, error) {
	res, err := h.d.EndpointInfo(wiretest.Convert[network.InfoRequest](req))
	return wiretest.Convert[helpers.InfoResponse](res), err
}

func (h helpersDriver) Join(req *helpers.JoinRequest) (*helpers.JoinResponse, error) {
	res, err := h.d.Join(wiretest.Convert[network.JoinRequest](req))
	return wiretest.Convert[helpers.JoinResponse](res), err
}

func (h helpersDriver) Leave(req *helpers.LeaveRequest) error {
	return h.d.Leave(wiretest.Convert[network.LeaveRequest](req))
}

func (h helpersDriver) DiscoverNew(req *helpers.DiscoveryNotification) error {
	return h.d.DiscoverNew(wiretest.Convert[network.DiscoveryNotification](req))
}

func (h helpersDriver) DiscoverDelete(req *helpers.DiscoveryNotification) error {
	return h.d.DiscoverDelete(wiretest.Convert[network.DiscoveryNotification](req))
}

func (h helpersDriver) ProgramExternalConnectivity(req *helpers.ProgramExternalConnectivityRequest) error {
	return h.d.ProgramExternalConnectivity(wiretest.Convert[network.ProgramExternalConnectivityRequest](req))
}

func (h helpersDriver) RevokeExternalConnectivity(req *helpers.RevokeExternalConnectivityRequest) error {
	return h.d.RevokeExternalConnectivity(wiretest.Convert[network.RevokeExternalConnectivityRequest](req))
}

// both is one fake driver served by our Handler and another by
// go-plugins-helpers'.
type both struct {
	ours, theirs       *wiretest.Client
	oursDrv, theirsDrv *fakeDriver
}

func serveBoth(t *testing.T) *both {
	b := &both{oursDrv: &fakeDriver{}, theirsDrv: &fakeDriver{}}
	b.ours = wiretest.Serve(t, "ours", network.NewHandler(b.oursDrv).Serve)
	b.theirs = wiretest.Serve(t, "theirs", helpers.NewHandler(helpersDriver{b.theirsDrv}).Serve)
	return b
}

// send sends the same request to both, with the drivers failing method
// fail and answering nil if nilAnswers, and fails the test unless the
// replies are the same. It returns our reply.
func (b *both) send(t *testing.T, method, path, body, fail string, nilAnswers bool) wiretest.Reply {
	t.Helper()
	b.oursDrv.set(fail, nilAnswers)
	b.theirsDrv.set(fail, nilAnswers)
	ours := b.ours.Do(t, method, path, []byte(body))
	theirs := b.theirs.Do(t, method, path, []byte(body))
	what := fmt.Sprintf("%s %s %.60q", method, path, body)
	if fail != "" {
		what += " failing " + fail
	}
	if nilAnswers {
		what += " answering nil"
	}
	wiretest.Same(t, what, ours, theirs)
	return ours
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	if v == nil {
		return ""
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestSameWireAsHelpers: our Handler and go-plugins-helpers' answer the
// same raw requests with the same status, headers and bytes, and their
// drivers see the same requests: the handshake, every method, every
// method failing or answering nil, malformed bodies, other HTTP methods
// and unknown paths.
func TestSameWireAsHelpers(t *testing.T) {
	b := serveBoth(t)

	for _, m := range []string{http.MethodPost, http.MethodGet} {
		r := b.send(t, m, "/Plugin.Activate", "", "", false)
		if r.Status != 200 || string(r.Body) != `{"Implements": ["NetworkDriver"]}`+"\n" {
			t.Errorf("Activate: %v", r)
		}
	}
	for _, tc := range requests {
		r := b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), "", false)
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/vnd.docker.plugins.v1.1+json" {
			t.Errorf("%s: %v", tc.method, r)
		}
	}
	// Our drivers saw the requests as sent, so the comparison of what
	// the drivers saw, at the end, compares something.
	for i, c := range b.oursDrv.calls() {
		want := call{driverMethod(requests[i].method), requests[i].req}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("driver got %#v, want %#v", c, want)
		}
	}
	for _, tc := range requests {
		r := b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), driverMethod(tc.method), false)
		if r.Status != 500 || !strings.Contains(string(r.Body), `{"Err":`) {
			t.Errorf("%s failing: %v", tc.method, r)
		}
		b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), "", true)
	}

	malformed := []string{"", " ", `{"NetworkID":`, `{"NetworkID":"n1"`, `[1]`, `"n1"`, `null`, `5`,
		`{"NetworkID":5}`, `{"EndpointID":true}`, `{"Options":"x"}`, `{"Options":{"a":1}}`,
		`{"NetworkID":"n1"} trailing`, `{"Unknown":1,"NetworkID":"n1"}`, `{"NetworkID":"\u00e9\ud800"}`,
		`{"IPv4Data":5}`, `{"IPv4Data":[5]}`, `{"IPv6Data":[{"AuxAddresses":[]}]}`, `{"IPv4Data":[{"Pool":1}]}`,
		`{"Interface":"x"}`, `{"Interface":{"Address":1}}`, `{"DiscoveryType":"x"}`, `{"DiscoveryType":1.5}`,
		`{"DiscoveryType":1e99}`, `{"SandboxKey":["x"]}`, `{"Value":{}}`}
	for _, tc := range requests[1:] {
		for _, body := range malformed {
			b.send(t, http.MethodPost, "/"+tc.method, body, "", false)
		}
		b.send(t, http.MethodGet, "/"+tc.method, "", "", false)
		b.send(t, http.MethodPut, "/"+tc.method, mustJSON(t, tc.req), "", false)
	}
	b.send(t, http.MethodGet, "/"+api.GetCapabilities, "", "", false)
	b.send(t, http.MethodPost, "/"+api.GetCapabilities, "garbage", "", false)
	b.send(t, http.MethodPost, "/NetworkDriver.Unknown", "{}", "", false)
	b.send(t, http.MethodPost, "/networkdriver.join", "{}", "", false)
	b.send(t, http.MethodPost, "/", "{}", "", false)

	ours, theirs := b.oursDrv.calls(), b.theirsDrv.calls()
	if len(ours) < 3*len(requests) || !reflect.DeepEqual(ours, theirs) {
		t.Errorf("the drivers saw different requests:\n ours   %#v\n theirs %#v", ours, theirs)
	}
}

// TestRequestSizeBound: the one deliberate difference. Go-plugins-helpers
// reads a request of any size; ours refuses one larger than
// pluginsdk.MaxRequestSize, as go-plugins-helpers refuses a body that
// does not decode.
func TestRequestSizeBound(t *testing.T) {
	b := serveBoth(t)
	body := `{"NetworkID":"` + strings.Repeat("n", 4<<20) + `"}`
	ours := b.ours.Do(t, http.MethodPost, "/"+api.DeleteNetwork, []byte(body))
	theirs := b.theirs.Do(t, http.MethodPost, "/"+api.DeleteNetwork, []byte(body))
	if ours.Status != 400 || string(ours.Body) != "http: request body too large\n" || theirs.Status != 200 {
		t.Errorf("a 4 MiB request: ours %v, theirs %d", ours, theirs.Status)
	}
	if len(b.oursDrv.calls()) != 0 || len(b.theirsDrv.calls()) != 1 {
		t.Errorf("drivers called: ours %d, theirs %d", len(b.oursDrv.calls()), len(b.theirsDrv.calls()))
	}
}

// TestStructsRoundTrip: every wire struct of drivers/remote/api, every
// field set, encodes to JSON that go-plugins-helpers' struct decodes and
// encodes again to the same bytes, which decode back to the same value;
// and the structs have the same fields, JSON names and kinds.
func TestStructsRoundTrip(t *testing.T) {
	for _, tc := range []struct{ ours, theirs any }{
		{&capsAnswer, &helpers.CapabilitiesResponse{}},
		{requests[1].req, &helpers.CreateNetworkRequest{}},
		{requests[2].req, &helpers.AllocateNetworkRequest{}},
		{&allocateAnswer, &helpers.AllocateNetworkResponse{}},
		{requests[3].req, &helpers.DeleteNetworkRequest{}},
		{requests[4].req, &helpers.FreeNetworkRequest{}},
		{requests[5].req, &helpers.CreateEndpointRequest{}},
		{&endpointAnswer, &helpers.CreateEndpointResponse{}},
		{endpointAnswer.Interface, &helpers.EndpointInterface{}},
		{requests[6].req, &helpers.DeleteEndpointRequest{}},
		{requests[7].req, &helpers.InfoRequest{}},
		{&infoAnswer, &helpers.InfoResponse{}},
		{requests[8].req, &helpers.JoinRequest{}},
		{&joinAnswer, &helpers.JoinResponse{}},
		{&joinAnswer.InterfaceName, &helpers.InterfaceName{}},
		{joinAnswer.StaticRoutes[0], &helpers.StaticRoute{}},
		{requests[9].req, &helpers.LeaveRequest{}},
		{requests[10].req, &helpers.DiscoveryNotification{}},
		{requests[12].req, &helpers.ProgramExternalConnectivityRequest{}},
		{requests[13].req, &helpers.RevokeExternalConnectivityRequest{}},
		{&network.IPAMData{AddressSpace: "s", Pool: "10.0.0.0/8", Gateway: "10.0.0.1/8", AuxAddresses: map[string]any{"a": "10.0.0.2/8"}},
			&helpers.IPAMData{}},
		{network.NewErrorResponse(`bad "thing" <&>`), &helpers.ErrorResponse{}},
	} {
		wiretest.RoundTrip(t, tc.ours, tc.theirs)
	}
	if network.LocalScope != helpers.LocalScope || network.GlobalScope != helpers.GlobalScope {
		t.Errorf("scopes %q %q, go-plugins-helpers' %q %q", network.LocalScope, network.GlobalScope, helpers.LocalScope, helpers.GlobalScope)
	}
}
