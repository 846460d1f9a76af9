package libnetwork

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/config"
)

// scalePools are the default pools of the scale benchmarks: 65,536 /24s,
// room for every network they make.
var scalePools = []config.PoolSpec{{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24}}

// explicitPool returns the i-th /24 of 172.16.0.0/12, outside scalePools.
func explicitPool(i int) string {
	return fmt.Sprintf("172.%d.%d.0/24", 16+i>>8, i&0xff)
}

// populate creates n bridge networks on c, every other one with an
// explicit pool (so both the overlap check and default pool selection see
// n networks), and returns them. Each makes a kernel bridge.
func populate(b *testing.B, c *controller, n int) []Network {
	b.Helper()
	nets := make([]Network, 0, n)
	for i := range n {
		var opts []NetworkOption
		if i%2 == 1 {
			opts = append(opts, NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: explicitPool(i)}}, nil, nil))
		}
		nw, err := c.NewNetwork("bridge", fmt.Sprintf("net%d", i), opts...)
		mustf(b, err, "network %d of %d", i, n)
		nets = append(nets, nw)
	}
	return nets
}

// BenchmarkNewNetworkScaling measures NewNetwork of one bridge network
// (its Delete is not timed) with 100, 250, 1,000 and 4,000 networks present,
// with a default pool and with an explicit one. The cost must not grow
// with the number of networks.
func BenchmarkNewNetworkScaling(b *testing.B) {
	for _, present := range []int{100, 250, 1000, 4000} {
		b.Run(fmt.Sprintf("networks=%d", present), func(b *testing.B) {
			e := newEnv(b)
			c := e.start(config.OptionDefaultAddressPools(scalePools))
			populate(b, c, present)
			for _, pool := range []string{"default", "explicit"} {
				b.Run("pool="+pool, func(b *testing.B) {
					var opts []NetworkOption
					if pool == "explicit" {
						// Above every pool populate gives out.
						opts = append(opts, NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "172.31.255.0/24"}}, nil, nil))
					}
					b.ReportAllocs()
					for b.Loop() {
						nw, err := c.NewNetwork("bridge", "measured", opts...)
						mustf(b, err, "network")
						b.StopTimer()
						mustf(b, nw.Delete(), "delete")
						b.StartTimer()
					}
				})
			}
		})
	}
}

// BenchmarkRestoreScale measures New on a data dir and exec root holding
// 4,000 bridge networks and 10,000 endpoints (spread over the first 1,000
// networks, unjoined), with their bridges and rules left in the kernel by
// the controller that made them, as after a daemon restart. Each
// iteration is one New and one Stop; only New is timed. The smaller size
// is there for quick runs.
func BenchmarkRestoreScale(b *testing.B) {
	for _, size := range []struct{ networks, endpoints int }{{400, 1000}, {4000, 10000}} {
		b.Run(fmt.Sprintf("networks=%d/endpoints=%d", size.networks, size.endpoints), func(b *testing.B) {
			e := newEnv(b)
			opts := e.options(config.OptionDefaultAddressPools(scalePools))
			nc, err := New(opts...)
			mustf(b, err, "New")
			nets := populate(b, nc.(*controller), size.networks)
			withEps := min(len(nets), size.networks/4)
			for i := range size.endpoints {
				_, err := nets[i%withEps].CreateEndpoint(fmt.Sprintf("ep%d", i))
				mustf(b, err, "endpoint %d", i)
			}
			nc.Stop()
			for b.Loop() {
				nc, err := New(opts...)
				mustf(b, err, "restoring New")
				b.StopTimer()
				if got := len(nc.Networks()); got != size.networks {
					b.Fatalf("restored %d networks, want %d", got, size.networks)
				}
				nc.Stop()
				b.StartTimer()
			}
		})
	}
}
