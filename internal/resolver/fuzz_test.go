package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandler serves arbitrary packets: whatever unpacks, the handler must
// not panic and must write exactly one reply, with the request's ID, that
// packs. The seed corpus is in testdata/fuzz/FuzzHandler.
func FuzzHandler(f *testing.F) {
	for _, m := range []*dns.Msg{
		query("web.", dns.TypeA),
		query("multi.", dns.TypeAAAA),
		query("2.0.18.172.in-addr.arpa.", dns.TypePTR),
		query("example.com.", dns.TypeMX),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(dns.Msg)
		if req.Unpack(packet) != nil {
			return
		}
		for _, fwd := range []func(dns.ResponseWriter, *dns.Msg){nil, (&forwardRecorder{}).forward} {
			w := &recorder{tcp: tcp}
			NewHandler(testTable(), fwd, nil).ServeDNS(w, req)
			if len(w.msgs) != 1 {
				t.Fatalf("%d replies, want 1", len(w.msgs))
			}
			if w.err != nil {
				t.Fatalf("reply does not pack: %v\n%v", w.err, w.msgs[0])
			}
			if w.msgs[0].Id != req.Id || !w.msgs[0].Response {
				t.Fatalf("reply id %d response %v, want %d true", w.msgs[0].Id, w.msgs[0].Response, req.Id)
			}
			limit := dns.MinMsgSize
			if tcp {
				limit = dns.MaxMsgSize
			} else if opt := req.IsEdns0(); opt != nil {
				limit = max(limit, min(int(opt.UDPSize()), maxUDPSize))
			}
			if fwd == nil && len(w.packed[0]) > limit {
				t.Fatalf("reply of %d bytes, limit %d", len(w.packed[0]), limit)
			}
		}
	})
}
