package resolver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/netkit/libnetwork/internal/testutil"
)

// signalWriter is a ResponseWriter that only signals the reply, so that the
// benchmark measures the forwarder.
type signalWriter struct {
	tcp  bool
	done chan struct{}
}

var (
	benchUDPAddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
	benchTCPAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
)

func (w *signalWriter) LocalAddr() net.Addr {
	if w.tcp {
		return benchTCPAddr
	}
	return benchUDPAddr
}
func (w *signalWriter) RemoteAddr() net.Addr        { return benchUDPAddr }
func (w *signalWriter) WriteMsg(*dns.Msg) error     { w.done <- struct{}{}; return nil }
func (w *signalWriter) Write(b []byte) (int, error) { w.done <- struct{}{}; return len(b), nil }
func (w *signalWriter) Close() error                { return nil }
func (w *signalWriter) TsigStatus() error           { return nil }
func (w *signalWriter) TsigTimersOnly(bool)         {}
func (w *signalWriter) Hijack()                     {}
func (w *signalWriter) wait()                       { <-w.done }
func newSignalWriter(tcp bool) *signalWriter {
	return &signalWriter{tcp: tcp, done: make(chan struct{}, 1)}
}

var _ dns.ResponseWriter = (*signalWriter)(nil)

// echoUpstream answers every UDP query on ip with an empty NOERROR: the
// query with QR and RA set. It allocates nothing per query.
func echoUpstream(b testing.TB, ip string) Upstream {
	testutil.RequireRoot(b)
	conn := listenUDP(b, ip).(*net.UDPConn)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < headerLen {
				continue
			}
			buf[2] |= 0x80 // QR
			buf[3] |= 0x80 // RA
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return Upstream{Addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), Key: "bench"}
}

// BenchmarkForwardUDP forwards queries in parallel (32 per core in flight)
// to an upstream on loopback: the forwarder's cost per query, syscalls
// included, with an upstream that costs next to nothing.
func BenchmarkForwardUDP(b *testing.B) {
	benchForward(b, echoUpstream(b, "127.0.0.2"), false, 32, 1232)
}

// BenchmarkForwardTCP is BenchmarkForwardUDP for TCP clients, against a
// miekg/dns upstream (whose allocations count here too).
func BenchmarkForwardTCP(b *testing.B) {
	benchForward(b, startUpstream(b, "127.0.0.2", answerRcode(dns.RcodeSuccess)).upstream(), true, 4, 0)
}

// benchForward forwards an A query to up from parallelism goroutines per
// core, each waiting for its reply before the next query; the client is
// a TCP one if tcp is set, and offers ednsSize with EDNS0 unless it is 0.
func benchForward(b *testing.B, up Upstream, tcp bool, parallelism int, ednsSize uint16) {
	ups := []Upstream{up}
	f := NewForwarder(ForwarderConfig{Upstreams: func() []Upstream { return ups }, Stats: new(Stats)})
	b.Cleanup(f.Close)
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := newSignalWriter(tcp)
		req := query("www.example.com.", dns.TypeA)
		if ednsSize != 0 {
			req.SetEdns0(ednsSize, false)
		}
		for pb.Next() {
			f.Forward(w, req)
			w.wait()
		}
	})
}
