package libnetwork

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/types"
)

// When every default pool is taken, NewNetwork fails with a NoServiceError
// (as v0.7's ipamapi.ErrNoAvailablePool): the request is well formed and
// may succeed once a network is deleted, so it is not a BadRequest, and
// nothing it names is missing or forbidden. The class holds for a plain
// type assertion, and nothing is left behind.
func TestNoDefaultPoolIsNoService(t *testing.T) {
	e := newEnv(t)
	c := e.start(config.OptionDefaultAddressPools([]config.PoolSpec{
		{Base: netip.MustParsePrefix("10.77.0.0/24"), Size: 24},
		{Base: netip.MustParsePrefix("fd77::/64"), Size: 64},
	}))
	_, err := c.NewNetwork("bridge", "first")
	mustf(t, err, "first network")
	before := e.snapshot(c)
	_, err = c.NewNetwork("bridge", "second")
	if _, ok := err.(types.NoServiceError); !ok || !errors.Is(err, ipamapi.ErrNoAvailablePool) {
		t.Fatalf("second network = %v (%T), want a NoServiceError wrapping ErrNoAvailablePool", err, err)
	}
	e.requireSame(before, e.snapshot(c), "a network with no default pool left")
}

// Default pools that cannot be right are refused at New.
func TestBadDefaultPoolsRefused(t *testing.T) {
	e := newEnv(t)
	for _, spec := range []config.PoolSpec{
		{Base: netip.MustParsePrefix("0.0.0.0/0"), Size: 24},
		{Base: netip.MustParsePrefix("127.0.0.0/8"), Size: 24},
		{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 32},
	} {
		nc, err := New(e.options(config.OptionDefaultAddressPools([]config.PoolSpec{spec}))...)
		if err == nil {
			nc.Stop()
			t.Errorf("New with default pool %v succeeded", spec)
			continue
		}
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), spec.Base.String()) {
			t.Errorf("New with default pool %v = %v, want a BadRequest naming it", spec, err)
		}
	}
}

// A pool a (remote) IPAM driver returns is checked as a requested one.
func TestCheckIPAMPool(t *testing.T) {
	for p, ok := range map[string]bool{
		"10.0.0.0/24":    true,
		"fd00::/64":      true,
		"0.0.0.0/0":      false,
		"::/0":           false,
		"127.0.0.0/24":   false,
		"224.0.0.0/24":   false,
		"10.0.0.1/32":    false,
		"fd00::1/128":    false,
		"10.0.0.0/31":    true,
		"169.254.0.0/16": false,
	} {
		_, n, err := net.ParseCIDR(p)
		mustf(t, err, "parse %s", p)
		if err := checkIPAMPool(n); (err == nil) != ok || err != nil && !types.IsBadRequest(err) {
			t.Errorf("checkIPAMPool(%s) = %v, want ok=%v", p, err, ok)
		}
	}
	if err := checkIPAMPool(nil); !types.IsBadRequest(err) {
		t.Errorf("checkIPAMPool(nil) = %v, want BadRequest", err)
	}
	if err := checkIPAMPool(&net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(24, 32)}); err != nil {
		t.Errorf("checkIPAMPool(16-byte IPv4) = %v", err)
	}
}
