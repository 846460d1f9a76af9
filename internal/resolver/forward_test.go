package resolver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netkit/libnetwork/internal/testutil"
)

// replyWait bounds how long a test waits for a reply before it declares the
// forwarder stuck; it is no speed assertion.
const replyWait = 10 * time.Second

// syncWriter is writer_test.go's recorder made safe for the forwarder,
// which writes from its own goroutines; wrote signals each write.
type syncWriter struct {
	mu    sync.Mutex
	rec   recorder
	wrote chan struct{}
}

func newWriter(tcp bool) *syncWriter {
	return &syncWriter{rec: recorder{tcp: tcp}, wrote: make(chan struct{}, 16)}
}

func (w *syncWriter) LocalAddr() net.Addr  { return w.rec.LocalAddr() }
func (w *syncWriter) RemoteAddr() net.Addr { return w.rec.RemoteAddr() }
func (w *syncWriter) Close() error         { return nil }
func (w *syncWriter) TsigStatus() error    { return nil }
func (w *syncWriter) TsigTimersOnly(bool)  {}
func (w *syncWriter) Hijack()              {}

func (w *syncWriter) WriteMsg(m *dns.Msg) error {
	w.mu.Lock()
	err := w.rec.WriteMsg(m)
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return err
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	n, err := w.rec.Write(b)
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return n, err
}

// written returns the number of replies written so far.
func (w *syncWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rec.msgs)
}

// wait waits for the reply to req and checks it is the only one, a
// response with req's ID, that unpacks.
func (w *syncWriter) wait(t testing.TB, req *dns.Msg) (*dns.Msg, []byte) {
	t.Helper()
	select {
	case <-w.wrote:
	case <-time.After(replyWait):
		t.Fatalf("%v: no reply", req.Question)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.rec.msgs) != 1 || w.rec.err != nil {
		t.Fatalf("%v: %d replies (error %v), want 1", req.Question, len(w.rec.msgs), w.rec.err)
	}
	got := w.rec.msgs[0]
	if got.Id != req.Id || !got.Response {
		t.Fatalf("%v: reply id %d response %v, want id %d response true", req.Question, got.Id, got.Response, req.Id)
	}
	return got, w.rec.packed[0]
}

// ask forwards req through f as a client on UDP (or TCP) and returns the
// reply.
func ask(t testing.TB, f *Forwarder, req *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	w := newWriter(tcp)
	f.Forward(w, req)
	m, _ := w.wait(t, req)
	return m
}

// testUpstream is a miekg/dns server on UDP and TCP of one loopback port.
type testUpstream struct {
	addr netip.AddrPort

	mu sync.Mutex
	// seen are the queries received, nets their transports, from their
	// source addresses.
	seen []*dns.Msg
	nets []string
	from []string
}

// startUpstream serves h on UDP and TCP of ip and a free port.
func startUpstream(t testing.TB, ip string, h dns.HandlerFunc) *testUpstream {
	t.Helper()
	testutil.RequireRoot(t)
	u := &testUpstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Copy())
		u.nets = append(u.nets, w.LocalAddr().Network())
		u.from = append(u.from, w.RemoteAddr().String())
		u.mu.Unlock()
		h(w, r)
	})
	var pc net.PacketConn
	var ln net.Listener
	for range 10 {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free on both UDP and TCP")
	}
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

// queries returns the number of queries u received.
func (u *testUpstream) queries() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

func (u *testUpstream) upstream() Upstream {
	return Upstream{Addr: u.addr, Key: "test/" + u.addr.String()}
}

// answerA answers every query with an A record of addr for its name.
func answerA(addr string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.ParseIP(addr),
		}}
		_ = w.WriteMsg(m)
	}
}

// answerRcode answers every query with rcode.
func answerRcode(rcode int) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
	}
}

// aAddr returns the address of m's single A record, "" if it has not one.
func aAddr(m *dns.Msg) string {
	if len(m.Answer) != 1 {
		return ""
	}
	a, ok := m.Answer[0].(*dns.A)
	if !ok {
		return ""
	}
	return a.A.String()
}

// newForwarder returns a forwarder to ups, closed at cleanup.
func newForwarder(t testing.TB, cfg ForwarderConfig, ups ...Upstream) (*Forwarder, *Stats) {
	t.Helper()
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = func() []Upstream { return ups }
	}
	f := NewForwarder(cfg)
	t.Cleanup(f.Close)
	return f, cfg.Stats
}

// listenUDP opens a UDP socket on a random port of ip, closed when the
// test ends.
func listenUDP(t testing.TB, ip string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// listenTCP opens a TCP listener on a random port of ip, closed when the
// test ends.
func listenTCP(t testing.TB, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// silentUpstream is a bound UDP socket that never answers.
func silentUpstream(t testing.TB, ip string) (Upstream, net.PacketConn) {
	t.Helper()
	testutil.RequireRoot(t)
	pc := listenUDP(t, ip)
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	return Upstream{Addr: a, Key: "silent/" + a.String()}, pc
}

// closedUpstream is a port nothing listens on: queries to it get an ICMP
// port unreachable.
func closedUpstream(t testing.TB, ip string) Upstream {
	t.Helper()
	testutil.RequireRoot(t)
	pc := listenUDP(t, ip)
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return Upstream{Addr: a, Key: "closed/" + a.String()}
}

// dialCounter counts the sockets an upstream's Dial opens.
type dialCounter struct{ udp, tcp atomic.Int32 }

func (d *dialCounter) dial(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	if network == "tcp" {
		d.tcp.Add(1)
	} else {
		d.udp.Add(1)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr.String())
}

func TestForwardRelaysAnswer(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "udp", true: "tcp"}[tcp], func(t *testing.T) {
			up := startUpstream(t, "127.0.0.2", answerA("192.0.2.1"))
			f, stats := newForwarder(t, ForwarderConfig{}, up.upstream())
			req := query("example.com.", dns.TypeA)
			req.Id = 0x1234
			got := ask(t, f, req, tcp)
			if aAddr(got) != "192.0.2.1" || got.Rcode != dns.RcodeSuccess {
				t.Fatalf("reply %v, want the upstream's answer", got)
			}
			want := "udp"
			if tcp {
				want = "tcp"
			}
			if up.queries() != 1 || up.nets[0] != want {
				t.Fatalf("upstream got %d queries over %v, want 1 over %s", up.queries(), up.nets, want)
			}
			f.Close() // the latency is observed after the reply is written
			s := stats.Snapshot()
			if s.Forwarded != 1 || s.UpstreamFailures != 0 || s.ForwardedLatency.Count != 1 {
				t.Fatalf("stats %+v, want 1 forwarded, no failure, one latency", s)
			}
		})
	}
}

