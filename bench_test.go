package libnetwork

import (
	"fmt"
	"testing"
)

// BenchmarkAttachDetach measures one container's whole life on a bridge
// network: NewSandbox + CreateEndpoint + Join, then Leave + Delete +
// sandbox Delete. cmd/netbench reports the same paths with percentiles.
func BenchmarkAttachDetach(b *testing.B) {
	e := newEnv(b)
	c := e.start()
	n, err := c.NewNetwork("bridge", "bench", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.140.0.0/16"}}, nil, nil))
	mustf(b, err, "network")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i))
		mustf(b, err, "sandbox")
		ep, err := n.CreateEndpoint(fmt.Sprintf("e%d", i))
		mustf(b, err, "endpoint")
		mustf(b, ep.Join(sb), "join")
		mustf(b, ep.Leave(sb), "leave")
		mustf(b, ep.Delete(false), "delete endpoint")
		mustf(b, sb.Delete(), "delete sandbox")
	}
}

// BenchmarkJoinLeave measures Join + Leave of an existing endpoint and
// sandbox: the veth created in place, configured, retired.
func BenchmarkJoinLeave(b *testing.B) {
	e := newEnv(b)
	c := e.start()
	n, err := c.NewNetwork("bridge", "bench", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.141.0.0/16"}}, nil, nil))
	mustf(b, err, "network")
	ep, err := n.CreateEndpoint("e")
	mustf(b, err, "endpoint")
	sb, err := c.NewSandbox("c")
	mustf(b, err, "sandbox")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustf(b, ep.Join(sb), "join")
		mustf(b, ep.Leave(sb), "leave")
	}
}
