package libnetwork

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/netkit/libnetwork/osl"
)

// eventually retries check until it returns nil or the deadline passes,
// then fails with its last error. For state that other processes reach
// through the global store.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// udpEcho serves UDP echo on ip in ns; it returns the address.
func udpEcho(t *testing.T, ns *osl.Namespace, ip net.IP) string {
	t.Helper()
	var pc net.PacketConn
	mustf(t, ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0"))
		return err
	}), "UDP listen")
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), b[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpAsk sends "ping" to addr from ns and returns the answer.
func udpAsk(ns *osl.Namespace, addr string) (string, error) {
	var got string
	err := ns.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 64)
		n, err := c.Read(b)
		got = string(b[:n])
		return err
	})
	return got, err
}

// TestOverlayThreeHosts: three hosts (controller processes in namespaces
// of their own, on one underlay) share an etcd. A network created on one
// appears on the others; a container on each reaches the others over TCP
// and UDP, by address and by name (and alias) through its embedded DNS.
func TestOverlayThreeHosts(t *testing.T) {
	etcd := etcdtest.Start(t)
	cl := newCluster(t, 3, etcd.Endpoints()[0], "/test/"+t.Name())
	cl.hosts[0].must(hostReq{Op: "network", Name: "ov", Driver: "overlay", Subnet: "10.220.0.0/24"})
	for _, h := range cl.hosts[1:] {
		eventually(t, h.name+" sees network ov", func() error {
			if names := h.must(hostReq{Op: "networks"}).Names; !slices.Contains(names, "ov") {
				return fmt.Errorf("networks %v", names)
			}
			return nil
		})
	}
	type ctr struct {
		name string
		rep  hostReply
		ns   *osl.Namespace
	}
	var ctrs []ctr
	for i, h := range cl.hosts {
		name := fmt.Sprintf("c%d", i+1)
		rep := h.must(hostReq{Op: "join", Network: "ov", Name: name, Aliases: []string{"web" + name}})
		ctrs = append(ctrs, ctr{name: name, rep: rep, ns: nsAt(t, rep.Key)})
	}
	for _, to := range ctrs {
		tcp := listen(t, to.ns, net.ParseIP(to.rep.IP))
		udp := udpEcho(t, to.ns, net.ParseIP(to.rep.IP))
		for _, from := range ctrs {
			if from.name == to.name {
				continue
			}
			eventually(t, fmt.Sprintf("TCP %s -> %s (%s)", from.name, to.name, tcp), func() error {
				got, err := dial(from.ns, tcp, time.Second)
				if err == nil && got != "echo:ping" {
					err = fmt.Errorf("answer %q", got)
				}
				return err
			})
			if got, err := udpAsk(from.ns, udp); err != nil || got != "echo:ping" {
				t.Errorf("UDP %s -> %s: %q %v", from.name, to.name, got, err)
			}
			for _, name := range []string{to.name, "web" + to.name, to.name + ".ov"} {
				eventually(t, fmt.Sprintf("%s resolves %s", from.name, name), func() error {
					r := dig(t, keyOnly(from.rep.Key), name, "A")
					if r.status != "NOERROR" || !slices.Equal(r.answers, []string{"A " + to.rep.IP}) {
						return fmt.Errorf("status %s answers %v, want A %s", r.status, r.answers, to.rep.IP)
					}
					return nil
				})
			}
		}
	}
}