func TestForwardRelaysNXDOMAIN(t *testing.T) {
	first := startUpstream(t, "127.0.0.2", answerRcode(dns.RcodeNameError))
	second := startUpstream(t, "127.0.0.3", answerA("192.0.2.2"))
	f, stats := newForwarder(t, ForwarderConfig{}, first.upstream(), second.upstream())
	got := ask(t, f, query("nowhere.example.", dns.TypeA), false)
	if got.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s, want NXDOMAIN", dns.RcodeToString[got.Rcode])
	}
	if second.queries() != 0 || stats.UpstreamFailures.Load() != 0 {
		t.Fatalf("NXDOMAIN was taken for a failure: second upstream asked %d times, %d failures",
			second.queries(), stats.UpstreamFailures.Load())
	}
}

// TestForwardDeadUpstream: upstreams that never answer cost their share of
// the timeout each, and the last one still answers before the client's
// timeout.
func TestForwardDeadUpstream(t *testing.T) {
	dead1, pc1 := silentUpstream(t, "127.0.0.2")
	dead2, pc2 := silentUpstream(t, "127.0.0.3")
	live := startUpstream(t, "127.0.0.4", answerA("192.0.2.4"))
	const timeout = 1500 * time.Millisecond
	f, stats := newForwarder(t, ForwarderConfig{Timeout: timeout}, dead1, dead2, live.upstream())
	start := time.Now()
	got := ask(t, f, query("example.com.", dns.TypeA), false)
	elapsed := time.Since(start)
	if aAddr(got) != "192.0.2.4" {
		t.Fatalf("reply %v, want the third upstream's answer", got)
	}
	if elapsed >= timeout {
		t.Fatalf("answered after %v, not within the client's timeout %v", elapsed, timeout)
	}
	for i, pc := range []net.PacketConn{pc1, pc2} {
		buf := make([]byte, 512)
		_ = pc.SetReadDeadline(time.Now().Add(replyWait))
		if _, _, err := pc.ReadFrom(buf); err != nil {
			t.Fatalf("dead upstream %d got no query: %v", i+1, err)
		}
	}
	if n := stats.UpstreamFailures.Load(); n != 2 {
		t.Fatalf("%d upstream failures, want 2", n)
	}
}

// TestForwardSetTimeout: a new client timeout applies to the next query.
// Created with an hour's timeout, the forwarder would wait half an hour on
// the silent first upstream; after SetTimeout(400ms) the query moves to
// the second upstream after its 180 ms share, answered well before the
// test stops waiting.
func TestForwardSetTimeout(t *testing.T) {
	dead, _ := silentUpstream(t, "127.0.0.2")
	live := startUpstream(t, "127.0.0.3", answerA("192.0.2.3"))
	f, stats := newForwarder(t, ForwarderConfig{Timeout: time.Hour}, dead, live.upstream())
	f.SetTimeout(400 * time.Millisecond)
	if got := ask(t, f, query("example.com.", dns.TypeA), false); aAddr(got) != "192.0.2.3" {
		t.Fatalf("reply %v, want the second upstream's answer", got)
	}
	if n := stats.UpstreamFailures.Load(); n != 1 {
		t.Fatalf("%d upstream failures, want 1", n)
	}
}

// TestForwardRefusedUpstream: an ICMP port unreachable fails an upstream at
// once, not after its share of the timeout: with an hour's timeout, the
// second upstream's answer comes before the test gives up waiting.
func TestForwardRefusedUpstream(t *testing.T) {
	live := startUpstream(t, "127.0.0.3", answerA("192.0.2.3"))
	f, stats := newForwarder(t, ForwarderConfig{Timeout: time.Hour}, closedUpstream(t, "127.0.0.2"), live.upstream())
	for range 3 {
		got := ask(t, f, query("example.com.", dns.TypeA), false)
		if aAddr(got) != "192.0.2.3" {
			t.Fatalf("reply %v, want the second upstream's answer", got)
		}
	}
	if n := stats.UpstreamFailures.Load(); n != 3 {
		t.Fatalf("%d upstream failures, want 3", n)
	}
}

func TestForwardServfailFailover(t *testing.T) {
	first := startUpstream(t, "127.0.0.2", answerRcode(dns.RcodeServerFailure))
	second := startUpstream(t, "127.0.0.3", answerA("192.0.2.3"))
	f, stats := newForwarder(t, ForwarderConfig{}, first.upstream(), second.upstream())
	got := ask(t, f, query("example.com.", dns.TypeA), false)
	if aAddr(got) != "192.0.2.3" {
		t.Fatalf("reply %v, want the second upstream's answer", got)
	}
	if first.queries() != 1 || second.queries() != 1 || stats.UpstreamFailures.Load() != 1 {
		t.Fatalf("queries %d, %d, failures %d, want 1, 1, 1", first.queries(), second.queries(), stats.UpstreamFailures.Load())
	}
}

