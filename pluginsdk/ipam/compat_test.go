package ipam_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	helpers "github.com/docker/go-plugins-helpers/ipam"

	"github.com/netkit/libnetwork/pluginsdk/internal/wiretest"
	"github.com/netkit/libnetwork/pluginsdk/ipam"
)

// helpersIpam serves an ipam.Ipam through go-plugins-helpers' handler:
// each request and answer crosses to the other side's type through JSON.
type helpersIpam struct{ d ipam.Ipam }

var _ helpers.Ipam = helpersIpam{}

func (h helpersIpam) GetCapabilities() (*helpers.CapabilitiesResponse, error) {
	res, err := h.d.GetCapabilities()
	return wiretest.Convert[helpers.CapabilitiesResponse](res), err
}

func (h helpersIpam) GetDefaultAddressSpaces() (*helpers.AddressSpacesResponse, error) {
	res, err := h.d.GetDefaultAddressSpaces()
	return wiretest.Convert[helpers.AddressSpacesResponse](res), err
}

func (h helpersIpam) RequestPool(req *helpers.RequestPoolRequest) (*helpers.RequestPoolResponse, error) {
	res, err := h.d.RequestPool(wiretest.Convert[ipam.RequestPoolRequest](req))
	return wiretest.Convert[helpers.RequestPoolResponse](res), err
}

func (h helpersIpam) ReleasePool(req *helpers.ReleasePoolRequest) error {
	return h.d.ReleasePool(wiretest.Convert[ipam.ReleasePoolRequest](req))
}

func (h helpersIpam) RequestAddress(req *helpers.RequestAddressRequest) (*helpers.RequestAddressResponse, error) {
	res, err := h.d.RequestAddress(wiretest.Convert[ipam.RequestAddressRequest](req))
	return wiretest.Convert[helpers.RequestAddressResponse](res), err
}

func (h helpersIpam) ReleaseAddress(req *helpers.ReleaseAddressRequest) error {
	return h.d.ReleaseAddress(wiretest.Convert[ipam.ReleaseAddressRequest](req))
}

// both is one fake served by our Handler and another by
// go-plugins-helpers'.
type both struct {
	ours, theirs       *wiretest.Client
	oursDrv, theirsDrv *fakeIpam
}

func serveBoth(t *testing.T) *both {
	b := &both{oursDrv: &fakeIpam{}, theirsDrv: &fakeIpam{}}
	b.ours = wiretest.Serve(t, "ours", ipam.NewHandler(b.oursDrv).Serve)
	b.theirs = wiretest.Serve(t, "theirs", helpers.NewHandler(helpersIpam{b.theirsDrv}).Serve)
	return b
}

// send sends the same request to both, with the fakes failing method
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

func ipamMethod(method string) string { return method[len("IpamDriver."):] }

