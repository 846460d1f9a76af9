package portmapper

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/portmapper/api"
	"github.com/netkit/libnetwork/types"
)

// TestValidateRequest: each invalid request is a types.BadRequestError
// naming the binding and the reason.
func TestValidateRequest(t *testing.T) {
	ok := api.PortBindingReq{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80}
	with := func(f func(*api.PortBindingReq)) api.PortBindingReq { r := ok; f(&r); return r }
	for _, tc := range []struct {
		name string
		req  api.PortBindingReq
		want string // in the error; "" for valid
	}{
		{"ephemeral", ok, ""},
		{"exact", with(func(r *api.PortBindingReq) { r.FrontendPort = 8080 }), ""},
		{"exact with end", with(func(r *api.PortBindingReq) { r.FrontendPort, r.FrontendPortEnd = 8080, 8080 }), ""},
		{"range", with(func(r *api.PortBindingReq) { r.FrontendPort, r.FrontendPortEnd = 8080, 8090 }), ""},
		{"host address", with(func(r *api.PortBindingReq) { r.FrontendIP = netip.MustParseAddr("192.0.2.1") }), ""},
		{"ipv6", api.PortBindingReq{Proto: types.SCTP, BackendIP: ctr6, BackendPort: 80, FrontendIP: any6}, ""},
		{"icmp", with(func(r *api.PortBindingReq) { r.Proto = types.ICMP }), "has no ports"},
		{"no backend", with(func(r *api.PortBindingReq) { r.BackendIP = netip.Addr{} }), "no backend address"},
		{"unspecified backend", with(func(r *api.PortBindingReq) { r.BackendIP = any4 }), "not a unicast"},
		{"multicast backend", with(func(r *api.PortBindingReq) { r.BackendIP = netip.MustParseAddr("ff02::1") }), "not a unicast"},
		{"broadcast backend", with(func(r *api.PortBindingReq) { r.BackendIP = netip.MustParseAddr("255.255.255.255") }), "not a unicast"},
		{"mapped backend", with(func(r *api.PortBindingReq) { r.BackendIP = netip.MustParseAddr("::ffff:10.0.0.2") }), "IPv4-mapped"},
		{"zoned backend", with(func(r *api.PortBindingReq) { r.BackendIP = netip.MustParseAddr("fe80::1%eth0") }), "zone"},
		{"backend port 0", with(func(r *api.PortBindingReq) { r.BackendPort = 0 }), "backend port 0"},
		{"families", with(func(r *api.PortBindingReq) { r.FrontendIP = any6 }), "different families"},
		{"multicast frontend", with(func(r *api.PortBindingReq) { r.FrontendIP = netip.MustParseAddr("224.0.0.1") }), "multicast"},
		{"end without start", with(func(r *api.PortBindingReq) { r.FrontendPortEnd = 8080 }), "no start"},
		{"end before start", with(func(r *api.PortBindingReq) { r.FrontendPort, r.FrontendPortEnd = 8080, 8000 }), "ends before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRequest(api.MapPortsRequest{Reqs: []api.PortBindingReq{ok, tc.req}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ValidateRequest: %v", err)
				}
				return
			}
			if _, isBad := err.(types.BadRequestError); !isBad || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "port binding 1") {
				t.Fatalf("ValidateRequest: %v (%T), want a BadRequestError about binding 1 saying %q", err, err, tc.want)
			}
		})
	}
}

// TestValidateResponse: what a remote mapper's answer must satisfy.
func TestValidateResponse(t *testing.T) {
	req := api.MapPortsRequest{Reqs: []api.PortBindingReq{
		{Proto: types.TCP, BackendIP: ctr4, BackendPort: 80, FrontendPort: 8000, FrontendPortEnd: 8010},
		{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, FrontendIP: any6, FrontendPort: 8000, FrontendPortEnd: 8010},
	}}
	good := func() []api.PortBinding {
		var out []api.PortBinding
		for _, r := range req.Reqs {
			out = append(out, api.PortBinding{Proto: r.Proto, BackendIP: r.BackendIP, BackendPort: r.BackendPort, FrontendIP: r.FrontendIP, FrontendPort: 8005, AllowForwarding: true,
				NAT: &api.NATRule{Proto: r.Proto, FrontendIP: r.FrontendIP, FrontendPort: 8005, BackendIP: r.BackendIP, BackendPort: r.BackendPort}})
		}
		return out
	}
	errMsg := "taken"
	for _, tc := range []struct {
		name   string
		mod    func([]api.PortBinding) []api.PortBinding
		want   string
		remote bool // a refusal (*plugins.RemoteError), not a *ResponseError
	}{
		{"good", func(b []api.PortBinding) []api.PortBinding { return b }, "", false},
		{"discarded", func(b []api.PortBinding) []api.PortBinding {
			b[1] = api.PortBinding{Proto: types.TCP, BackendIP: ctr6, BackendPort: 80, DiscardReq: true, Error: &errMsg}
			return b
		}, "", false},
		{"zero frontend as ::", func(b []api.PortBinding) []api.PortBinding { b[1].FrontendIP = netip.Addr{}; return b }, "", false},
		{"too few", func(b []api.PortBinding) []api.PortBinding { return b[:1] }, "1 bindings for 2 requests", false},
		{"other backend", func(b []api.PortBinding) []api.PortBinding { b[0].BackendIP = ctr4b; return b }, "not the request's backend", false},
		{"other proto", func(b []api.PortBinding) []api.PortBinding { b[0].Proto = types.UDP; return b }, "not the request's backend", false},
		{"out of range", func(b []api.PortBinding) []api.PortBinding {
			b[0].FrontendPort = 8011
			b[0].NAT.FrontendPort = 8011
			return b
		}, "not ports 8000-8010", false},
		{"group split", func(b []api.PortBinding) []api.PortBinding {
			b[1].FrontendPort = 8006
			b[1].NAT.FrontendPort = 8006
			return b
		}, "must share one port", false},
		{"frontend family", func(b []api.PortBinding) []api.PortBinding { b[0].FrontendIP = any6; return b }, "backend's family", false},
		{"NAT elsewhere", func(b []api.PortBinding) []api.PortBinding {
			b[1].NAT.BackendIP = netip.MustParseAddr("fd00::9")
			return b
		}, "NAT rule points to", false},
		{"NAT other port", func(b []api.PortBinding) []api.PortBinding { b[1].NAT.FrontendPort = 9000; return b }, "does not match", false},
		{"NAT invalid", func(b []api.PortBinding) []api.PortBinding { b[1].NAT.BackendPort = 0; return b }, "backend port 0", false},
		{"discarded with NAT", func(b []api.PortBinding) []api.PortBinding { b[1].DiscardReq = true; return b }, "discarded", false},
		{"binding error", func(b []api.PortBinding) []api.PortBinding { b[1].Error = &errMsg; return b }, "binding 1 (tcp [::]:8000-8010 -> [fd00::2]:80): taken", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateResponse("pm", req, api.MapPortsResponse{PortBindings: tc.mod(good())})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ValidateResponse: %v", err)
			case tc.want == "":
				return
			case err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "pm"`):
				t.Fatalf("ValidateResponse: %v, want an error naming the plugin and saying %q", err, tc.want)
			}
			var re *ResponseError
			if isResp := asAny(err, &re); isResp == tc.remote {
				t.Errorf("ValidateResponse: %v (%T): ResponseError %v, want %v", err, err, isResp, !tc.remote)
			}
		})
	}
}

func asAny[T error](err error, target *T) bool {
	e, ok := err.(T)
	if ok {
		*target = e
	}
	return ok
}