func TestForwardAllFail(t *testing.T) {
	t.Run("last failure answer relayed", func(t *testing.T) {
		first := startUpstream(t, "127.0.0.2", answerRcode(dns.RcodeServerFailure))
		second := startUpstream(t, "127.0.0.3", answerRcode(dns.RcodeRefused))
		third := closedUpstream(t, "127.0.0.4")
		f, stats := newForwarder(t, ForwarderConfig{}, first.upstream(), second.upstream(), third)
		got := ask(t, f, query("example.com.", dns.TypeA), false)
		if got.Rcode != dns.RcodeRefused {
			t.Fatalf("rcode %s, want the second upstream's REFUSED", dns.RcodeToString[got.Rcode])
		}
		if n := stats.UpstreamFailures.Load(); n != 3 {
			t.Fatalf("%d upstream failures, want 3", n)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		f, stats := newForwarder(t, ForwarderConfig{}, closedUpstream(t, "127.0.0.2"), closedUpstream(t, "127.0.0.3"))
		got := ask(t, f, query("example.com.", dns.TypeA), false)
		if got.Rcode != dns.RcodeServerFailure {
			t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[got.Rcode])
		}
		if n := stats.UpstreamFailures.Load(); n != 2 {
			t.Fatalf("%d upstream failures, want 2", n)
		}
	})
	t.Run("no upstream", func(t *testing.T) {
		f, stats := newForwarder(t, ForwarderConfig{})
		req := query("example.com.", dns.TypeA)
		req.SetEdns0(1232, true)
		got := ask(t, f, req, false)
		if got.Rcode != dns.RcodeServerFailure || got.IsEdns0() == nil {
			t.Fatalf("reply %v, want SERVFAIL with EDNS0", got)
		}
		if s := stats.Snapshot(); s.UpstreamFailures != 1 || s.Forwarded != 0 {
			t.Fatalf("stats %+v, want 1 failure, nothing forwarded", s)
		}
	})
	t.Run("only the first three", func(t *testing.T) {
		var ups []Upstream
		for i := range 3 {
			ups = append(ups, closedUpstream(t, fmt.Sprintf("127.0.0.%d", 2+i)))
		}
		fourth := startUpstream(t, "127.0.0.5", answerA("192.0.2.5"))
		ups = append(ups, fourth.upstream())
		f, _ := newForwarder(t, ForwarderConfig{}, ups...)
		got := ask(t, f, query("example.com.", dns.TypeA), false)
		if got.Rcode != dns.RcodeServerFailure || fourth.queries() != 0 {
			t.Fatalf("rcode %s, fourth upstream asked %d times: want SERVFAIL, never", dns.RcodeToString[got.Rcode], fourth.queries())
		}
	})
}

// TestForwardTruncation: a truncated UDP answer is relayed with TC; the
// client's TCP retry goes upstream over TCP.
func TestForwardTruncation(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		if w.LocalAddr().Network() == "udp" {
			m := new(dns.Msg)
			m.SetReply(r)
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		answerA("192.0.2.9")(w, r)
	})
	f, _ := newForwarder(t, ForwarderConfig{}, up.upstream())
	got := ask(t, f, query("big.example.", dns.TypeA), false)
	if !got.Truncated || len(got.Answer) != 0 {
		t.Fatalf("UDP reply %v, want TC", got)
	}
	got = ask(t, f, query("big.example.", dns.TypeA), true)
	if got.Truncated || aAddr(got) != "192.0.2.9" {
		t.Fatalf("TCP reply %v, want the full answer", got)
	}
	if up.nets[0] != "udp" || up.nets[1] != "tcp" {
		t.Fatalf("upstream transports %v, want udp then tcp", up.nets)
	}
}

// bigAnswer answers every query with n A records, whatever the client's
// size (miekg/dns does not truncate), and records the OPT size it got (0
// without EDNS0).
func bigAnswer(n int, sizes chan<- int) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		size := 0
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		if sizes != nil {
			sizes <- size
		}
		m := new(dns.Msg)
		m.SetReply(r)
		for i := range n {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(198, 51, byte(i/256), byte(i)),
			})
		}
		if size > 0 {
			m.SetEdns0(uint16(size), false)
		}
		_ = w.WriteMsg(m)
	}
}

// TestForwardTruncatesToClientSize: a reply larger than the client's UDP
// size is truncated with TC; one that fits is relayed whole.
func TestForwardTruncatesToClientSize(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", bigAnswer(60, nil))
	f, _ := newForwarder(t, ForwarderConfig{}, up.upstream())
	for _, tc := range []struct {
		name      string
		edns      uint16
		tcp       bool
		limit     int
		truncated bool
	}{
		{"no edns", 0, false, 512, true},
		{"edns 1232", 1232, false, 1232, false},
		{"edns 600", 600, false, 600, true},
		{"tcp", 0, true, dns.MaxMsgSize, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := query("many.example.", dns.TypeA)
			if tc.edns != 0 {
				req.SetEdns0(tc.edns, false)
			}
			w := newWriter(tc.tcp)
			f.Forward(w, req)
			got, packed := w.wait(t, req)
			if len(packed) > tc.limit || got.Truncated != tc.truncated {
				t.Fatalf("reply of %d bytes, TC %v; want at most %d bytes, TC %v", len(packed), got.Truncated, tc.limit, tc.truncated)
			}
			if !tc.truncated && len(got.Answer) != 60 {
				t.Fatalf("%d answers, want all 60", len(got.Answer))
			}
		})
	}
}

