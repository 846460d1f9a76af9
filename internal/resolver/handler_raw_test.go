package resolver

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/netkit/libnetwork/internal/testutil"
)

// udpRecorder packs replies as the server's UDP writer does (compressed).
type udpRecorder struct {
	recorder
	out [][]byte
}

func (w *udpRecorder) WriteMsg(m *dns.Msg) error {
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.out = append(w.out, b)
	return nil
}

// rawPair is two handlers on the same names, one serving as the server
// does (serveRaw first, ServeDNS when it declines), the other with
// ServeDNS alone; their rotations stay in step as long as both answer the
// same.
type rawPair struct {
	raw, full           *Handler
	rawStats, fullStats Stats
}

func newRawPair() *rawPair {
	p := &rawPair{raw: NewHandler(testTable(), nil, nil), full: NewHandler(testTable(), nil, nil)}
	p.raw.SetStats(&p.rawStats)
	p.full.SetStats(&p.fullStats)
	return p
}

// check serves packet both ways and fails unless the replies are the same
// bytes. It returns whether serveRaw answered.
func (p *rawPair) check(t testing.TB, packet []byte) bool {
	t.Helper()
	raw, forward := p.raw.serveRaw(packet, nil)
	if forward {
		t.Fatalf("serveRaw would forward % x without a Forwarder", packet)
	}
	req := new(dns.Msg)
	if err := req.Unpack(packet); err != nil {
		if raw != nil {
			t.Fatalf("serveRaw answered a packet that does not unpack (%v): % x", err, packet)
		}
		return false
	}
	if raw == nil {
		// As the server does.
		p.raw.ServeDNS(&udpRecorder{}, req.Copy())
	}
	w := &udpRecorder{}
	p.full.ServeDNS(w, req)
	if len(w.out) != 1 {
		t.Fatalf("ServeDNS wrote %d replies to %v, want 1", len(w.out), req.Question)
	}
	if raw != nil && !bytes.Equal(raw, w.out[0]) {
		got, want := new(dns.Msg), new(dns.Msg)
		_ = got.Unpack(raw)
		_ = want.Unpack(w.out[0])
		t.Fatalf("query % x\nserveRaw:\n% x\n%v\nServeDNS:\n% x\n%v", packet, raw, got, w.out[0], want)
	}
	return raw != nil
}

// TestServeRawMatchesServeDNS: whatever serveRaw answers, it answers with
// the bytes ServeDNS writes over UDP; and it answers the common queries.
func TestServeRawMatchesServeDNS(t *testing.T) {
	p := newRawPair()
	type edns struct {
		size uint16
		do   bool
	}
	answered := 0
	for _, name := range []string{"web.", "WeB.FrOnT.", "db.", "cache.", "noaddr.", "multi.", "unknown.", "web.front.example.", "a_b.", "w\\.eb."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeMX, dns.TypeTXT, dns.TypePTR} {
			for _, e := range []*edns{nil, {0, false}, {100, false}, {512, true}, {1232, false}, {4096, true}, {65000, false}} {
				for _, flags := range []func(m *dns.Msg){
					func(m *dns.Msg) {},
					func(m *dns.Msg) { m.RecursionDesired = false },
					func(m *dns.Msg) { m.CheckingDisabled, m.AuthenticatedData = true, true },
				} {
					req := query(name, qtype)
					req.Id = uint16(answered)
					flags(req)
					if e != nil {
						req.SetEdns0(e.size, e.do)
					}
					packet, err := req.Pack()
					if err != nil {
						t.Fatal(err)
					}
					// Three times, for the rotation.
					for range 3 {
						if p.check(t, packet) {
							answered++
						}
					}
				}
			}
		}
	}
	if answered == 0 {
		t.Fatal("serveRaw answered nothing")
	}
	// The counters are those ServeDNS alone keeps.
	r, f := p.rawStats.Snapshot(), p.fullStats.Snapshot()
	if r.Local != f.Local || r.Malformed != f.Malformed || r.LocalLatency.Count != f.LocalLatency.Count {
		t.Errorf("counters %+v, want those of ServeDNS alone %+v", r, f)
	}

	// The common cases go the raw way.
	for _, req := range []*dns.Msg{query("web.", dns.TypeA), query("multi.", dns.TypeAAAA), query("noaddr.", dns.TypeMX)} {
		req.SetEdns0(1232, false)
		packet, _ := req.Pack()
		if !p.check(t, packet) {
			t.Errorf("%v: serveRaw declined", req.Question)
		}
	}
}

