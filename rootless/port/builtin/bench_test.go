package builtin

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/netkit/libnetwork/rootless/port"
)

// BenchmarkBuiltinTCPConnect measures connections per second through an
// exposed port: each connects, exchanges a byte with the child's echo
// server, and closes. "direct" is the same against an echo server in the
// parent namespace, for scale.
func BenchmarkBuiltinTCPConnect(b *testing.B) {
	r := newRig(b)
	p := freePort()
	r.add(port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: p, ChildPort: echoPort})
	direct := localServer(b, echoTCP)
	for _, c := range []struct{ name, addr string }{
		{"direct", direct},
		{"builtin", addr("127.0.0.1", p)},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 1)
			for b.Loop() {
				conn, err := net.Dial("tcp", c.addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}

// BenchmarkBuiltinTCPThroughput measures one connection's bytes per second
// through an exposed port, into the child's counting sink, which must
// have got them all. "direct" is the same to a sink in the parent
// namespace.
func BenchmarkBuiltinTCPThroughput(b *testing.B) {
	r := newRig(b)
	p := freePort()
	r.add(port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: p, ChildPort: countPort})
	direct := localServer(b, countTCP)
	for _, c := range []struct{ name, addr string }{
		{"direct", direct},
		{"builtin", addr("127.0.0.1", p)},
	} {
		b.Run(c.name, func(b *testing.B) {
			chunk := make([]byte, 256<<10)
			b.SetBytes(int64(len(chunk)))
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			for b.Loop() {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				b.Fatal(err)
			}
			count, err := io.ReadAll(conn)
			if err != nil {
				b.Fatal(err)
			}
			if want := strconv.Itoa(b.N * len(chunk)); string(count) != want {
				b.Fatalf("the sink got %s bytes, want %s", count, want)
			}
		})
	}
}

// localServer serves handle on 127.0.0.1 in the test's namespace.
func localServer(b *testing.B, handle func(*net.TCPConn)) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}