// TestForwardEDNSSize: the client's EDNS0 size goes upstream, capped at
// 4096; a client without EDNS0 sends none.
func TestForwardEDNSSize(t *testing.T) {
	sizes := make(chan int, 1)
	up := startUpstream(t, "127.0.0.2", bigAnswer(1, sizes))
	f, _ := newForwarder(t, ForwarderConfig{}, up.upstream())
	for _, tc := range []struct{ client, upstream int }{{0, 0}, {1232, 1232}, {4096, 4096}, {65000, 4096}} {
		req := query("example.com.", dns.TypeA)
		if tc.client != 0 {
			req.SetEdns0(uint16(tc.client), true)
		}
		got := ask(t, f, req, false)
		if got := <-sizes; got != tc.upstream {
			t.Fatalf("client size %d: upstream got %d, want %d", tc.client, got, tc.upstream)
		}
		if (got.IsEdns0() != nil) != (tc.client != 0) {
			t.Fatalf("client size %d: reply OPT %v", tc.client, got.IsEdns0())
		}
	}
}

// TestForwardReusesSockets: many queries share one socket.
func TestForwardReusesSockets(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", answerA("192.0.2.1"))
	var dials dialCounter
	u := up.upstream()
	u.Dial = dials.dial
	f, _ := newForwarder(t, ForwarderConfig{}, u)

	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := query(fmt.Sprintf("q%d.example.", i), dns.TypeA)
			if got := ask(t, f, req, false); aAddr(got) != "192.0.2.1" {
				t.Errorf("reply %v", got)
			}
		}()
		if i%20 == 19 {
			wg.Wait()
		}
	}
	wg.Wait()
	if d := dials.udp.Load(); d != 1 {
		t.Fatalf("%d UDP sockets dialled for %d queries, want 1", d, n)
	}
	for range 20 {
		ask(t, f, query("tcp.example.", dns.TypeA), true)
	}
	if d := dials.tcp.Load(); d != 1 {
		t.Fatalf("%d TCP connections dialled for 20 queries in turn, want 1", d)
	}
}

// TestForwardRotatesSockets: a UDP socket is replaced after its share of
// queries, so the source port changes.
func TestForwardRotatesSockets(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", answerA("192.0.2.1"))
	var dials dialCounter
	u := up.upstream()
	u.Dial = dials.dial
	f, _ := newForwarder(t, ForwarderConfig{}, u)
	f.udpRotateQueries = 5
	for range 30 {
		ask(t, f, query("example.com.", dns.TypeA), false)
	}
	if d := dials.udp.Load(); d != 6 {
		t.Fatalf("%d sockets dialled for 30 queries, 5 each; want 6", d)
	}
	ports := map[string]bool{}
	up.mu.Lock()
	for _, a := range up.from {
		ports[a] = true
	}
	up.mu.Unlock()
	if len(ports) != 6 {
		t.Fatalf("queries came from %d source ports, want 6", len(ports))
	}
}

// TestForwardClosesIdleSockets: a UDP socket that sends nothing for
// udpIdle is closed with its reader, and the next query dials another; one
// kept busy is not.
func TestForwardClosesIdleSockets(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", answerA("192.0.2.1"))
	var dials dialCounter
	u := up.upstream()
	u.Dial = dials.dial
	// The read deadline of the last query answered comes first (90% of
	// the timeout); the idle one after it.
	f, _ := newForwarder(t, ForwarderConfig{Timeout: 300 * time.Millisecond}, u)
	f.udpIdle = 200 * time.Millisecond

	// Busy: a query every 20 ms for 600 ms keeps the one socket.
	for end := time.Now().Add(600 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		ask(t, f, query("example.com.", dns.TypeA), false)
	}
	if d := dials.udp.Load(); d != 1 {
		t.Fatalf("%d sockets dialled while queries kept coming, want 1", d)
	}
	p, err := f.pool(&u)
	if err != nil {
		t.Fatal(err)
	}
	s := p.udp.sock.Load()
	if s == nil {
		t.Fatal("no socket in the pool after the queries")
	}
	// Idle: the socket leaves the pool and its reader ends.
	deadline := time.Now().Add(replyWait)
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle socket was not closed within %v", replyWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p.udp.sock.Load() != nil {
		t.Fatal("the closed idle socket is still the pool's")
	}
	if got := ask(t, f, query("example.com.", dns.TypeA), false); aAddr(got) != "192.0.2.1" {
		t.Fatalf("reply after the idle close %v", got)
	}
	if d := dials.udp.Load(); d != 2 {
		t.Fatalf("%d sockets dialled, want a second one after the idle close", d)
	}
}

