package slirp4netns

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/rootless/port"
	"github.com/netkit/libnetwork/types"
)

func TestToHostfwd(t *testing.T) {
	child := netip.MustParseAddr("10.0.2.100")
	ok := []struct {
		spec port.Spec
		want hostfwd
	}{
		{port.Spec{Proto: "tcp", ParentPort: 8080, ChildPort: 80},
			hostfwd{Proto: "tcp", HostAddr: "0.0.0.0", HostPort: 8080, GuestAddr: "10.0.2.100", GuestPort: 80}},
		{port.Spec{Proto: "tcp4", ParentIP: "127.0.0.1", ParentPort: 1, ChildPort: 65535},
			hostfwd{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 1, GuestAddr: "10.0.2.100", GuestPort: 65535}},
		{port.Spec{Proto: "udp", ParentIP: "::ffff:127.0.0.2", ParentPort: 53, ChildPort: 53, ChildIP: "10.0.2.5"},
			hostfwd{Proto: "udp", HostAddr: "127.0.0.2", HostPort: 53, GuestAddr: "10.0.2.5", GuestPort: 53}},
		{port.Spec{Proto: "udp4", ParentPort: 53, ChildPort: 5353},
			hostfwd{Proto: "udp", HostAddr: "0.0.0.0", HostPort: 53, GuestAddr: "10.0.2.100", GuestPort: 5353}},
	}
	for _, tc := range ok {
		got, err := toHostfwd(tc.spec, child)
		if err != nil || got != tc.want {
			t.Errorf("toHostfwd(%+v) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}

	bad := []struct {
		spec port.Spec
		why  string
	}{
		// Refused by port.Spec.Validate.
		{port.Spec{Proto: "sctp", ParentPort: 8080, ChildPort: 80}, `proto "sctp"`},
		{port.Spec{ParentPort: 8080, ChildPort: 80}, `proto ""`},
		{port.Spec{Proto: "tcp", ParentPort: 0, ChildPort: 80}, "parentPort 0"},
		{port.Spec{Proto: "tcp", ParentPort: 65536, ChildPort: 80}, "parentPort 65536"},
		{port.Spec{Proto: "tcp", ParentPort: 80, ChildPort: -1}, "childPort -1"},
		{port.Spec{Proto: "tcp", ParentIP: "localhost", ParentPort: 80, ChildPort: 80}, `parentIP "localhost"`},
		{port.Spec{Proto: "tcp", ParentPort: 80, ChildPort: 80, ChildIP: "10.0.2"}, `childIP "10.0.2"`},
		// What slirp4netns cannot do.
		{port.Spec{Proto: "tcp6", ParentPort: 8080, ChildPort: 80}, "IPv4 only"},
		{port.Spec{Proto: "udp6", ParentPort: 8080, ChildPort: 80}, "IPv4 only"},
		{port.Spec{Proto: "tcp", ParentIP: "::1", ParentPort: 80, ChildPort: 80}, "parent IP ::1 is IPv6"},
		{port.Spec{Proto: "tcp", ParentPort: 80, ChildPort: 80, ChildIP: "127.0.0.1"}, "loopback"},
		{port.Spec{Proto: "tcp", ParentPort: 80, ChildPort: 80, ChildIP: "0.0.0.0"}, "not a unicast"},
		{port.Spec{Proto: "tcp", ParentPort: 80, ChildPort: 80, ChildIP: "fd00::1"}, "child IP fd00::1 is IPv6"},
	}
	for _, tc := range bad {
		_, err := toHostfwd(tc.spec, child)
		if _, ok := err.(types.BadRequestError); !ok {
			t.Errorf("toHostfwd(%+v) = %v (%T), want a BadRequestError", tc.spec, err, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), tc.spec.String()) {
			t.Errorf("toHostfwd(%+v) = %q, want it to name the spec and say %q", tc.spec, err, tc.why)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	long := "/" + strings.Repeat("s", maxSocketPath)
	for _, tc := range []struct {
		socket  string
		childIP net.IP
		why     string
	}{
		{"", nil, "no API socket"},
		{long, nil, "over the 107"},
		{"/run/s.sock", net.ParseIP("fd00::100"), "not IPv4"},
		{"/run/s.sock", net.IPv4(127, 0, 0, 1), "loopback"},
		{"/run/s.sock", net.IPv4zero, "not a unicast"},
		{"/run/s.sock", net.IP{1, 2, 3}, "not IPv4"},
	} {
		m, err := New(tc.socket, tc.childIP, nil)
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("New(%q, %v) = %v, %v; want a BadRequestError saying %q", tc.socket, tc.childIP, m, err, tc.why)
		}
	}
	m, err := New("/run/s.sock", net.IPv4(10, 0, 3, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.childIP.String(); got != "10.0.3.100" {
		t.Errorf("child IP %s", got)
	}
}
