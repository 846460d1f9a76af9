package port

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/rootless/api"
	"github.com/netkit/libnetwork/types"
)

func TestSpecValidate(t *testing.T) {
	ok := Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80}
	with := func(f func(*Spec)) Spec { s := ok; f(&s); return s }
	good := []Spec{
		ok,
		with(func(s *Spec) { s.Proto = "udp6"; s.ParentIP = "::1"; s.ChildIP = "127.0.0.1" }),
		with(func(s *Spec) { s.Proto = "tcp4"; s.ParentIP = "::ffff:127.0.0.1" }),
		with(func(s *Spec) { s.Proto = "udp4"; s.ParentIP = "0.0.0.0"; s.ParentPort = 65535; s.ChildPort = 1 }),
		with(func(s *Spec) { s.Proto = "tcp"; s.ParentIP = "::"; s.ChildIP = "fd00::2" }),
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []struct {
		spec Spec
		want string // in the error
	}{
		{with(func(s *Spec) { s.Proto = "" }), `proto "": not one of tcp, tcp4, tcp6, udp, udp4, udp6`},
		{with(func(s *Spec) { s.Proto = "sctp" }), `proto "sctp"`},
		{with(func(s *Spec) { s.Proto = "TCP" }), `proto "TCP"`},
		{with(func(s *Spec) { s.ParentPort = 0 }), "parentPort 0: not in 1..65535"},
		{with(func(s *Spec) { s.ParentPort = 65536 }), "parentPort 65536"},
		{with(func(s *Spec) { s.ChildPort = -1 }), "childPort -1: not in 1..65535"},
		{with(func(s *Spec) { s.ChildPort = 70000 }), "childPort 70000"},
		{with(func(s *Spec) { s.ParentIP = "localhost" }), `parentIP "localhost": not an IP address`},
		{with(func(s *Spec) { s.ParentIP = "1.2.3" }), `parentIP "1.2.3": not an IP address`},
		{with(func(s *Spec) { s.ParentIP = "fe80::1%lo" }), `parentIP "fe80::1%lo": IPv6 zones are not supported`},
		{with(func(s *Spec) { s.ChildIP = "10.0.0.300" }), `childIP "10.0.0.300": not an IP address`},
		{with(func(s *Spec) { s.Proto = "tcp4"; s.ParentIP = "::1" }), `parentIP "::1" is not an IPv4 address, but proto tcp4 listens on IPv4 only`},
		{with(func(s *Spec) { s.Proto = "udp6"; s.ParentIP = "127.0.0.1" }), `parentIP "127.0.0.1" is an IPv4 address, but proto udp6 listens on IPv6 only`},
	}
	for _, c := range bad {
		err := c.spec.Validate()
		if err == nil {
			t.Errorf("%s: valid, want an error with %q", c.spec, c.want)
			continue
		}
		if !types.IsBadRequest(err) {
			t.Errorf("%s: %v is not a BadRequestError", c.spec, err)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "invalid port spec "+c.spec.String()) {
			t.Errorf("%s: error %q, want it to name the spec and say %q", c.spec, err, c.want)
		}
	}
}

func TestSpecOverlaps(t *testing.T) {
	spec := func(proto, ip string, port int) Spec {
		return Spec{Proto: proto, ParentIP: ip, ParentPort: port, ChildPort: 80}
	}
	cases := []struct {
		a, b Spec
		want bool
	}{
		{spec("tcp", "", 80), spec("tcp", "", 80), true},
		{spec("tcp", "", 80), spec("tcp", "", 81), false},
		{spec("tcp", "", 80), spec("udp", "", 80), false},
		{spec("tcp4", "", 80), spec("tcp6", "", 80), false},
		{spec("tcp", "", 80), spec("tcp6", "::1", 80), true},
		{spec("tcp", "", 80), spec("tcp4", "127.0.0.1", 80), true},
		{spec("tcp", "::", 80), spec("tcp4", "10.0.0.1", 80), true},
		{spec("tcp", "0.0.0.0", 80), spec("tcp6", "::1", 80), false},
		{spec("tcp4", "127.0.0.1", 80), spec("tcp4", "127.0.0.2", 80), false},
		{spec("tcp4", "127.0.0.1", 80), spec("tcp", "::ffff:127.0.0.1", 80), true},
		{spec("udp6", "::1", 53), spec("udp6", "::", 53), true},
		{spec("udp6", "::1", 53), spec("udp6", "::2", 53), false},
		{spec("udp4", "0.0.0.0", 53), spec("udp", "192.0.2.1", 53), true},
	}
	for _, c := range cases {
		if got := c.a.Overlaps(c.b); got != c.want {
			t.Errorf("(%s).Overlaps(%s) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := c.b.Overlaps(c.a); got != c.want {
			t.Errorf("(%s).Overlaps(%s) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

func TestCheckConflict(t *testing.T) {
	existing := []Status{
		{ID: 1, Spec: Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: 8080, ChildPort: 80}},
		{ID: 2, Spec: Spec{Proto: "udp", ParentPort: 5353, ChildPort: 53}},
	}
	if err := CheckConflict(Spec{Proto: "tcp6", ParentPort: 8080, ChildPort: 80}, existing); err != nil {
		t.Errorf("tcp6 :8080 beside tcp4 127.0.0.1:8080: %v", err)
	}
	err := CheckConflict(Spec{Proto: "udp6", ParentIP: "::1", ParentPort: 5353, ChildPort: 53}, existing)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "conflicts with port 2 (udp :5353 -> :53)") {
		t.Errorf("udp6 [::1]:5353 beside udp :5353: %v, want a ForbiddenError naming port 2", err)
	}
}

// TestJSON: the encoding is rootlesskit's, so its clients read ours.
func TestJSON(t *testing.T) {
	st := Status{ID: 3, Spec: Spec{Proto: "tcp6", ParentIP: "::1", ParentPort: 8080, ChildPort: 80, ChildIP: "::1"}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":3,"spec":{"proto":"tcp6","parentIP":"::1","parentPort":8080,"childPort":80,"childIP":"::1"}}`
	if string(b) != want {
		t.Errorf("Status encodes as %s, want %s", b, want)
	}
	b, err = json.Marshal(api.PortDriverInfo{Driver: "builtin", Protos: []string{"tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"driver":"builtin","protos":["tcp"]}`; string(b) != want {
		t.Errorf("PortDriverInfo encodes as %s, want %s", b, want)
	}
}