// TestForwardClosesIdleTCP: an idle TCP connection to an upstream is
// closed after tcpIdleAge, and the next TCP query dials another.
func TestForwardClosesIdleTCP(t *testing.T) {
	up := startUpstream(t, "127.0.0.2", answerA("192.0.2.1"))
	var mu sync.Mutex
	var conns []net.Conn
	u := up.upstream()
	u.Dial = func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr.String())
		if err == nil && network == "tcp" {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	f, _ := newForwarder(t, ForwarderConfig{}, u)
	f.tcpIdleAge = 200 * time.Millisecond
	for range 3 {
		if got := ask(t, f, query("example.com.", dns.TypeA), true); aAddr(got) != "192.0.2.1" {
			t.Fatalf("reply %v", got)
		}
	}
	mu.Lock()
	first := conns
	mu.Unlock()
	if len(first) != 1 {
		t.Fatalf("%d TCP connections dialled for 3 queries in turn, want 1", len(first))
	}
	deadline := time.Now().Add(replyWait)
	for {
		// A closed connection fails a write with net.ErrClosed; a
		// deadline in the past keeps the write from sending.
		_ = first[0].SetWriteDeadline(time.Unix(1, 0))
		if _, err := first[0].Write([]byte{0}); errors.Is(err, net.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle TCP connection was not closed within %v", replyWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p, err := f.pool(&u)
	if err != nil {
		t.Fatal(err)
	}
	p.tcp.mu.Lock()
	idle, open := len(p.tcp.idle), len(p.tcp.open)
	p.tcp.mu.Unlock()
	if idle != 0 || open != 0 {
		t.Fatalf("after the idle close the pool holds %d idle and %d open connections", idle, open)
	}
	if got := ask(t, f, query("example.com.", dns.TypeA), true); aAddr(got) != "192.0.2.1" {
		t.Fatalf("reply after the idle close %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 2 {
		t.Fatalf("%d TCP connections dialled, want a second one after the idle close", len(conns))
	}
}

// TestForwardConcurrencyBound: beyond MaxConcurrent queries in flight, a
// query is refused at once.
func TestForwardConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		answerA("192.0.2.1")(w, r)
	})
	f, stats := newForwarder(t, ForwarderConfig{MaxConcurrent: 2}, up.upstream())
	var held []*syncWriter
	var reqs []*dns.Msg
	for range 2 {
		req := query("slow.example.", dns.TypeA)
		w := newWriter(false)
		f.Forward(w, req)
		held, reqs = append(held, w), append(reqs, req)
	}
	for up.queries() < 2 {
		time.Sleep(time.Millisecond)
	}
	w := newWriter(false)
	req := query("more.example.", dns.TypeA)
	f.Forward(w, req)
	if w.written() != 1 {
		t.Fatal("the query beyond the bound was not answered before Forward returned")
	}
	if got, _ := w.wait(t, req); got.Rcode != dns.RcodeRefused {
		t.Fatalf("rcode %s, want REFUSED", dns.RcodeToString[got.Rcode])
	}
	if n := stats.Refused.Load(); n != 1 {
		t.Fatalf("%d refused, want 1", n)
	}
	close(release)
	for i, w := range held {
		if got, _ := w.wait(t, reqs[i]); aAddr(got) != "192.0.2.1" {
			t.Fatalf("held query %d: reply %v", i, got)
		}
	}
}

// TestForwardFlush: Flush closes the sockets; a query waiting on one is
// sent again on a new socket, and the next queries dial anew.
func TestForwardFlush(t *testing.T) {
	var gate atomic.Pointer[chan struct{}]
	up := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		if g := gate.Load(); g != nil {
			<-*g
		}
		answerA("192.0.2.1")(w, r)
	})
	var dials dialCounter
	u := up.upstream()
	u.Dial = dials.dial
	f, stats := newForwarder(t, ForwarderConfig{}, u)

	ask(t, f, query("example.com.", dns.TypeA), false)
	ask(t, f, query("example.com.", dns.TypeA), true)
	if dials.udp.Load() != 1 || dials.tcp.Load() != 1 {
		t.Fatalf("dials udp %d tcp %d, want 1 each", dials.udp.Load(), dials.tcp.Load())
	}

	// A query in flight across the Flush.
	g := make(chan struct{})
	gate.Store(&g)
	w := newWriter(false)
	req := query("example.com.", dns.TypeA)
	f.Forward(w, req)
	for up.queries() < 3 {
		time.Sleep(time.Millisecond)
	}
	f.Flush()
	gate.Store(nil)
	close(g)
	if got, _ := w.wait(t, req); aAddr(got) != "192.0.2.1" {
		t.Fatalf("query in flight across Flush: reply %v", got)
	}
	if dials.udp.Load() != 2 {
		t.Fatalf("%d UDP dials, want 2: the query in flight was not sent again on a new socket", dials.udp.Load())
	}

	ask(t, f, query("example.com.", dns.TypeA), true)
	if dials.tcp.Load() != 2 {
		t.Fatalf("%d TCP dials, want 2: the idle connection survived Flush", dials.tcp.Load())
	}
	if n := stats.UpstreamFailures.Load(); n != 0 {
		t.Fatalf("%d upstream failures, want none", n)
	}
}

// TestForwardIgnoresSpoofed: replies with the wrong ID or question, or
// that are no response, are dropped; the real reply is taken.
func TestForwardIgnoresSpoofed(t *testing.T) {
	testutil.RequireRoot(t)
	pc := listenUDP(t, "127.0.0.2")
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		req := new(dns.Msg)
		if req.Unpack(buf[:n]) != nil {
			return
		}
		reply := func(edit func(m *dns.Msg), addr string) {
			m := new(dns.Msg)
			m.SetReply(req)
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(addr),
			}}
			edit(m)
			b, _ := m.Pack()
			_, _ = pc.WriteTo(b, from)
		}
		reply(func(m *dns.Msg) { m.Id++ }, "203.0.113.1")
		reply(func(m *dns.Msg) { m.Question[0].Name = "evil.example." }, "203.0.113.2")
		reply(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }, "203.0.113.3")
		reply(func(m *dns.Msg) { m.Response = false }, "203.0.113.4")
		reply(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, "203.0.113.5")
		// Case changed by the server: still the question.
		reply(func(m *dns.Msg) { m.Question[0].Name = "EXAMPLE.com." }, "192.0.2.7")
	}()
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	f, stats := newForwarder(t, ForwarderConfig{}, Upstream{Addr: a})
	if got := ask(t, f, query("example.com.", dns.TypeA), false); aAddr(got) != "192.0.2.7" {
		t.Fatalf("reply %v, want the genuine answer", got)
	}
	if n := stats.UpstreamFailures.Load(); n != 0 {
		t.Fatalf("%d upstream failures, want none", n)
	}
}

