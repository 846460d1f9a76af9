package drivertest

import (
	"net"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
)

// CIDR parses s ("10.0.0.2/24") into the address with its mask.
func CIDR(tb testing.TB, s string) *net.IPNet {
	tb.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		tb.Fatal(err)
	}
	n.IP = ip
	return n
}

// IPAMData is the IPAM data of pool with gateway gw ("" for none).
func IPAMData(tb testing.TB, pool, gw string) driverapi.IPAMData {
	tb.Helper()
	_, p, err := net.ParseCIDR(pool)
	if err != nil {
		tb.Fatal(err)
	}
	d := driverapi.IPAMData{Pool: p}
	if gw != "" {
		d.Gateway = &net.IPNet{IP: net.ParseIP(gw), Mask: p.Mask}
	}
	return d
}

// GenericData returns CreateNetwork's options with the driver options kv
// (key, value, ...) under netlabel.GenericData; an odd last key is
// ignored.
func GenericData(kv ...string) map[string]interface{} {
	gen := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		gen[kv[i]] = kv[i+1]
	}
	return map[string]interface{}{netlabel.GenericData: gen}
}
