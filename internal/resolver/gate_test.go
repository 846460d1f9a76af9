package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// The gate keeps queries for unknown names from being forwarded (an
// internal network) and the stats count what the handler answered.
func TestHandlerGateAndStats(t *testing.T) {
	fwd := &forwardRecorder{}
	h := NewHandler(testTable(), fwd.forward, nil)
	var s Stats
	h.SetStats(&s)
	open := false
	h.SetForwardGate(func() bool { return open })

	got, _ := serve(t, h, query("example.org.", dns.TypeA), false)
	if len(fwd.calls) != 0 || got.Rcode != dns.RcodeNameError {
		t.Fatalf("gate closed: forwarded %d, rcode %s; want 0 and NXDOMAIN", len(fwd.calls), dns.RcodeToString[got.Rcode])
	}
	open = true
	got, _ = serve(t, h, query("example.org.", dns.TypeA), false)
	if len(fwd.calls) != 1 || got.Rcode != dns.RcodeServerFailure {
		t.Fatalf("gate open: forwarded %d, rcode %s; want 1 and the forward's SERVFAIL", len(fwd.calls), dns.RcodeToString[got.Rcode])
	}
	serve(t, h, query("web.", dns.TypeA), false)
	bad := query("web.", dns.TypeA)
	bad.Opcode = dns.OpcodeStatus
	serve(t, h, bad, false)

	snap := s.Snapshot()
	// The closed gate's NXDOMAIN and the web answer are local; the
	// forwarded query is the forwarder's to count.
	if snap.Local != 2 || snap.Malformed != 1 || snap.LocalLatency.Count != 2 {
		t.Fatalf("stats %+v; want Local 2, Malformed 1, 2 latencies", snap)
	}
}