// TestForwardMismatchedTCP: a TCP reply with the wrong ID fails the
// upstream; the next one answers.
func TestForwardMismatchedTCP(t *testing.T) {
	testutil.RequireRoot(t)
	ln := listenTCP(t, "127.0.0.2")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serveTCPOnce(c, func(req *dns.Msg) *dns.Msg {
				m := new(dns.Msg)
				m.SetReply(req)
				m.Id++
				return m
			})
			c.Close()
		}
	}()
	second := startUpstream(t, "127.0.0.3", answerA("192.0.2.3"))
	f, stats := newForwarder(t, ForwarderConfig{}, Upstream{Addr: ln.Addr().(*net.TCPAddr).AddrPort()}, second.upstream())
	if got := ask(t, f, query("example.com.", dns.TypeA), true); aAddr(got) != "192.0.2.3" {
		t.Fatalf("reply %v, want the second upstream's answer", got)
	}
	if n := stats.UpstreamFailures.Load(); n != 1 {
		t.Fatalf("%d upstream failures, want 1", n)
	}
}

// serveTCPOnce reads one query from c and writes answer's reply to it.
func serveTCPOnce(c net.Conn, answer func(req *dns.Msg) *dns.Msg) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return
	}
	req := new(dns.Msg)
	if req.Unpack(buf) != nil {
		return
	}
	b, err := answer(req).Pack()
	if err != nil {
		return
	}
	_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
}

// TestForwardRedialsClosedTCP: an idle TCP connection the server closed
// is replaced once, without a failure.
func TestForwardRedialsClosedTCP(t *testing.T) {
	testutil.RequireRoot(t)
	ln := listenTCP(t, "127.0.0.2")
	// One query per connection, then the server closes it.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serveTCPOnce(c, func(req *dns.Msg) *dns.Msg {
				m := new(dns.Msg)
				m.SetRcode(req, dns.RcodeNameError)
				return m
			})
			c.Close()
		}
	}()
	var dials dialCounter
	f, stats := newForwarder(t, ForwarderConfig{}, Upstream{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Dial: dials.dial})
	for i := range 3 {
		if got := ask(t, f, query("example.com.", dns.TypeA), true); got.Rcode != dns.RcodeNameError {
			t.Fatalf("query %d: rcode %s, want NXDOMAIN", i, dns.RcodeToString[got.Rcode])
		}
	}
	if d := dials.tcp.Load(); d != 3 {
		t.Fatalf("%d dials, want 3", d)
	}
	if n := stats.UpstreamFailures.Load(); n != 0 {
		t.Fatalf("%d upstream failures, want none", n)
	}
}

// TestForwardClose: Close answers the queries in flight and waits for
// them; later queries are refused at once.
func TestForwardClose(t *testing.T) {
	silent, _ := silentUpstream(t, "127.0.0.2")
	f := NewForwarder(ForwarderConfig{Upstreams: func() []Upstream { return []Upstream{silent} }, Timeout: time.Hour})
	w := newWriter(false)
	req := query("example.com.", dns.TypeA)
	f.Forward(w, req)
	f.Close()
	if got, _ := w.wait(t, req); got.Rcode != dns.RcodeServerFailure {
		t.Fatalf("query in flight at Close: rcode %s, want SERVFAIL", dns.RcodeToString[got.Rcode])
	}
	w = newWriter(false)
	f.Forward(w, req)
	if w.written() != 1 {
		t.Fatal("Forward after Close did not answer at once")
	}
	if got, _ := w.wait(t, req); got.Rcode != dns.RcodeRefused {
		t.Fatalf("after Close: rcode %s, want REFUSED", dns.RcodeToString[got.Rcode])
	}
	f.Flush() // stays closed
	f.Close()
}

// TestForwardCloseLeavesNoGoroutine: Close waits for the workers (of TCP
// clients' queries) and the sockets' readers.
func TestForwardCloseLeavesNoGoroutine(t *testing.T) {
	ups := []Upstream{startUpstream(t, "127.0.0.2", answerA("192.0.2.1")).upstream()}
	before := runtime.NumGoroutine()
	f := NewForwarder(ForwarderConfig{Upstreams: func() []Upstream { return ups }})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ask(t, f, query("example.com.", dns.TypeA), i%5 == 0)
		}()
	}
	wg.Wait()
	if f.workers.idle.Load() == 0 {
		t.Fatal("no worker waits for the next TCP query")
	}
	f.Close()
	// The test's own goroutines may still be exiting.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 1000 {
			t.Fatalf("%d goroutines after Close, %d before the forwarder", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// logCounter counts the records logged at each level.
type logCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[slog.Level]int{}
	}
	h.counts[r.Level]++
	return nil
}

