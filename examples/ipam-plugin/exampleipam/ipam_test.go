package exampleipam

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/ipams/remote/api"
	"github.com/netkit/libnetwork/types"
)

const mac = "02:42:ac:11:00:02"

func newIPAM(t *testing.T, pools ...string) *IPAM {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range pools {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	d, err := New(ps)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func requestPool(t *testing.T, d *IPAM, req api.RequestPoolRequest) *api.RequestPoolResponse {
	t.Helper()
	res, err := d.RequestPool(&req)
	if err != nil {
		t.Fatalf("RequestPool(%+v): %v", req, err)
	}
	return res
}

func address(t *testing.T, d *IPAM, poolID, pref string, opts map[string]string) string {
	t.Helper()
	res, err := d.RequestAddress(&api.RequestAddressRequest{PoolID: poolID, Address: pref, Options: opts})
	if err != nil {
		t.Fatalf("RequestAddress(%s, %q, %v): %v", poolID, pref, opts, err)
	}
	return res.Address
}

// wantErr checks that err is an error of class T whose text holds want.
func wantErr[T error](t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one about %q", what, want)
	}
	if _, ok := err.(T); !ok {
		t.Errorf("%s: %v (%T), want a %T", what, err, err, *new(T))
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %q, want it to say %q", what, err, want)
	}
}

func TestCapabilitiesAndSpaces(t *testing.T) {
	d := newIPAM(t)
	c, err := d.GetCapabilities()
	if err != nil || !c.RequiresMACAddress {
		t.Errorf("GetCapabilities: %+v, %v", c, err)
	}
	s, err := d.GetDefaultAddressSpaces()
	if err != nil || s.LocalDefaultAddressSpace != "ExampleLocal" || s.GlobalDefaultAddressSpace != "ExampleGlobal" {
		t.Errorf("GetDefaultAddressSpaces: %+v, %v", s, err)
	}
	if got := d.HandlerTime().Stats().Calls; got != 2 {
		t.Errorf("HandlerTime counted %d calls, want 2", got)
	}
}

// TestDefaultPools: requests without a pool get the default pools in
// order, per address space, skipping one a named pool overlaps.
func TestDefaultPools(t *testing.T) {
	d := newIPAM(t)
	first := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace})
	if first.PoolID != "ExampleLocal/10.123.0.0/24" || first.Pool != "10.123.0.0/24" || first.Data[GatewayKey] != "10.123.0.1/24" {
		t.Errorf("first default pool: %+v", first)
	}
	second := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace})
	if second.Pool != "10.124.0.0/24" || second.Data[GatewayKey] != "10.124.0.1/24" {
		t.Errorf("second default pool: %+v", second)
	}
	_, err := d.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace})
	wantErr[types.ForbiddenError](t, "third default pool", err, "no free default IPv4 pool in ExampleLocal")
	_, err = d.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, V6: true})
	wantErr[types.ForbiddenError](t, "default IPv6 pool", err, "no free default IPv6 pool")

	global := requestPool(t, d, api.RequestPoolRequest{AddressSpace: GlobalSpace})
	if global.PoolID != "ExampleGlobal/10.123.0.0/24" {
		t.Errorf("default pool of the global space: %+v", global)
	}

	if err := d.ReleasePool(&api.ReleasePoolRequest{PoolID: first.PoolID}); err != nil {
		t.Fatal(err)
	}
	requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.123.0.128/25"})
	_, err = d.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace})
	wantErr[types.ForbiddenError](t, "default pool with 10.123.0.128/25 in use", err, "no free default")

	d = newIPAM(t, "10.5.0.0/24", "fd00:5::/64")
	v6 := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, V6: true})
	if v6.Pool != "fd00:5::/64" || v6.Data[GatewayKey] != "fd00:5::1/64" {
		t.Errorf("default IPv6 pool: %+v", v6)
	}
}