// TestSameWireAsHelpers: our Handler and go-plugins-helpers' answer the
// same raw requests with the same status, headers and bytes, and their
// fakes see the same requests: the handshake, every method, every method
// failing or answering nil, malformed bodies, other HTTP methods and
// unknown paths.
func TestSameWireAsHelpers(t *testing.T) {
	b := serveBoth(t)

	for _, m := range []string{http.MethodPost, http.MethodGet} {
		r := b.send(t, m, "/Plugin.Activate", "", "", false)
		if r.Status != 200 || string(r.Body) != `{"Implements": ["IpamDriver"]}`+"\n" {
			t.Errorf("Activate: %v", r)
		}
	}
	for _, tc := range requests {
		r := b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), "", false)
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/vnd.docker.plugins.v1.1+json" {
			t.Errorf("%s: %v", tc.method, r)
		}
	}
	// Our fake saw the requests as sent, so the comparison of what the
	// fakes saw, at the end, compares something.
	for i, c := range b.oursDrv.calls() {
		want := call{ipamMethod(requests[i].method), requests[i].req}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("fake got %#v, want %#v", c, want)
		}
	}
	for _, tc := range requests {
		r := b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), ipamMethod(tc.method), false)
		if r.Status != 500 || !strings.Contains(string(r.Body), `{"Err":`) {
			t.Errorf("%s failing: %v", tc.method, r)
		}
		b.send(t, http.MethodPost, "/"+tc.method, mustJSON(t, tc.req), "", true)
	}

	malformed := []string{"", " ", `{"PoolID":`, `{"PoolID":"p1"`, `[1]`, `"p1"`, `null`, `5`,
		`{"PoolID":5}`, `{"Address":true}`, `{"Options":"x"}`, `{"Options":{"a":1}}`, `{"V6":"yes"}`,
		`{"V6":1}`, `{"Pool":null,"SubPool":["x"]}`, `{"PoolID":"p1"} trailing`, `{"Unknown":1,"PoolID":"p1"}`,
		`{"PoolID":"\u00e9\ud800"}`, `{"AddressSpace":{}}`}
	for _, tc := range requests {
		if tc.req == nil {
			b.send(t, http.MethodGet, "/"+tc.method, "", "", false)
			b.send(t, http.MethodPost, "/"+tc.method, "garbage", "", false)
			continue
		}
		for _, body := range malformed {
			b.send(t, http.MethodPost, "/"+tc.method, body, "", false)
		}
		b.send(t, http.MethodGet, "/"+tc.method, "", "", false)
		b.send(t, http.MethodPut, "/"+tc.method, mustJSON(t, tc.req), "", false)
	}
	b.send(t, http.MethodPost, "/IpamDriver.Unknown", "{}", "", false)
	b.send(t, http.MethodPost, "/ipamdriver.requestpool", "{}", "", false)
	b.send(t, http.MethodPost, "/", "{}", "", false)

	ours, theirs := b.oursDrv.calls(), b.theirsDrv.calls()
	if len(ours) < 3*len(requests) || !reflect.DeepEqual(ours, theirs) {
		t.Errorf("the fakes saw different requests:\n ours   %#v\n theirs %#v", ours, theirs)
	}
}

// TestRequiresRequestReplay: our CapabilitiesResponse has one field
// go-plugins-helpers' lacks, a docker extension. False, it is not sent,
// so the answers are the same; true, it is sent, and go-plugins-helpers'
// struct ignores it.
func TestRequiresRequestReplay(t *testing.T) {
	caps := &ipam.CapabilitiesResponse{RequiresMACAddress: true, RequiresRequestReplay: true}
	wiretest.RoundTrip(t, caps, &helpers.CapabilitiesResponse{}, "RequiresRequestReplay")
	data, err := json.Marshal(caps)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"RequiresMACAddress":true,"RequiresRequestReplay":true}` {
		t.Errorf("encoded %s", data)
	}
}

// TestStructsRoundTrip: every wire struct of ipams/remote/api, every
// field set, encodes to JSON that go-plugins-helpers' struct decodes and
// encodes again to the same bytes, which decode back to the same value;
// and the structs have the same fields, JSON names and kinds.
func TestStructsRoundTrip(t *testing.T) {
	for _, tc := range []struct{ ours, theirs any }{
		{&spacesAnswer, &helpers.AddressSpacesResponse{}},
		{requests[2].req, &helpers.RequestPoolRequest{}},
		{&poolAnswer, &helpers.RequestPoolResponse{}},
		{requests[3].req, &helpers.ReleasePoolRequest{}},
		{requests[4].req, &helpers.RequestAddressRequest{}},
		{&addressAnswer, &helpers.RequestAddressResponse{}},
		{requests[5].req, &helpers.ReleaseAddressRequest{}},
		{ipam.NewErrorResponse(`bad "thing" <&>`), &helpers.ErrorResponse{}},
	} {
		wiretest.RoundTrip(t, tc.ours, tc.theirs)
	}
	// CapabilitiesResponse, but the extension: see TestRequiresRequestReplay.
	data, err := json.Marshal(capsAnswer)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := json.Marshal(helpers.CapabilitiesResponse{RequiresMACAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(theirs) {
		t.Errorf("capabilities: ours %s, theirs %s", data, theirs)
	}
}