func TestForwardLogsRateLimited(t *testing.T) {
	live := startUpstream(t, "127.0.0.3", answerA("192.0.2.3"))
	var logs logCounter
	f, stats := newForwarder(t, ForwarderConfig{Logger: slog.New(&logs)}, closedUpstream(t, "127.0.0.2"), live.upstream())
	for range 5 {
		ask(t, f, query("example.com.", dns.TypeA), false)
	}
	if n := stats.UpstreamFailures.Load(); n != 5 {
		t.Fatalf("%d failures, want 5", n)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.counts[slog.LevelWarn] != 1 {
		t.Fatalf("%d warnings for 5 failures of one upstream, want 1", logs.counts[slog.LevelWarn])
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter[string]{interval: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed uint64
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0},
		{"a", 5 * time.Second, false, 0},
		{"a", 10 * time.Second, true, 2},
		{"a", 21 * time.Second, true, 0},
	}
	for i, s := range steps {
		ok, n := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d: allow(%s, +%v) = %v, %d; want %v, %d", i, s.key, s.at, ok, n, s.ok, s.suppressed)
		}
	}
}

// TestForwardDnsmasq forwards to a real dnsmasq.
func TestForwardDnsmasq(t *testing.T) {
	testutil.RequireRoot(t)
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dnsmasq (Debian dnsmasq-base) is not installed")
		}
		t.Skip("dnsmasq (Debian dnsmasq-base) is not installed")
	}
	pc := listenUDP(t, "127.0.0.6")
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	cmd := exec.Command(bin, "--no-daemon", "--conf-file=/dev/null", "--listen-address=127.0.0.6",
		"--port="+strconv.Itoa(port), "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root",
		"--address=/example.test/192.0.2.1", "--address=/example.test/2001:db8::1", "--pid-file=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq: %s", stderr.String())
		}
	})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.6"), uint16(port))
	// Wait for dnsmasq to listen on TCP (it binds UDP and TCP together).
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			c.Close()
			break
		}
		if i == 500 {
			t.Fatalf("dnsmasq does not listen: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, _ := newForwarder(t, ForwarderConfig{}, Upstream{Addr: addr, Key: "dnsmasq"})
	for _, tcp := range []bool{false, true} {
		got := ask(t, f, query("www.example.test.", dns.TypeA), tcp)
		if aAddr(got) != "192.0.2.1" {
			t.Fatalf("tcp %v: reply %v, want 192.0.2.1", tcp, got)
		}
		got = ask(t, f, query("www.example.test.", dns.TypeAAAA), tcp)
		if len(got.Answer) != 1 || got.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::1" {
			t.Fatalf("tcp %v: AAAA reply %v, want 2001:db8::1", tcp, got)
		}
	}
}

// TestForwardTimeoutsOnOneSocket: the reader of a socket times out each
// query in flight on it at its own deadline, however the queries come
// and go: an early query that times out, one answered meanwhile, one sent
// later that times out later. Each fails over to the second upstream.
func TestForwardTimeoutsOnOneSocket(t *testing.T) {
	first := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Name == "fast.example." {
			answerA("192.0.2.1")(w, r)
		}
		// Others get no answer.
	})
	second := startUpstream(t, "127.0.0.3", answerA("192.0.2.2"))
	f, stats := newForwarder(t, ForwarderConfig{Timeout: time.Second}, first.upstream(), second.upstream())

	slow1, fast, slow2 := query("slow1.example.", dns.TypeA), query("fast.example.", dns.TypeA), query("slow2.example.", dns.TypeA)
	w1, wf, w2 := newWriter(false), newWriter(false), newWriter(false)
	f.Forward(w1, slow1)
	for first.queries() < 1 {
		time.Sleep(time.Millisecond)
	}
	f.Forward(wf, fast)
	if got, _ := wf.wait(t, fast); aAddr(got) != "192.0.2.1" {
		t.Fatalf("fast query: reply %v, want the first upstream's answer", got)
	}
	time.Sleep(50 * time.Millisecond) // slow2's deadline comes after slow1's
	f.Forward(w2, slow2)
	for _, c := range []struct {
		w   *syncWriter
		req *dns.Msg
	}{{w1, slow1}, {w2, slow2}} {
		if got, _ := c.w.wait(t, c.req); aAddr(got) != "192.0.2.2" {
			t.Fatalf("%v: reply %v, want the second upstream's answer", c.req.Question, got)
		}
	}
	if n := stats.UpstreamFailures.Load(); n != 2 {
		t.Fatalf("%d upstream failures, want 2", n)
	}
	if first.queries() != 3 || second.queries() != 2 {
		t.Fatalf("upstreams asked %d and %d times, want 3 and 2", first.queries(), second.queries())
	}
}

// TestForwardManyInFlightOnOneSocket: with a thousand queries in flight on
// one socket, random IDs collide; each query still gets an ID of its own
// and its own answer, whatever order the replies come in.
func TestForwardManyInFlightOnOneSocket(t *testing.T) {
	testutil.RequireRoot(t)
	const n = 1000
	pc := listenUDP(t, "127.0.0.2")
	// Room for the burst of queries, and of replies on the forwarder's
	// socket.
	if err := setReceiveBuffer(pc.(*net.UDPConn), 4<<20); err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr.String())
		if err == nil {
			err = setReceiveBuffer(c.(*net.UDPConn), 4<<20)
		}
		return c, err
	}
	ids := make(chan map[uint16]bool, 1)
	go func() {
		// Take all the queries, then answer them last first, each with
		// the address its name asks for.
		type held struct {
			req  *dns.Msg
			from net.Addr
		}
		var all []held
		seen := map[uint16]bool{}
		buf := make([]byte, 512)
		for len(all) < n {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:k]) != nil {
				continue
			}
			seen[req.Id] = true
			all = append(all, held{req, from})
		}
		ids <- seen
		for i := len(all) - 1; i >= 0; i-- {
			h := all[i]
			var a, b int
			fmt.Sscanf(h.req.Question[0].Name, "q%d-%d.example.", &a, &b)
			m := new(dns.Msg)
			m.SetReply(h.req)
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: h.req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(10, 0, byte(a), byte(b)),
			}}
			out, _ := m.Pack()
			_, _ = pc.WriteTo(out, h.from)
		}
	}()
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	f, stats := newForwarder(t, ForwarderConfig{MaxConcurrent: n, Timeout: time.Minute}, Upstream{Addr: a, Dial: dial})
	ws := make([]*syncWriter, n)
	reqs := make([]*dns.Msg, n)
	for i := range n {
		reqs[i] = query(fmt.Sprintf("q%d-%d.example.", i/256, i%256), dns.TypeA)
		reqs[i].Id = uint16(i)
		ws[i] = newWriter(false)
		f.Forward(ws[i], reqs[i])
	}
	select {
	case seen := <-ids:
		if len(seen) != n {
			t.Fatalf("%d queries in flight went upstream with %d IDs", n, len(seen))
		}
	case <-time.After(replyWait):
		t.Fatal("the upstream did not get every query")
	}
	for i := range n {
		got, _ := ws[i].wait(t, reqs[i])
		if want := fmt.Sprintf("10.0.%d.%d", i/256, i%256); aAddr(got) != want {
			t.Fatalf("query %d: reply %v, want %s", i, got, want)
		}
	}
	if s := stats.Snapshot(); s.UpstreamFailures != 0 || s.Forwarded != n {
		t.Fatalf("stats %+v, want %d forwarded and no failure", s, n)
	}
}

