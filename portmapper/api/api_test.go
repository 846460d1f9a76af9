package api

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/netkit/libnetwork/types"
)

// TestWireFormat pins the JSON both ends of the protocol speak: Go field
// names, protocols as numbers, addresses as text, the zero address as "".
func TestWireFormat(t *testing.T) {
	errText := "no free port"
	resp := MapPortsResponse{PortBindings: []PortBinding{{
		Proto:           types.UDP,
		BackendIP:       netip.MustParseAddr("172.18.0.2"),
		BackendPort:     53,
		FrontendPort:    5353,
		AllowForwarding: true,
		NAT: &NATRule{
			Proto:        types.UDP,
			FrontendPort: 5353,
			BackendIP:    netip.MustParseAddr("172.18.0.2"),
			BackendPort:  53,
		},
	}, {
		Proto:      types.SCTP,
		BackendIP:  netip.MustParseAddr("fd00::2"),
		DiscardReq: true,
		Error:      &errText,
	}}}
	const want = `{"PortBindings":[` +
		`{"Proto":17,"BackendIP":"172.18.0.2","BackendPort":53,"FrontendIP":"","FrontendPort":5353,"DiscardReq":false,"AllowForwarding":true,` +
		`"NAT":{"Proto":17,"FrontendIP":"","FrontendPort":5353,"BackendIP":"172.18.0.2","BackendPort":53},"Error":null},` +
		`{"Proto":132,"BackendIP":"fd00::2","BackendPort":0,"FrontendIP":"","FrontendPort":0,"DiscardReq":true,"AllowForwarding":false,"NAT":null,"Error":"no free port"}],` +
		`"Err":""}`
	got, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("MapPortsResponse encodes as\n%s\nwant\n%s", got, want)
	}
	var back MapPortsResponse
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, resp) {
		t.Fatalf("round trip: got %+v, want %+v", back, resp)
	}

	req := MapPortsRequest{
		Reqs: []PortBindingReq{{
			Proto: types.TCP, BackendIP: netip.MustParseAddr("10.0.0.2"), BackendPort: 80,
			FrontendIP: netip.MustParseAddr("0.0.0.0"), FrontendPort: 8000, FrontendPortEnd: 8010,
		}},
		Labels: map[string]string{"mapper": "x"},
	}
	const wantReq = `{"Reqs":[{"Proto":6,"BackendIP":"10.0.0.2","BackendPort":80,"FrontendIP":"0.0.0.0","FrontendPort":8000,"FrontendPortEnd":8010}],"Labels":{"mapper":"x"}}`
	if got, _ := json.Marshal(req); string(got) != wantReq {
		t.Fatalf("MapPortsRequest encodes as\n%s\nwant\n%s", got, wantReq)
	}
}

func TestPaths(t *testing.T) {
	if MapPortsPath != "/PortMapper.MapPorts" || UnmapPortsPath != "/PortMapper.UnmapPorts" {
		t.Fatalf("paths %q %q", MapPortsPath, UnmapPortsPath)
	}
}

func TestNATRuleValidate(t *testing.T) {
	v4 := netip.MustParseAddr("10.0.0.2")
	v6 := netip.MustParseAddr("fd00::2")
	ok := NATRule{Proto: types.TCP, FrontendPort: 8080, BackendIP: v4, BackendPort: 80}
	for _, tc := range []struct {
		name string
		mod  func(*NATRule)
		bad  bool
	}{
		{"all addresses", func(*NATRule) {}, false},
		{"one address", func(r *NATRule) { r.FrontendIP = netip.MustParseAddr("192.0.2.1") }, false},
		{"v6", func(r *NATRule) { r.BackendIP, r.FrontendIP = v6, netip.MustParseAddr("2001:db8::1") }, false},
		{"icmp", func(r *NATRule) { r.Proto = types.ICMP }, true},
		{"no frontend port", func(r *NATRule) { r.FrontendPort = 0 }, true},
		{"no backend port", func(r *NATRule) { r.BackendPort = 0 }, true},
		{"no backend", func(r *NATRule) { r.BackendIP = netip.Addr{} }, true},
		{"unspecified backend", func(r *NATRule) { r.BackendIP = netip.IPv4Unspecified() }, true},
		{"mixed families", func(r *NATRule) { r.FrontendIP = netip.MustParseAddr("2001:db8::1") }, true},
	} {
		r := ok
		tc.mod(&r)
		err := r.Validate()
		if tc.bad != (err != nil) {
			t.Errorf("%s: Validate() = %v, want error %v", tc.name, err, tc.bad)
		}
		if err != nil && !types.IsBadRequest(err) {
			t.Errorf("%s: %v is not a BadRequestError", tc.name, err)
		}
	}
}