func TestNamedPools(t *testing.T) {
	d := newIPAM(t)
	p := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.1.0.0/16"})
	if p.PoolID != "ExampleLocal/10.1.0.0/16" || p.Pool != "10.1.0.0/16" || p.Data[GatewayKey] != "10.1.0.1/16" {
		t.Errorf("named pool: %+v", p)
	}
	_, err := d.RequestPool(&api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.1.2.0/24"})
	wantErr[types.ForbiddenError](t, "overlapping pool", err, "pool 10.1.2.0/24 in ExampleLocal: overlaps pool 10.1.0.0/16 in use")
	requestPool(t, d, api.RequestPoolRequest{AddressSpace: GlobalSpace, Pool: "10.1.2.0/24"})

	// The default pool a named one takes is skipped.
	requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.123.0.0/24"})
	if got := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace}); got.Pool != "10.124.0.0/24" {
		t.Errorf("default pool next to a named one: %+v", got)
	}

	v6 := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "fd00:1::/64", V6: true})
	if v6.Data[GatewayKey] != "fd00:1::1/64" {
		t.Errorf("IPv6 pool: %+v", v6)
	}

	for _, tc := range []struct {
		req  api.RequestPoolRequest
		want string
	}{
		{api.RequestPoolRequest{AddressSpace: "default", Pool: "10.2.0.0/16"}, `address space "default": unknown`},
		{api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.2.0.0"}, `pool "10.2.0.0"`},
		{api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.2.0.0/16", V6: true}, "not an IPv6 pool"},
		{api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.2.0.0/31"}, "too small"},
		{api.RequestPoolRequest{AddressSpace: LocalSpace, SubPool: "10.2.0.0/24"}, "without its pool"},
		{api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.2.0.0/16", SubPool: "10.3.0.0/24"}, "not within pool 10.2.0.0/16"},
	} {
		_, err := d.RequestPool(&tc.req)
		wantErr[types.BadRequestError](t, "RequestPool "+tc.req.Pool, err, tc.want)
	}

	err = d.ReleasePool(&api.ReleasePoolRequest{PoolID: "ExampleLocal/10.9.0.0/16"})
	wantErr[types.NotFoundError](t, "releasing an unknown pool", err, "no such pool")
}

var (
	gwOpts  = map[string]string{RequestAddressTypeKey: GatewayKey}
	macOpts = map[string]string{MACAddressKey: mac}
)

func TestAddresses(t *testing.T) {
	d := newIPAM(t)
	id := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace}).PoolID

	if got := address(t, d, id, "", gwOpts); got != "10.123.0.1/24" {
		t.Errorf("gateway: %s", got)
	}
	_, err := d.RequestAddress(&api.RequestAddressRequest{PoolID: id, Options: gwOpts})
	wantErr[types.ForbiddenError](t, "gateway twice", err, "gateway 10.123.0.1 of pool 10.123.0.0/24: already allocated")

	if got := address(t, d, id, "", macOpts); got != "10.123.0.2/24" {
		t.Errorf("first address: %s", got)
	}
	if got := address(t, d, id, "", macOpts); got != "10.123.0.3/24" {
		t.Errorf("second address: %s", got)
	}
	if got := address(t, d, id, "10.123.0.10", macOpts); got != "10.123.0.10/24" {
		t.Errorf("preferred address: %s", got)
	}
	if err := d.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.123.0.2"}); err != nil {
		t.Fatal(err)
	}
	if got := address(t, d, id, "", macOpts); got != "10.123.0.2/24" {
		t.Errorf("address after a release: %s", got)
	}

	for _, tc := range []struct {
		pref string
		opts map[string]string
		want string
	}{
		{"", nil, "option com.docker.network.endpoint.macaddress missing: this IPAM requires the endpoint's MAC address"},
		{"10.123.0.20", map[string]string{}, "option com.docker.network.endpoint.macaddress missing"},
		{"", map[string]string{MACAddressKey: "not-a-mac"}, "option com.docker.network.endpoint.macaddress"},
		{"10.9.0.1", macOpts, "address 10.9.0.1: not a host address of pool 10.123.0.0/24"},
		{"10.123.0.0", macOpts, "not a host address"},
		{"10.123.0.255", macOpts, "not a host address"},
		{"bogus", macOpts, `requesting address "bogus"`},
	} {
		_, err := d.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: tc.pref, Options: tc.opts})
		wantErr[types.BadRequestError](t, "RequestAddress "+tc.pref, err, tc.want)
	}
	_, err = d.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: "10.123.0.10", Options: macOpts})
	wantErr[types.ForbiddenError](t, "a preferred address taken", err, "address 10.123.0.10 of pool 10.123.0.0/24: already allocated")
	_, err = d.RequestAddress(&api.RequestAddressRequest{PoolID: id, Address: "10.123.0.1", Options: macOpts})
	wantErr[types.ForbiddenError](t, "the gateway for an endpoint", err, "kept for the gateway")
	_, err = d.RequestAddress(&api.RequestAddressRequest{PoolID: "ExampleLocal/10.9.0.0/24", Options: macOpts})
	wantErr[types.NotFoundError](t, "an unknown pool", err, "no such pool")

	// Releasing the gateway always succeeds; it is then given again.
	for range 2 {
		if err := d.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.123.0.1"}); err != nil {
			t.Fatalf("releasing the gateway: %v", err)
		}
	}
	if got := address(t, d, id, "10.123.0.1", gwOpts); got != "10.123.0.1/24" {
		t.Errorf("gateway asked for by address: %s", got)
	}
	err = d.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "10.123.0.77/24"})
	wantErr[types.NotFoundError](t, "releasing a free address", err, "releasing address 10.123.0.77 of pool 10.123.0.0/24: not allocated")
	err = d.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "x"})
	wantErr[types.BadRequestError](t, "releasing a bad address", err, `releasing address "x"`)
}