// TestForwardOversizedUDPReply: a UDP reply longer than the 4096 bytes
// the query offered is not relayed cut short: the client gets TC and
// retries over TCP.
func TestForwardOversizedUDPReply(t *testing.T) {
	testutil.RequireRoot(t)
	pc := listenUDP(t, "127.0.0.2")
	go func() {
		buf := make([]byte, 512)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:k]) != nil {
				continue
			}
			m := new(dns.Msg)
			m.SetReply(req)
			for i := range 400 { // 16 bytes each, compressed: 6,400 bytes
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(198, 51, byte(i/256), byte(i)),
				})
			}
			m.Compress = true
			out, _ := m.Pack()
			_, _ = pc.WriteTo(out, from)
		}
	}()
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	f, _ := newForwarder(t, ForwarderConfig{}, Upstream{Addr: a})
	req := query("huge.example.", dns.TypeA)
	req.SetEdns0(4096, false)
	got := ask(t, f, req, false)
	if !got.Truncated || len(got.Answer) != 0 || got.Rcode != dns.RcodeSuccess {
		t.Fatalf("reply %v, want an empty NOERROR with TC", got)
	}
}

// Close does not wait out a dial in progress (a TCP connect to an upstream
// that never answers can take the upstream's whole share of the timeout):
// the dial's context is cancelled and the query answered.
func TestForwardCloseCancelsDial(t *testing.T) {
	dialing := make(chan struct{})
	var cause atomic.Value
	up := Upstream{Addr: netip.MustParseAddrPort("192.0.2.1:53"), Key: "blocked",
		Dial: func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
			close(dialing)
			<-ctx.Done()
			cause.Store(ctx.Err())
			return nil, ctx.Err()
		}}
	f := NewForwarder(ForwarderConfig{Upstreams: func() []Upstream { return []Upstream{up} }, Timeout: time.Hour})
	w := newWriter(true)
	req := new(dns.Msg)
	req.SetQuestion("example.test.", dns.TypeA)
	f.Forward(w, req)
	<-dialing
	f.Close()
	if err, _ := cause.Load().(error); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial's context ended with %v, want Canceled by Close", err)
	}
	if got, _ := w.wait(t, req); got.Rcode != dns.RcodeServerFailure {
		t.Fatalf("query answered %s, want SERVFAIL", dns.RcodeToString[got.Rcode])
	}
}

// TestForwardIDCollision: a UDP query never goes upstream under the ID of
// another in flight on its socket: when the random ID collides, another
// is drawn, and each query gets its own answer.
func TestForwardIDCollision(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		var i int
		fmt.Sscanf(r.Question[0].Name, "q%d.example.", &i)
		answerA(fmt.Sprintf("192.0.2.%d", i))(w, r)
	})
	f, stats := newForwarder(t, ForwarderConfig{}, up.upstream())
	// 7, 7, 7, 9: the second query draws 7 twice before 9.
	var mu sync.Mutex
	ids := []uint16{7, 7, 7, 9}
	f.newID = func() uint16 {
		mu.Lock()
		defer mu.Unlock()
		id := ids[0]
		if len(ids) > 1 {
			ids = ids[1:]
		}
		return id
	}
	var ws []*syncWriter
	var reqs []*dns.Msg
	for i := range 2 {
		req := query(fmt.Sprintf("q%d.example.", i+1), dns.TypeA)
		w := newWriter(false)
		f.Forward(w, req)
		ws, reqs = append(ws, w), append(reqs, req)
	}
	for up.queries() < 2 {
		time.Sleep(time.Millisecond)
	}
	up.mu.Lock()
	got := []uint16{up.seen[0].Id, up.seen[1].Id}
	up.mu.Unlock()
	slices.Sort(got)
	if got[0] != 7 || got[1] != 9 {
		t.Fatalf("queries went upstream with IDs %v, want 7 and 9", got)
	}
	close(release)
	for i, w := range ws {
		if got, _ := w.wait(t, reqs[i]); aAddr(got) != fmt.Sprintf("192.0.2.%d", i+1) {
			t.Fatalf("query %d: reply %v", i+1, got)
		}
	}
	if n := stats.UpstreamFailures.Load(); n != 0 {
		t.Fatalf("%d upstream failures, want none", n)
	}
}