// TestServeRawDeclines: what serveRaw leaves to ServeDNS.
func TestServeRawDeclines(t *testing.T) {
	withOpt := func(edit func(o *dns.OPT)) *dns.Msg {
		m := query("web.", dns.TypeA)
		m.SetEdns0(1232, false)
		edit(m.IsEdns0())
		return m
	}
	for _, tc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"response", func() *dns.Msg { m := query("web.", dns.TypeA); m.Response = true; return m }()},
		{"notify", func() *dns.Msg { m := query("web.", dns.TypeA); m.Opcode = dns.OpcodeNotify; return m }()},
		{"two questions", func() *dns.Msg {
			m := query("web.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}()},
		{"no question", func() *dns.Msg { m := query("web.", dns.TypeA); m.Question = nil; return m }()},
		{"an answer", func() *dns.Msg {
			m := query("web.", dns.TypeA)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "web.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: []byte{1, 2, 3, 4}}}
			return m
		}()},
		{"edns version 1", withOpt(func(o *dns.OPT) { o.SetVersion(1) })},
		{"edns option", withOpt(func(o *dns.OPT) {
			o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		})},
		{"class CH", func() *dns.Msg { m := query("web.", dns.TypeA); m.Question[0].Qclass = dns.ClassCHAOS; return m }()},
		{"PTR", query("2.0.18.172.in-addr.arpa.", dns.TypePTR)},
		{"unknown name", query("example.com.", dns.TypeA)},
		{"root", query(".", dns.TypeA)},
		{"escaped dot", query("w\\.eb.", dns.TypeA)},
	} {
		packet, err := tc.req.Pack()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		h := NewHandler(testTable(), nil, nil)
		if got, _ := h.serveRaw(packet, nil); got != nil {
			t.Errorf("%s: serveRaw answered % x", tc.name, got)
		}
	}

	// Cut short anywhere, or with a byte more: declined, without panic.
	req := query("web.", dns.TypeA)
	req.SetEdns0(1232, true)
	packet, _ := req.Pack()
	h := NewHandler(testTable(), nil, nil)
	if got, _ := h.serveRaw(packet, nil); got == nil {
		t.Fatal("the whole query was declined")
	}
	for i := range len(packet) {
		if got, _ := h.serveRaw(packet[:i], nil); got != nil {
			t.Fatalf("query cut to %d bytes answered", i)
		}
	}
	if got, _ := h.serveRaw(append(packet, 0), nil); got != nil {
		t.Fatal("query with a trailing byte answered")
	}
	// A compression pointer in the question.
	ptr := append([]byte(nil), packet[:headerLen]...)
	ptr = append(ptr, 0xc0, headerLen, 0, 1, 0, 1)
	ptr[11] = 0 // no OPT
	if got, _ := h.serveRaw(ptr, nil); got != nil {
		t.Fatal("a question with a compression pointer answered")
	}
}

// TestServeRawTruncates: an answer larger than the client's size is left
// to ServeDNS, which truncates it.
func TestServeRawTruncates(t *testing.T) {
	tbl := &table{}
	var addrs []string
	for i := range 40 {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d", i+1))
	}
	tbl.add("many", addrs...)
	h := NewHandler(tbl, nil, nil)
	req := query("many.", dns.TypeA)
	packet, _ := req.Pack()
	if got, _ := h.serveRaw(packet, nil); got != nil {
		t.Fatalf("40 A records (%d bytes) answered within 512 bytes", len(got))
	}
	req.SetEdns0(1232, false)
	packet, _ = req.Pack()
	if got, _ := h.serveRaw(packet, nil); got == nil {
		t.Fatal("40 A records declined with room for them")
	}
}

// FuzzServeRaw: serveRaw never panics, and whatever it answers, ServeDNS
// answers the same bytes.
func FuzzServeRaw(f *testing.F) {
	for _, m := range []*dns.Msg{
		query("web.", dns.TypeA),
		query("MULTI.", dns.TypeANY),
		query("noaddr.", dns.TypeMX),
		query("unknown.", dns.TypeA),
	} {
		m.SetEdns0(1232, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, packet []byte) {
		newRawPair().check(t, packet)
	})
}

func BenchmarkServeRawLocalA(b *testing.B) {
	h := NewHandler(testTable(), nil, nil)
	h.SetStats(new(Stats))
	req := query("web.front.", dns.TypeA)
	req.SetEdns0(1232, false)
	packet, _ := req.Pack()
	out := make([]byte, 0, maxUDPSize)
	b.ReportAllocs()
	for b.Loop() {
		if got, _ := h.serveRaw(packet, out); got == nil {
			b.Fatal("declined")
		}
	}
}

// recordingUpstream answers each UDP query with answer's reply and keeps
// the packets it got.
func recordingUpstream(t testing.TB, answer func(req *dns.Msg) *dns.Msg) (Upstream, func() [][]byte) {
	t.Helper()
	testutil.RequireRoot(t)
	pc := listenUDP(t, "127.0.0.2")
	var mu sync.Mutex
	var got [][]byte
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, bytes.Clone(buf[:n]))
			mu.Unlock()
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			out, err := answer(req).Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	return Upstream{Addr: a, Key: "rec/" + a.String()}, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestForwardRawMatchesForward: a query forwarded in wire form reaches
// the upstream as the same bytes as when forwarded unpacked (but for the
// random ID), and the client gets the same reply, whether the upstream
// answers, answers too much for the client, or fails.
func TestForwardRawMatchesForward(t *testing.T) {
	big := func(req *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(req)
		for i := range 60 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(198, 51, 100, byte(i)),
			})
		}
		return m
	}
	up, packets := recordingUpstream(t, big)
	f, _ := newForwarder(t, ForwarderConfig{}, up)
	type edns struct {
		size uint16
		do   bool
	}
	n := 0
	for _, name := range []string{"example.com.", "ExAmPlE.CoM."} {
		for _, e := range []*edns{nil, {512, false}, {1232, true}, {4096, false}, {65000, true}} {
			for _, flags := range []func(m *dns.Msg){
				func(m *dns.Msg) {},
				func(m *dns.Msg) { m.RecursionDesired = false },
				func(m *dns.Msg) { m.CheckingDisabled, m.AuthenticatedData = true, true },
			} {
				req := query(name, dns.TypeA)
				flags(req)
				if e != nil {
					req.SetEdns0(e.size, e.do)
				}
				packet, err := req.Pack()
				if err != nil {
					t.Fatal(err)
				}
				full, raw := newWriter(false), newWriter(false)
				f.Forward(full, req.Copy())
				want, _ := full.wait(t, req)
				f.forwardRaw(raw, packet)
				got, _ := raw.wait(t, req)
				if got.String() != want.String() {
					t.Fatalf("%v: reply forwarded raw\n%v\nforwarded unpacked\n%v", req, got, want)
				}
				n += 2
				sent := packets()
				if len(sent) != n {
					t.Fatalf("upstream got %d queries, want %d", len(sent), n)
				}
				a, b := sent[n-2], sent[n-1]
				if len(a) < 2 || len(b) < 2 || !bytes.Equal(a[2:], b[2:]) {
					t.Fatalf("%v: upstream got\n% x\nforwarded raw, and\n% x\nforwarded unpacked", req, b, a)
				}
			}
		}
	}

	// The replies the forwarder makes itself: SERVFAIL when the upstream
	// fails, REFUSED once closed.
	dead := closedUpstream(t, "127.0.0.3")
	f, _ = newForwarder(t, ForwarderConfig{}, dead)
	req := query("example.com.", dns.TypeA)
	req.SetEdns0(1232, true)
	packet, _ := req.Pack()
	for _, rcode := range []int{dns.RcodeServerFailure, dns.RcodeRefused} {
		if rcode == dns.RcodeRefused {
			f.Close()
		}
		full, raw := newWriter(false), newWriter(false)
		f.Forward(full, req.Copy())
		want, _ := full.wait(t, req)
		f.forwardRaw(raw, packet)
		got, _ := raw.wait(t, req)
		if got.Rcode != rcode || got.String() != want.String() {
			t.Fatalf("reply forwarded raw\n%v\nforwarded unpacked\n%v\nwant %s", got, want, dns.RcodeToString[rcode])
		}
	}
}

// TestServeRawForwards: with a Forwarder, serveRaw gives the names that
// are not the sandbox's to it, unless the gate says no.
func TestServeRawForwards(t *testing.T) {
	f := NewForwarder(ForwarderConfig{})
	t.Cleanup(f.Close)
	h := NewHandler(testTable(), nil, nil)
	h.SetForwarder(f)
	open := true
	h.SetForwardGate(func() bool { return open })
	pack := func(name string) []byte {
		b, err := query(name, dns.TypeA).Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if reply, forward := h.serveRaw(pack("example.com."), nil); reply != nil || !forward {
		t.Fatalf("unknown name: reply %x forward %v, want forward", reply, forward)
	}
	if reply, forward := h.serveRaw(pack("web."), nil); reply == nil || forward {
		t.Fatalf("local name: reply %x forward %v, want an answer", reply, forward)
	}
	open = false
	if reply, forward := h.serveRaw(pack("example.com."), nil); reply != nil || forward {
		t.Fatalf("unknown name, gate closed: reply %x forward %v, want it left to ServeDNS", reply, forward)
	}
}