// TestGatewayElsewhere: a gateway asked for at another address takes that
// address, and the pool's first host stays unused by endpoints.
func TestGatewayElsewhere(t *testing.T) {
	d := newIPAM(t)
	id := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "192.168.7.0/24"}).PoolID
	if got := address(t, d, id, "192.168.7.254", gwOpts); got != "192.168.7.254/24" {
		t.Errorf("gateway at .254: %s", got)
	}
	if got := address(t, d, id, "", macOpts); got != "192.168.7.2/24" {
		t.Errorf("first endpoint address: %s", got)
	}
	if err := d.ReleaseAddress(&api.ReleaseAddressRequest{PoolID: id, Address: "192.168.7.254"}); err != nil {
		t.Fatal(err)
	}
}

func TestExhaustionAndSubPool(t *testing.T) {
	d := newIPAM(t)
	small := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.7.0.0/30"}).PoolID
	address(t, d, small, "", gwOpts)
	if got := address(t, d, small, "", macOpts); got != "10.7.0.2/30" {
		t.Errorf("only address of a /30: %s", got)
	}
	_, err := d.RequestAddress(&api.RequestAddressRequest{PoolID: small, Options: macOpts})
	wantErr[types.ForbiddenError](t, "a full pool", err, "pool 10.7.0.0/30: no free address")

	sub := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "10.8.0.0/16", SubPool: "10.8.4.0/30"})
	if sub.PoolID != "ExampleLocal/10.8.0.0/16/10.8.4.0/30" || sub.Data[GatewayKey] != "10.8.0.1/16" {
		t.Errorf("pool with a sub-pool: %+v", sub)
	}
	var got []string
	for range 4 {
		got = append(got, address(t, d, sub.PoolID, "", macOpts))
	}
	if strings.Join(got, " ") != "10.8.4.0/16 10.8.4.1/16 10.8.4.2/16 10.8.4.3/16" {
		t.Errorf("addresses of sub-pool 10.8.4.0/30: %v", got)
	}
	_, err = d.RequestAddress(&api.RequestAddressRequest{PoolID: sub.PoolID, Options: macOpts})
	wantErr[types.ForbiddenError](t, "a full sub-pool", err, "no free address in 10.8.4.0/30")

	v6 := requestPool(t, d, api.RequestPoolRequest{AddressSpace: LocalSpace, Pool: "fd00:7::/64", V6: true}).PoolID
	address(t, d, v6, "", gwOpts)
	if got := address(t, d, v6, "", macOpts); got != "fd00:7::2/64" {
		t.Errorf("first IPv6 address: %s", got)
	}
}

func TestParsePools(t *testing.T) {
	got, err := ParsePools(" 10.1.0.0/24, fd00::/64,,")
	if err != nil || len(got) != 2 || got[0].String() != "10.1.0.0/24" || got[1].String() != "fd00::/64" {
		t.Errorf("ParsePools: %v, %v", got, err)
	}
	for _, bad := range []string{"10.1.0.0", "10.1.0.1/24"} {
		if _, err := ParsePools(bad); err == nil {
			t.Errorf("ParsePools(%q) accepted", bad)
		}
	}
	if _, err := New([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/31")}); err == nil {
		t.Error("New accepted a /31 default pool")
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/24": "10.0.0.255",
		"10.0.0.0/21": "10.0.7.255",
		"10.0.0.4/30": "10.0.0.7",
		"fd00::/120":  "fd00::ff",
	} {
		if got := lastAddr(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
