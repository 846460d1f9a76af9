package resolver

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/miekg/dns"
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
	raw := p.raw.serveRaw(packet, nil)
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
		if got := h.serveRaw(packet, nil); got != nil {
			t.Errorf("%s: serveRaw answered % x", tc.name, got)
		}
	}

	// Cut short anywhere, or with a byte more: declined, without panic.
	req := query("web.", dns.TypeA)
	req.SetEdns0(1232, true)
	packet, _ := req.Pack()
	h := NewHandler(testTable(), nil, nil)
	if h.serveRaw(packet, nil) == nil {
		t.Fatal("the whole query was declined")
	}
	for i := range len(packet) {
		if got := h.serveRaw(packet[:i], nil); got != nil {
			t.Fatalf("query cut to %d bytes answered", i)
		}
	}
	if got := h.serveRaw(append(packet, 0), nil); got != nil {
		t.Fatal("query with a trailing byte answered")
	}
	// A compression pointer in the question.
	ptr := append([]byte(nil), packet[:headerLen]...)
	ptr = append(ptr, 0xc0, headerLen, 0, 1, 0, 1)
	ptr[11] = 0 // no OPT
	if got := h.serveRaw(ptr, nil); got != nil {
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
	if got := h.serveRaw(packet, nil); got != nil {
		t.Fatalf("40 A records (%d bytes) answered within 512 bytes", len(got))
	}
	req.SetEdns0(1232, false)
	packet, _ = req.Pack()
	if got := h.serveRaw(packet, nil); got == nil {
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
		if h.serveRaw(packet, out) == nil {
			b.Fatal("declined")
		}
	}
}
